//! Decoding a candump log through a DBC into a table, streaming: one CSV row (or one JSON
//! line) per decoded frame, written as the log is read.
//!
//! CSV: `time_s,interface,id,message` and then one column per DBC signal, in DBC order,
//! headed `Message.Signal [unit]`; a row fills the columns of its message only (and of the
//! multiplexed signals its multiplexor selects). JSON lines:
//! `{"t":1700000000.123456,"interface":"can0","id":256,"extended":false,"message":"BMS_Status",
//! "signals":{"State":1,...},"labels":{"State":"charge"}}` (NaN and infinities as `null`).
//! The time is written as the log has it. Values with a decimal factor and offset (0.001,
//! 0.1, -40, ...) are written as exact decimals (`3.4`, not `3.4000000000000004`); others
//! as the shortest text that reads back to the same double.
//!
//! Statistics (`stats`): instead of a row per frame, one row per DBC signal once the log
//! has been read: `message,id,signal,unit,frames,values,min,max,mean,last` (CSV), or one
//! JSON document with `--json`. Every signal of every frame is decoded to its physical
//! value exactly as for the rows; min, max and last are written to the decimals of the
//! signal's factor and offset, the mean as the shortest text that reads back (it is a
//! plain sum divided by the count). A float signal's NaN and infinities count as values
//! but not in min, max and mean (left empty, or `null`, when nothing finite was seen).
//! Messages that never appeared are listed with 0 frames.
//!
//! Bad input does not stop the stream: a malformed line or a frame whose length differs from
//! its DBC message is reported with its line number and skipped. Frames with ids the DBC
//! does not have are counted (or reported as errors when `strict`). Remote and error frames
//! are skipped.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, BufRead, Write};

use thiserror::Error;

mod fast;
mod stats;
mod value;

use super::log::{parse_line, LineError, LogError};
use crate::dbc::{Dbc, Multiplex, Signal};
use fast::parse_fast;
use stats::{write_stats, SignalStats, Stats};
use value::{csv_field, json_string, Compiled};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Json,
}

/// How to decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Output format.
    pub format: Format,
    /// Treat frames with ids not in the DBC as errors.
    pub strict: bool,
    /// One row per signal (frames, values, min, max, mean, last) instead of one per frame.
    pub stats: bool,
    /// How many line errors to keep in the summary (all are counted).
    pub keep_errors: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            format: Format::Csv,
            strict: false,
            stats: false,
            keep_errors: 20,
        }
    }
}

/// A log line that could not be decoded.
#[derive(Debug, Error)]
pub enum LineProblem {
    /// The line is not a candump line.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The frame's length differs from its DBC message's.
    #[error("line {line}: frame {id} has {got} data bytes, but {message} in the DBC has {want}")]
    Length {
        /// 1-based line number.
        line: usize,
        /// The frame id, formatted as in the log.
        id: String,
        /// DBC message name.
        message: String,
        /// Data bytes in the frame.
        got: usize,
        /// Data bytes the DBC declares.
        want: usize,
    },
    /// A frame id the DBC does not have (only with `strict`).
    #[error("line {line}: id {id} is not in the DBC")]
    UnknownId {
        /// 1-based line number.
        line: usize,
        /// The frame id, formatted as in the log.
        id: String,
    },
}

impl LineProblem {
    /// The 1-based line number of the problem.
    pub fn line(&self) -> usize {
        match self {
            Self::Log(e) => e.line(),
            Self::Length { line, .. } | Self::UnknownId { line, .. } => *line,
        }
    }
}

/// Frames of one id that the DBC does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unknown {
    /// How many frames had this id.
    pub frames: u64,
    /// The first line with this id.
    pub first_line: usize,
}

/// What a decode run saw.
#[derive(Debug, Default)]
pub struct DecodeSummary {
    /// Lines read (blank lines included).
    pub lines: usize,
    /// Frames decoded and written.
    pub decoded: u64,
    /// Remote and error frames skipped.
    pub skipped: u64,
    /// Ids not in the DBC: (id, extended) -> count and first line.
    pub unknown: BTreeMap<(u32, bool), Unknown>,
    /// Line problems, counting every one.
    pub problems: u64,
    /// The first `keep_errors` problems.
    pub first_problems: Vec<LineProblem>,
}

impl DecodeSummary {
    /// Frames whose ids were not in the DBC.
    pub fn unknown_frames(&self) -> u64 {
        self.unknown.values().map(|u| u.frames).sum()
    }

    /// True when nothing was wrong with the input (unknown ids are not wrong unless strict).
    pub fn clean(&self) -> bool {
        self.problems == 0
    }

    fn problem(&mut self, p: LineProblem, keep: usize) {
        self.problems += 1;
        if self.first_problems.len() < keep {
            self.first_problems.push(p);
        }
    }
}

/// The id as candump writes it: 3 hex digits, or 8 for an extended id.
pub fn format_id(id: u32, extended: bool) -> String {
    if extended {
        format!("{id:08X}")
    } else {
        format!("{id:03X}")
    }
}

/// A message prepared for fast decoding.
struct CompiledMessage {
    signals: Vec<Compiled>,
    mux: Option<usize>,
    /// Extended multiplexing: which signals a frame carries is worked out by the codec.
    extended_mux: bool,
    /// `,ID,Name` as written in a CSV row.
    csv_head: String,
    /// `,"id":N,"extended":B,"message":"Name","signals":{` for a JSON line.
    json_head: Vec<u8>,
    /// Column of the message's first signal.
    start: usize,
}

/// The DBC prepared for decoding: lookup tables and column layout.
struct Layout {
    /// Message index for each standard id (u32::MAX: none).
    standard: Vec<u32>,
    extended: HashMap<u32, usize>,
    messages: Vec<CompiledMessage>,
    total: usize,
    /// `total` commas, sliced to pad rows.
    commas: String,
}

impl Layout {
    fn new(dbc: &Dbc) -> Self {
        let mut standard = vec![u32::MAX; 0x800];
        let mut extended = HashMap::new();
        let mut messages = Vec::with_capacity(dbc.messages().len());
        let mut total = 0;
        for (i, m) in dbc.messages().iter().enumerate() {
            if m.extended {
                extended.insert(m.id, i);
            } else if let Some(slot) = standard.get_mut(m.id as usize) {
                *slot = u32::try_from(i).unwrap_or(u32::MAX);
            }
            let mut json_head: Vec<u8> = Vec::new();
            let _ = write!(
                json_head,
                ",\"id\":{},\"extended\":{},\"message\":",
                m.id, m.extended
            );
            json_string(&mut json_head, &m.name);
            json_head.extend_from_slice(b",\"signals\":{");
            messages.push(CompiledMessage {
                signals: m.signals.iter().map(|s| Compiled::new(s, m.size)).collect(),
                mux: m
                    .signals
                    .iter()
                    .position(|s| s.multiplex == Multiplex::Multiplexor),
                extended_mux: m.extended_multiplexing(),
                csv_head: format!(",{},{}", format_id(m.id, m.extended), m.name),
                json_head,
                start: total,
            });
            total += m.signals.len();
        }
        Self {
            standard,
            extended,
            messages,
            total,
            commas: ",".repeat(total),
        }
    }

    fn index(&self, id: u32, extended: bool) -> Option<usize> {
        if extended {
            self.extended.get(&id).copied()
        } else {
            let i = *self.standard.get(id as usize)?;
            (i != u32::MAX).then_some(i as usize)
        }
    }
}
/// The CSV header: fixed columns, then `Message.Signal [unit]` for every signal.
pub fn csv_header(dbc: &Dbc) -> String {
    let mut header = String::from("time_s,interface,id,message");
    for m in dbc.messages() {
        for s in &m.signals {
            let name = if s.unit.is_empty() {
                format!("{}.{}", m.name, s.name)
            } else {
                format!("{}.{} [{}]", m.name, s.name, s.unit)
            };
            header.push(',');
            header.push_str(&csv_field(&name));
        }
    }
    header
}

/// Output is collected in memory and written in chunks of about this many bytes.
const OUT_CHUNK: usize = 1 << 16;

/// The state of one decode run.
struct Decoder<'d, W: Write> {
    dbc: &'d Dbc,
    layout: Layout,
    options: DecodeOptions,
    json: bool,
    summary: DecodeSummary,
    out: W,
    buf: Vec<u8>,
    data: [u8; 64],
    stamp_text: String,
    line_no: usize,
    /// Per-column statistics and per-message frame counts, in `stats` mode.
    stats: Option<Stats>,
}

impl<W: Write> Decoder<'_, W> {
    fn problem(&mut self, p: LineProblem) {
        self.summary.problem(p, self.options.keep_errors);
    }

    /// Decode one line (without its newline) and append its row to the output buffer.
    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        self.line_no += 1;
        let mut text = line;
        while let [head @ .., b'\r'] = text {
            text = head;
        }
        let mut data = self.data;
        if let Some(l) = parse_fast(text, &mut data) {
            let frame = data.get(..l.len).unwrap_or_default();
            return self.frame(l.stamp, l.interface, l.id, l.extended, frame);
        }

        // Anything unusual goes through the full parser, which skips blank lines and
        // says precisely what is wrong with a bad one.
        let Ok(t) = std::str::from_utf8(text) else {
            self.problem(LineProblem::Log(LogError::Line {
                line: self.line_no,
                kind: LineError::NotText,
            }));
            return Ok(());
        };
        if t.trim().is_empty() {
            return Ok(());
        }
        let entry = match parse_line(t, self.line_no) {
            Ok(e) => e,
            Err(e) => {
                self.problem(LineProblem::Log(e));
                return Ok(());
            }
        };
        if !entry.frame.kind.carries_data() {
            self.summary.skipped += 1;
            return Ok(());
        }
        let mut stamp = std::mem::take(&mut self.stamp_text);
        stamp.clear();
        let _ = write!(stamp, "{:.6}", entry.timestamp);
        let f = &entry.frame;
        let result = self.frame(
            stamp.as_bytes(),
            entry.interface.as_bytes(),
            f.id,
            f.extended,
            &f.data,
        );
        self.stamp_text = stamp;
        result
    }

    fn frame(
        &mut self,
        stamp: &[u8],
        interface: &[u8],
        id: u32,
        extended: bool,
        data: &[u8],
    ) -> io::Result<()> {
        let line = self.line_no;
        let Some(index) = self.layout.index(id, extended) else {
            let u = self
                .summary
                .unknown
                .entry((id, extended))
                .or_insert(Unknown {
                    frames: 0,
                    first_line: line,
                });
            u.frames += 1;
            if self.options.strict {
                self.problem(LineProblem::UnknownId {
                    line,
                    id: format_id(id, extended),
                });
            }
            return Ok(());
        };
        let dbc = self.dbc;
        let (Some(message), Some(compiled)) =
            (dbc.messages().get(index), self.layout.messages.get(index))
        else {
            return Ok(());
        };
        if data.len() != message.size {
            self.problem(LineProblem::Length {
                line,
                id: format_id(id, extended),
                message: message.name.clone(),
                got: data.len(),
                want: message.size,
            });
            return Ok(());
        }
        // Extended multiplexing: the codec says which signals the frame carries (the
        // frame length was checked above, so this does not fail).
        let carried = if compiled.extended_mux {
            message.carried(data).ok()
        } else {
            None
        };
        if let Some(stats) = &mut self.stats {
            let view = FrameView::new(compiled, &message.signals, carried.as_deref(), data);
            if let Some(n) = stats.frames.get_mut(index) {
                *n += 1;
            }
            let columns = stats.signals.iter_mut().skip(compiled.start);
            for (i, ((c, s), st)) in compiled
                .signals
                .iter()
                .zip(&message.signals)
                .zip(columns)
                .enumerate()
            {
                if view.active(i, s) {
                    if let Some(bits) = c.bits(s, data, view.le, view.be) {
                        st.add(c.physical(bits));
                    }
                }
            }
            self.summary.decoded += 1;
            return Ok(());
        }
        write_row(
            &mut self.buf,
            &self.layout,
            compiled,
            &message.signals,
            carried.as_deref(),
            stamp,
            interface,
            data,
            self.json,
        );
        self.summary.decoded += 1;
        if self.buf.len() >= OUT_CHUNK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Decode a candump log through `dbc`, writing one row per decoded frame to `out`.
///
/// Only errors writing the output end the run early; problems with the input (including
/// a failing read, which ends the input) are in the summary.
pub fn decode_log<R: BufRead, W: Write>(
    input: R,
    out: W,
    dbc: &Dbc,
    options: DecodeOptions,
) -> io::Result<DecodeSummary> {
    let mut input = input;
    let json = options.format == Format::Json;
    let mut d = Decoder {
        dbc,
        layout: Layout::new(dbc),
        options,
        json,
        summary: DecodeSummary::default(),
        out,
        buf: Vec::with_capacity(OUT_CHUNK + 4096),
        data: [0; 64],
        stamp_text: String::new(),
        line_no: 0,
        stats: None,
    };
    if options.stats {
        d.stats = Some(Stats {
            signals: vec![SignalStats::default(); d.layout.total],
            frames: vec![0; dbc.messages().len()],
        });
    } else if !json {
        writeln!(d.out, "{}", csv_header(dbc))?;
    }
    // Lines are decoded where they lie in the reader's buffer; only a line that straddles
    // two reads is copied.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                let line = d.line_no + 1;
                d.problem(LineProblem::Log(LogError::Io { line, source }));
                break;
            }
        };
        if chunk.is_empty() {
            if !carry.is_empty() {
                d.line(&carry)?;
            }
            break;
        }
        let mut pos = 0;
        if !carry.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(nl) => {
                    carry.extend_from_slice(chunk.get(..nl).unwrap_or_default());
                    d.line(&carry)?;
                    carry.clear();
                    pos = nl + 1;
                }
                None => {
                    carry.extend_from_slice(chunk);
                    let n = chunk.len();
                    input.consume(n);
                    continue;
                }
            }
        }
        let mut rest = chunk.get(pos..).unwrap_or_default();
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            d.line(rest.get(..nl).unwrap_or_default())?;
            rest = rest.get(nl + 1..).unwrap_or_default();
        }
        carry.extend_from_slice(rest);
        let n = chunk.len();
        input.consume(n);
    }
    d.summary.lines = d.line_no;
    if let Some(stats) = &d.stats {
        write_stats(&mut d.buf, dbc, stats, &d.summary, json);
    }
    d.out.write_all(&d.buf)?;
    d.out.flush()?;
    Ok(d.summary)
}

/// A frame's data as little- and big-endian words and its multiplexor value.
struct FrameView<'a> {
    le: u64,
    be: u64,
    mux: Option<i128>,
    carried: Option<&'a [bool]>,
}

impl<'a> FrameView<'a> {
    fn new(
        m: &CompiledMessage,
        signals: &[Signal],
        carried: Option<&'a [bool]>,
        data: &[u8],
    ) -> Self {
        let mut padded = [0u8; 8];
        if let Some(head) = padded.get_mut(..data.len()) {
            head.copy_from_slice(data);
        }
        let (le, be) = (u64::from_le_bytes(padded), u64::from_be_bytes(padded));
        let mux = m.mux.and_then(|i| {
            let (c, s) = (m.signals.get(i)?, signals.get(i)?);
            s.int_from_bits(c.bits(s, data, le, be)?)
        });
        Self {
            le,
            be,
            mux,
            carried,
        }
    }

    /// Whether the frame carries signal `i` (its multiplexor selects it).
    fn active(&self, i: usize, s: &Signal) -> bool {
        match self.carried {
            Some(c) => c.get(i).copied().unwrap_or(false),
            None => s.is_active(self.mux),
        }
    }
}

/// Append one CSV row or JSON line (with its newline) for a frame of a known message.
#[allow(clippy::too_many_arguments)]
fn write_row(
    row: &mut Vec<u8>,
    layout: &Layout,
    m: &CompiledMessage,
    signals: &[Signal],
    carried: Option<&[bool]>,
    stamp: &[u8],
    interface: &[u8],
    data: &[u8],
    json: bool,
) {
    let view = FrameView::new(m, signals, carried, data);
    let (le, be) = (view.le, view.be);
    let active = |i: usize, s: &Signal| view.active(i, s);
    if json {
        row.extend_from_slice(b"{\"t\":");
        row.extend_from_slice(stamp);
        row.extend_from_slice(b",\"interface\":");
        json_string(row, &String::from_utf8_lossy(interface));
        row.extend_from_slice(&m.json_head);
        let mut first = true;
        let mut labels: Vec<(&str, &str)> = Vec::new();
        for (i, (c, s)) in m.signals.iter().zip(signals).enumerate() {
            if !active(i, s) {
                continue;
            }
            let Some(bits) = c.bits(s, data, le, be) else {
                continue;
            };
            if !first {
                row.push(b',');
            }
            first = false;
            json_string(row, &s.name);
            row.push(b':');
            c.write(row, bits, true);
            if !s.value_table.is_empty() {
                let label = s
                    .int_from_bits(bits)
                    .and_then(|r| i64::try_from(r).ok())
                    .and_then(|r| s.value_table.get(&r));
                if let Some(label) = label {
                    labels.push((&s.name, label));
                }
            }
        }
        row.push(b'}');
        if !labels.is_empty() {
            row.extend_from_slice(b",\"labels\":{");
            for (i, (name, label)) in labels.iter().enumerate() {
                if i > 0 {
                    row.push(b',');
                }
                json_string(row, name);
                row.push(b':');
                json_string(row, label);
            }
            row.push(b'}');
        }
        row.extend_from_slice(b"}\n");
    } else {
        row.extend_from_slice(stamp);
        row.push(b',');
        row.extend_from_slice(interface);
        row.extend_from_slice(m.csv_head.as_bytes());
        row.extend_from_slice(layout.commas.as_bytes().get(..m.start).unwrap_or_default());
        for (i, (c, s)) in m.signals.iter().zip(signals).enumerate() {
            row.push(b',');
            if active(i, s) {
                if let Some(bits) = c.bits(s, data, le, be) {
                    c.write(row, bits, false);
                }
            }
        }
        let rest = layout.total.saturating_sub(m.start + signals.len());
        row.extend_from_slice(layout.commas.as_bytes().get(..rest).unwrap_or_default());
        row.push(b'\n');
    }
}

#[cfg(test)]
mod tests;
