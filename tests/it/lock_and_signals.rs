//! The bench lock across processes, and interrupt/terminate signals ending a run safely.
//!
//! These run the real binary. The simulated bench lives inside that process, so the safe
//! state is checked from what the run recorded (each action confirmed by the instrument's
//! read-back); tests/faults.rs checks it from the simulated instruments' own state.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn spawn_run(locks: &Path, out: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args([
            "run",
            "test-plans/overcharge.yaml",
            "--out",
            out.to_str().unwrap(),
        ])
        .args(extra)
        .env("HILRIG_LOCK_DIR", locks)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn lock_status(locks: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(["lock", "status"])
        .env("HILRIG_LOCK_DIR", locks)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
    )
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The single run directory under `out`.
fn run_dir(out: &Path) -> Option<PathBuf> {
    std::fs::read_dir(out)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
}

fn ramp_started(out: &Path) -> bool {
    run_dir(out)
        .and_then(|d| std::fs::read_to_string(d.join("trace.csv")).ok())
        .is_some_and(|t| {
            t.lines()
                .filter(|l| l.contains("cells.cell[5].v_set"))
                .count()
                > 5
        })
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

#[test]
fn a_second_run_names_the_holder_or_waits() {
    let locks = temp_dir("lock-locks");
    let first = spawn_run(&locks, &temp_dir("lock-first"), &[]);
    wait_until("the first run to hold the lock", || {
        lock_status(&locks).0 == 1
    });
    let (_, status) = lock_status(&locks);
    assert!(status.contains(&format!("pid {}", first.id())), "{status}");

    let second = spawn_run(&locks, &temp_dir("lock-second"), &[])
        .wait_with_output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("is busy") && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );

    let third = spawn_run(&locks, &temp_dir("lock-third"), &["--wait", "5 min"]);
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let third = third.wait_with_output().unwrap();
    assert_eq!(
        third.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert_eq!(lock_status(&locks).0, 0);
}

#[test]
fn a_killed_run_leaves_no_lock() {
    let locks = temp_dir("kill-locks");
    let mut run = spawn_run(&locks, &temp_dir("kill-run"), &[]);
    wait_until("the run to hold the lock", || lock_status(&locks).0 == 1);
    signal(&run, libc::SIGKILL);
    run.wait().unwrap();
    let (code, text) = lock_status(&locks);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("is free"), "{text}");
}

fn signal_mid_step(name: &str, sig: i32) {
    let locks = temp_dir(&format!("{name}-locks"));
    let out = temp_dir(&format!("{name}-out"));
    let run = spawn_run(&locks, &out, &[]);
    wait_until("the trip step to ramp", || ramp_started(&out));
    signal(&run, sig);
    let res = run.wait_with_output().unwrap();
    assert_eq!(
        res.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&res.stdout)
    );
    let dir = run_dir(&out).unwrap();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["outcome"], "aborted");
    assert!(
        r["abort"]["cause"]
            .as_str()
            .unwrap()
            .contains("cancelled by the operator"),
        "{}",
        r["abort"]
    );
    assert!(
        r["abort"]["during"].as_str().unwrap().contains("trip"),
        "{}",
        r["abort"]
    );
    assert_eq!(r["abort"]["kind"], "cancelled", "{}", r["abort"]);
    assert_eq!(r["abort"]["stage"], "steps", "{}", r["abort"]);
    assert_eq!(r["safe_state_reached"], true, "{}", r["safe_state"]);
    let trace = std::fs::read_to_string(dir.join("trace.csv")).unwrap();
    assert!(trace.contains("cells.cell[5].v_set"));
    assert!(dir.join("junit.xml").exists());
}

#[test]
fn sigterm_mid_step_ends_in_the_safe_state() {
    signal_mid_step("sigterm", libc::SIGTERM);
}

#[test]
fn interrupt_mid_step_ends_in_the_safe_state() {
    signal_mid_step("sigint", libc::SIGINT);
}
