//! Helpers shared by the integration tests: a simulated bench and a run on it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hilrig::plan::{load_plan, load_rig, LoadedPlan};
use hilrig::report::RunResults;
use hilrig::rig::Rig;
use hilrig::run::{execute, RunOptions};
use hilrig::sim::Bench;
use hilrig::trace::Clock;
use tokio_util::sync::CancellationToken;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh temporary directory for one test (unique per call: the tests share one process).
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("hilrig-test-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run the hilrig binary from the repository root, without a `HILRIG_RIG` from the caller's
/// environment: (exit code, stdout, stderr).
pub fn hilrig(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(args)
        .current_dir(root())
        .env_remove("HILRIG_RIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The simulated rig, optionally with another firmware image.
pub fn sim_rig(firmware: Option<&str>) -> Rig {
    let mut rig = load_rig(&root().join("rig/sim.yaml")).unwrap().value;
    if let Some(fw) = firmware {
        rig.simulation.as_mut().unwrap().firmware = root().join("firmware-under-test").join(fw);
    }
    rig
}

/// A shipped fixture's text for a copy written elsewhere: its relative paths (`dbc/…`,
/// `modbus/…`) made to point into the repository's `fixtures/`.
pub fn fixture_paths_absolute(text: &str) -> String {
    hilrig::plan::fixture::absolute_paths(text, &root().join("fixtures"))
}

/// How many plans the shipped nightly suite runs (its `- plan:` entries).
pub fn nightly_plans() -> usize {
    std::fs::read_to_string(root().join("test-plans/nightly.yaml"))
        .unwrap()
        .lines()
        .filter(|l| l.trim_start().starts_with("- plan:"))
        .count()
}

/// Load a shipped plan against a rig.
pub fn plan(rel: &str, rig: &Rig) -> Arc<LoadedPlan> {
    Arc::new(load_plan(&root().join(rel), Some(rig)).unwrap_or_else(|e| panic!("{e:?}")))
}

/// Start the bench for a rig.
pub async fn bench(rig: &Rig) -> Bench {
    Bench::start(rig, &root().join("rig/sim.yaml"))
        .await
        .unwrap()
}

/// Run options writing into `dir`.
pub fn options(dir: &Path, cancel: CancellationToken) -> RunOptions {
    RunOptions {
        dir: dir.to_path_buf(),
        run_id: "test".into(),
        decision_rule: None,
        cancel,
        firmware: None,
        clock: Clock::start(),
        on_event: Arc::new(|_| {}),
        refused: None,
        context: Default::default(),
        operator: Default::default(),
    }
}

/// Run a plan on a started bench.
pub async fn run_on(bench: &Bench, rig: &Rig, plan: Arc<LoadedPlan>, dir: &Path) -> RunResults {
    execute(
        plan,
        &bench.resolve(rig),
        options(dir, CancellationToken::new()),
    )
    .await
    .unwrap()
}

/// The run directory `hilrig run --out OUT` wrote (the first, when there are several).
pub fn first_run_dir(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap_or_else(|e| panic!("{}: {e}", out.display()))
        .next()
        .expect("a run directory")
        .unwrap()
        .path()
}

/// A JSON file, parsed.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Run a peer script with `python3` from the repository root, `stdin` written to it (its
/// stderr shown as it runs); its stdout. A failing script fails the test.
pub fn python(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = std::process::Command::new("python3")
        .args(args)
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    let mut input = child.stdin.take().unwrap();
    let text = stdin.unwrap_or_default().to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "python3 {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// A small xorshift64* generator: seeded, reproducible trials without another dependency.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// An integer in [lo, hi].
    pub fn int(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.next() as usize % items.len()]
    }

    /// An index below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}
