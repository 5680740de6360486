//! How long validating every shipped plan (with its fixture, limit profile, DBC and the
//! simulated rig's envelope) takes.

// criterion_group! makes a public function without a doc comment.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use hilrig::plan::{is_suite, load_plan, load_rig};

fn shipped_plans(root: &Path) -> Vec<PathBuf> {
    let mut plans: Vec<PathBuf> = std::fs::read_dir(root.join("test-plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !is_suite(p))
        .collect();
    plans.sort();
    plans
}

fn validate_all(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let plans = shipped_plans(&root);
    c.bench_function(
        &format!("validate rig + {} shipped plans", plans.len()),
        |b| {
            b.iter(|| {
                let rig = load_rig(&root.join("rig/sim.yaml")).unwrap();
                for p in &plans {
                    load_plan(p, Some(&rig.value)).unwrap();
                }
            })
        },
    );
}

criterion_group!(benches, validate_all);
criterion_main!(benches);
