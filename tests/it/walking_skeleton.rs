//! End to end on the simulated bench: the shipped over-charge plan through the real binary,
//! a seeded defect that must fail, SCPI that really crosses TCP, and an abort mid-step.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;
use hilrig::report::Outcome;
use tokio_util::sync::CancellationToken;

#[test]
fn overcharge_plan_passes_on_the_simulated_bench() {
    let out = temp_dir("cli-pass");
    let (code, stdout, stderr) = hilrig(&[
        "run",
        "test-plans/overcharge.yaml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for repeat in 1..=3 {
        assert!(
            stdout.contains(&format!("PASS  OV cell 5 #{repeat}")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("ov_threshold") && stdout.contains("threshold"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ov_trip_time") && stdout.contains("trip_time"),
        "{stdout}"
    );
    assert!(stdout.contains("limit"), "{stdout}");
    let run_dir = first_run_dir(&out);
    for f in ["results.json", "junit.xml", "trace.csv", "truth.json"] {
        assert!(
            run_dir.join(f).exists(),
            "{f} missing in {}",
            run_dir.display()
        );
    }
    let results = read_json(&run_dir.join("results.json"));
    assert_eq!(results["outcome"], "passed");
    assert_eq!(results["safe_state_reached"], true);
    assert_eq!(results["tests"].as_array().unwrap().len(), 4);
    // Each SCPI instrument as it identified itself, with the rig file's serial numbers.
    let idn: Vec<(&str, &str)> = results["instruments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i["serial"].as_str().unwrap()))
        .collect();
    assert_eq!(
        idn,
        [
            ("supply", "SIM-PSB-0001"),
            ("load", "SIM-DL3-0001"),
            ("scope", "SIM-DS1Z-0001"),
            ("short", "SIM-DAQ-0001")
        ]
    );
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains(
            "name=\"instrument.supply\" value=\"EA Elektro-Automatik,PSB 9080-60,SIM-PSB-0001,"
        ),
        "{junit}"
    );
}

#[test]
fn a_trip_delay_defect_fails_and_names_the_limit() {
    let out = temp_dir("cli-defect");
    let root_text = root().display().to_string();
    let rig_text = std::fs::read_to_string(root().join("rig/sim.yaml"))
        .unwrap()
        .replace("sim-bms-1.0.0.yaml", "sim-bms-1.0.0-defect-ov-delay.yaml")
        .replace("../", &format!("{root_text}/"));
    let rig_path = out.join("defect-rig.yaml");
    std::fs::write(&rig_path, rig_text).unwrap();
    let reports = out.join("reports");
    let (code, stdout, stderr) = hilrig(&[
        "run",
        "test-plans/overcharge.yaml",
        "--rig",
        rig_path.to_str().unwrap(),
        "--out",
        reports.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("ov_trip_time"))
        .expect("a trip-time line");
    assert!(line.contains("FAIL"), "{line}");
    // The measured trip time (about 6 s) is printed beside the limit (<= 3 s).
    assert!(
        line.contains(" ± ") && line.contains(" s (k = 2)") && line.contains("3.000 s"),
        "{line}"
    );
    let run_dir = std::fs::read_dir(&reports)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    assert!(junit.contains("ov_trip_time FAIL: measured"), "{junit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scpi_traffic_crosses_a_tcp_socket() {
    let rig = sim_rig(None);
    let bench = bench(&rig).await;
    let addr = bench.addresses()["sim://supply"]
        .trim_start_matches("tcp://")
        .to_string();
    let plan = plan("test-plans/overcharge.yaml", &rig);
    let dir = temp_dir("tcp");
    let resolved = bench.resolve(&rig);
    let run = tokio::spawn(async move {
        hilrig::run::execute(plan, &resolved, options(&dir, CancellationToken::new())).await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Our own client on the same port, while the runner is driving the supply.
    let idn = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"*IDN?\n").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(idn.contains("PSB"), "{idn}");
    let log = bench.instrument("supply").unwrap().command_log();
    assert!(
        log.iter().any(|c| c == "SOUR:VOLT 56"),
        "the runner's settings arrive over TCP: {log:?}"
    );
    assert!(log.iter().any(|c| c == "*IDN?"), "{log:?}");
    let results = run.await.unwrap().unwrap();
    assert_eq!(results.outcome, Outcome::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_mid_step_aborts_into_the_safe_state() {
    let rig = sim_rig(None);
    let bench = bench(&rig).await;
    let plan = plan("test-plans/overcharge.yaml", &rig);
    let dir = temp_dir("abort");
    let resolved = bench.resolve(&rig);
    // Load input on as well, so that the safe state has something to switch off.
    bench.plant.lock().load.input = true;
    let d = dir.clone();
    let run = tokio::spawn(async move {
        hilrig::run::execute(plan, &resolved, options(&d, CancellationToken::new())).await
    });
    // Wait until the trip step is ramping (supply on, a cell above 3.5 V), then inject.
    for _ in 0..200 {
        let s = bench.plant.snapshot();
        if s.supply.output && s.cells.iter().any(|v| *v > 3.5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bench
        .instrument("supply")
        .unwrap()
        .inject_error(-310, "System error");
    let results = run.await.unwrap().unwrap();
    assert_eq!(results.outcome, Outcome::Aborted);
    let abort = results.abort.as_ref().unwrap();
    assert!(abort.cause.contains("System error"), "{abort:?}");
    assert_eq!(abort.kind, Some(hilrig::report::AbortKind::Instrument));
    assert!(
        abort.during.as_deref().unwrap_or("").contains("trip"),
        "{abort:?}"
    );
    let s = bench.plant.snapshot();
    assert!(!s.supply.output, "supply output still on");
    assert!(!s.load.input, "load input still on");
    assert!(results.safe_state_reached, "{:?}", results.safe_state);
    let json = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert!(json.contains("\"outcome\": \"aborted\""), "{json}");
    let trace = std::fs::read_to_string(dir.join("trace.csv")).unwrap();
    assert!(trace.lines().count() > 10, "trace up to the fault is kept");
    assert!(
        trace.contains("cells.cell[5].v_set"),
        "the stimulus is in the trace"
    );
}

#[test]
fn json_output_is_one_event_per_line() {
    let out = temp_dir("json-out");
    let (code, stdout, stderr) = hilrig(&[
        "run",
        "test-plans/overcharge.yaml",
        "--virtual-time",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for k in [
        "firmware",
        "plan",
        "step",
        "test",
        "plan_finished",
        "finished",
    ] {
        assert!(kinds.contains(&k), "no `{k}` event in {kinds:?}");
    }
    let tests: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "test").collect();
    assert_eq!(tests.len(), 4);
    assert_eq!(tests[0]["verdict"], "pass");
    assert!(tests[0]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["criterion"] == "ov_trip_time"));
    assert_eq!(events.last().unwrap()["exit_code"], 0);
}

/// The simulated rig with the supply's calibration due on `due`.
fn rig_calibrated_until(dir: &std::path::Path, due: &str) -> String {
    let text = std::fs::read_to_string(root().join("rig/sim.yaml"))
        .unwrap()
        .replace("../", &format!("{}/", root().display()));
    let text = text.split("\n# Calibration records").next().unwrap();
    let path = dir.join("rig.yaml");
    std::fs::write(
        &path,
        format!("{text}\ncalibration:\n  SIM-PSB-0001: {due}\n  SIM-DL3-0001: 2999-12-31\n  SIM-CELLS-0001: 2999-12-31\n"),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn an_expired_calibration_refuses_the_run_unless_allowed_and_then_flags_the_report() {
    let dir = temp_dir("cli-calibration");
    let rig = rig_calibrated_until(&dir, "2020-06-30");
    let out = dir.join("reports");
    let args = [
        "run",
        "test-plans/overcharge.yaml",
        "--rig",
        &rig,
        "--virtual-time",
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, _, err) = hilrig(&args);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "instrument `supply` (serial SIM-PSB-0001): calibration expired on 2020-06-30"
        ) && err.contains("--allow-expired-calibration"),
        "{err}"
    );
    assert!(!out.exists(), "nothing ran");

    let mut allowed = args.to_vec();
    allowed.push("--allow-expired-calibration");
    let (code, stdout, err) = hilrig(&allowed);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(err.contains("warning: instrument `supply`"), "{err}");
    let run_dir = first_run_dir(&out);
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(
        html.contains("Calibration expired")
            && html.contains("supply (serial SIM-PSB-0001, due 2020-06-30)"),
        "the report flags it"
    );

    // A calibration still valid runs without a word about it.
    let rig = rig_calibrated_until(&dir, "2999-01-01");
    let mut valid = args.to_vec();
    valid[3] = &rig;
    let (code, _, err) = hilrig(&valid);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("calibration"), "{err}");
}

/// `rig/sim-abs.yaml` drives the 16 cells over SCPI, split over two 8-channel cell
/// simulators (`cell_offset: 8` on the second): the over-charge plan passes, cell 5's ramp
/// goes to channel 5 of the first unit, and the teardown's cells 9 to 16 reach channels 1
/// to 8 of the second (checked from the simulated units' own command logs).
#[test]
fn a_pack_split_over_two_scpi_cell_simulators_runs_the_overcharge_plan() {
    let rig_path = root().join("rig/sim-abs.yaml");
    let rig = hilrig::plan::load_rig(&rig_path).unwrap().value;
    let plan = plan("test-plans/overcharge.yaml", &rig);
    let dir = temp_dir("abs-split");
    let rt = crate::sim_support::virtual_runtime();
    rt.block_on(async {
        let bench = crate::sim_support::memory_bench(&rig, &rig_path).await;
        let (results, _) = crate::sim_support::run_plan(&bench, &rig, plan, &dir).await;
        assert_eq!(results.outcome, Outcome::Passed, "{:?}", results.abort);
        assert!(results.safe_state_reached);
        let log = |id: &str| bench.instrument(id).unwrap().command_log().join("\n");
        let (a, b) = (log("cells-a"), log("cells-b"));
        assert!(a.contains("SOUR5:VOLT 3.6"), "cell 5 ramp on unit a:\n{a}");
        for ch in 1..=8 {
            assert!(
                b.contains(&format!("SOUR{ch}:VOLT 3.3")),
                "channel {ch} of b:\n{b}"
            );
        }
        assert!(!b.contains("SOUR9"), "unit b has 8 channels:\n{b}");
        // The simulated unit b wires its channel 1 to the pack's cell 9, not cell 1.
        let transport = bench.instrument("cells-b").unwrap().connect_in_memory();
        let dialect = hilrig::scpi::builtin_dialect("bloomy-abs").unwrap();
        let mut unit = hilrig::instrument::ScpiCellSim::open(
            "cells-b",
            transport,
            dialect,
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        unit.set_voltage(1, 3.55).await.unwrap();
        unit.set_output(1, true).await.unwrap();
        let plant = bench.plant.snapshot();
        assert_eq!(plant.cell_voltage(8), Some(3.55));
        assert_ne!(plant.cell_voltage(0), Some(3.55));
    });
}

/// Two SCPI cell simulators that drive the same cells, or an offset beyond any pack, are
/// refused by `validate` at the instrument's line (never a panic).
#[rstest::rstest]
#[case::overlap(
    "cell_offset: 4",
    "cell simulator `cells-b` drives cells 5 to 12, which `cells-a` drives too"
)]
#[case::huge(
    "cell_offset: 4294967295",
    "cell simulator `cells-b`: cell_offset 4294967295 is outside 0 .. 1023"
)]
fn overlapping_or_absurd_cell_offsets_are_refused(#[case] offset: &str, #[case] says: &str) {
    let text = std::fs::read_to_string(root().join("rig/sim-abs.yaml"))
        .unwrap()
        .replace("cell_offset: 8", offset)
        .replace("../", &format!("{}/", root().display()));
    let dir = temp_dir(&offset.replace(": ", "-"));
    let rig = dir.join("rig.yaml");
    std::fs::write(&rig, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .arg("validate")
        .arg(&rig)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
    assert!(stderr.contains("rig.yaml:27:"), "{stderr}");
}

/// With `HILRIG_RIG` naming a lab rig and no `--rig`, `run` tries that bench (here it cannot
/// connect: exit 2) and never falls back to the simulated one.
#[test]
fn hilrig_rig_names_the_bench_and_a_run_never_falls_back_to_the_simulated_one() {
    let dir = temp_dir("hilrig-rig-env");
    let out = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args([
            "run",
            "test-plans/overcharge.yaml",
            "--virtual-time",
            "--out",
        ])
        .arg(dir.join("reports"))
        .env("HILRIG_RIG", "rig/lab-example.yaml")
        .env("HILRIG_LOCK_DIR", &dir)
        .current_dir(root())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(!all.contains("sim-bench"), "{all}");
    let missing = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(["run", "test-plans/overcharge.yaml", "--virtual-time"])
        .env("HILRIG_RIG", dir.join("no-such-rig.yaml"))
        .env("HILRIG_LOCK_DIR", &dir)
        .current_dir(root())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(2), "{err}");
    assert!(err.contains("no-such-rig.yaml (from HILRIG_RIG)"), "{err}");
}
