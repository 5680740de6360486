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
