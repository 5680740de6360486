//! The fuzz targets on the stable toolchain: every file in `fuzz/regressions/<target>/`
//! (inputs that once crashed a target) and `fuzz/seeds/<target>/`, then a bounded,
//! seeded random-mutation run over those seeds. The target bodies are the ones the
//! cargo-fuzz targets call (`fuzz/src/lib.rs`).
//!
//! `HILRIG_FUZZ_ITERS` sets the mutations per target (default 400; the plan loader runs a
//! quarter of that, it writes a file per input); `HILRIG_FUZZ_SEED` the random seed. A
//! failing input is written to `target/fuzz-failures/<target>-<n>` and named in the panic.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::common::Rng;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Tokens that the parsers give meaning to, spliced in by the mutator.
const TOKENS: &[&[u8]] = &[
    b"not ",
    b"(",
    b")",
    b" and ",
    b" or ",
    b" == ",
    b"#",
    b"##",
    b"#R",
    b"\r",
    b"\n",
    b"\r\n",
    b"\"",
    b",",
    b":",
    b"- ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"&a",
    b"*a",
    b"!!",
    b"---",
    b"...",
    b"|",
    b">",
    b"'",
    b"9.91E37",
    b"NAN",
    b"INF",
    b"-",
    b"+",
    b"e999",
    b"0x",
    b"#9",
    b"#0",
    b"#19",
    b"999999999",
    b"18446744073709551616",
    b"BO_ ",
    b"SG_ ",
    b"SG_MUL_VAL_ ",
    b" M ",
    b" m0 ",
    b"@0+",
    b"@1-",
    b"VAL_ ",
    b"BA_ ",
    b"SIG_VALTYPE_ ",
    b"(",
    b")",
    b"|",
    b"1.0E308",
    b"V",
    b" mV/s",
    b" s",
    b" \xC2\xB0C",
    b"${",
    b"}",
    b"\xFF",
    b"\x00",
    b"(0.0) can0 ",
    b"t",
    b"T",
    b"r",
    b"R",
    b"d",
    b"D",
    b"b",
    b"B",
    b"F",
    b"sa",
    b"FFFFFFFF",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                input.drain(i..i + n);
            }
            4 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(len + 1);
                input.splice(i..i, t.iter().copied());
            }
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = input[i..i + n].to_vec();
                let j = rng.below(len + 1);
                input.splice(j..j, chunk);
            }
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - i).min(128));
                    let j = rng.below(len + 1);
                    input.splice(j..j, other[i..i + n].iter().copied());
                }
            }
            7 if len > 0 => input.truncate(rng.below(len)),
            _ => {}
        }
    }
}

fn run_one(name: &str, n: usize, data: &[u8], target: &dyn Fn(&[u8])) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| target(data))) {
        Ok(()) => Ok(()),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let dir = repo().join("target").join("fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{name}-{n}"));
            std::fs::write(&path, data).unwrap();
            Err(format!("{name}: input {} panicked: {msg}", path.display()))
        }
    }
}

fn env_usize(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Regressions, seeds, then `iters` mutations of the seeds.
fn drive(name: &str, iters_divisor: u64, target: &dyn Fn(&[u8])) {
    let regressions = files_in(&repo().join("fuzz").join("regressions").join(name));
    let seeds: Vec<Vec<u8>> = files_in(&repo().join("fuzz").join("seeds").join(name))
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert!(!seeds.is_empty(), "no seeds for {name}");
    let mut failures = Vec::new();
    for (path, data) in &regressions {
        if let Err(e) = run_one(name, 0, data, target) {
            failures.push(format!("regression {}: {e}", path.display()));
        }
    }
    for (i, data) in seeds.iter().enumerate() {
        if let Err(e) = run_one(name, i, data, target) {
            failures.push(e);
        }
    }
    let iters = env_usize("HILRIG_FUZZ_ITERS", 400) / iters_divisor;
    let seed = env_usize("HILRIG_FUZZ_SEED", 0x9E37_79B9_7F4A_7C15);
    let mut rng = Rng(seed ^ name.len() as u64 | 1);
    for n in 0..iters as usize {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut input, &seeds);
        if let Err(e) = run_one(name, n, &input, target) {
            failures.push(e);
            if failures.len() >= 5 {
                break;
            }
        }
    }
    println!(
        "{name}: {} regressions, {} seeds, {iters} mutated inputs (seed {seed:#x}), {} failures",
        regressions.len(),
        seeds.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn plan_loader() {
    let work = targets::Workdir::new(repo(), "plan");
    drive("plan_loader", 4, &|d| targets::plan_loader(&work, d));
}

#[test]
fn dbc() {
    drive("dbc", 1, &targets::dbc);
}

#[test]
fn candump() {
    drive("candump", 1, &targets::candump);
}

#[test]
fn slcan() {
    drive("slcan", 1, &targets::slcan);
}

#[test]
fn scpi_reply() {
    drive("scpi_reply", 1, &targets::scpi_reply);
}

#[test]
fn condition() {
    drive("condition", 1, &targets::condition);
}

#[test]
fn rig_fixture_loader() {
    let work = targets::Workdir::new(repo(), "rig-fixture-test");
    drive("rig_fixture_loader", 4, &|d| {
        targets::rig_fixture_loader(&work, d)
    });
}
