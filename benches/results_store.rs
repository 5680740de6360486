//! The results store at lab scale: 10,000 plan runs (a real `ov-charge` run's results,
//! re-keyed over 5 firmware versions and 4 benches) in SQLite, and in PostgreSQL when
//! `HILRIG_TEST_POSTGRES_URL` names a server; then the time of a trend query over all of
//! them, of `list --limit 50`, and of storing runs. Prints the size of each store.
//!
//! `cargo bench --bench results_store` (set `HILRIG_BENCH_RUNS` for another count).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::path::PathBuf;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};
use hilrig::report::manifest::Manifest;
use hilrig::report::RunResults;
use hilrig::results::query::TrendBy;
use hilrig::results::{list, store_run, trend, ListFilter, Store};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One real run's bundle files (results.json, manifest.json).
fn real_run(tmp: &std::path::Path) -> (RunResults, Manifest) {
    let out = tmp.join("reports");
    let status = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args([
            "run",
            "test-plans/ov-charge.yaml",
            "--virtual-time",
            "--out",
        ])
        .arg(&out)
        .current_dir(root())
        .env("HILRIG_LOCK_DIR", tmp)
        .env_remove("HILRIG_DB")
        .output()
        .expect("hilrig runs");
    assert!(status.status.success(), "{status:?}");
    let dir = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    (
        serde_json::from_slice(&read("results.json")).unwrap(),
        serde_json::from_slice(&read("manifest.json")).unwrap(),
    )
}

/// Store `n` re-keyed copies of `run` (runs 0..n), one transaction each.
async fn fill(store: &Store, run: &RunResults, manifest: &Manifest, from: usize, n: usize) {
    for i in from..from + n {
        let mut r = run.clone();
        r.run_id = format!("bench-{i:06}");
        r.station = format!("bench-{}", i % 4);
        if let Some(fw) = r.firmware.as_mut() {
            fw.version = format!("1.{}.0", i % 5);
            fw.id = format!("bms-{}", fw.version);
        }
        r.clock_anchor = format!(
            "2026-{:02}-{:02}T{:02}:00:00.000Z",
            1 + i % 12,
            1 + i % 28,
            i % 24
        );
        for t in &mut r.tests {
            for m in &mut t.measurements {
                m.value += (i % 7) as f64 * 1e-4;
            }
        }
        let sha = format!("{i:064x}");
        store_run(store, "bench", &sha, manifest, &r).await.unwrap();
    }
}

fn bench_backend(c: &mut Criterion, name: &str, url: &str, run: &RunResults, manifest: &Manifest) {
    let runs: usize = std::env::var("HILRIG_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(Store::open(url)).unwrap();
    let t0 = std::time::Instant::now();
    rt.block_on(fill(&store, run, manifest, 0, runs));
    let fill_s = t0.elapsed().as_secs_f64();
    let measurements: usize = run.tests.iter().map(|t| t.measurements.len()).sum();
    println!(
        "{name}: stored {runs} runs ({} measurements) in {fill_s:.1} s: {:.0} runs/s, {:.0} measurements/s",
        runs * measurements,
        runs as f64 / fill_s,
        (runs * measurements) as f64 / fill_s
    );
    let t = rt
        .block_on(trend(&store, "ov_threshold", TrendBy::Firmware, None))
        .unwrap();
    println!(
        "{name}: trend ov_threshold: {} series, {} points",
        t.series.len(),
        t.series.iter().map(|s| s.points.len()).sum::<usize>()
    );
    let mut g = c.benchmark_group(format!("results_{name}"));
    g.sample_size(10);
    g.bench_function(format!("trend ov_threshold over {runs} runs"), |b| {
        b.iter(|| {
            rt.block_on(trend(&store, "ov_threshold", TrendBy::Firmware, None))
                .unwrap()
        })
    });
    g.bench_function(format!("list --limit 50 of {runs} runs"), |b| {
        b.iter(|| {
            rt.block_on(list(
                &store,
                &ListFilter {
                    limit: Some(50),
                    ..ListFilter::default()
                },
            ))
            .unwrap()
        })
    });
    g.finish();
}

fn results_store(c: &mut Criterion) {
    let tmp = std::env::temp_dir().join(format!("hilrig-bench-results-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let (run, manifest) = real_run(&tmp);
    let db = tmp.join("hilrig.db");
    bench_backend(
        c,
        "sqlite",
        &format!("sqlite://{}", db.display()),
        &run,
        &manifest,
    );
    let size: u64 = ["hilrig.db", "hilrig.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(tmp.join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!("sqlite: store size {:.1} MB", size as f64 / 1e6);
    match std::env::var("HILRIG_TEST_POSTGRES_URL") {
        Ok(base) => {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let dbname = format!("hilrig_bench_{}", std::process::id());
            rt.block_on(async {
                use sqlx::{Connection, Executor};
                let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
                c.execute(format!("CREATE DATABASE {dbname}").as_str())
                    .await
                    .unwrap();
            });
            let (server, _) = base.rsplit_once('/').unwrap();
            let url = format!("{server}/{dbname}");
            bench_backend(c, "postgres", &url, &run, &manifest);
            rt.block_on(async {
                use sqlx::{Connection, Row};
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                let size: i64 = sqlx::query("SELECT pg_database_size(current_database()) AS s")
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
                    .get("s");
                println!("postgres: store size {:.1} MB", size as f64 / 1e6);
            });
        }
        Err(_) => println!("postgres: not run (set HILRIG_TEST_POSTGRES_URL)"),
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

criterion_group!(benches, results_store);
criterion_main!(benches);
