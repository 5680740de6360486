//! A simulated SLCAN (Lawicel) adapter on a pseudo-terminal, bridging a virtual CAN bus to
//! any program that can open a serial port: the rig's SLCAN backend, python-can's `slcan`
//! interface, or a terminal.
//!
//! The adapter side of the Lawicel text protocol. Commands end with CR (a LF is ignored);
//! each is answered with CR on success or BEL (0x07) on error:
//! - `S0`..`S8` (bit rate 10k..1M) and `sXXYY` (BTR registers): only while closed;
//! - `O` open, `L` open listen-only, `C` close;
//! - `V` version (`V1013`), `N` serial number (`NSIM1`), `F` status flags (`F00`, bit 3
//!   set after frames to the host were dropped because nobody read them);
//! - `Z0`/`Z1` timestamps off/on (a 4-hex-digit millisecond count, wrapping at 60000,
//!   appended to every frame sent to the host);
//! - `M`/`m` acceptance code/mask and `X` auto-poll are accepted and have no effect;
//! - `tIIIL<data>` / `TIIIIIIIIL<data>` send a standard / extended data frame while open
//!   (answered `z`/`Z` + CR, as Lawicel adapters do); remote (`r`/`R`) and CAN FD frames
//!   are refused with BEL.
//!
//! While open, every classic data or remote frame on the bus that the host did not send
//! itself goes to the host as `tIIIL<data>[TTTT]` + CR (`T...` for extended ids, `r`/`R` for
//! remote frames); CAN FD frames are not passed on, as on a classic adapter.

use super::pty::{open_pty, read_fd, set_nonblocking, tty_name, write_fd};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::can::slcan::{encode_frame, SlcanFrame};
use crate::can::{Bus, Frame, FrameKind, VirtualBus};

const BEL: u8 = 0x07;
const CR: u8 = b'\r';

/// Longest command line kept; longer input is discarded and answered with BEL.
const MAX_COMMAND: usize = 64;

/// The adapter's protocol state, independent of the byte stream it runs on.
#[derive(Debug, Clone, Default)]
pub struct Adapter {
    open: bool,
    listen_only: bool,
    bitrate: Option<u8>,
    timestamps: bool,
    overrun: bool,
}

/// What a command asks of the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes to send back to the host.
    pub reply: Vec<u8>,
    /// A frame to put on the bus.
    pub transmit: Option<Frame>,
}

impl Outcome {
    fn ok() -> Self {
        Self::reply(&[CR])
    }

    fn error() -> Self {
        Self::reply(&[BEL])
    }

    fn reply(bytes: &[u8]) -> Self {
        Self {
            reply: bytes.to_vec(),
            transmit: None,
        }
    }
}

impl Adapter {
    /// A closed adapter with timestamps off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the channel is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The bit-rate code set with `S0`..`S8`, if any.
    pub fn bitrate_code(&self) -> Option<u8> {
        self.bitrate
    }

    /// Note that a frame for the host was dropped (reported in the `F` status flags).
    pub fn note_overrun(&mut self) {
        self.overrun = true;
    }

    /// Handle one command line (without its CR).
    pub fn command(&mut self, line: &[u8]) -> Outcome {
        let Some((&c, rest)) = line.split_first() else {
            return Outcome::ok();
        };
        match c {
            b'S' => match rest {
                [d @ b'0'..=b'8'] if !self.open => {
                    self.bitrate = Some(d - b'0');
                    Outcome::ok()
                }
                _ => Outcome::error(),
            },
            b's' if !self.open && rest.len() == 4 && is_hex(rest) => Outcome::ok(),
            b'O' | b'L' if rest.is_empty() && !self.open => {
                self.open = true;
                self.listen_only = c == b'L';
                Outcome::ok()
            }
            b'C' if rest.is_empty() => {
                self.open = false;
                self.listen_only = false;
                Outcome::ok()
            }
            b'V' if rest.is_empty() => Outcome::reply(b"V1013\r"),
            b'N' if rest.is_empty() => Outcome::reply(b"NSIM1\r"),
            b'F' if rest.is_empty() => {
                let flags = if std::mem::take(&mut self.overrun) {
                    0x08
                } else {
                    0
                };
                Outcome::reply(format!("F{flags:02X}\r").as_bytes())
            }
            b'Z' => match rest {
                b"0" => {
                    self.timestamps = false;
                    Outcome::ok()
                }
                b"1" => {
                    self.timestamps = true;
                    Outcome::ok()
                }
                _ => Outcome::error(),
            },
            b'M' | b'm' if rest.len() == 8 && is_hex(rest) => Outcome::ok(),
            b'X' if matches!(rest, b"0" | b"1") => Outcome::ok(),
            b't' | b'T' if self.open && !self.listen_only => {
                let extended = c == b'T';
                match parse_frame(rest, extended) {
                    Some(frame) => Outcome {
                        reply: if extended {
                            b"Z\r".to_vec()
                        } else {
                            b"z\r".to_vec()
                        },
                        transmit: Some(frame),
                    },
                    None => Outcome::error(),
                }
            }
            _ => Outcome::error(),
        }
    }

    /// The line that carries `frame` to the host, or None while closed or when the frame
    /// cannot be written in SLCAN (more than 8 data bytes). `ms` is the adapter's
    /// millisecond clock, used when timestamps are on.
    pub fn frame_line(&self, frame: &Frame, ms: u64) -> Option<Vec<u8>> {
        if !self.open || !matches!(frame.kind, FrameKind::Classic | FrameKind::Remote) {
            return None;
        }
        let line = encode_frame(&SlcanFrame {
            frame: frame.clone(),
            timestamp_ms: self.timestamps.then_some((ms % 60_000) as u16),
        });
        line.ok().map(String::into_bytes)
    }
}

fn is_hex(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_hexdigit)
}

fn hex_value(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !is_hex(b) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
}

/// `IIIL<data>` (standard) or `IIIIIIIIL<data>` (extended), after the command letter.
fn parse_frame(rest: &[u8], extended: bool) -> Option<Frame> {
    let id_len = if extended { 8 } else { 3 };
    if rest.len() < id_len + 1 {
        return None;
    }
    let id = hex_value(&rest[..id_len])?;
    let len = (rest[id_len] as char).to_digit(10)? as usize;
    let data_hex = &rest[id_len + 1..];
    if len > 8 || data_hex.len() != 2 * len {
        return None;
    }
    let data: Option<Vec<u8>> = data_hex
        .chunks(2)
        .map(|p| hex_value(p).map(|v| v as u8))
        .collect();
    Frame::new(id, extended, &data?).ok()
}

/// A running SLCAN adapter on a pseudo-terminal. Dropping it stops the adapter and closes
/// the terminal.
pub struct SlcanPty {
    path: PathBuf,
    task: JoinHandle<()>,
    _slave: OwnedFd,
}

impl std::fmt::Debug for SlcanPty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlcanPty")
            .field("path", &self.path)
            .finish()
    }
}

impl SlcanPty {
    /// Open a pseudo-terminal and bridge it to `bus`. Must be called inside a tokio runtime
    /// with I/O enabled.
    pub fn open(bus: VirtualBus) -> io::Result<Self> {
        let (master, slave) = open_pty()?;
        let path = tty_name(slave.as_raw_fd())?;
        set_nonblocking(master.as_raw_fd())?;
        // SAFETY: `master` is an OwnedFd: it is open, nothing else closes or replaces it, and
        // it always returns the same descriptor while the AsyncFd owns it.
        let master = unsafe { AsyncFd::register(master) }.map_err(|e| e.into_parts().1)?;
        let task = tokio::spawn(run(master, bus));
        Ok(Self {
            path,
            task,
            _slave: slave,
        })
    }

    /// The terminal to open, e.g. `/dev/pts/3`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SlcanPty {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Write without waiting: what the terminal cannot take now is dropped (nobody is reading).
fn write_now(master: &AsyncFd<OwnedFd>, bytes: &[u8]) -> bool {
    let mut done = 0;
    while done < bytes.len() {
        match write_fd(master.as_raw_fd(), &bytes[done..]) {
            Ok(0) => return false,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

async fn run(master: AsyncFd<OwnedFd>, bus: VirtualBus) {
    let mut rx = bus.subscribe();
    let mut adapter = Adapter::new();
    let started = Instant::now();
    let mut line: Vec<u8> = Vec::new();
    let mut discarding = false;
    // Frames we put on the bus come back to our own receiver; skip them, in order.
    let mut own: VecDeque<Frame> = VecDeque::new();
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            readable = master.readable() => {
                let Ok(mut guard) = readable else { return };
                let n = match guard.try_io(|fd| read_fd(fd.as_raw_fd(), &mut buf)) {
                    Ok(Ok(0)) => {
                        // No reader or writer on the other side right now; wait a little.
                        guard.clear_ready();
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
                        // The other side closed the terminal; wait for the next user.
                        guard.clear_ready();
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("simulated SLCAN adapter: read failed: {e}");
                        return;
                    }
                    Err(_would_block) => continue,
                };
                for &b in &buf[..n] {
                    match b {
                        CR => {
                            let outcome = if discarding {
                                Outcome::error()
                            } else {
                                adapter.command(&line)
                            };
                            line.clear();
                            discarding = false;
                            if let Some(frame) = outcome.transmit {
                                own.push_back(frame.clone());
                                let _ = bus.send_now(frame);
                            }
                            if !write_now(&master, &outcome.reply) {
                                adapter.note_overrun();
                            }
                        }
                        b'\n' => {}
                        _ if line.len() >= MAX_COMMAND => discarding = true,
                        _ => line.push(b),
                    }
                }
            }
            received = rx.recv() => {
                let r = match received {
                    Ok(r) => r,
                    Err(RecvError::Lagged(_)) => {
                        adapter.note_overrun();
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                if own.front() == Some(&r.frame) {
                    own.pop_front();
                    continue;
                }
                let ms = r.at.saturating_duration_since(started).as_millis() as u64;
                if let Some(bytes) = adapter.frame_line(&r.frame, ms) {
                    if !write_now(&master, &bytes) {
                        adapter.note_overrun();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(b"S6".as_slice(), b"\r".as_slice())]
    #[case(b"S9", b"\x07")]
    #[case(b"V", b"V1013\r")]
    #[case(b"N", b"NSIM1\r")]
    #[case(b"F", b"F00\r")]
    #[case(b"Z1", b"\r")]
    #[case(b"Z2", b"\x07")]
    #[case(b"M00000000", b"\r")]
    #[case(b"t1230", b"\x07")]
    #[case(b"", b"\r")]
    #[case(b"?", b"\x07")]
    fn answers_commands_while_closed(#[case] line: &[u8], #[case] reply: &[u8]) {
        let mut a = Adapter::new();
        assert_eq!(a.command(line).reply, reply);
    }

    #[test]
    fn opens_sends_and_refuses_settings_while_open() {
        let mut a = Adapter::new();
        assert_eq!(a.command(b"S6").reply, b"\r");
        assert_eq!(a.bitrate_code(), Some(6));
        assert_eq!(a.command(b"O").reply, b"\r");
        assert!(a.is_open());
        assert_eq!(a.command(b"O").reply, b"\x07");
        assert_eq!(a.command(b"S4").reply, b"\x07");
        let o = a.command(b"t2003051C0D");
        assert_eq!(o.reply, b"z\r");
        assert_eq!(
            o.transmit,
            Some(Frame::new(0x200, false, &[0x05, 0x1C, 0x0D]).unwrap())
        );
        let o = a.command(b"T1ABCDEF02BEEF");
        assert_eq!(o.reply, b"Z\r");
        assert_eq!(
            o.transmit,
            Some(Frame::new(0x1ABC_DEF0, true, &[0xBE, 0xEF]).unwrap())
        );
        for bad in [
            &b"t2003051C"[..],
            b"t20090000000000000000",
            b"tXYZ0",
            b"r1230",
        ] {
            let o = a.command(bad);
            assert_eq!(o.reply, b"\x07", "{}", String::from_utf8_lossy(bad));
            assert_eq!(o.transmit, None);
        }
        assert_eq!(a.command(b"C").reply, b"\r");
        assert_eq!(a.command(b"t1230").reply, b"\x07");
    }

    #[test]
    fn listen_only_refuses_to_transmit() {
        let mut a = Adapter::new();
        assert_eq!(a.command(b"L").reply, b"\r");
        assert_eq!(a.command(b"t1230").reply, b"\x07");
    }

    #[test]
    fn formats_frames_with_optional_timestamps() {
        let mut a = Adapter::new();
        let f = Frame::new(0x100, false, &[0x41, 0x00, 0x05]).unwrap();
        assert_eq!(a.frame_line(&f, 0), None, "nothing while closed");
        a.command(b"O");
        assert_eq!(a.frame_line(&f, 0).unwrap(), b"t1003410005\r");
        a.command(b"Z1");
        assert_eq!(a.frame_line(&f, 61_234).unwrap(), b"t100341000504D2\r");
        let x = Frame::new(0x18FF_0001, true, &[]).unwrap();
        assert_eq!(a.frame_line(&x, 0).unwrap(), b"T18FF000100000\r");
        let fd = Frame::new(0x100, false, &[0; 12]).unwrap();
        assert_eq!(a.frame_line(&fd, 0), None);
        let short_fd = Frame::with_kind(
            0x100,
            false,
            vec![1],
            FrameKind::Fd {
                brs: false,
                esi: false,
            },
        );
        assert_eq!(
            a.frame_line(&short_fd.unwrap(), 0),
            None,
            "no CAN FD on a classic adapter"
        );
        let remote = Frame::with_kind(0x7FF, false, vec![0; 2], FrameKind::Remote).unwrap();
        assert_eq!(a.frame_line(&remote, 0x10).unwrap(), b"r7FF20010\r");
    }

    #[test]
    fn reports_dropped_frames_once_in_the_status_flags() {
        let mut a = Adapter::new();
        a.note_overrun();
        assert_eq!(a.command(b"F").reply, b"F08\r");
        assert_eq!(a.command(b"F").reply, b"F00\r");
    }

    #[tokio::test]
    async fn bridges_a_pseudo_terminal_to_the_bus() {
        use std::io::{Read, Write};
        let bus = VirtualBus::create("slcan-pty-test-1");
        let pty = SlcanPty::open(bus.clone()).unwrap();
        let path = pty.path().to_path_buf();
        assert!(path.starts_with("/dev/"), "{}", path.display());
        let mut rx = bus.subscribe();
        let mut port = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        port.write_all(b"S6\rO\rt1231AB\r").unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.frame, Frame::new(0x123, false, &[0xAB]).unwrap());
        bus.send_now(Frame::new(0x100, false, &[1, 2]).unwrap())
            .unwrap();
        let reply = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            let mut b = [0u8; 64];
            while !all.ends_with(b"t10020102\r") {
                let n = port.read(&mut b).unwrap();
                all.extend_from_slice(&b[..n]);
            }
            all
        })
        .await
        .unwrap();
        // Replies to S6, O and the transmit, then the bus frame; our own frame is not echoed.
        assert_eq!(reply, b"\r\rz\rt10020102\r");
    }
}
