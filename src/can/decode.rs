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

use super::log::{parse_line, LineError, LogError};
use crate::dbc::{ByteOrder, Dbc, Multiplex, Signal, ValueType};

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

/// One signal, prepared for fast decoding.
struct Compiled {
    /// Where the bits are, for frames of at most 8 bytes: `None` means use the codec.
    fast: Option<FastBits>,
    size: u32,
    value_type: ValueType,
    factor: f64,
    offset: f64,
    /// physical = (raw * mantissa + offset_scaled) / 10^decimals, when the DBC's factor and
    /// offset are exact decimals: printed without binary floating-point noise.
    decimal: Option<(i128, i128, u32)>,
}

#[derive(Clone, Copy)]
struct FastBits {
    /// Shift right of the little-endian (Intel) or big-endian (Motorola) frame word.
    shift: u32,
    motorola: bool,
    mask: u64,
}

impl Compiled {
    fn new(s: &Signal, message_size: usize) -> Self {
        let mask = match s.size {
            1..=63 => (1u64 << s.size) - 1,
            _ => u64::MAX,
        };
        let fits = message_size <= 8 && s.bytes_needed().is_some_and(|n| n <= 8);
        let fast = match s.byte_order {
            _ if !fits || s.size == 0 || s.size > 64 => None,
            ByteOrder::Intel => Some(FastBits {
                shift: s.start_bit,
                motorola: false,
                mask,
            }),
            ByteOrder::Motorola => {
                let msb = (s.start_bit / 8) * 8 + (7 - s.start_bit % 8);
                (msb + s.size <= 64).then(|| FastBits {
                    shift: 64 - (msb + s.size),
                    motorola: true,
                    mask,
                })
            }
        };
        Self {
            fast,
            size: s.size,
            value_type: s.value_type,
            factor: s.factor,
            offset: s.offset,
            decimal: decimal_scaling(s.factor, s.offset),
        }
    }

    /// The raw bits of the signal in a frame (words are the frame as LE and BE u64).
    fn bits(&self, signal: &Signal, data: &[u8], le: u64, be: u64) -> Option<u64> {
        match self.fast {
            Some(f) if data.len() <= 8 => {
                let word = if f.motorola { be } else { le };
                Some(word.checked_shr(f.shift).unwrap_or(0) & f.mask)
            }
            _ => signal.extract_bits(data),
        }
    }

    /// The physical value of raw bits, as a double.
    fn physical(&self, bits: u64) -> f64 {
        let raw = match self.value_type {
            ValueType::Unsigned => bits as f64,
            ValueType::Signed => sign_extend(bits, self.size) as f64,
            ValueType::Float32 => f64::from(f32::from_bits(bits as u32)),
            ValueType::Float64 => f64::from_bits(bits),
        };
        raw * self.factor + self.offset
    }

    /// Write the physical value of raw bits.
    fn write(&self, out: &mut Vec<u8>, bits: u64, json: bool) {
        let int = match self.value_type {
            ValueType::Unsigned => i128::from(bits),
            ValueType::Signed => i128::from(sign_extend(bits, self.size)),
            ValueType::Float32 => {
                let raw = f64::from(f32::from_bits(bits as u32));
                return number(out, raw * self.factor + self.offset, json);
            }
            ValueType::Float64 => {
                return number(out, f64::from_bits(bits) * self.factor + self.offset, json)
            }
        };
        match self.decimal {
            Some((mantissa, offset, decimals)) => match int
                .checked_mul(mantissa)
                .and_then(|v| v.checked_add(offset))
            {
                Some(scaled) => decimal(out, scaled, decimals),
                None => number(out, int as f64 * self.factor + self.offset, json),
            },
            None => number(out, int as f64 * self.factor + self.offset, json),
        }
    }
}

fn sign_extend(bits: u64, size: u32) -> i64 {
    match size {
        1..=63 => {
            let shift = 64 - size;
            ((bits << shift) as i64) >> shift
        }
        _ => bits as i64,
    }
}

/// (factor * 10^k, offset * 10^k, k) for the smallest k <= 9 making both whole numbers.
fn decimal_scaling(factor: f64, offset: f64) -> Option<(i128, i128, u32)> {
    let mut scale = 1.0f64;
    for k in 0..=9u32 {
        let f = factor * scale;
        let o = offset * scale;
        let whole = |v: f64| (v - v.round()).abs() <= 1e-12 * v.abs().max(1.0);
        if f.is_finite()
            && o.is_finite()
            && f.abs() < 1e15
            && o.abs() < 1e15
            && whole(f)
            && whole(o)
        {
            return Some((f.round() as i128, o.round() as i128, k));
        }
        scale *= 10.0;
    }
    None
}

/// Write `scaled / 10^decimals` exactly, without trailing zeros.
fn decimal(out: &mut Vec<u8>, scaled: i128, decimals: u32) {
    const E19: u128 = 10_000_000_000_000_000_000;
    let mut buf = [0u8; 48];
    let mut i = buf.len();
    let negative = scaled < 0;
    let magnitude = scaled.unsigned_abs();
    // Nearly every value fits 64 bits, where division by 10 is a multiplication.
    let (mut high, mut v) = match u64::try_from(magnitude) {
        Ok(v) => (0u128, v),
        Err(_) => (magnitude / E19, (magnitude % E19) as u64),
    };
    let mut written = 0u32;
    let mut trailing = true;
    while written < decimals {
        let d = (v % 10) as u8;
        v /= 10;
        written += 1;
        if trailing && d == 0 {
            continue;
        }
        trailing = false;
        i -= 1;
        buf[i] = b'0' + d;
    }
    if !trailing {
        i -= 1;
        buf[i] = b'.';
    }
    if high > 0 {
        // The low 19 digits (zero-padded), then the high part.
        for _ in written..19 {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        while high > 0 {
            i -= 1;
            buf[i] = b'0' + (high % 10) as u8;
            high /= 10;
        }
    } else {
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
    }
    if negative && buf[i..].iter().any(|&b| b != b'0' && b != b'.') {
        i -= 1;
        buf[i] = b'-';
    }
    out.extend_from_slice(&buf[i..]);
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

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Write a number the shortest way that reads back exactly; integers without a fraction.
fn number(out: &mut Vec<u8>, v: f64, json: bool) {
    if !v.is_finite() {
        let text: &[u8] = if json {
            b"null"
        } else if v.is_nan() {
            b"NaN"
        } else if v > 0.0 {
            b"inf"
        } else {
            b"-inf"
        };
        out.extend_from_slice(text);
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        decimal(out, v as i128, 0);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// One frame line, read without copying: the common `(secs.frac) iface ID#DATA` form.
struct Line<'a> {
    stamp: &'a [u8],
    interface: &'a [u8],
    id: u32,
    extended: bool,
    len: usize,
}

/// Hex digit values; 0xFF for bytes that are not hex digits.
const HEX: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

fn hex_nibble(b: u8) -> Option<u8> {
    let v = HEX[usize::from(b)];
    (v != 0xFF).then_some(v)
}

/// The fast path: a classic data frame in canonical form. Anything else (remote, FD, error
/// frames, dotted data, odd spacing, bad lines) returns `None` and goes through the full
/// candump parser, which accepts it or says precisely what is wrong.
fn parse_fast<'a>(line: &'a [u8], data: &mut [u8; 64]) -> Option<Line<'a>> {
    let rest = line.strip_prefix(b"(")?;
    let close = rest.iter().position(|&b| b == b')')?;
    let stamp = rest.get(..close)?;
    let dot = stamp.iter().position(|&b| b == b'.')?;
    let (secs, frac) = (stamp.get(..dot)?, stamp.get(dot + 1..)?);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(secs) || !digits(frac) || secs.len() > 20 {
        return None;
    }
    let rest = rest.get(close + 1..)?.strip_prefix(b" ")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let interface = rest.get(..space)?;
    if interface.is_empty() || !interface.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    let frame = rest.get(space + 1..)?;
    let hash = frame.iter().position(|&b| b == b'#')?;
    let (id_text, hex) = (frame.get(..hash)?, frame.get(hash + 1..)?);
    let extended = match id_text.len() {
        3 => false,
        8 => true,
        _ => return None,
    };
    let mut id = 0u32;
    for &b in id_text {
        id = (id << 4) | u32::from(hex_nibble(b)?);
    }
    if (extended && id > 0x1FFF_FFFF) || (!extended && id > 0x7FF) {
        return None;
    }
    if hex.len() % 2 != 0 || hex.len() > 16 {
        return None;
    }
    for (slot, pair) in data.iter_mut().zip(hex.chunks_exact(2)) {
        *slot = (hex_nibble(pair[0])? << 4) | hex_nibble(pair[1])?;
    }
    Some(Line {
        stamp,
        interface,
        id,
        extended,
        len: hex.len() / 2,
    })
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

/// What `stats` mode gathers: one entry per signal column, one count per message.
struct Stats {
    signals: Vec<SignalStats>,
    frames: Vec<u64>,
}

/// The values one signal took.
#[derive(Debug, Clone, Copy)]
struct SignalStats {
    values: u64,
    finite: u64,
    min: f64,
    max: f64,
    sum: f64,
    last: f64,
}

impl Default for SignalStats {
    fn default() -> Self {
        Self {
            values: 0,
            finite: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            last: f64::NAN,
        }
    }
}

impl SignalStats {
    /// Count a value; only finite ones enter min, max and mean.
    fn add(&mut self, v: f64) {
        self.values += 1;
        self.last = v;
        if v.is_finite() {
            self.finite += 1;
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            self.sum += v;
        }
    }
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

/// Index of the first `\n`, eight bytes at a time.
fn find_newline(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = 0x0A0A_0A0A_0A0A_0A0A;
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for w in words.by_ref() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let x = u64::from_le_bytes(bytes) ^ NL;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| at + i)
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
            match chunk.iter().position(|&b| b == b'\n') {
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
        while let Some(nl) = find_newline(rest) {
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

/// A value of a signal rounded to the decimals of its factor and offset (so that it prints
/// as the exact decimal), unchanged for other scalings; `None` when not finite.
fn stat_value(v: f64, s: &Signal) -> Option<f64> {
    if !v.is_finite() {
        return None;
    }
    Some(match decimal_scaling(s.factor, s.offset) {
        Some((_, _, decimals)) => {
            let scale = 10f64.powi(decimals as i32);
            let r = (v * scale).round() / scale;
            if r.is_finite() {
                r
            } else {
                v
            }
        }
        None => v,
    })
}

/// The statistics table (CSV) or document (JSON), after the whole log.
fn write_stats(out: &mut Vec<u8>, dbc: &Dbc, stats: &Stats, summary: &DecodeSummary, json: bool) {
    let mut column = 0;
    let mut messages = Vec::new();
    if !json {
        out.extend_from_slice(b"message,id,signal,unit,frames,values,min,max,mean,last\n");
    }
    for (m, &frames) in dbc.messages().iter().zip(&stats.frames) {
        let mut signals = Vec::new();
        for s in &m.signals {
            let st = stats.signals.get(column).copied().unwrap_or_default();
            column += 1;
            let seen = st.finite > 0;
            let min = seen.then(|| stat_value(st.min, s)).flatten();
            let max = seen.then(|| stat_value(st.max, s)).flatten();
            let last = stat_value(st.last, s);
            let mean = seen
                .then(|| st.sum / st.finite as f64)
                .filter(|v| v.is_finite());
            if json {
                signals.push(serde_json::json!({
                    "signal": s.name, "unit": s.unit, "values": st.values,
                    "min": min, "max": max, "mean": mean, "last": last,
                }));
            } else {
                let _ = write!(
                    out,
                    "{},{},{},{},{frames},{},",
                    csv_field(&m.name),
                    format_id(m.id, m.extended),
                    csv_field(&s.name),
                    csv_field(&s.unit),
                    st.values
                );
                for (i, v) in [min, max, mean, last].into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    if let Some(v) = v {
                        number(out, v, false);
                    }
                }
                out.push(b'\n');
            }
        }
        if json {
            messages.push(serde_json::json!({
                "message": m.name, "id": m.id, "extended": m.extended,
                "frames": frames, "signals": signals,
            }));
        }
    }
    if json {
        let unknown: Vec<_> = summary
            .unknown
            .iter()
            .map(|((id, ext), u)| {
                serde_json::json!({"id": id, "extended": ext, "frames": u.frames, "first_line": u.first_line})
            })
            .collect();
        let doc = serde_json::json!({
            "lines": summary.lines,
            "decoded": summary.decoded,
            "skipped": summary.skipped,
            "problems": summary.problems,
            "unknown": unknown,
            "messages": messages,
        });
        let _ = serde_json::to_writer(&mut *out, &doc);
        out.push(b'\n');
    }
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
mod tests {
    use super::*;

    const DBC: &str = r#"VERSION ""
NS_ :
BS_:
BU_: A
BO_ 256 Status: 2 A
 SG_ State : 0|4@1+ (1,0) [0|15] "" A
 SG_ Volt : 15|8@0+ (0.5,1) [0|128] "V" A
BO_ 2147483904 Ext: 1 A
 SG_ Mux M : 0|2@1+ (1,0) [0|3] "" A
 SG_ A m0 : 2|6@1- (1,0) [-32|31] "" A
 SG_ B m1 : 2|6@1+ (2,0) [0|126] "deg,C" A
VAL_ 256 State 1 "on" 2 "off" ;
"#;

    fn dbc() -> Dbc {
        Dbc::parse(DBC, "t.dbc").unwrap()
    }

    /// xorshift64: reproducible random bytes for frames.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    fn run_with(dbc: &Dbc, log: &str, options: DecodeOptions) -> (String, DecodeSummary) {
        let mut out = Vec::new();
        let summary = decode_log(log.as_bytes(), &mut out, dbc, options).unwrap();
        (String::from_utf8(out).unwrap(), summary)
    }

    fn run(log: &str, options: DecodeOptions) -> (String, DecodeSummary) {
        run_with(&dbc(), log, options)
    }

    #[test]
    fn csv_has_units_in_the_header_and_one_column_per_signal() {
        let log = "(1.5) can0 100#1203\n(2.0) can0 00000100#41\n(2.5) can0 00000100#FC\n";
        let (out, s) = run(log, DecodeOptions::default());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "time_s,interface,id,message,Status.State,Status.Volt [V],Ext.Mux,Ext.A,\"Ext.B [deg,C]\""
        );
        assert_eq!(lines[1], "1.5,can0,100,Status,2,2.5,,,");
        assert_eq!(lines[2], "2.0,can0,00000100,Ext,,,1,,32");
        assert_eq!(lines[3], "2.5,can0,00000100,Ext,,,0,-1,");
        assert_eq!((s.decoded, s.problems), (3, 0));
    }

    #[test]
    fn json_lines_carry_labels() {
        let (out, _) = run(
            "(1.5) can0 100#1103\n",
            DecodeOptions {
                format: Format::Json,
                ..DecodeOptions::default()
            },
        );
        assert_eq!(
            out.trim_end(),
            r#"{"t":1.5,"interface":"can0","id":256,"extended":false,"message":"Status","signals":{"State":1,"Volt":2.5},"labels":{"State":"on"}}"#
        );
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["signals"]["Volt"], 2.5);
    }

    const STATS_LOG: &str = "(1.0) can0 100#1103\n(2.0) can0 100#0509\n(3.0) can0 100#0200\n\
        (4.0) can0 00000100#01\n(5.0) can0 00000100#0D\n(6.0) can0 00000100#FC\n\
        (7.0) can0 7FF#00\n";

    #[test]
    fn stats_give_one_row_per_signal() {
        let (out, summary) = run(
            STATS_LOG,
            DecodeOptions {
                stats: true,
                ..DecodeOptions::default()
            },
        );
        assert_eq!(
            out,
            "message,id,signal,unit,frames,values,min,max,mean,last\n\
             Status,100,State,,3,3,1,5,2.6666666666666665,2\n\
             Status,100,Volt,V,3,3,1,5.5,3,1\n\
             Ext,00000100,Mux,,3,3,0,1,0.6666666666666666,0\n\
             Ext,00000100,A,,3,1,-1,-1,-1,-1\n\
             Ext,00000100,B,\"deg,C\",3,2,0,6,3,6\n"
        );
        assert_eq!(summary.decoded, 6);
        assert_eq!(summary.unknown_frames(), 1);
    }

    #[test]
    fn stats_as_json_name_unknown_ids_and_unseen_signals() {
        let (out, _) = run(
            "(1.0) can0 00000100#01\n(2.0) can0 7FF#00\n",
            DecodeOptions {
                stats: true,
                format: Format::Json,
                ..DecodeOptions::default()
            },
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["decoded"], 1);
        assert_eq!(v["unknown"][0]["id"], 0x7FF);
        assert_eq!(v["messages"][0]["message"], "Status");
        assert_eq!(v["messages"][0]["frames"], 0);
        assert_eq!(
            v["messages"][0]["signals"][0]["min"],
            serde_json::Value::Null
        );
        assert_eq!(v["messages"][1]["frames"], 1);
        assert_eq!(v["messages"][1]["signals"][2]["signal"], "B");
        assert_eq!(v["messages"][1]["signals"][2]["max"], 0.0);
        assert_eq!(v["messages"][1]["signals"][1]["values"], 0);
    }

    #[test]
    fn stats_agree_with_the_codec() {
        let dbc = Dbc::parse(LAYOUTS, "layouts.dbc").unwrap();
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let mut log = String::new();
        let mut want: BTreeMap<(String, String), (u64, f64, f64)> = BTreeMap::new();
        for round in 0..3000 {
            let m = &dbc.messages()[round % dbc.messages().len()];
            let data: Vec<u8> = (0..m.size).map(|_| next() as u8).collect();
            let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
            let sep = if m.size > 8 { "##0" } else { "#" };
            let _ = writeln!(log, "(1.0) can0 {}{sep}{hex}", format_id(m.id, m.extended));
            for d in m.decode(&data).unwrap() {
                let e = want.entry((m.name.clone(), d.name.clone())).or_insert((
                    0,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                ));
                e.0 += 1;
                if d.physical.is_finite() {
                    e.1 = e.1.min(d.physical);
                    e.2 = e.2.max(d.physical);
                }
            }
        }
        let (out, summary) = run_with(
            &dbc,
            &log,
            DecodeOptions {
                stats: true,
                format: Format::Json,
                ..DecodeOptions::default()
            },
        );
        assert_eq!(summary.problems, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut checked = 0;
        for m in v["messages"].as_array().unwrap() {
            for s in m["signals"].as_array().unwrap() {
                let key = (
                    m["message"].as_str().unwrap().to_string(),
                    s["signal"].as_str().unwrap().to_string(),
                );
                let Some(&(n, lo, hi)) = want.get(&key) else {
                    continue;
                };
                assert_eq!(s["values"].as_u64(), Some(n), "{key:?}");
                for (got, w) in [(&s["min"], lo), (&s["max"], hi)] {
                    let got = got.as_f64().unwrap();
                    assert!(
                        (got - w).abs() <= 1e-9 * w.abs().max(1.0),
                        "{key:?}: {got} vs {w}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} signals checked");
    }

    #[test]
    fn bad_lines_lengths_and_unknown_ids_are_reported_with_line_numbers() {
        let log = "(1.0) can0 100#1203\n\
                   (1.1) can0 100#12\n\
                   not a line\n\
                   (1.2) can0 7E0#0102\n\
                   (1.3) can0 7E0#0102\n\
                   (1.4) can0 123#R\n\
                   (1.5) can0 100#1203\n";
        let (out, s) = run(log, DecodeOptions::default());
        assert_eq!(out.lines().count(), 3, "header and two rows");
        assert_eq!((s.decoded, s.skipped, s.problems, s.lines), (2, 1, 2, 7));
        let msgs: Vec<String> = s.first_problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            msgs[0],
            "line 2: frame 100 has 1 data bytes, but Status in the DBC has 2"
        );
        assert!(msgs[1].starts_with("line 3: "), "{}", msgs[1]);
        assert_eq!(
            s.unknown.get(&(0x7E0, false)),
            Some(&Unknown {
                frames: 2,
                first_line: 4
            })
        );
        assert_eq!(s.unknown_frames(), 2);

        let (_, strict) = run(
            log,
            DecodeOptions {
                strict: true,
                ..DecodeOptions::default()
            },
        );
        assert_eq!(strict.problems, 4);
        assert_eq!(
            strict.first_problems[2].to_string(),
            "line 4: id 7E0 is not in the DBC"
        );
    }

    #[test]
    fn problems_are_all_counted_but_only_some_kept() {
        let log = "junk\n".repeat(50);
        let (_, s) = run(
            &log,
            DecodeOptions {
                keep_errors: 5,
                ..DecodeOptions::default()
            },
        );
        assert_eq!((s.problems, s.first_problems.len()), (50, 5));
        assert_eq!(s.first_problems[4].line(), 5);
    }

    #[rstest::rstest]
    #[case(0, 0, "0")]
    #[case(3400, 3, "3.4")]
    #[case(-5, 1, "-0.5")]
    #[case(-50, 1, "-5")]
    #[case(123_456, 2, "1234.56")]
    #[case(7, 3, "0.007")]
    #[case(-7, 3, "-0.007")]
    #[case(1_000, 3, "1")]
    fn decimals(#[case] scaled: i128, #[case] places: u32, #[case] want: &str) {
        let mut s = Vec::new();
        decimal(&mut s, scaled, places);
        assert_eq!(String::from_utf8(s).unwrap(), want);
    }

    #[rstest::rstest]
    #[case(0.001, 0.0, Some((1, 0, 3)))]
    #[case(0.1, -40.0, Some((1, -400, 1)))]
    #[case(2.5, 0.0, Some((25, 0, 1)))]
    #[case(1.0 / 3.0, 0.0, None)]
    fn decimal_factors(
        #[case] factor: f64,
        #[case] offset: f64,
        #[case] want: Option<(i128, i128, u32)>,
    ) {
        assert_eq!(decimal_scaling(factor, offset), want);
    }

    const LAYOUTS: &str = r#"VERSION ""
NS_ :
BS_:
BU_: A
BO_ 1 Mixed: 8 A
 SG_ I12 : 3|12@1+ (0.001,0) [0|4.095] "V" A
 SG_ M16 : 23|16@0- (0.1,-40) [0|0] "degC" A
 SG_ M1 : 33|1@0+ (1,0) [0|1] "" A
 SG_ S7 : 40|7@1- (3,1) [0|0] "" A
 SG_ M11 : 52|11@0+ (0.25,0) [0|0] "A" A
BO_ 2 Floats: 8 A
 SG_ F : 0|32@1- (1,0) [0|0] "" A
 SG_ G : 39|32@0- (2,0.5) [0|0] "" A
BO_ 3 Wide: 8 A
 SG_ W64 : 0|64@1+ (1,0) [0|0] "" A
BO_ 4 BigEnd64: 8 A
 SG_ B64 : 7|64@0- (1,0) [0|0] "" A
BO_ 5 FdMsg: 16 A
 SG_ Mux M : 0|4@1+ (1,0) [0|0] "" A
 SG_ Far m1 : 100|20@1+ (0.5,0) [0|0] "" A
 SG_ Near m2 : 15|12@0- (1,0) [0|0] "" A
BO_ 6 Nested: 8 A
 SG_ K M : 0|2@1+ (1,0) [0|3] "" A
 SG_ P m1M : 2|3@1+ (1,0) [0|7] "" A
 SG_ X m0 : 8|8@1+ (1,0) [0|0] "" A
 SG_ Y m2 : 15|16@0- (0.5,0) [0|0] "" A
 SG_ Z m5 : 8|8@1+ (1,0) [0|0] "" A
SIG_VALTYPE_ 2 F : 1;
SIG_VALTYPE_ 2 G : 1;
SG_MUL_VAL_ 6 P K 1-1;
SG_MUL_VAL_ 6 X K 0-0;
SG_MUL_VAL_ 6 Y P 2-3;
SG_MUL_VAL_ 6 Z P 5-7;
"#;

    /// The fast decoder against the codec, over random frames of many layouts.
    #[test]
    fn fast_path_agrees_with_the_codec() {
        let dbc = Dbc::parse(LAYOUTS, "layouts.dbc").unwrap();
        let layout = Layout::new(&dbc);
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        for round in 0..4000 {
            let m = &dbc.messages()[round % dbc.messages().len()];
            let c = &layout.messages[round % dbc.messages().len()];
            let data: Vec<u8> = (0..m.size).map(|_| next() as u8).collect();
            let mut row = Vec::new();
            let carried = c.extended_mux.then(|| m.carried(&data).unwrap());
            write_row(
                &mut row,
                &layout,
                c,
                &m.signals,
                carried.as_deref(),
                b"0.0",
                b"x",
                &data,
                false,
            );
            let row = String::from_utf8(row).unwrap();
            let cells: Vec<&str> = row.trim_end().split(',').collect();
            let ours = &cells[4 + c.start..4 + c.start + m.signals.len()];
            let want = m.decode(&data).unwrap();
            for (s, cell) in m.signals.iter().zip(ours) {
                match want.iter().find(|d| d.name == s.name) {
                    None => assert_eq!(*cell, "", "{}.{} inactive", m.name, s.name),
                    Some(d) if d.physical.is_nan() => assert_eq!(*cell, "NaN"),
                    Some(d) => {
                        let v: f64 = cell.parse().unwrap_or_else(|_| panic!("{cell}"));
                        let tol = 1e-9 * d.physical.abs().max(1.0);
                        assert!(
                            (v - d.physical).abs() <= tol || v == d.physical,
                            "{}.{}: {cell} vs {} for {data:02X?}",
                            m.name,
                            s.name,
                            d.physical
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn unusual_lines_take_the_full_parser() {
        let log = "(1.5) can0 100#12.03\n\
                   (1.6)  can0   100#1203\n\
                   (1.7) can0 00000100##141\n\
                   \n\
                   (1.8) can0 20000004#0000000000000000\n";
        let (out, s) = run(log, DecodeOptions::default());
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(rows[0], "1.500000,can0,100,Status,2,2.5,,,");
        assert_eq!(rows[1], "1.600000,can0,100,Status,2,2.5,,,");
        assert_eq!(rows[2], "1.700000,can0,00000100,Ext,,,1,,32");
        assert_eq!((s.decoded, s.skipped, s.problems, s.lines), (3, 1, 0, 5));
    }

    #[test]
    fn lines_straddling_reads_decode_the_same() {
        let log = "(1.0) can0 100#1203\r\n(2.0) can0 00000100#41\n\nbad\n(3.0) can0 100#1103";
        let (whole, s1) = run(log, DecodeOptions::default());
        for capacity in [1, 2, 5, 7, 13, 64] {
            let mut out = Vec::new();
            let reader = io::BufReader::with_capacity(capacity, log.as_bytes());
            let s2 = decode_log(reader, &mut out, &dbc(), DecodeOptions::default()).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                whole,
                "capacity {capacity}"
            );
            assert_eq!(
                (s2.decoded, s2.problems, s2.lines),
                (s1.decoded, s1.problems, s1.lines)
            );
        }
        assert_eq!((s1.decoded, s1.problems, s1.lines), (3, 1, 5));
    }

    #[test]
    fn newlines_are_found_at_every_offset() {
        for len in 0..40 {
            for nl in 0..=len {
                let mut v = vec![b'a'; len];
                let want = (nl < len).then(|| {
                    v[nl] = b'\n';
                    nl
                });
                if let Some(w) = want {
                    // A second newline later must not win.
                    if w + 3 < len {
                        v[w + 3] = b'\n';
                    }
                }
                assert_eq!(find_newline(&v), want, "len {len} nl {nl}");
            }
        }
        // Bytes just above and below '\n' are not newlines.
        assert_eq!(find_newline(&[0x09, 0x0B, 0x8A, 0x0A]), Some(3));
    }
}
