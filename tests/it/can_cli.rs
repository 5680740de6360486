//! `hilrig can decode|dump|send` as a user runs them: output, messages with line numbers and
//! exit codes for bad input, and live buses on a fake SLCAN adapter behind a pseudo-terminal.

use crate::can_common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use can_common::{root, Pty};

fn hilrig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run hilrig")
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hilrig-can-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const DBC: &str = "fixtures/dbc/sim-bms.dbc";

const LOG: &str = "(1700000000.000100) can0 100#1130000000000000\n\
                   (1700000000.000200) can0 101#1450FFF60D480D16\n\
                   (1700000000.000300) can0 110#01A40D0000000000\n";

#[test]
fn decode_writes_csv_with_units_in_the_header() {
    let log = temp_file("ok.log", LOG);
    let out = hilrig(&["can", "decode", "--dbc", DBC, log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(
        &header[..5],
        ["time_s", "interface", "id", "message", "BMS_Status.State"]
    );
    assert!(header.contains(&"BMS_Pack.PackVoltage [V]"));
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let status: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(status.len(), header.len());
    assert_eq!(
        status[..4],
        ["1700000000.000100", "can0", "100", "BMS_Status"]
    );
    assert_eq!(status[col("BMS_Status.State")], "1");
    assert_eq!(status[col("BMS_Status.FaultCell")], "0");
    let pack: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(pack[col("BMS_Pack.PackVoltage [V]")], "52");
    assert_eq!(pack[col("BMS_Pack.PackCurrent [A]")], "-1");
    assert_eq!(pack[col("BMS_Pack.MaxCellVoltage [V]")], "3.4");
    let cells: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(cells[col("BMS_CellVoltages.CellBlock")], "1");
    assert_eq!(cells[col("BMS_CellVoltages.Cell05 [V]")], "3.492");
    assert_eq!(
        cells[col("BMS_CellVoltages.Cell01 [V]")],
        "",
        "block 0 not in this frame"
    );
}

#[test]
fn decode_writes_json_lines_with_labels() {
    let log = temp_file("json.log", LOG);
    let out = hilrig(&[
        "can",
        "decode",
        "--json",
        "--dbc",
        DBC,
        log.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let first: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["message"], "BMS_Status");
    assert_eq!(first["signals"]["State"], 1);
    assert_eq!(first["labels"]["State"], "charge");
    assert_eq!(first["labels"]["ChgFet"], "closed");
}

#[test]
fn decode_reports_bad_lines_and_lengths_with_line_numbers_and_exits_2() {
    let log = temp_file(
        "bad.log",
        "(1700000000.000100) can0 100#1130000000000000\n\
         (1700000000.000200) can0 100#11\n\
         this is not candump\n\
         (1700000000.000400) can0 7E0#0102\n\
         (1700000000.000500) can0 101#1450FFF60D480D16\n",
    );
    let path = log.to_str().unwrap();
    let out = hilrig(&["can", "decode", "--dbc", DBC, path]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("line 2: frame 100 has 1 data bytes, but BMS_Status in the DBC has 8"),
        "{err}"
    );
    assert!(err.contains("line 3: bad timestamp"), "{err}");
    assert!(err.contains("7E0 (1 frame, first on line 4)"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The good lines are still decoded.
    assert_eq!(text(&out.stdout).lines().count(), 3);
}

/// Ids 0x20000000-0x3FFFFFFF (candump's error flag) were neither decoded nor mentioned.
#[test]
fn candump_ids_with_the_error_flag_are_not_silently_dropped() {
    let log = temp_file(
        "error-flag.log",
        "(1.000000) can0 20000080#0000000000000000\n(2.000000) can0 3FFFFFFF#00\n",
    );
    let out = hilrig(&["can", "decode", "--dbc", DBC, log.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{err}");
    assert!(err.contains("2 frames not decoded"), "{err}");
}

#[test]
fn unknown_ids_are_a_note_unless_strict() {
    let log = temp_file(
        "unknown.log",
        "(1.000000) can0 7E0#0102\n(2.000000) can0 7E0#03\n",
    );
    let path = log.to_str().unwrap();
    let out = hilrig(&["can", "decode", "--dbc", DBC, path]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("2 frames with ids not in"));
    let out = hilrig(&["can", "decode", "--strict", "--dbc", DBC, path]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("line 1: id 7E0 is not in the DBC"), "{err}");
    assert!(err.contains("line 2: id 7E0 is not in the DBC"), "{err}");
}

#[test]
fn decode_reads_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(["can", "decode", "--json", "--dbc", DBC, "-"])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(LOG.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout).lines().count(), 3);
}

#[test]
fn a_broken_dbc_names_file_and_line() {
    let dbc = temp_file(
        "broken.dbc",
        "VERSION \"\"\n\nNS_ :\n\nBS_:\n\nBU_: A\n\nBO_ 256 M: 8 A\n SG_ S : 0|8@1+ (1,0) [0|255 \"\" A\n",
    );
    let log = temp_file("for-broken.log", LOG);
    let out = hilrig(&[
        "can",
        "decode",
        "--dbc",
        dbc.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("broken.dbc:10"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn decode_follows_extended_multiplexing_and_fd_frames() {
    let log = temp_file(
        "vendor.log",
        "(1.000001) can0 200#9101020304000000\n\
         (1.000002) can0 200#0088130000000000\n\
         (1.000003) can0 310##100E80300000000000000AA55\n",
    );
    let out = hilrig(&[
        "can",
        "decode",
        "--json",
        "--dbc",
        "tests/data/vendor-constructs.dbc",
        log.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    // Kind 1, Page 9: Serial (bytes 1..4, Intel).
    assert_eq!(
        lines[0]["signals"],
        serde_json::json!({"Kind": 1, "Page": 9, "Serial": 67305985})
    );
    assert_eq!(lines[0]["labels"]["Kind"], "Paged");
    // Kind 0: four cells; Cell0 = 0x1388 mV.
    assert_eq!(lines[1]["signals"]["Cell0"], 5);
    assert!(lines[1]["signals"].get("Serial").is_none());
    // A 12-byte CAN FD frame: Mode 0 carries Uptime; Crc is Motorola in bytes 10-11.
    assert_eq!(
        lines[2]["signals"],
        serde_json::json!({"Mode": 0, "Uptime": 1000, "Crc": 43605})
    );
}

#[test]
fn strict_problems_stop_or_warn_with_their_place() {
    let log = temp_file("strict.log", LOG);
    let log = log.to_str().unwrap();
    let out = hilrig(&["can", "decode", "--dbc", "tests/data/strict/empty.dbc", log]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("tests/data/strict/empty.dbc:1:1: no messages"),
        "{err}"
    );
    let out = hilrig(&[
        "can",
        "decode",
        "--dbc",
        "tests/data/strict/duplicate-val.dbc",
        log,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: tests/data/strict/duplicate-val.dbc:13:12: VAL_ 256 State: value 1"),
        "{err}"
    );
}

#[test]
fn missing_files_exit_2() {
    let out = hilrig(&["can", "decode", "--dbc", "no/such.dbc", "x.log"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such.dbc"));
    let out = hilrig(&["can", "decode", "--dbc", DBC, "no/such.log"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such.log"));
}

#[test]
fn send_rejects_bad_frames_before_opening_the_bus() {
    for (frame, says) in [
        ("123#ZZ", "not hexadecimal"),
        ("20000080#0000000000000000", "error frames cannot be sent"),
        ("1234#00", "3 hex digits"),
        ("123#001122334455667788", "at most 8"),
    ] {
        let out = hilrig(&["can", "send", "--bus", "socketcan:none0", frame]);
        assert_eq!(out.status.code(), Some(2), "{frame}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{frame}: {err}");
        assert!(err.contains(frame), "{frame}: {err}");
    }
}

#[test]
fn send_to_a_bad_endpoint_exits_2() {
    let out = hilrig(&["can", "send", "--bus", "pcan:usb0", "123#00"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bad CAN endpoint"));
}

/// A minimal CANable-like adapter: answers commands with CR and records every line; once
/// the channel is open it repeats `emit` every 50 ms until the host closes it or goes away.
fn adapter(master: std::fs::File, emit: &'static str) -> thread::JoinHandle<Vec<String>> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = master.try_clone().unwrap();
    let emitter_stop = Arc::clone(&stop);
    let (open_tx, open_rx) = std::sync::mpsc::channel::<()>();
    thread::spawn(move || {
        if open_rx.recv().is_err() || emit.is_empty() {
            return;
        }
        while !emitter_stop.load(Ordering::Relaxed) {
            if writer.write_all(emit.as_bytes()).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let mut master = master;
    thread::spawn(move || {
        let mut seen = Vec::new();
        let mut line = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let n = match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for &b in &buf[..n] {
                if b != b'\r' {
                    line.push(b);
                    continue;
                }
                let cmd = String::from_utf8_lossy(&line).into_owned();
                line.clear();
                if !cmd.starts_with(['t', 'T', 'd', 'D']) {
                    let _ = master.write_all(b"\r");
                }
                if cmd == "O" {
                    let _ = open_tx.send(());
                }
                if cmd == "C" && seen.iter().any(|c| c == "O") {
                    stop.store(true, Ordering::Relaxed);
                }
                seen.push(cmd);
            }
        }
        stop.store(true, Ordering::Relaxed);
        seen
    })
}

fn slcan(pty: &Pty) -> String {
    format!("slcan:{}?bitrate=500000", pty.slave_path)
}

#[test]
fn send_writes_slcan_lines() {
    let mut pty = Pty::open();
    let fake = adapter(pty.master.try_clone().unwrap(), "");
    let bus = slcan(&pty);
    let frames = [
        "123#DEADBEEF",
        "1F334455#00",
        "124#R3",
        "125##1AA",
        "126##0",
    ];
    let out = hilrig(&[&["can", "send", "--bus", &bus][..], &frames].concat());
    pty.release_slave();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let seen = fake.join().unwrap();
    // Classic, extended, remote, CAN FD with bit-rate switch, CAN FD without: each as its kind.
    for line in ["t1234DEADBEEF", "T1F334455100", "r1243", "b1251AA", "d1260"] {
        assert!(seen.contains(&line.to_string()), "{line}: {seen:?}");
    }
}

#[test]
fn dump_keeps_remote_and_fd_frames() {
    // The fake adapter repeats its lines from the moment the channel opens, so the dump may
    // start anywhere in the sequence: it reads two rounds and each frame must be among them.
    let mut pty = Pty::open();
    let _fake = adapter(pty.master.try_clone().unwrap(), "r1232\rb1251AA\rd1260\r");
    let bus = slcan(&pty);
    let out = hilrig(&["can", "dump", "--bus", &bus, "--count", "6"]);
    pty.release_slave();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let bodies: Vec<&str> = stdout
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(bodies.len(), 6, "{stdout}");
    for body in ["123#R2", "125##1AA", "126##0"] {
        assert!(bodies.contains(&body), "{body}: {stdout}");
    }

    let mut pty = Pty::open();
    let _fake = adapter(pty.master.try_clone().unwrap(), "r1232\rb1251AA\r");
    let bus = slcan(&pty);
    let out = hilrig(&["can", "dump", "--bus", &bus, "--json", "--count", "4"]);
    pty.release_slave();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of_kind = |kind: &str| {
        lines
            .iter()
            .find(|l| l["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} frame in {lines:?}"))
    };
    let remote = of_kind("remote");
    assert_eq!(
        (&remote["id"], &remote["data"], &remote["requested_len"]),
        (&0x123.into(), &"".into(), &2.into()),
        "{lines:?}"
    );
    let fd = of_kind("fd");
    assert_eq!(
        (&fd["id"], &fd["brs"], &fd["esi"], &fd["data"]),
        (&0x125.into(), &true.into(), &false.into(), &"AA".into()),
        "{lines:?}"
    );
}

#[test]
fn dump_prints_decoded_candump_lines() {
    let mut pty = Pty::open();
    let _fake = adapter(
        pty.master.try_clone().unwrap(),
        "t10081130000000000000\rt7E020102\r",
    );
    let bus = slcan(&pty);
    let out = hilrig(&["can", "dump", "--bus", &bus, "--dbc", DBC, "--count", "1"]);
    pty.release_slave();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line = stdout.lines().next().unwrap();
    assert!(line.contains(" slcan0 100#1130000000000000"), "{line}");
    assert!(
        line.contains("BMS_Status State=charge ChgFet=closed"),
        "{line}"
    );
    // The dump without --dbc is a candump log that `can decode` reads back.
    let log = temp_file(
        "dumped.log",
        &format!("{}\n", line.split("  ").next().unwrap()),
    );
    let back = hilrig(&["can", "decode", "--dbc", DBC, log.to_str().unwrap()]);
    assert_eq!(back.status.code(), Some(0), "{}", text(&back.stderr));
}
