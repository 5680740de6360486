//! A sealed run directory made without a bench, for the evidence tests: results as the
//! over-charge plan produces them, a small trace, ground truth, and the shipped input files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hilrig::report::bundle::{seal, InputFile, KeyChoice, SealOptions};
use hilrig::report::keys::StationKey;
use hilrig::report::{RunResults, RESULTS_SCHEMA};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub use crate::common::temp_dir;

/// The test station key (fixed seed).
pub fn test_key(dir: &Path) -> StationKey {
    StationKey::from_seed([7u8; 32], dir.join("station.key"))
}

/// Results of a 3-repeat over-charge run; `fail_second` makes repeat 2 fail its threshold.
/// Built from JSON so that fields added later with defaults need no change here.
pub fn results(fail_second: bool) -> RunResults {
    let prov = |source: &str, clause: Option<&str>, confidence: &str| {
        serde_json::json!({"source": source, "clause": clause,
            "basis": "summary for the test", "confidence": confidence})
    };
    let meas = |criterion: &str,
                quantity: &str,
                value: f64,
                u: f64,
                unit: &str,
                low: Option<f64>,
                high: Option<f64>,
                verdict: &str,
                p: serde_json::Value| {
        serde_json::json!({"criterion": criterion, "quantity": quantity, "value": value,
            "uncertainty": u, "unit": unit, "limit": {"low": low, "high": high},
            "verdict": verdict, "uncertainty_budget": format!("budget of {criterion}"),
            "provenance": p})
    };
    let tests: Vec<serde_json::Value> = (1..=3)
        .map(|k| {
            let started = 2.0 + (k - 1) as f64 * 8.0;
            let bad = fail_second && k == 2;
            let thr = if bad { 3.712 } else { 3.651 };
            let tv = if bad { "fail" } else { "pass" };
            serde_json::json!({
                "name": format!("OV cell 5 #{k}"), "repeat": k, "verdict": tv,
                "requirements": ["IEC 62619:2022 8.2.2"],
                "measurements": [
                    meas("ov_threshold", "threshold", thr, 0.0035, "V", Some(3.6), Some(3.7), tv,
                         prov("DUT maker's declaration", None, "high")),
                    meas("ov_trip_time", "trip_time", 2.099, 0.25, "s", Some(0.0), Some(3.0), "pass",
                         prov("DUT maker's declaration", None, "medium")),
                    meas("cell_never_above_upper_limit", "stimulus_peak", 3.692, 0.001, "V", None,
                         Some(3.75), "pass", prov("IEC 62619:2022", Some("8.2.2"), "medium")),
                ],
                "message": null, "started_s": started, "detected_s": started + 4.6
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "schema": RESULTS_SCHEMA,
        "run_id": "20260101T000000-cell-overvoltage-charge",
        "plan": "cell-overvoltage-charge",
        "title": "Cell over-voltage protection while charging",
        "requirements": ["IEC 62619:2022 8.2.2"],
        "station": "sim-bench", "dut": "sim-bms-16s-lfp", "limit_profile": "iec62619-bms",
        "decision_rule": "guarded",
        "firmware": {"id": "sim-bms-1.0.0", "version": "1.0.0",
            "sha256": "3c3ce8414282ffc3cd8596a3c76751043de57fc214fd83e7ef443690b7d27bf9"},
        "clock_anchor": "2026-01-01T00:00:00.000Z", "duration_s": 30.0,
        "outcome": if fail_second { "failed" } else { "passed" },
        "abort": null, "safe_state_reached": true,
        "safe_state": [{"instrument": "supply", "action": "output off (confirmed by read-back)",
            "ok": true, "confirmed": true, "error": null},
            {"instrument": "dut", "action": "BMS standby request over CAN: sent, not confirmed \
            (the fixture declares no `confirm`)", "ok": true, "confirmed": false, "error": null}],
        "tests": tests, "trace_rows": 0
    }))
    .unwrap()
}

/// Write a trace matching `results`: 20 Hz, ramps of cell 5, FET, warning, currents, NTCs.
pub fn write_trace(dir: &Path, r: &RunResults) -> u64 {
    let mut s = String::from("t_s,channel,value,unit\n");
    let mut rows = 0;
    for i in 0..=(r.duration_s * 20.0) as usize {
        let t = i as f64 / 20.0;
        let active = r
            .tests
            .iter()
            .find(|x| t >= x.started_s && t < x.started_s + 8.0);
        let (v, fet) = match active {
            Some(x) if t < x.detected_s.unwrap() => (3.60 + 0.02 * (t - x.started_s), 1),
            Some(_) => (3.30, 0),
            None => (3.30, 1),
        };
        for (ch, val, unit) in [
            ("cells.cell[5].v_set", v.to_string(), "V"),
            ("cell[5].v", v.to_string(), "V"),
            ("bms.chg_fet", fet.to_string(), ""),
            ("bms.warning", (1 - fet).to_string(), ""),
            ("supply.i", (5 * fet).to_string(), "A"),
            ("load.i", "0".to_string(), "A"),
            ("ntc[1].t", "25.5".to_string(), "degC"),
        ] {
            s.push_str(&format!("{t:.6},{ch},{val},{unit}\n"));
            rows += 1;
        }
    }
    std::fs::write(dir.join("trace.csv"), s).unwrap();
    rows
}

/// The plan copy (the shape of the shipped over-charge plan).
pub const PLAN: &str = "plan: cell-overvoltage-charge
title: Cell over-voltage protection while charging
requirements: [IEC 62619:2022 8.2.2]
dut: ../fixtures/sim-bms-16s-lfp.yaml
limits: iec62619-bms
repeat: 3
setup:
  - cells: {all: 3.30 V}
steps:
  - trip:
      name: OV cell 5
      protection: ov
      stimulus: {ramp: {cell: 5, from: 3.60 V, to: 3.74 V, rate: 20 mV/s}}
      detect: bms.chg_fet == open
      timeout: 20 s
      judge: [ov_threshold, ov_trip_time, cell_never_above_upper_limit]
";

/// The rig copy: the simulated bench.
pub const RIG: &str = "station: sim-bench
simulation:
  firmware: ../firmware-under-test/sim-bms-1.0.0.yaml
instruments:
  - id: supply
    role: supply
    dialect: ea-psb
    address: sim://supply
    serial: SIM-PSB-0001
  - id: load
    role: load
    dialect: rigol-dl3000
    address: sim://load
    serial: SIM-DL3-0001
  - id: cells
    role: cell_sim
    bus: bms
envelope:
  max_pack_voltage: 60 V
  max_charge_current: 20 A
  max_discharge_current: 30 A
  cell_voltage_min: 2.0 V
  cell_voltage_max: 4.0 V
  temperature_min: -30 °C
  temperature_max: 80 °C
";

/// The fixture copy.
pub const FIXTURE: &str = "dut: sim-bms-16s-lfp
title: Simulated 16S LFP pack, reference BMS firmware
chemistry: LFP
cells_in_series: 16
nominal_cell_voltage: 3.30 V
energy: 5120 Wh
dbc: dbc/sim-bms.dbc
signals:
  bms.chg_fet: BMS_Status.ChgFet
protections:
  ov:  {trip: 3.65 V, release: 3.38 V, delay: 2 s}
cell_limits:
  upper_charge_voltage: 3.75 V
";

/// The limit profile copy (criteria the run judged).
pub const LIMITS: &str = "profile: iec62619-bms
title: IEC 62619:2022 8.2-style BMS over-charge checks
decision_rule: guarded
criteria:
  ov_threshold:
    check: {threshold: {tolerance: 50 mV}}
    provenance:
      source: DUT maker's declaration
      basis: Declared trip level within a lab tolerance.
      confidence: high (lab practice)
  ov_trip_time:
    check: {trip_time: {allowance: 1 s}}
    provenance:
      source: DUT maker's declaration
      basis: Declared delay plus an allowance for the detection path.
      confidence: medium (allowance is a lab choice)
  cell_never_above_upper_limit:
    check: {stimulus_peak: {at_most: upper_charge_voltage}}
    provenance:
      source: IEC 62619:2022
      clause: 8.2.2
      basis: Summary of clause 8.2.2 from public test reports.
      confidence: medium (summary, not the licensed text)
";

/// The input copies as a run would keep them; `rig_extra` is appended to the rig copy
/// (e.g. a calibration map).
pub fn inputs(rig_extra: &str) -> Vec<InputFile> {
    let rig = format!("{RIG}{rig_extra}");
    [
        ("plan", "test-plans/overcharge.yaml", PLAN),
        ("rig", "rig/sim.yaml", rig.as_str()),
        ("fixture", "fixtures/sim-bms-16s-lfp.yaml", FIXTURE),
        ("limits", "fixtures/limits/iec62619-bms.yaml", LIMITS),
        ("dbc", "fixtures/dbc/sim-bms.dbc", "VERSION \"\"\n"),
    ]
    .into_iter()
    .map(|(role, p, text)| InputFile {
        role,
        original: PathBuf::from(p),
        bytes: text.as_bytes().to_vec(),
    })
    .collect()
}

/// A sealed run directory in `dir` (signed with `test_key` unless `signed` is false).
pub fn sealed_run(dir: &Path, fail_second: bool, signed: bool, rig_extra: &str) -> RunResults {
    std::fs::create_dir_all(dir).unwrap();
    let mut r = results(fail_second);
    r.trace_rows = write_trace(dir, &r);
    r.write(dir).unwrap();
    hilrig::report::junit::write(&r, &dir.join("junit.xml")).unwrap();
    std::fs::write(
        dir.join("truth.json"),
        r#"[{"t": 6.3, "kind": "chg_fet_open", "protection": null}]"#,
    )
    .unwrap();
    let key = if signed {
        KeyChoice::Key(Box::new(test_key(dir.parent().unwrap())))
    } else {
        KeyChoice::Unsigned
    };
    seal(
        dir,
        &inputs(rig_extra),
        Vec::new(),
        SealOptions {
            operator: Some("Ada Operator".into()),
            key,
        },
    )
    .unwrap();
    r
}

/// Run the hilrig binary with a station key location that holds no key.
pub fn hilrig(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(args)
        .current_dir(root())
        .env(
            "HILRIG_KEY",
            std::env::temp_dir().join("hilrig-no-such-key"),
        )
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}
