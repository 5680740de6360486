//! Write errors are faults: a file-size limit (SIGXFSZ) or a full file system during a run
//! stops the stimulus, brings the bench to its safe state (checked from the instruments'
//! side), keeps the trace up to the fault and still writes a valid results.json; the
//! console and the exit code say so and where the data is.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use crate::common::{read_json, temp_dir};
use crate::external_bench::*;

/// The run directory under `out` and its results.json, checked for an aborted run whose
/// cause names trace.csv and whose safe state was confirmed.
fn check_aborted_on_write(out: &Path, run: &Output, error: &str) -> PathBuf {
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stdout}\n{stderr}");
    let run_dir = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a run directory");
    let results = read_json(&run_dir.join("results.json"));
    assert_eq!(results["outcome"], "aborted", "{results:#}");
    let cause = results["abort"]["cause"].as_str().unwrap();
    assert!(
        cause.contains("trace.csv") && cause.contains(error),
        "{cause}"
    );
    assert_eq!(results["safe_state_reached"], true, "{results:#}");
    // The console says why and where the data is.
    assert!(stdout.contains(error), "{stdout}");
    assert!(stdout.contains(&run_dir.display().to_string()), "{stdout}");
    // The trace holds the data up to the fault: a header and complete rows before it.
    let trace = std::fs::read(run_dir.join("trace.csv")).unwrap();
    let text = String::from_utf8_lossy(&trace);
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"t_s,channel,value,unit"));
    if !text.ends_with('\n') {
        lines.pop(); // the row the fault cut
    }
    assert!(lines.len() > 100, "{} rows kept", lines.len());
    for row in &lines[1..] {
        assert_eq!(row.split(',').count(), 4, "{row}");
    }
    run_dir
}

#[test]
fn a_file_size_limit_mid_run_ends_with_the_bench_off_and_valid_results() {
    let server = Server::start();
    let dir = temp_dir("fsize");
    let rig = server.write_rig(&dir, "fsize-bench");
    let plan = write_trip_plan(&dir);
    let out = dir.join("reports");
    const LIMIT: u64 = 48 * 1024;
    let mut cmd = spawn_run(&plan, &rig, &out, &dir.join("locks"));
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = cmd.stdin(Stdio::null()).output().unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "not killed by SIGXFSZ: {:?}",
        run.status
    );
    let run_dir = check_aborted_on_write(&out, &run, "File too large");
    assert!(std::fs::metadata(run_dir.join("trace.csv")).unwrap().len() <= LIMIT);
    assert!(!supply_on(&server), "supply off");
    assert!(!load_on(&server), "load off");
}

/// Unmounts the small file system when the test ends, however it ends.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_file_system_mid_run_ends_with_the_bench_off_and_valid_results() {
    let dir = temp_dir("enospc");
    let mnt = dir.join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("not run: mounting a small tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    }
    let _mount = Mount(mnt.clone());
    // Leave room for the results reserve and about 48 KB of trace.
    let filler = 2 * 1024 * 1024 - 256 * 1024 - 48 * 1024;
    std::fs::write(mnt.join("filler"), vec![0u8; filler]).unwrap();

    let server = Server::start();
    let rig = server.write_rig(&dir, "enospc-bench");
    let plan = write_trip_plan(&dir);
    let out = mnt.join("reports");
    let run = spawn_run(&plan, &rig, &out, &dir.join("locks"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    check_aborted_on_write(&out, &run, "No space left on device");
    assert!(!supply_on(&server), "supply off");
    assert!(!load_on(&server), "load off");
}
