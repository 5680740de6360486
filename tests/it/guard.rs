//! The out-of-process guard: a run killed with SIGKILL (as by the OOM killer) cannot run
//! its own safe state; the guard it started must switch the bench off, confirmed from the
//! instruments' side, and record what it did in guard.json.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{read_json, temp_dir};
use crate::external_bench::*;

#[test]
fn sigkill_mid_trip_leaves_supply_and_load_off_within_5_s() {
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
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // Wait for the trip step to start.
    let mut seen = Vec::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the run ended before its trip step: {seen:#?}"))
            .unwrap();
        let trip = line.contains("\"event\":\"step\"") && line.contains("\"kind\":\"trip\"");
        seen.push(line);
        if trip {
            break;
        }
    }
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
    // SAFETY: kill with the id of our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let killed = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");

    // Checked from the instruments' side, within 5 s of the kill.
    let deadline = killed + Duration::from_secs(5);
    let mut off = false;
    while Instant::now() < deadline {
        if !supply_on(&server) && !load_on(&server) {
            off = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        off,
        "supply on: {}, load on: {} 5 s after SIGKILL",
        supply_on(&server),
        load_on(&server)
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
    let actions = record["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{record:#}");
    assert_eq!(actions[0]["instrument"], "load");
    assert_eq!(actions[1]["instrument"], "supply");
    assert!(actions.iter().all(|a| a["ok"] == true), "{record:#}");
    // The trace up to the kill is kept.
    assert!(run_dir.join("trace.csv").exists());
}

/// A run that ends by itself hands over cleanly: the guard does nothing and writes nothing.
#[test]
fn a_clean_run_releases_the_guard() {
    let server = Server::start();
    let dir = temp_dir("guard-clean");
    let rig = server.write_rig(&dir, "guard-clean-bench");
    let plan = write_trip_plan(&dir);
    let out = dir.join("reports");
    let status = spawn_run(&plan, &rig, &out, &dir.join("locks"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
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
}

/// `hilrig supply --rig RIG ARGS...` on the external bench, with its own lock directory.
fn supply_cmd(
    rig: &std::path::Path,
    dir: &std::path::Path,
    args: &[&str],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hilrig"));
    cmd.arg("supply")
        .arg("--rig")
        .arg(rig)
        .args(args)
        .env("HILRIG_LOCK_DIR", dir.join("locks"))
        .current_dir(crate::common::root());
    cmd
}

/// A plain `supply on` leaves the output on when the command ends (what was asked);
/// `on --for` switches it off itself when the time is up, confirmed by read-back.
#[test]
fn a_plain_on_stays_on_and_a_timed_on_ends_off() {
    let server = Server::start();
    let dir = temp_dir("supply-on-for");
    let rig = server.write_rig(&dir, "supply-on-for-bench");
    let plain = supply_cmd(&rig, &dir, &["on"]).output().unwrap();
    assert!(plain.status.success(), "{plain:?}");
    assert!(supply_on(&server), "a plain on stays on");
    let off = supply_cmd(&rig, &dir, &["off"]).output().unwrap();
    assert!(off.status.success(), "{off:?}");
    assert!(!supply_on(&server));

    let timed = supply_cmd(&rig, &dir, &["on", "--for", "1 s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&timed.stdout);
    let stderr = String::from_utf8_lossy(&timed.stderr);
    assert!(timed.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("supply `supply`: output on")
            && stdout.contains("supply `supply`: output off (read back)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 s passed; switching the output off"),
        "{stderr}"
    );
    assert!(
        !supply_on(&server),
        "the timed on ended with the output off"
    );
}

/// `supply on --for` killed with SIGKILL: its guard switches the output off and says so.
#[test]
fn a_killed_timed_on_is_switched_off_by_its_guard() {
    let server = Server::start();
    let dir = temp_dir("supply-on-kill");
    let rig = server.write_rig(&dir, "supply-on-kill-bench");
    let mut child = supply_cmd(&rig, &dir, &["on", "--for", "10min"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").unwrap();
    assert_eq!(first, "supply `supply`: output on");
    assert!(supply_on(&server));
    let record_dir = std::env::temp_dir().join(format!("hilrig-supply-on-{}", child.id()));
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
    assert_eq!(record["actions"][0]["instrument"], "supply", "{record:#}");
    assert_eq!(record["actions"][0]["confirmed"], true, "{record:#}");
    assert!(!supply_on(&server), "the guard switched the output off");
    std::fs::remove_dir_all(record_dir).ok();
}
