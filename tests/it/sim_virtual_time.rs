//! `hilrig run --virtual-time`: the over-charge plan on a paused clock with in-memory
//! instruments gives the same verdicts as the same plan in real time over TCP.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::*;

/// Run the over-charge plan through the binary; returns (exit code, results.json, wall s).
fn run(out: &Path, virtual_time: bool) -> (i32, serde_json::Value, f64) {
    let mut args = vec![
        "run",
        "test-plans/overcharge.yaml",
        "--out",
        out.to_str().unwrap(),
    ];
    if virtual_time {
        args.push("--virtual-time");
    }
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(&args)
        // A lock directory of our own: other tests run the same simulated station at once.
        .env("HILRIG_LOCK_DIR", format!("{}-locks", out.display()))
        .current_dir(root())
        .output()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let run_dir = std::fs::read_dir(out)
        .unwrap()
        .next()
        .unwrap_or_else(|| panic!("no run directory; stdout:\n{stdout}"))
        .unwrap()
        .path();
    let results = std::fs::read_to_string(run_dir.join("results.json")).unwrap();
    (
        o.status.code().unwrap_or(-1),
        serde_json::from_str(&results).unwrap(),
        wall,
    )
}

/// A test's name, its verdict and (criterion, verdict) of each of its measurements.
type Verdicts = (String, String, Vec<(String, String)>);

/// Test name and the verdict of every measurement, in order.
fn verdicts(r: &serde_json::Value) -> Vec<Verdicts> {
    r["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["verdict"].to_string(),
                t["measurements"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| (m["criterion"].to_string(), m["verdict"].to_string()))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn the_over_charge_plan_gives_the_same_verdicts_in_virtual_and_real_time() {
    let (virtual_code, virtual_results, virtual_wall) = run(&temp_dir("vt-virtual"), true);
    let (real_code, real_results, real_wall) = run(&temp_dir("vt-real"), false);
    let simulated = virtual_results["duration_s"].as_f64().unwrap();
    println!(
        "over-charge plan: {simulated:.1} s simulated; wall time {virtual_wall:.3} s in virtual \
         time, {real_wall:.3} s in real time"
    );
    assert_eq!(virtual_code, 0, "{virtual_results:#}");
    assert_eq!(virtual_code, real_code);
    assert_eq!(virtual_results["outcome"], real_results["outcome"]);
    assert_eq!(virtual_results["safe_state_reached"], true);
    assert_eq!(verdicts(&virtual_results), verdicts(&real_results));
    assert_eq!(verdicts(&virtual_results).len(), 4);
    // The run took the same simulated time, to within the real run's scheduling jitter.
    let real_simulated = real_results["duration_s"].as_f64().unwrap();
    assert!(
        (simulated - real_simulated).abs() < 2.0,
        "{simulated} vs {real_simulated}"
    );
}

#[test]
fn virtual_time_on_a_real_rig_is_refused_with_the_reason() {
    let dir = temp_dir("vt-real-rig");
    // The simulated rig without its `simulation:` section.
    let text = std::fs::read_to_string(root().join("rig/sim.yaml")).unwrap();
    let mut in_simulation = false;
    let rig: String = text
        .lines()
        .filter(|l| {
            in_simulation = l.starts_with("simulation:") || (in_simulation && l.starts_with("  "));
            !in_simulation
        })
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace("../", &format!("{}/", root().display()));
    let rig_path = dir.join("lab.yaml");
    std::fs::write(&rig_path, rig).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args([
            "run",
            "test-plans/overcharge.yaml",
            "--rig",
            rig_path.to_str().unwrap(),
            "--virtual-time",
        ])
        .env("HILRIG_LOCK_DIR", dir.join("locks"))
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--virtual-time needs a simulated rig"),
        "{stderr}"
    );
}
