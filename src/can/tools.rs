//! The CAN tools of the command line (`hilrig can decode|dump|send`): a candump log decoded
//! through a DBC, a live bus printed as candump lines (decoded when a DBC is given), frames
//! written as `cansend` takes them sent on a bus. Problems go to stderr; the exit code is 0
//! when done, 2 when a log had problems or the command could not finish.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast::error::RecvError;

use crate::can::decode::{decode_log, format_id, DecodeOptions, DecodeSummary, Format};
use crate::can::log::{format_entry, parse_frame, LogEntry};
use crate::can::{self, Bus, BusState, FrameKind};
use crate::dbc::Dbc;
use crate::exit::{Failure, EXIT_ABORT};

/// Load a DBC, its notes and warnings printed on stderr.
fn load_dbc(path: &Path) -> Result<Dbc, Failure> {
    let dbc = Dbc::from_file(path).map_err(Failure::abort)?;
    for note in dbc.notes() {
        eprintln!("note: {note}");
    }
    for warning in dbc.warnings() {
        eprintln!("warning: {warning}");
    }
    Ok(dbc)
}

/// Decode the candump log `log` (`-`: standard input) through the DBC `dbc` into `output`
/// (None: standard output); problems and unknown ids go to stderr.
pub fn decode(
    dbc_path: &Path,
    log: &Path,
    output: Option<&Path>,
    options: DecodeOptions,
) -> Result<i32, Failure> {
    let dbc = load_dbc(dbc_path)?;
    let input: Box<dyn BufRead> = if log.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let f = File::open(log)
            .map_err(|e| Failure::abort(format!("cannot read {}: {e}", log.display())))?;
        Box::new(BufReader::with_capacity(1 << 16, f))
    };
    let output: Box<dyn Write> = match output {
        Some(path) => Box::new(
            File::create(path)
                .map_err(|e| Failure::abort(format!("cannot write {}: {e}", path.display())))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let strict = options.strict;
    let summary = match decode_log(
        input,
        BufWriter::with_capacity(1 << 16, output),
        &dbc,
        options,
    ) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(0),
        Err(e) => return Err(Failure::abort(format!("cannot write the output: {e}"))),
    };
    Ok(report(&summary, log, dbc_path, strict))
}

/// Print problems and unknown ids to stderr; the exit code for the summary.
fn report(s: &DecodeSummary, log: &Path, dbc: &Path, strict: bool) -> i32 {
    let log = log.display();
    for p in &s.first_problems {
        eprintln!("error: {log}: {p}");
    }
    let hidden = s.problems.saturating_sub(s.first_problems.len() as u64);
    if hidden > 0 {
        eprintln!("error: {log}: ... and {} more", plural(hidden, "problem"));
    }
    if !s.unknown.is_empty() && !strict {
        let ids: Vec<String> = s
            .unknown
            .iter()
            .take(10)
            .map(|((id, ext), u)| {
                format!(
                    "{} ({}, first on line {})",
                    format_id(*id, *ext),
                    plural(u.frames, "frame"),
                    u.first_line
                )
            })
            .collect();
        let more = if s.unknown.len() > 10 {
            format!(" and {} more ids", s.unknown.len() - 10)
        } else {
            String::new()
        };
        eprintln!(
            "note: {} with ids not in {}: {}{more} (--strict makes this an error)",
            plural(s.unknown_frames(), "frame"),
            dbc.display(),
            ids.join(", ")
        );
    }
    if s.skipped > 0 {
        // Not decoded, but not silently gone either: an 8-digit id with bit 29 set
        // (0x20000000-0x3FFFFFFF) is candump's error-frame flag, `R` a remote frame.
        eprintln!(
            "note: {} not decoded: remote frames and error frames (ids 20000000-3FFFFFFF \
             carry candump's error flag)",
            plural(s.skipped, "frame")
        );
    }
    if s.clean() {
        0
    } else {
        eprintln!(
            "{log}: {} in {}; {} decoded",
            plural(s.problems, "problem"),
            plural(s.lines as u64, "line"),
            plural(s.decoded, "frame")
        );
        EXIT_ABORT
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The interface name a dump writes in its candump lines.
fn interface_label(endpoint: &str) -> String {
    match endpoint.split_once(':') {
        Some(("socketcan" | "virtual", name)) => name.to_string(),
        _ => "slcan0".to_string(),
    }
}

/// Print the frames seen on bus `endpoint` as candump lines (`json`: JSON lines), decoded
/// through `dbc` when given, until Ctrl-C or `count` frames.
pub async fn dump(
    endpoint: &str,
    dbc: Option<&Path>,
    json: bool,
    count: Option<u64>,
) -> Result<i32, Failure> {
    let dbc = dbc.map(load_dbc).transpose()?;
    let bus = can::open(endpoint).map_err(Failure::abort)?;
    let interface = interface_label(endpoint);
    let mut rx = bus.subscribe();
    let start = tokio::time::Instant::now();
    let start_wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut state = bus.state();
    let mut seen = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let received = tokio::select! {
            r = rx.recv() => r,
            _ = tick.tick() => {
                note_state(bus.as_ref(), &mut state);
                let _ = out.flush();
                continue;
            }
            _ = &mut ctrl_c => break,
        };
        let received = match received {
            Ok(r) => r,
            Err(RecvError::Lagged(n)) => {
                eprintln!("warning: {n} frames were dropped (output too slow)");
                continue;
            }
            Err(RecvError::Closed) => {
                let _ = out.flush();
                return Err(Failure::abort(format!("bus {endpoint} closed")));
            }
        };
        note_state(bus.as_ref(), &mut state);
        let t = start_wall + received.at.saturating_duration_since(start).as_secs_f64();
        let entry = LogEntry {
            timestamp: t,
            interface: interface.clone(),
            frame: received.frame,
        };
        let line = match (&dbc, json) {
            (Some(dbc), true) => json_line(dbc, &entry),
            (Some(dbc), false) => format!("{}{}", format_entry(&entry), decoded_text(dbc, &entry)),
            (None, true) => json_line_raw(&entry),
            (None, false) => format_entry(&entry),
        };
        if let Err(e) = writeln!(out, "{line}") {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(0);
            }
            return Err(Failure::abort(format!("cannot write the output: {e}")));
        }
        seen += 1;
        if count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    let _ = out.flush();
    Ok(0)
}

fn note_state(bus: &dyn Bus, last: &mut BusState) {
    let now = bus.state();
    if now != *last {
        eprintln!("bus state: {last} -> {now}");
        *last = now;
    }
}

fn decoded_text(dbc: &Dbc, entry: &LogEntry) -> String {
    let f = &entry.frame;
    let Some(m) = dbc.message_by_id(f.id, f.extended) else {
        return String::new();
    };
    match m.decode(&f.data) {
        Ok(signals) => {
            let parts: Vec<String> = signals
                .iter()
                .map(|d| match (&d.label, d.unit.as_str()) {
                    (Some(l), _) => format!("{}={l}", d.name),
                    (None, "") => format!("{}={}", d.name, d.physical),
                    (None, u) => format!("{}={} {u}", d.name, d.physical),
                })
                .collect();
            format!("  {} {}", m.name, parts.join(" "))
        }
        Err(e) => format!("  {}: {e}", m.name),
    }
}

fn json_line(dbc: &Dbc, entry: &LogEntry) -> String {
    let line = format!("{}\n", format_entry(entry));
    let mut out = Vec::new();
    let options = DecodeOptions {
        format: Format::Json,
        ..DecodeOptions::default()
    };
    match decode_log(line.as_bytes(), &mut out, dbc, options) {
        Ok(s) if s.decoded == 1 => String::from_utf8_lossy(&out).trim_end().to_string(),
        _ => json_line_raw(entry),
    }
}

fn json_line_raw(entry: &LogEntry) -> String {
    let f = &entry.frame;
    let data: String = f.data.iter().map(|b| format!("{b:02X}")).collect();
    let mut line = serde_json::json!({
        "t": entry.timestamp,
        "interface": entry.interface,
        "id": f.id,
        "extended": f.extended,
        "kind": f.kind.as_str(),
        "data": data,
    });
    match f.kind {
        FrameKind::Fd { brs, esi } => {
            line["brs"] = brs.into();
            line["esi"] = esi.into();
        }
        FrameKind::Remote => {
            line["data"] = "".into();
            line["requested_len"] = f.data.len().into();
        }
        FrameKind::Classic | FrameKind::Error => {}
    }
    line.to_string()
}

/// Send `frames`, written as `cansend` takes them, in order on bus `endpoint`.
pub async fn send(endpoint: &str, frames: &[String]) -> Result<i32, Failure> {
    let mut parsed = Vec::new();
    for (i, text) in frames.iter().enumerate() {
        match parse_frame(text) {
            Ok(e) if e.frame.kind == FrameKind::Error => {
                return Err(Failure::abort(format!(
                    "frame {} `{text}`: error frames cannot be sent",
                    i + 1
                )));
            }
            Ok(e) => parsed.push(e.frame),
            Err(e) => return Err(Failure::abort(format!("frame {} `{text}`: {e}", i + 1))),
        }
    }
    let bus = can::open(endpoint).map_err(Failure::abort)?;
    let n = parsed.len();
    for (i, f) in parsed.into_iter().enumerate() {
        bus.send(f)
            .await
            .map_err(|e| Failure::abort(format!("frame {}: {e}", i + 1)))?;
    }
    if bus.state() != BusState::ErrorActive {
        eprintln!("warning: bus state is {}", bus.state());
    }
    eprintln!("sent {n} frames on {endpoint}");
    Ok(0)
}
