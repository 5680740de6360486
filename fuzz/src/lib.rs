//! Fuzz target bodies shared by the cargo-fuzz targets (`fuzz_targets/*.rs`) and the
//! stable-toolchain harness in `tests/fuzz_regressions.rs` (which includes this file as a
//! module). Each function must never panic, whatever the input; where a parse succeeds,
//! the output is written back and parsed again.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use hilrig::can::log::{format_entry, parse_line, LogReader};
use hilrig::can::slcan::{decode_line, encode_frame, Incoming};
use hilrig::dbc::Dbc;
use hilrig::plan::fixture::Fixture;
use hilrig::plan::limits::LimitProfile;
use hilrig::plan::load::{
    load_fixture, load_limits, load_plan, load_rig, load_rig_all, load_suite, read_yaml,
};
use hilrig::plan::preflight::FileKind;
use hilrig::plan::Condition;
use hilrig::scpi::reply::{
    find_reply_end, parse_block, parse_bool, parse_error_reply, parse_number, parse_reading,
    split_fields, unquote, ReplyEnd,
};

/// The project DBC, for the codec half of the DBC target.
pub const PROJECT_DBC: &str = include_str!("../../fixtures/dbc/sim-bms.dbc");

/// A scratch directory laid out like the repository (`fixtures/` and `rig/` link to the
/// real ones), so a fuzzed plan at `test-plans/fuzz.yaml` resolves `../fixtures/...`.
pub struct Workdir {
    root: PathBuf,
}

impl Workdir {
    /// Make the scratch directory under the system temp dir; `repo` is the repository root.
    pub fn new(repo: &Path, tag: &str) -> Workdir {
        let root = std::env::temp_dir().join(format!("hilrig-fuzz-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("test-plans")).unwrap();
        for dir in ["fixtures", "rig"] {
            let target = repo.join(dir);
            #[cfg(unix)]
            std::os::unix::fs::symlink(&target, root.join(dir)).unwrap();
            #[cfg(not(unix))]
            let _ = target;
        }
        Workdir { root }
    }

    /// Where the fuzzed file is written.
    pub fn input_path(&self) -> PathBuf {
        self.root.join("test-plans").join("fuzz.yaml")
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The plan / fixture / limit-profile / rig / suite loader on one input file.
pub fn plan_loader(work: &Workdir, data: &[u8]) {
    let path = work.input_path();
    std::fs::write(&path, data).unwrap();
    let rig = load_rig(&path).ok().map(|r| r.value);
    let _ = load_plan(&path, rig.as_ref());
    let _ = load_plan(&path, None);
    let _ = read_yaml::<Fixture>(&path);
    let _ = read_yaml::<LimitProfile>(&path);
    let _ = load_suite(&path);
}

/// The condition parser: a condition that parses prints as text that parses again to the
/// same condition, and evaluates without panicking whatever the readings.
pub fn condition(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(c) = Condition::parse(&text) else {
        return;
    };
    let printed = c.to_string();
    match Condition::parse(&printed) {
        Ok(again) => assert_eq!(again.to_string(), printed, "round trip of `{text}`"),
        // Printing adds parentheses, so a condition near the limits may print past them.
        Err(e) if e.contains("at most") || e.contains("nested more than") => {}
        Err(e) => panic!("printed condition `{printed}` does not parse: {e}"),
    }
    let _ = c.signals();
    for v in [0.0, 1.0, -1.0, f64::NAN, f64::INFINITY] {
        let _ = c.eval(&|_| Some(hilrig::plan::condition::Reading { value: v }));
    }
    let _ = c.eval(&|_| None);
}

/// The rig, fixture and limit-profile loaders with their pre-flight checks, and the file
/// kind recogniser, on one input file (written beside the repository's fixtures).
pub fn rig_fixture_loader(work: &Workdir, data: &[u8]) {
    let path = work.input_path();
    std::fs::write(&path, data).unwrap();
    let _ = FileKind::of_text(&String::from_utf8_lossy(data));
    let _ = load_rig_all(&path);
    let _ = load_fixture(&path);
    let _ = load_limits(&path);
}

/// DBC parse, then decode and encode of every message. The first byte picks whether the
/// input is a DBC text (its frames come from fixed patterns) or frame bytes for the
/// project DBC.
pub fn dbc(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let text = String::from_utf8_lossy(rest);
        if let Ok(dbc) = Dbc::parse(&text, "fuzz.dbc") {
            let patterns: [&[u8]; 3] = [&[0u8; 64], &[0xFFu8; 64], &[0xA5u8; 64]];
            codec(&dbc, &patterns);
        }
    } else {
        let dbc = Dbc::parse(PROJECT_DBC, "sim-bms.dbc").unwrap();
        codec(&dbc, &[rest]);
    }
}

fn codec(dbc: &Dbc, payloads: &[&[u8]]) {
    for m in dbc.messages() {
        for p in payloads {
            for len in [m.size.min(p.len()), p.len().min(64)] {
                let bytes = &p[..len];
                let _ = m.mux_value(bytes);
                let Ok(decoded) = m.decode(bytes) else {
                    continue;
                };
                for s in &m.signals {
                    let _ = m.decode_signal(&s.name, bytes);
                }
                let values: Vec<(&str, f64)> = decoded
                    .iter()
                    .map(|d| (d.name.as_str(), d.physical))
                    .collect();
                if let Ok(encoded) = m.encode(&values) {
                    let _ = m.decode(&encoded);
                }
                for (name, v) in &values {
                    let _ = m.encode(&[(name, *v)]);
                    let _ = m.encode(&[(name, v * 1e9)]);
                    let _ = m.encode(&[(name, f64::NAN)]);
                }
            }
        }
    }
}

/// The candump reader: every line alone, and the whole input through `LogReader`. An
/// entry that parses is formatted and must parse back to the same entry.
pub fn candump(data: &[u8]) {
    for entry in LogReader::new(Cursor::new(data)).flatten() {
        let line = format_entry(&entry);
        let again = parse_line(&line, 1)
            .unwrap_or_else(|e| panic!("formatted entry `{line}` does not parse: {e}"));
        assert_eq!(again.frame, entry.frame, "round trip of `{line}`");
    }
    let text = String::from_utf8_lossy(data);
    for (i, line) in text.lines().enumerate() {
        let _ = parse_line(line, i + 1);
    }
}

/// The SLCAN line decoder, on each CR-separated line; a decoded frame is encoded and must
/// decode back to the same frame.
pub fn slcan(data: &[u8]) {
    for line in data.split(|&b| b == b'\r') {
        if let Ok(Incoming::Frame(f)) = decode_line(line) {
            if let Ok(text) = encode_frame(&f) {
                let body = text.trim_end_matches('\r').as_bytes();
                match decode_line(body) {
                    Ok(Incoming::Frame(g)) => {
                        assert_eq!(g.frame, f.frame, "round trip of {text:?}")
                    }
                    other => panic!("encoded frame {text:?} decodes as {other:?}"),
                }
            }
        }
    }
}

/// The SCPI reply parsers on the input as text, and the framer on the raw bytes.
pub fn scpi_reply(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_number(&text);
    let _ = parse_reading(&text, None);
    let _ = parse_reading(&text, Some("V"));
    let _ = parse_bool(&text);
    let _ = parse_error_reply(&text);
    let _ = unquote(&text);
    for field in split_fields(&text) {
        let _ = parse_number(field);
    }
    let _ = parse_block(data);
    for term in [b"\n".as_slice(), b"\r\n", b""] {
        let mut buf = data;
        // Frame every reply in the buffer, as the client does.
        for _ in 0..=data.len() {
            match find_reply_end(buf, term) {
                ReplyEnd::Complete { body_end, consumed } => {
                    assert!(body_end <= consumed && consumed <= buf.len() && consumed > 0);
                    let _ = parse_block(&buf[..body_end]);
                    buf = &buf[consumed..];
                }
                _ => break,
            }
        }
    }
}
