//! `hilrig can decode|dump|send`

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use tokio::sync::broadcast::error::RecvError;

use crate::can::decode::{decode_log, format_id, DecodeOptions, DecodeSummary, Format};
use crate::can::log::{format_entry, parse_frame, LogEntry};
use crate::can::{self, Bus, BusState, FrameKind};
use crate::dbc::Dbc;

use super::EXIT_ABORT;

/// Arguments of `hilrig can`.
#[derive(Debug, Args)]
pub struct CanArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CanCommand,
}

/// `hilrig can` subcommands.
#[derive(Debug, Subcommand)]
pub enum CanCommand {
    /// Decode a candump log (`candump -L`) through a DBC: CSV with one column per signal, or JSON lines.
    Decode(DecodeArgs),
    /// Print the frames seen on a bus as candump lines (decoded when a DBC is given).
    Dump(DumpArgs),
    /// Send frames written as `cansend` takes them: `123#DEADBEEF`, `1F334455#00`, `123##1AABB`.
    Send(SendArgs),
}

/// Arguments of `hilrig can decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// DBC file.
    #[arg(long)]
    pub dbc: PathBuf,
    /// candump log; `-` reads standard input.
    pub log: PathBuf,
    /// JSON lines instead of CSV.
    #[arg(long)]
    pub json: bool,
    /// Treat frames whose ids are not in the DBC as errors.
    #[arg(long)]
    pub strict: bool,
    /// One row per signal once the log is read (frames, values, min, max, mean, last)
    /// instead of one row per frame; with `--json`, one JSON document.
    #[arg(long)]
    pub stats: bool,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Arguments of `hilrig can dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Bus endpoint: `socketcan:can0`, `slcan:/dev/ttyACM0?bitrate=500000`, `virtual:NAME`.
    #[arg(long)]
    pub bus: String,
    /// Decode frames through this DBC.
    #[arg(long)]
    pub dbc: Option<PathBuf>,
    /// JSON lines instead of candump lines.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many frames.
    #[arg(long)]
    pub count: Option<u64>,
}

/// Arguments of `hilrig can send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Bus endpoint: `socketcan:can0`, `slcan:/dev/ttyACM0?bitrate=500000`, `virtual:NAME`.
    #[arg(long)]
    pub bus: String,
    /// Frames, sent in order, as `cansend` writes them: `123#DEADBEEF`, `1F334455#11`,
    /// `123#R` or `123#R4` (remote), `123##1AABB` (CAN FD; flags digit 1 = bit-rate switch).
    #[arg(required = true)]
    pub frames: Vec<String>,
}

/// Run `hilrig can ...`; returns the exit code.
pub fn can(a: CanArgs, rt: &tokio::runtime::Runtime) -> i32 {
    match a.command {
        CanCommand::Decode(d) => decode(&d),
        CanCommand::Dump(d) => rt.block_on(dump(d)),
        CanCommand::Send(s) => rt.block_on(send(s)),
    }
}

fn load_dbc(path: &Path) -> Option<Dbc> {
    match Dbc::from_file(path) {
        Ok(dbc) => {
            for note in dbc.notes() {
                eprintln!("note: {note}");
            }
            for warning in dbc.warnings() {
                eprintln!("warning: {warning}");
            }
            Some(dbc)
        }
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

fn decode(a: &DecodeArgs) -> i32 {
    let Some(dbc) = load_dbc(&a.dbc) else {
        return EXIT_ABORT;
    };
    let input: Box<dyn BufRead> = if a.log.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        match File::open(&a.log) {
            Ok(f) => Box::new(BufReader::with_capacity(1 << 16, f)),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", a.log.display());
                return EXIT_ABORT;
            }
        }
    };
    let output: Box<dyn Write> = match &a.output {
        Some(path) => match File::create(path) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                return EXIT_ABORT;
            }
        },
        None => Box::new(io::stdout().lock()),
    };
    let options = DecodeOptions {
        format: if a.json { Format::Json } else { Format::Csv },
        strict: a.strict,
        stats: a.stats,
        ..DecodeOptions::default()
    };
    let summary = match decode_log(
        input,
        BufWriter::with_capacity(1 << 16, output),
        &dbc,
        options,
    ) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return 0,
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            return EXIT_ABORT;
        }
    };
    report(&summary, &a.log, &a.dbc, a.strict)
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

async fn dump(a: DumpArgs) -> i32 {
    let dbc = match &a.dbc {
        Some(p) => match load_dbc(p) {
            Some(d) => Some(d),
            None => return EXIT_ABORT,
        },
        None => None,
    };
    let bus = match can::open(&a.bus) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let interface = interface_label(&a.bus);
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
                eprintln!("error: bus {} closed", a.bus);
                let _ = out.flush();
                return EXIT_ABORT;
            }
        };
        note_state(bus.as_ref(), &mut state);
        let t = start_wall + received.at.saturating_duration_since(start).as_secs_f64();
        let entry = LogEntry {
            timestamp: t,
            interface: interface.clone(),
            frame: received.frame,
        };
        let line = match (&dbc, a.json) {
            (Some(dbc), true) => json_line(dbc, &entry),
            (Some(dbc), false) => format!("{}{}", format_entry(&entry), decoded_text(dbc, &entry)),
            (None, true) => json_line_raw(&entry),
            (None, false) => format_entry(&entry),
        };
        if let Err(e) = writeln!(out, "{line}") {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return 0;
            }
            eprintln!("error: cannot write the output: {e}");
            return EXIT_ABORT;
        }
        seen += 1;
        if a.count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    let _ = out.flush();
    0
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

async fn send(a: SendArgs) -> i32 {
    let mut frames = Vec::new();
    for (i, text) in a.frames.iter().enumerate() {
        match parse_frame(text) {
            Ok(e) if e.frame.kind == FrameKind::Error => {
                eprintln!(
                    "error: frame {} `{text}`: error frames cannot be sent",
                    i + 1
                );
                return EXIT_ABORT;
            }
            Ok(e) => frames.push(e.frame),
            Err(e) => {
                eprintln!("error: frame {} `{text}`: {e}", i + 1);
                return EXIT_ABORT;
            }
        }
    }
    let bus = match can::open(&a.bus) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let n = frames.len();
    for (i, f) in frames.into_iter().enumerate() {
        if let Err(e) = bus.send(f).await {
            eprintln!("error: frame {}: {e}", i + 1);
            return EXIT_ABORT;
        }
    }
    if bus.state() != BusState::ErrorActive {
        eprintln!("warning: bus state is {}", bus.state());
    }
    eprintln!("sent {n} frames on {}", a.bus);
    0
}
