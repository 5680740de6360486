//! Independent peers (opt-in: HILRIG_PEER_TESTS=1, with tests/peers/requirements.txt):
//! - cantools decodes the same random frames to the same values as our codec, over DBC
//!   files with Motorola, signed, float, double, 64-bit, multiplexed and CAN FD signals,
//!   and what our codec encodes from those values decodes back to them in both codecs;
//! - every file under tests/data/strict (one strict-mode problem each) gives an error or a
//!   warning at file:line:column, and where cantools' strict mode refuses a file we refuse
//!   or warn too;
//! - python-can's slcan interface on one end of a pseudo-terminal and our SLCAN backend on
//!   the other exchange frames both ways.

use crate::can_common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::common::python;
use can_common::{peers_enabled, root, Pty};
use hilrig::can::slcan::{SlcanBus, SlcanConfig};
use hilrig::can::{Bus, Frame, FrameKind};
use hilrig::dbc::Dbc;
use serde_json::Value;

const DBCS: [&str; 10] = [
    "tests/data/motorola-signed.dbc",
    "tests/data/floats.dbc",
    "tests/data/multiplexed.dbc",
    "fixtures/dbc/sim-bms.dbc",
    "fixtures/dbc/debug-afe-style.dbc",
    "fixtures/dbc/bs1200-style.dbc",
    // Pylontech low-voltage CAN as the inverter sees it (written from the public layout).
    "fixtures/dbc/pylon-lv-can.dbc",
    // Its high-voltage variant: 29-bit ids, an offset temperature.
    "fixtures/dbc/pylon-hv-can.dbc",
    // Multi-line VAL_ tables and comments, extended multiplexing, CAN FD (12 and 64 bytes),
    // extended ids, floats and doubles; and a Windows-1252 file.
    "tests/data/vendor-constructs.dbc",
    "tests/data/cp1252.dbc",
];

/// Frames per DBC file (9 files: 22,500 frames).
const FRAMES_PER_DBC: usize = 2500;

/// A cantools value: the bits of an IEEE double.
fn number(v: &Value) -> f64 {
    f64::from_bits(v.as_u64().unwrap_or_else(|| panic!("not f64 bits: {v}")))
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

/// Differences between cantools' values and ours, as readable lines.
fn compare(
    what: &str,
    want: &BTreeMap<String, f64>,
    got: &BTreeMap<String, f64>,
    problems: &mut Vec<String>,
) {
    if want.keys().ne(got.keys()) {
        problems.push(format!(
            "{what}: signals differ: cantools {:?}, ours {:?}",
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>()
        ));
        return;
    }
    for (name, w) in want {
        let g = got[name];
        if !same(*w, g) {
            problems.push(format!("{what}: {name}: cantools {w:?}, ours {g:?}"));
        }
    }
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn cantools_decodes_and_round_trips_like_our_codec() {
    if !peers_enabled("cantools_decodes_and_round_trips_like_our_codec") {
        return;
    }
    let frames_arg = FRAMES_PER_DBC.to_string();
    let mut args = vec![
        "tests/peers/cantools_diff.py",
        "generate",
        "--frames",
        &frames_arg,
        "--seed",
        "20261121",
    ];
    // Files that may not be committed (a vendor's DBC) can be added locally:
    // HILRIG_PEER_EXTRA_DBC=/path/a.dbc:/path/b.dbc
    let extra = std::env::var("HILRIG_PEER_EXTRA_DBC").unwrap_or_default();
    let paths: Vec<&str> = DBCS
        .iter()
        .copied()
        .chain(extra.split(':').filter(|p| !p.is_empty()))
        .collect();
    args.extend(&paths);
    let generated = python(&args, None);

    let dbcs: HashMap<&str, Dbc> = paths
        .iter()
        .map(|p| {
            (
                *p,
                Dbc::from_file(&root().join(p)).unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .collect();
    let mut problems = Vec::new();
    let mut reencoded = String::new();
    let mut expected = Vec::new();
    let mut frames = 0;
    let mut signals = 0;
    for line in generated.lines() {
        let g: Value = serde_json::from_str(line).unwrap();
        let path = g["dbc"].as_str().unwrap();
        let (id, ext) = (
            g["id"].as_u64().unwrap() as u32,
            g["extended"].as_bool().unwrap(),
        );
        let data = unhex(g["data"].as_str().unwrap());
        let want: BTreeMap<String, f64> = g["values"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), number(v)))
            .collect();
        let message = dbcs[path]
            .message_by_id(id, ext)
            .unwrap_or_else(|| panic!("{path}: no message {id:#x}"));
        let what = format!("{path} {} {}", message.name, hex(&data));
        frames += 1;
        signals += want.len();

        // 1. Decoding the same bytes.
        let ours: BTreeMap<String, f64> = match message.decode(&data) {
            Ok(d) => d.into_iter().map(|d| (d.name, d.physical)).collect(),
            Err(e) => {
                problems.push(format!("{what}: we cannot decode: {e}"));
                continue;
            }
        };
        compare(&format!("decode {what}"), &want, &ours, &mut problems);

        // 2. Our encoding of cantools' values decodes back to them (in our codec) ...
        let values: Vec<(&str, f64)> = want.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let encoded = match message.encode(&values) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("{what}: we cannot encode: {e}"));
                continue;
            }
        };
        let back: BTreeMap<String, f64> = message
            .decode(&encoded)
            .unwrap()
            .into_iter()
            .map(|d| (d.name, d.physical))
            .collect();
        compare(&format!("round trip {what}"), &want, &back, &mut problems);
        // ... and in cantools (checked below).
        reencoded.push_str(
            &serde_json::json!({"dbc": path, "id": id, "extended": ext, "data": hex(&encoded)})
                .to_string(),
        );
        reencoded.push('\n');
        expected.push((what, want));
    }

    let answers = python(
        &["tests/peers/cantools_diff.py", "decode"],
        Some(&reencoded),
    );
    let answers: Vec<&str> = answers.lines().collect();
    assert_eq!(answers.len(), expected.len(), "one answer per frame");
    for (answer, (what, want)) in answers.iter().zip(&expected) {
        let a: Value = serde_json::from_str(answer).unwrap();
        if let Some(e) = a.get("error") {
            problems.push(format!(
                "cantools cannot decode our encoding of {what}: {e}"
            ));
            continue;
        }
        let theirs: BTreeMap<String, f64> = a["values"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), number(v)))
            .collect();
        compare(
            &format!("cantools on our encoding of {what}"),
            want,
            &theirs,
            &mut problems,
        );
    }

    println!("{frames} frames, {signals} signal values compared with cantools");
    assert!(frames >= 10_000, "{frames} frames");
    assert!(
        problems.is_empty(),
        "{} differences, first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn strict_problems_are_located_where_cantools_refuses_or_warns() {
    if !peers_enabled("strict_problems_are_located_where_cantools_refuses_or_warns") {
        return;
    }
    let mut files: Vec<String> = std::fs::read_dir(root().join("tests/data/strict"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dbc"))
        .map(|p| {
            p.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let mut args = vec!["tests/peers/cantools_strict.py"];
    args.extend(files.iter().map(String::as_str));
    let answers = python(&args, None);
    let answers: Vec<Value> = answers
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), files.len());
    let mut problems = Vec::new();
    let mut cantools_refused = 0;
    for (file, answer) in files.iter().zip(&answers) {
        let refused = answer["refused"].as_bool().unwrap();
        cantools_refused += usize::from(refused);
        let located = |text: &str| {
            let rest = text.strip_prefix(&format!("{file}:")).unwrap_or_default();
            let mut parts = rest.splitn(3, ':');
            let line = parts.next().and_then(|l| l.parse::<usize>().ok());
            let column = parts.next().and_then(|c| c.parse::<usize>().ok());
            matches!((line, column), (Some(l), Some(c)) if l > 0 && c > 0)
        };
        let ours: Vec<String> = match Dbc::from_file(&root().join(file)) {
            Err(e) => vec![format!("error: {e}")],
            Ok(dbc) => dbc
                .warnings()
                .iter()
                .map(|w| format!("warning: {w}"))
                .collect(),
        };
        println!(
            "{file}: cantools strict {}; hilrig: {}",
            if refused {
                format!(
                    "refuses ({})",
                    answer["message"].as_str().unwrap_or_default()
                )
            } else {
                "loads".to_string()
            },
            ours.join(" | ")
        );
        if ours.is_empty() {
            problems.push(format!("{file}: hilrig neither refuses nor warns"));
        }
        for o in &ours {
            let text = o
                .strip_prefix("error: ")
                .or_else(|| o.strip_prefix("warning: "))
                .unwrap_or(o);
            // Dbc::from_file names the file as given to it (absolute here).
            let text = text.replace(&format!("{}/", root().display()), "");
            if !located(&text) {
                problems.push(format!("{file}: not located: {o}"));
            }
        }
    }
    assert!(
        cantools_refused >= 2,
        "cantools refused {cantools_refused} files"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn python_can_slcan_exchanges_frames_with_our_backend() {
    if !peers_enabled("python_can_slcan_exchanges_frames_with_our_backend") {
        return;
    }
    let pty = Pty::open();
    let mut child = Command::new("python3")
        .args(["tests/peers/slcan_peer.py", &pty.slave_path])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });

    let mut config = SlcanConfig::new(&pty.slave_path, 500_000);
    config.reply_timeout = Duration::from_secs(30);
    // The peer opens the port first (opening flushes what is waiting in it).
    let next_line = || {
        lines
            .recv_timeout(Duration::from_secs(30))
            .expect("peer output")
    };
    assert_eq!(next_line(), "LISTENING");
    let reader = pty.master.try_clone().unwrap();
    let writer = pty.master.try_clone().unwrap();
    let bus = SlcanBus::start("peer", Box::new(reader), Box::new(writer), config).unwrap();
    let mut rx = bus.subscribe();
    assert_eq!(next_line(), "READY");

    let ours = [
        Frame::new(0x7E0, false, &[0x02, 0x10, 0x01]).unwrap(),
        Frame::new(0x18DA_F110, true, &[0x11; 8]).unwrap(),
        Frame::new(0x001, false, &[]).unwrap(),
        Frame::new(0x456, false, &(0..16).collect::<Vec<u8>>()).unwrap(),
        Frame::new(0x1FFF_FFFF, true, &[0x5A; 64]).unwrap(),
    ];
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", ours.len()).unwrap();
    stdin.flush().unwrap();

    // python-can -> us: every frame in order, each with its kind (the remote frame is also
    // counted apart; CAN FD with and without bit-rate switch).
    let fd = |brs| FrameKind::Fd { brs, esi: false };
    let want = [
        Frame::new(0x123, false, &[1, 2, 3]).unwrap(),
        Frame::new(0x1F33_4455, true, &[]).unwrap(),
        Frame::with_kind(0x7FF, false, vec![0; 2], FrameKind::Remote).unwrap(),
        Frame::new(0x000, false, &(0..8).collect::<Vec<u8>>()).unwrap(),
        Frame::with_kind(0x321, false, (0..12).collect(), fd(false)).unwrap(),
        Frame::with_kind(0x1A_BCDE, true, vec![0xA5; 64], fd(true)).unwrap(),
    ];
    for w in &want {
        let got = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("a frame from python-can")
            .unwrap();
        assert_eq!(&got.frame, w);
    }

    // us -> python-can.
    for f in &ours {
        bus.send(f.clone()).await.unwrap();
    }
    let mut received = Vec::new();
    loop {
        let line = next_line();
        if line == "DONE" {
            break;
        }
        received.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    assert_eq!(received.len(), ours.len(), "{received:?}");
    for (r, f) in received.iter().zip(&ours) {
        assert_eq!(r["id"].as_u64(), Some(u64::from(f.id)), "{r}");
        assert_eq!(r["extended"].as_bool(), Some(f.extended), "{r}");
        assert_eq!(r["remote"].as_bool(), Some(false), "{r}");
        assert_eq!(r["fd"].as_bool(), Some(f.kind.is_fd()), "{r}");
        assert_eq!(r["data"].as_str(), Some(hex(&f.data).as_str()), "{r}");
    }
    let stats = bus.stats();
    assert_eq!((stats.rx_frames, stats.rx_remote), (5, 1));
    assert!(child.wait().unwrap().success());
}
