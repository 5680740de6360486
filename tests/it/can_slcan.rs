//! The SLCAN backend against a fake adapter on the master side of a pseudo-terminal: the
//! open sequence per variant, frames both ways (classic, extended, FD, with and without
//! timestamps), transmit acknowledgements that do or do not come, status flags and state
//! lines, refused and unanswered commands.

use crate::can_common;

use std::fs::File;
use std::io::{Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use can_common::Pty;
use hilrig::can::slcan::{SlcanBus, SlcanConfig};
use hilrig::can::{self, Bus, BusState, Frame, FrameKind, Received};
use tokio::sync::broadcast;

/// How the fake adapter answers.
#[derive(Clone, Copy, PartialEq)]
enum Firmware {
    /// Acknowledges frames with `z`/`Z`, answers `F` with `F20`.
    Lawicel,
    /// Never acknowledges frames.
    Canable,
    /// Refuses one command with BEL.
    Refuses(&'static str),
    /// Answers nothing at all.
    Mute,
}

/// A fake SLCAN adapter on a pty master: records every command line it receives.
struct Adapter {
    out: Arc<Mutex<File>>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Adapter {
    fn start(master: File, firmware: Firmware) -> Adapter {
        let out = Arc::new(Mutex::new(master.try_clone().unwrap()));
        let (tx, lines) = mpsc::channel();
        let replies = Arc::clone(&out);
        thread::spawn(move || {
            let mut master = master;
            let mut buf = [0u8; 1024];
            let mut line = Vec::new();
            loop {
                let n = match master.read(&mut buf) {
                    Ok(0) | Err(_) => return, // slave closed
                    Ok(n) => n,
                };
                for &b in &buf[..n] {
                    if b != b'\r' {
                        line.push(b);
                        continue;
                    }
                    let cmd = String::from_utf8_lossy(&line).into_owned();
                    line.clear();
                    let reply: &[u8] = match firmware {
                        Firmware::Mute => b"",
                        Firmware::Refuses(c) if c == cmd => b"\x07",
                        _ => match cmd.chars().next() {
                            Some('t' | 'd' | 'b') if firmware == Firmware::Lawicel => b"z\r",
                            Some('T' | 'D' | 'B') if firmware == Firmware::Lawicel => b"Z\r",
                            Some('t' | 'T' | 'd' | 'D' | 'b' | 'B') => b"",
                            Some('F') => b"F20\r",
                            _ => b"\r",
                        },
                    };
                    if !reply.is_empty() {
                        let mut w = replies.lock().unwrap();
                        let _ = w.write_all(reply);
                    }
                    if tx.send(cmd).is_err() {
                        return;
                    }
                }
            }
        });
        Adapter {
            out,
            lines,
            seen: Vec::new(),
        }
    }

    /// Send raw bytes to the host, as the adapter would.
    fn emit(&self, text: &str) {
        self.out.lock().unwrap().write_all(text.as_bytes()).unwrap();
    }

    /// Wait (generously) until `n` command lines have arrived; returns all seen so far.
    fn wait_lines(&mut self, n: usize) -> &[String] {
        let deadline = StdInstant::now() + Duration::from_secs(10);
        while self.seen.len() < n && StdInstant::now() < deadline {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(l);
            }
        }
        &self.seen
    }
}

fn endpoint(pty: &Pty, options: &str) -> String {
    format!("slcan:{}?{options}", pty.slave_path)
}

fn open(pty: &Pty, options: &str) -> Result<SlcanBus, can::CanError> {
    SlcanBus::open(SlcanConfig::parse(&endpoint(pty, options))?)
}

async fn next_frame(rx: &mut broadcast::Receiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a frame within 10 s")
        .expect("bus open")
}

/// Poll a condition until it holds (or fail after a generous deadline).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = StdInstant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(StdInstant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test]
async fn lawicel_with_timestamps_frames_both_ways() {
    let mut pty = Pty::open();
    let mut adapter = Adapter::start(pty.master.try_clone().unwrap(), Firmware::Lawicel);
    let bus = open(
        &pty,
        "bitrate=500000&variant=lawicel&timestamps=1&status_poll_ms=0",
    )
    .unwrap();
    pty.release_slave();
    assert_eq!(adapter.wait_lines(4), ["C", "S6", "Z1", "O"]);
    assert_eq!(bus.state(), BusState::ErrorActive);

    let mut rx = bus.subscribe();
    let fd: Vec<u8> = (0..12).collect();
    let fd64: Vec<u8> = (0..64).map(|i| 255 - i).collect();
    adapter.emit("t1232AABB0064\r"); // ts 100 ms
    adapter.emit("T1F3344551FF00C8\r"); // ts 200 ms
    adapter.emit("r1230012C\r"); // remote, requesting 0 bytes: counted and passed on
    adapter.emit(&format!("d3219{}0190\r", hex(&fd))); // FD, 12 bytes, ts 400
    adapter.emit(&format!("B0000ABCDF{}01F4\r", hex(&fd64))); // FD+BRS, 64 bytes
    adapter.emit("garbage\r");
    adapter.emit("t7FF0EA5F\r"); // ts 59999

    let fd_kind = |brs| FrameKind::Fd { brs, esi: false };
    let want = [
        Frame::new(0x123, false, &[0xAA, 0xBB]).unwrap(),
        Frame::new(0x1F33_4455, true, &[0xFF]).unwrap(),
        Frame::with_kind(0x123, false, vec![], FrameKind::Remote).unwrap(),
        Frame::with_kind(0x321, false, fd.clone(), fd_kind(false)).unwrap(),
        Frame::with_kind(0xABCD, true, fd64.clone(), fd_kind(true)).unwrap(),
        Frame::new(0x7FF, false, &[]).unwrap(),
    ];
    let mut last = None;
    for w in &want {
        let got = next_frame(&mut rx).await;
        assert_eq!(&got.frame, w);
        assert!(got.at <= tokio::time::Instant::now());
        if let Some(prev) = last {
            assert!(got.at >= prev, "receive times go forward");
        }
        last = Some(got.at);
    }
    let stats = bus.stats();
    assert_eq!(
        (stats.rx_frames, stats.rx_remote, stats.bad_lines),
        (5, 1, 1)
    );

    // Host -> adapter, with the adapter's acknowledgements counted, never awaited.
    bus.send(Frame::new(0x321, false, &[1, 2, 3]).unwrap())
        .await
        .unwrap();
    bus.send(Frame::new(0x1ABC_DEF0, true, &[]).unwrap())
        .await
        .unwrap();
    bus.send(Frame::new(0x10, false, &fd).unwrap())
        .await
        .unwrap();
    bus.send(Frame::with_kind(0x11, false, vec![7], fd_kind(true)).unwrap())
        .await
        .unwrap();
    bus.send(Frame::with_kind(0x12, true, vec![0; 3], FrameKind::Remote).unwrap())
        .await
        .unwrap();
    assert_eq!(
        &adapter.wait_lines(9)[4..],
        [
            "t3213010203".to_string(),
            "T1ABCDEF00".to_string(),
            format!("d0109{}", hex(&fd)),
            "b011107".to_string(),
            "R000000123".to_string(),
        ]
    );
    eventually("five acknowledgements", || bus.stats().tx_acks == 5).await;
    assert_eq!(bus.stats().tx_frames, 5);

    // Status flags and state lines move the bus state.
    adapter.emit("F20\r");
    eventually("error passive", || bus.state() == BusState::ErrorPassive).await;
    adapter.emit("sb256256\r");
    eventually("bus off", || bus.state() == BusState::BusOff).await;
    adapter.emit("sa000000\r");
    eventually("error active", || bus.state() == BusState::ErrorActive).await;
    adapter.emit("F04\r");
    eventually("error warning", || bus.state() == BusState::ErrorWarning).await;

    // An error reply after opening is counted, not fatal.
    adapter.emit("\x07");
    eventually("adapter error counted", || bus.stats().adapter_errors == 1).await;

    // Dropping the bus closes the channel on the adapter.
    drop(bus);
    assert_eq!(adapter.wait_lines(10).last().map(String::as_str), Some("C"));
}

#[tokio::test]
async fn canable_sends_never_wait_for_an_acknowledgement() {
    let mut pty = Pty::open();
    let mut adapter = Adapter::start(pty.master.try_clone().unwrap(), Firmware::Canable);
    let bus = open(&pty, "bitrate=1000000&variant=canable").unwrap();
    pty.release_slave();
    assert_eq!(adapter.wait_lines(3), ["C", "S8", "O"]);
    for i in 0..200u32 {
        bus.send(Frame::new(i, false, &i.to_le_bytes()).unwrap())
            .await
            .unwrap();
    }
    let lines = adapter.wait_lines(203);
    assert_eq!(lines.len(), 203);
    assert_eq!(lines[3], "t000400000000");
    assert_eq!(lines[202], "t0C74C7000000");
    let stats = bus.stats();
    assert_eq!((stats.tx_frames, stats.tx_acks), (200, 0));

    // Without timestamps, frames carry the host's receive time.
    let mut rx = bus.subscribe();
    let before = tokio::time::Instant::now();
    adapter.emit("t0011FF\r");
    let got = next_frame(&mut rx).await;
    assert_eq!(got.frame, Frame::new(1, false, &[0xFF]).unwrap());
    assert!(got.at >= before);
}

#[tokio::test]
async fn lawicel_status_is_polled() {
    let mut pty = Pty::open();
    let mut adapter = Adapter::start(pty.master.try_clone().unwrap(), Firmware::Lawicel);
    let bus = open(&pty, "bitrate=250000&variant=lawicel&status_poll_ms=20").unwrap();
    pty.release_slave();
    // The fake answers every `F` with F20 (error passive).
    eventually("polled state", || bus.state() == BusState::ErrorPassive).await;
    let lines = adapter.wait_lines(4);
    assert_eq!(&lines[..3], ["C", "S5", "O"]);
    assert_eq!(lines[3], "F");
}

#[test]
fn listen_only_opens_with_l() {
    let mut pty = Pty::open();
    let mut adapter = Adapter::start(pty.master.try_clone().unwrap(), Firmware::Canable);
    let _bus = open(&pty, "bitrate=125000&listen_only=1").unwrap();
    pty.release_slave();
    assert_eq!(adapter.wait_lines(3), ["C", "S4", "L"]);
}

#[test]
fn a_refused_bitrate_is_an_error_naming_the_command() {
    let pty = Pty::open();
    let _adapter = Adapter::start(pty.master.try_clone().unwrap(), Firmware::Refuses("S4"));
    let err = open(&pty, "bitrate=125000").err().unwrap().to_string();
    assert!(err.contains("refused `S4`"), "{err}");
}

#[test]
fn refused_timestamps_suggest_switching_them_off() {
    let pty = Pty::open();
    let _adapter = Adapter::start(pty.master.try_clone().unwrap(), Firmware::Refuses("Z1"));
    let err = open(&pty, "bitrate=500000&timestamps=1")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("timestamps=0"), "{err}");
}

#[test]
fn a_silent_port_times_out_with_a_hint() {
    let pty = Pty::open();
    let _adapter = Adapter::start(pty.master.try_clone().unwrap(), Firmware::Mute);
    let err = open(&pty, "bitrate=500000&timeout_ms=200")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no reply to `C`"), "{err}");
    assert!(err.contains("SLCAN adapter"), "{err}");
}

#[test]
fn a_missing_port_is_a_clear_error() {
    let err = can::open("slcan:/dev/hilrig-no-such-port?bitrate=500000")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cannot open serial port /dev/hilrig-no-such-port"),
        "{err}"
    );
}

#[tokio::test]
async fn the_endpoint_dispatch_opens_slcan() {
    let mut pty = Pty::open();
    let mut adapter = Adapter::start(pty.master.try_clone().unwrap(), Firmware::Canable);
    let bus = can::open(&endpoint(&pty, "bitrate=500000")).unwrap();
    pty.release_slave();
    assert_eq!(bus.name(), format!("slcan:{}", pty.slave_path));
    bus.send(Frame::new(0x7E0, false, &[0x02, 0x10, 0x01]).unwrap())
        .await
        .unwrap();
    assert_eq!(adapter.wait_lines(4)[3], "t7E03021001");
}
