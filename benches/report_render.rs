//! Rendering `report.html` for a long run: 1 hour at 100 Hz on 40 channels (14.4 million
//! trace rows, synthesised), ten trip tests spread over the hour.
//!
//! `cargo bench --bench report_render` prints criterion's timing of `html::render_dir`
//! (reading the trace back and writing the page) and the page size. Set
//! `HILRIG_BENCH_SECONDS` to synthesise a shorter run.

// criterion_group! makes a public function without a doc comment.
#![allow(missing_docs)]

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use hilrig::report::bundle::{seal, InputFile, KeyChoice, SealOptions};
use hilrig::report::{html, RunResults, RESULTS_SCHEMA};

const RATE_HZ: usize = 100;
const TESTS: usize = 10;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The 40 channels: (name, unit).
fn channels() -> Vec<(String, &'static str)> {
    let mut c: Vec<(String, &str)> = (1..=16).map(|n| (format!("cell[{n}].v"), "V")).collect();
    c.push(("cells.cell[5].v_set".into(), "V"));
    c.extend((1..=4).map(|n| (format!("ntc[{n}].t"), "degC")));
    for (n, u) in [
        ("supply.v", "V"),
        ("supply.i", "A"),
        ("load.v", "V"),
        ("load.i", "A"),
        ("bms.pack.v", "V"),
        ("bms.pack.i", "A"),
        ("bms.cell_max.v", "V"),
        ("bms.cell_min.v", "V"),
    ] {
        c.push((n.into(), u));
    }
    for f in [
        "state",
        "chg_fet",
        "dsg_fet",
        "warning",
        "fault.ov",
        "fault.uv",
        "fault.otc",
        "fault.otd",
        "fault.utc",
        "fault.occ",
        "fault.ocd",
    ] {
        c.push((format!("bms.{f}"), ""));
    }
    assert_eq!(c.len(), 40);
    c
}

/// Write a synthetic run directory of `seconds` and seal it (unsigned).
fn synthesise(dir: &Path, seconds: usize) {
    std::fs::create_dir_all(dir).expect("dir");
    let period = seconds as f64 / TESTS as f64;
    let trip_at = |k: usize| k as f64 * period + period * 0.5;
    let chans = channels();
    let mut w = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(dir.join("trace.csv")).expect("trace"),
    );
    writeln!(w, "t_s,channel,value,unit").expect("write");
    let n = seconds * RATE_HZ;
    let mut rows = 0u64;
    for i in 0..n {
        let t = i as f64 / RATE_HZ as f64;
        let k = ((t / period) as usize).min(TESTS - 1);
        let start = k as f64 * period + period * 0.5 - 4.6;
        let tripped = t >= trip_at(k) && t < trip_at(k) + 20.0;
        let ramp = if t >= start && !tripped && t < trip_at(k) {
            3.60 + 0.02 * (t - start)
        } else {
            3.30
        };
        for (j, (name, unit)) in chans.iter().enumerate() {
            let v = match name.as_str() {
                "cells.cell[5].v_set" | "cell[5].v" => ramp,
                "supply.i" => {
                    if tripped {
                        0.0
                    } else {
                        5.0 + 0.05 * ((i % 17) as f64)
                    }
                }
                "bms.chg_fet" => {
                    if tripped {
                        0.0
                    } else {
                        1.0
                    }
                }
                "bms.fault.ov" | "bms.warning" => {
                    if tripped {
                        1.0
                    } else {
                        0.0
                    }
                }
                _ if unit.is_empty() => 0.0,
                _ if *unit == "degC" => 25.0 + (t / 600.0).sin() + 0.01 * j as f64,
                _ => 3.3 + 0.001 * ((i * 7 + j) % 13) as f64,
            };
            writeln!(w, "{t:.6},{name},{v},{unit}").expect("write");
            rows += 1;
        }
    }
    w.flush().expect("flush");
    drop(w);

    // Built from JSON so that fields added to the model later with defaults need no change.
    let tests: Vec<serde_json::Value> = (0..TESTS)
        .map(|k| {
            serde_json::json!({
                "name": format!("OV cell 5 #{}", k + 1), "repeat": k + 1, "verdict": "pass",
                "requirements": ["IEC 62619:2022 8.2.2"],
                "measurements": [{
                    "criterion": "ov_threshold", "quantity": "threshold", "value": 3.651,
                    "uncertainty": 0.0035, "unit": "V", "limit": {"low": 3.6, "high": 3.7},
                    "verdict": "pass", "uncertainty_budget": "synthetic",
                    "provenance": {"source": "DUT maker's declaration", "clause": null,
                        "basis": "declared trip level within a lab tolerance",
                        "confidence": "high"}
                }],
                "message": null, "started_s": trip_at(k) - 4.6, "detected_s": trip_at(k) + 2.1
            })
        })
        .collect();
    let results: RunResults = serde_json::from_value(serde_json::json!({
        "schema": RESULTS_SCHEMA, "run_id": "bench-1h", "plan": "cell-overvoltage-charge",
        "title": "Cell over-voltage protection while charging",
        "requirements": ["IEC 62619:2022 8.2.2"], "station": "bench",
        "dut": "sim-bms-16s-lfp", "limit_profile": "iec62619-bms", "decision_rule": "guarded",
        "firmware": null, "clock_anchor": "2026-01-01T00:00:00.000Z",
        "duration_s": seconds as f64, "outcome": "passed", "abort": null,
        "safe_state_reached": true, "safe_state": [], "tests": tests, "trace_rows": rows
    }))
    .expect("results");
    results.write(dir).expect("results");
    let inputs: Vec<InputFile> = [
        ("plan", "test-plans/overcharge.yaml"),
        ("rig", "rig/sim.yaml"),
        ("fixture", "fixtures/sim-bms-16s-lfp.yaml"),
        ("limits", "fixtures/limits/iec62619-bms.yaml"),
    ]
    .into_iter()
    .map(|(role, p)| InputFile {
        role,
        original: PathBuf::from(p),
        bytes: std::fs::read(root().join(p)).expect("input"),
    })
    .collect();
    seal(
        dir,
        &inputs,
        Vec::new(),
        SealOptions {
            operator: Some("bench".into()),
            key: KeyChoice::Unsigned,
        },
    )
    .expect("seal");
}

fn bench(c: &mut Criterion) {
    let seconds: usize = std::env::var("HILRIG_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600);
    let dir = std::env::temp_dir().join(format!("hilrig-bench-report-{seconds}"));
    if !dir.join("manifest.json").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let t = Instant::now();
        synthesise(&dir, seconds);
        eprintln!(
            "synthesised {seconds} s x {RATE_HZ} Hz x 40 channels in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let trace_mb = std::fs::metadata(dir.join("trace.csv"))
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(0.0);
    let t = Instant::now();
    let page = html::render_dir(&dir).expect("render");
    eprintln!(
        "one render: {:.3} s; trace.csv {trace_mb:.0} MB; report.html {} bytes ({:.2} MB)",
        t.elapsed().as_secs_f64(),
        page.len(),
        page.len() as f64 / 1e6
    );
    let t = Instant::now();
    let scanned =
        hilrig::report::series::read_trace(&dir.join("trace.csv"), &|_, _| false).expect("scan");
    eprintln!(
        "scan of {} rows without keeping any channel: {:.3} s",
        scanned.rows,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let data = html::load(&dir).expect("load");
    let kept: usize = data.traces.channels.values().map(|c| c.t.len()).sum();
    let t_load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let _ = html::render(&data);
    eprintln!(
        "load (keeping {} channels, {kept} samples): {t_load:.3} s; render from memory: {:.3} s",
        data.traces.channels.len(),
        t.elapsed().as_secs_f64()
    );
    if std::env::var_os("HILRIG_BENCH_ONCE").is_some() {
        return;
    }
    let mut g = c.benchmark_group("report");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function(format!("render_dir {seconds} s x 100 Hz x 40 ch"), |b| {
        b.iter(|| html::render_dir(&dir).expect("render").len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
