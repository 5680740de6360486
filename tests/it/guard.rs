//! The out-of-process guard: a run killed with SIGKILL (as by the OOM killer) cannot run
//! its own safe state; the guard it started must switch the bench off, confirmed from the
//! instruments' side, and record what it did in guard.json.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{read_json, temp_dir};
use crate::external_bench::*;

/// Read the run's JSON events until its trip step starts.
fn wait_for_trip_step(lines: &mut impl Iterator<Item = std::io::Result<String>>) {
    let mut seen = Vec::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the run ended before its trip step: {seen:#?}"))
            .unwrap();
        let trip = line.contains("\"event\":\"step\"") && line.contains("\"kind\":\"trip\"");
        seen.push(line);
        if trip {
            return;
        }
    }
}

#[test]
fn sigkill_mid_trip_leaves_the_short_open_and_supply_and_load_off_within_5_s() {
    let server = Server::start();
    let dir = temp_dir("guard-sigkill");
    let rig = server.write_rig(&dir, "guard-sigkill-bench");
    let plan = write_trip_plan(&dir);
    let out = dir.join("reports");
    let mut child = spawn_run(&plan, &rig, &out, &dir.join("locks"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    wait_for_trip_step(&mut lines);
    // Mid-trip: the stimulus is running with the supply and the load on.
    std::thread::sleep(Duration::from_millis(500));
    assert!(supply_on(&server), "the supply is on during the trip");
    assert!(load_on(&server), "the load is on during the trip");
    // The runner armed the supply's I/O watchdog (a second line of defence).
    assert_eq!(query(&server.tcp("supply"), "SYST:COMM:WDOG?"), "ON");
    assert_eq!(
        query(&server.tcp("supply"), "SYST:COMM:WDOG:DEL?"),
        "5.00 s"
    );
    // The short-circuit switch closed as a short stimulus would leave it, then the kill.
    assert_eq!(
        query(&server.tcp("short"), "ROUT:CLOS (@101);:ROUT:CLOS? (@101)"),
        "1"
    );
    // SAFETY: kill with the id of our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let killed = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");

    // Checked from the instruments' side, within 5 s of the kill.
    let deadline = killed + Duration::from_secs(5);
    let mut off = false;
    let short_closed = |server: &Server| query(&server.tcp("short"), "ROUT:CLOS? (@101)") != "0";
    while Instant::now() < deadline {
        if !supply_on(&server) && !load_on(&server) && !short_closed(&server) {
            off = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        off,
        "supply on: {}, load on: {}, short closed: {} 5 s after SIGKILL",
        supply_on(&server),
        load_on(&server),
        short_closed(&server)
    );

    // The guard says what it did, next to the run.
    let run_dir = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a run directory");
    let guard_json = run_dir.join("guard.json");
    let mut waited = 0;
    while !guard_json.exists() && waited < 100 {
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    let record = read_json(&guard_json);
    assert_eq!(record["safe_state_reached"], true, "{record:#}");
    assert!(
        record["trigger"]
            .as_str()
            .unwrap()
            .starts_with("the run process ended without handing over"),
        "{record:#}"
    );
    // No clean end: nothing disarmed the watchdog, which stays as the second line of defence.
    assert_eq!(query(&server.tcp("supply"), "SYST:COMM:WDOG?"), "ON");
    let actions = record["actions"].as_array().unwrap();
    let order: Vec<&str> = actions
        .iter()
        .map(|a| a["instrument"].as_str().unwrap())
        .collect();
    // The short-circuit switch first, then the load, then the supply.
    assert_eq!(order, ["short", "load", "supply"], "{record:#}");
    assert!(actions.iter().all(|a| a["ok"] == true), "{record:#}");
    assert_eq!(query(&server.tcp("short"), "ROUT:CLOS? (@101)"), "0");
    // The trace up to the kill is kept.
    assert!(run_dir.join("trace.csv").exists());
}

/// A run that ends by itself hands over cleanly: the guard does nothing and writes nothing,
/// and the supply's I/O watchdog armed for the run is disarmed before the hand-over.
#[test]
fn a_clean_run_releases_the_guard_and_disarms_the_watchdog() {
    let server = Server::start();
    let dir = temp_dir("guard-clean");
    let rig = server.write_rig(&dir, "guard-clean-bench");
    let plan = write_trip_plan(&dir);
    let out = dir.join("reports");
    let mut child = spawn_run(&plan, &rig, &out, &dir.join("locks"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    wait_for_trip_step(&mut lines);
    // Armed while the run lives, as the instrument sees it.
    assert_eq!(query(&server.tcp("supply"), "SYST:COMM:WDOG?"), "ON");
    lines.for_each(drop);
    let status = child.wait().unwrap();
    assert!(status.code().is_some(), "{status:?}");
    let run_dir = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let results = read_json(&run_dir.join("results.json"));
    assert_eq!(results["safe_state_reached"], true, "{results:#}");
    assert!(
        !run_dir.join("guard.json").exists(),
        "the guard did not act"
    );
    assert!(!supply_on(&server) && !load_on(&server));
    // Disarmed after the clean end, as the instrument sees it, and recorded.
    assert_eq!(query(&server.tcp("supply"), "SYST:COMM:WDOG?"), "OFF");
    assert_eq!(
        results["watchdog"],
        serde_json::json!({"instrument": "supply", "armed_s": 5.0, "disarmed": true, "left_armed": null}),
        "{results:#}"
    );
}

/// `hilrig ROLE --rig RIG ARGS...` (`supply` or `load`) on the external bench, with its own
/// lock directory.
fn manual_cmd(
    role: &str,
    rig: &std::path::Path,
    dir: &std::path::Path,
    args: &[&str],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hilrig"));
    cmd.arg(role)
        .arg("--rig")
        .arg(rig)
        .args(args)
        .env("HILRIG_LOCK_DIR", dir.join("locks"))
        .current_dir(crate::common::root());
    cmd
}

/// Whether the supply's output (`supply`) or the load's input (`load`) is on.
fn is_on(server: &Server, role: &str) -> bool {
    match role {
        "supply" => supply_on(server),
        _ => load_on(server),
    }
}

/// A plain `on` leaves the output (input) on when the command ends (what was asked);
/// `on --for` switches it off itself when the time is up, confirmed by read-back.
#[rstest::rstest]
#[case::supply("supply", "output")]
#[case::load("load", "input")]
fn a_plain_on_stays_on_and_a_timed_on_ends_off(#[case] role: &str, #[case] part: &str) {
    let server = Server::start();
    let dir = temp_dir(&format!("{role}-on-for"));
    let rig = server.write_rig(&dir, &format!("{role}-on-for-bench"));
    let plain = manual_cmd(role, &rig, &dir, &["on"]).output().unwrap();
    assert!(plain.status.success(), "{plain:?}");
    assert!(is_on(&server, role), "a plain on stays on");
    let off = manual_cmd(role, &rig, &dir, &["off"]).output().unwrap();
    assert!(off.status.success(), "{off:?}");
    assert!(!is_on(&server, role));

    let timed = manual_cmd(role, &rig, &dir, &["on", "--for", "1 s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&timed.stdout);
    let stderr = String::from_utf8_lossy(&timed.stderr);
    assert!(timed.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{role} `{role}`: {part} on"))
            && stdout.contains(&format!("{role} `{role}`: {part} off (read back)")),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("1 s passed; switching the {part} off")),
        "{stderr}"
    );
    assert!(
        !is_on(&server, role),
        "the timed on ended with the {part} off"
    );
}

/// `on --for` killed with SIGKILL: its guard switches the output (input) off and says so,
/// naming the command it guarded.
#[rstest::rstest]
#[case::supply("supply", "output")]
#[case::load("load", "input")]
fn a_killed_timed_on_is_switched_off_by_its_guard(#[case] role: &str, #[case] part: &str) {
    let server = Server::start();
    let dir = temp_dir(&format!("{role}-on-kill"));
    let rig = server.write_rig(&dir, &format!("{role}-on-kill-bench"));
    let mut child = manual_cmd(role, &rig, &dir, &["on", "--for", "10min"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").unwrap();
    assert_eq!(first, format!("{role} `{role}`: {part} on"));
    assert!(is_on(&server, role));
    let record_dir = std::env::temp_dir().join(format!("hilrig-{role}-on-{}", child.id()));
    // SAFETY: kill with the id of our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    assert_eq!(child.wait().unwrap().code(), None, "killed by a signal");
    let guard_json = record_dir.join("guard.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !guard_json.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let record = read_json(&guard_json);
    assert_eq!(record["safe_state_reached"], true, "{record:#}");
    assert_eq!(
        record["trigger"],
        format!(
            "the manual command `hilrig {role} on --for 600 s` ended without handing over (its \
             pipe to the guard closed)"
        ),
        "{record:#}"
    );
    assert_eq!(record["actions"][0]["instrument"], role, "{record:#}");
    assert_eq!(record["actions"][0]["confirmed"], true, "{record:#}");
    assert!(!is_on(&server, role), "the guard switched the {part} off");
    std::fs::remove_dir_all(record_dir).ok();
}
