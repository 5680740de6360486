//! Helpers for the CAN integration tests: pseudo-terminal pairs and the opt-in switches.
#![allow(dead_code)]

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::FromRawFd;
use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when the opt-in peer tests are switched on; otherwise prints that `test` did not run.
pub fn peers_enabled(test: &str) -> bool {
    if std::env::var("HILRIG_PEER_TESTS").as_deref() == Ok("1") {
        true
    } else {
        println!("{test}: not run: set HILRIG_PEER_TESTS=1");
        false
    }
}

/// A pseudo-terminal pair in raw mode: the master as a file, the slave's path, and the slave
/// kept open until `release_slave` (so the master never sees a hang-up before a peer opens it).
pub struct Pty {
    /// The master side (the "adapter" end in the tests).
    pub master: File,
    /// Path of the slave side (`/dev/pts/N`), what a serial-port user opens.
    pub slave_path: String,
    slave: Option<File>,
}

impl Pty {
    /// Open a pair; panics (test setup) if the system has no pseudo-terminals.
    pub fn open() -> Pty {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        // SAFETY: openpty writes two descriptors; name, termios and winsize may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just returned by openpty and are owned here.
        let (master_file, slave_file) =
            unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };
        for fd in [master, slave] {
            // SAFETY: termios is plain data; fd is an open terminal descriptor.
            unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                assert_eq!(libc::tcgetattr(fd, &mut t), 0);
                libc::cfmakeraw(&mut t);
                assert_eq!(libc::tcsetattr(fd, libc::TCSANOW, &t), 0);
            }
        }
        let mut buf = [0 as libc::c_char; 256];
        // SAFETY: buf is writable for its whole length; ttyname_r NUL-terminates on success.
        let rc = unsafe { libc::ttyname_r(slave, buf.as_mut_ptr(), buf.len()) };
        assert_eq!(rc, 0, "ttyname_r failed");
        // SAFETY: ttyname_r succeeded, so buf holds a NUL-terminated string.
        let slave_path = unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Pty {
            master: master_file,
            slave_path,
            slave: Some(slave_file),
        }
    }

    /// Close the test's own handle on the slave side.
    pub fn release_slave(&mut self) {
        self.slave = None;
    }
}
