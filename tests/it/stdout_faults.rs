//! Standard output that cannot be written (a closed pipe, as with `| head`, or a full
//! device) ends every command with a message and a non-zero exit, never a panic (101).

use std::process::{Command, Stdio};

use rstest::rstest;

use crate::common::root;

/// Where stdout goes.
#[derive(Debug, Clone, Copy)]
enum Sink {
    /// A pipe whose reader has already gone (EPIPE).
    ClosedPipe,
    /// /dev/full (ENOSPC).
    FullDevice,
}

fn run(args: &[&str], sink: Sink) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hilrig"));
    cmd.args(args)
        .current_dir(root())
        .env(
            "HILRIG_LOCK_DIR",
            std::env::temp_dir().join("hilrig-stdout-faults"),
        )
        .stdin(Stdio::null());
    match sink {
        Sink::ClosedPipe => {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            cmd.stdout(writer);
        }
        Sink::FullDevice => {
            cmd.stdout(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            );
        }
    }
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[rstest]
fn broken_pipes_and_full_devices_on_stdout_end_with_a_message(
    #[values(
        &["schema"][..],
        &["validate", "test-plans/overcharge.yaml"][..],
        &["validate", "fixtures/sim-bms-16s-lfp.yaml"][..],
        &["probe", "list"][..],
        &["lock", "status", "--rig", "rig/sim.yaml"][..],
        &["can", "decode", "--help"][..]
    )]
    args: &[&str],
    #[values(Sink::ClosedPipe, Sink::FullDevice)] sink: Sink,
) {
    let (code, stderr) = run(args, sink);
    assert_ne!(code, Some(0), "{args:?} {sink:?}: {stderr}");
    assert_ne!(code, Some(101), "{args:?} {sink:?} panicked: {stderr}");
    assert!(
        code.is_some(),
        "{args:?} {sink:?} killed by a signal: {stderr}"
    );
    assert!(
        stderr.contains("standard output") || stderr.contains("stdout"),
        "{args:?} {sink:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} {sink:?}: {stderr}");
}
