//! Soak: the simulated bench in virtual time for 24 hours of bench time (`HILRIG_SOAK_HOURS`
//! overrides) with the rig's 100 ms instrument sampling running throughout. Checks that the
//! run completes with every test result, that the streamed trace has no gaps in any
//! instrument channel, and that the process's memory stays bounded (VmHWM / VmRSS from
//! `/proc/self/status`, before and after, printed).
//!
//! Ignored by default (it takes minutes): `cargo test --release --test soak -- --ignored
//! --nocapture`.

#[path = "it/common.rs"]
mod common;
#[path = "it/sim_support.rs"]
mod sim_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use hilrig::plan::load_plan;
use hilrig::report::Outcome;
use hilrig::verdict::Verdict;
use sim_support::{memory_bench, run_plan, virtual_runtime};

/// The instrument channels the rig samples every `sample_period`.
const INSTRUMENT_CHANNELS: [&str; 4] = ["supply.v", "supply.i", "load.v", "load.i"];

/// A plan that charges gently, holds for `hours`, and checks the BMS before and after.
fn soak_plan(hours: f64) -> String {
    let fixture = root().join("fixtures/sim-bms-16s-lfp.yaml");
    format!(
        "plan: soak
title: Soak on the simulated bench
requirements: [issue 10 soak]
dut: {fixture}
limits: iec62619-bms
setup:
  - cells: {{all: 3.30 V}}
  - supply: {{voltage: 56.0 V, current: 1 A, output: on}}
  - wait_for: {{until: bms.state == charge, timeout: 5 s}}
steps:
  - expect:
      name: charging before the soak
      that: bms.chg_fet == closed
      within: 5 s
  - wait: {secs} s
  - expect:
      name: still charging after the soak
      that: bms.chg_fet == closed and bms.state == charge
      within: 5 s
teardown:
  - supply: {{output: off}}
  - cells: {{all: 3.30 V}}
",
        fixture = fixture.display(),
        secs = hours * 3600.0,
    )
}

/// (VmHWM, VmRSS) of this process in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Per channel: (rows, first t, last t, largest gap between consecutive rows).
type ChannelStats = BTreeMap<String, (u64, f64, f64, f64)>;

fn trace_stats(path: &std::path::Path) -> ChannelStats {
    let mut stats: ChannelStats = BTreeMap::new();
    let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap());
    for (i, line) in reader.lines().enumerate() {
        let line = line.unwrap();
        if i == 0 {
            assert_eq!(line, "t_s,channel,value,unit");
            continue;
        }
        let mut fields = line.splitn(3, ',');
        let t: f64 = fields.next().unwrap().parse().unwrap();
        let channel = fields.next().unwrap();
        match stats.get_mut(channel) {
            Some((n, _, last, gap)) => {
                assert!(t >= *last, "{channel}: time goes back at line {}", i + 1);
                *gap = gap.max(t - *last);
                *last = t;
                *n += 1;
            }
            None => {
                stats.insert(channel.to_string(), (1, t, t, 0.0));
            }
        }
    }
    stats
}

#[test]
#[ignore = "minutes of wall time: cargo test --release --test soak -- --ignored"]
fn a_day_on_the_simulated_bench_keeps_sampling_with_bounded_memory() {
    let hours: f64 = std::env::var("HILRIG_SOAK_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(24.0);
    let rig = sim_rig(None);
    let period = rig.sample_period.duration().as_secs_f64();
    let dir = temp_dir("soak");
    let plan_path = dir.join("soak.yaml");
    std::fs::write(&plan_path, soak_plan(hours)).unwrap();
    let plan = Arc::new(load_plan(&plan_path, Some(&rig)).unwrap_or_else(|e| panic!("{e:?}")));

    let (hwm_before, rss_before) = memory_kib();
    let started = Instant::now();
    let rt = virtual_runtime();
    let results = rt.block_on(async {
        let bench = memory_bench(&rig, &root().join("rig/sim.yaml")).await;
        run_plan(&bench, &rig, plan, &dir.join("run")).await.0
    });
    let wall = started.elapsed().as_secs_f64();
    let (hwm_after, rss_after) = memory_kib();
    drop(rt);

    let trace = dir.join("run").join("trace.csv");
    let trace_bytes = std::fs::metadata(&trace).map(|m| m.len()).unwrap_or(0);
    println!(
        "soak: {hours} h simulated ({:.0} s in the results) in {wall:.1} s wall; \
         VmHWM {hwm_before} -> {hwm_after} KiB, VmRSS {rss_before} -> {rss_after} KiB; \
         trace {:.1} MiB",
        results.duration_s,
        trace_bytes as f64 / 1048576.0
    );

    // Complete results: the run passed, every test is there with a verdict, safe state.
    assert_eq!(results.outcome, Outcome::Passed, "{:?}", results.abort);
    let names: Vec<&str> = results.tests.iter().map(|t| t.test.as_str()).collect();
    assert_eq!(
        names,
        ["charging before the soak", "still charging after the soak"]
    );
    assert!(results.tests.iter().all(|t| t.verdict == Verdict::Pass));
    assert!(
        results.duration_s >= hours * 3600.0,
        "{}",
        results.duration_s
    );

    // No gaps: every instrument channel sampled from start to end, never more than three
    // sample periods between two rows.
    let stats = trace_stats(&trace);
    for (channel, (rows, first, last, gap)) in &stats {
        println!("  {channel}: {rows} rows, {first:.3}..{last:.3} s, largest gap {gap:.3} s");
    }
    for channel in INSTRUMENT_CHANNELS {
        let (rows, first, last, gap) = stats
            .get(channel)
            .unwrap_or_else(|| panic!("no `{channel}` rows in the trace"));
        assert!(
            *gap <= 3.0 * period,
            "{channel}: a gap of {gap} s (sample period {period} s)"
        );
        assert!(
            *first <= 3.0 * period && *last >= results.duration_s - 3.0 * period - 5.0,
            "{channel}: sampled only {first}..{last} s of a {} s run",
            results.duration_s
        );
        assert!(
            *rows as f64 >= hours * 3600.0 / period * 0.99,
            "{channel}: {rows} rows"
        );
    }

    // Bounded memory: the trace streams to disk, so a day of samples (millions of rows)
    // must not show up in the resident set. 256 MiB is far below what holding the trace
    // would take and far above allocator noise.
    let growth = hwm_after.saturating_sub(hwm_before);
    assert!(
        growth < 256 * 1024,
        "peak memory grew by {growth} KiB over the soak"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
