//! candump log files (`candump -L` / `candump -l`): one frame per line.
//!
//! ```text
//! (1700000000.123456) can0 123#DEADBEEF        classic, 11-bit id (3 hex digits)
//! (1700000000.123456) can0 1F334455#0011       classic, 29-bit id (8 hex digits)
//! (1700000000.123456) can0 123#R               remote frame (optionally `R<len>`)
//! (1700000000.123456) can0 123##1AABB          CAN FD: flags nibble after `##`, then data
//!                                                (1 = bit-rate switch, 2 = error state
//!                                                indicator; 4, FDF, and 8 are read and ignored)
//! (1700000000.123456) can0 20000080#00...      error frame: error flag 0x20000000 in the id
//! ```
//!
//! Lines are independent: a bad line is an error carrying its 1-based line number, and a
//! reader carries on with the next line.

use std::io::{self, BufRead, Write};

use thiserror::Error;

use super::{Frame, FrameKind, FD_LENGTHS};

/// The error-frame flag in a logged id (`CAN_ERR_FLAG`).
const ERR_FLAG: u32 = 0x2000_0000;
/// Bit-rate switch in the CAN FD flags nibble (`CANFD_BRS`).
const FD_BRS: u32 = 0x1;
/// Error state indicator in the CAN FD flags nibble (`CANFD_ESI`).
const FD_ESI: u32 = 0x2;

/// One line of a candump log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Receive time in seconds (wall clock or capture-relative, microsecond resolution).
    pub timestamp: f64,
    /// Interface name, e.g. `can0`.
    pub interface: String,
    /// The frame, with its kind (classic, CAN FD, remote, error).
    pub frame: Frame,
}

/// What is wrong with one log line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    /// Nothing but whitespace.
    #[error("empty line")]
    Empty,
    /// The line is not UTF-8 text.
    #[error("not text (invalid UTF-8)")]
    NotText,
    /// The timestamp field is not `(seconds.fraction)`.
    #[error("bad timestamp `{0}`: expected `(seconds.microseconds)`, e.g. `(1700000000.123456)`")]
    BadTimestamp(String),
    /// A field is missing.
    #[error("missing the {0}: expected `(timestamp) interface id#data`")]
    Missing(&'static str),
    /// Something follows the frame.
    #[error("unexpected `{0}` after the frame")]
    ExtraText(String),
    /// The frame field has no `#`.
    #[error("frame `{0}` has no `#` between id and data")]
    NoSeparator(String),
    /// The id has more than 8 hex digits.
    #[error("id `{0}` is too long: at most 8 hex digits (29-bit extended id)")]
    IdTooLong(String),
    /// The id is neither 3 nor 8 hex digits.
    #[error("id `{0}` must be 3 hex digits (11-bit) or 8 hex digits (29-bit)")]
    IdLength(String),
    /// A 3-digit id above 0x7FF.
    #[error("standard id {0:03X} is above 7FF; write a 29-bit id with 8 hex digits")]
    StandardIdRange(u32),
    /// An 8-digit id with bits 30-31 set.
    #[error("id {0:08X} has bits 30-31 set; a 29-bit id is at most 1FFFFFFF")]
    IdFlags(u32),
    /// A field that should be hexadecimal is not.
    #[error("{what} `{text}` is not hexadecimal")]
    NotHex {
        /// Which field.
        what: &'static str,
        /// The field's text.
        text: String,
    },
    /// The data has an odd number of hex digits.
    #[error("odd number of hex digits ({0}) in the data: each byte is two digits")]
    OddDigits(usize),
    /// A classic frame with more than 8 data bytes.
    #[error("{0} data bytes: a classic CAN frame carries at most 8 (use `##` for CAN FD)")]
    ClassicTooLong(usize),
    /// A CAN FD frame with more than 64 data bytes.
    #[error("{0} data bytes: a CAN FD frame carries at most 64")]
    FdTooLong(usize),
    /// A CAN FD frame whose length is not one a DLC can express.
    #[error("{0} data bytes: a CAN FD frame carries 0-8, 12, 16, 20, 24, 32, 48 or 64")]
    FdLength(usize),
    /// The CAN FD flags nibble is missing or not hex.
    #[error("CAN FD frame `{0}` needs one hex flags digit after `##`")]
    BadFdFlags(String),
    /// The requested length of a remote frame is not 0-8.
    #[error("remote frame length `{0}` must be one digit 0-8")]
    BadRemote(String),
    /// A candump extension this reader does not take.
    #[error("{0} is not supported")]
    Unsupported(&'static str),
}

/// A log line that could not be read or understood.
#[derive(Debug, Error)]
pub enum LogError {
    /// The line does not follow the candump format.
    #[error("line {line}: {kind}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        kind: LineError,
    },
    /// Reading the log failed.
    #[error("line {line}: cannot read the log: {source}")]
    Io {
        /// 1-based number of the line being read.
        line: usize,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}

impl LogError {
    /// The 1-based line number of the error.
    pub fn line(&self) -> usize {
        match self {
            Self::Line { line, .. } | Self::Io { line, .. } => *line,
        }
    }

    /// What was wrong with the line, if it was read.
    pub fn kind(&self) -> Option<&LineError> {
        match self {
            Self::Line { kind, .. } => Some(kind),
            Self::Io { .. } => None,
        }
    }
}

/// Parse one candump line; `line_no` (1-based) goes into the error.
pub fn parse_line(line: &str, line_no: usize) -> Result<LogEntry, LogError> {
    parse(line).map_err(|kind| LogError::Line {
        line: line_no,
        kind,
    })
}

fn parse(line: &str) -> Result<LogEntry, LineError> {
    let mut fields = line.split_whitespace();
    let stamp = fields.next().ok_or(LineError::Empty)?;
    let timestamp = parse_timestamp(stamp)?;
    let interface = fields.next().ok_or(LineError::Missing("interface"))?;
    let frame = fields.next().ok_or(LineError::Missing("frame"))?;
    if let Some(extra) = fields.next() {
        return Err(LineError::ExtraText(extra.to_string()));
    }
    let mut entry = parse_frame(frame)?;
    entry.timestamp = timestamp;
    entry.interface = interface.to_string();
    Ok(entry)
}

/// Parse a frame field as `cansend` takes it (`123#DEADBEEF`, `1F334455#R`, `123##1AABB`).
///
/// The entry's timestamp is 0 and its interface empty.
pub fn parse_frame(frame: &str) -> Result<LogEntry, LineError> {
    let (id_text, rest) = frame
        .split_once('#')
        .ok_or_else(|| LineError::NoSeparator(frame.to_string()))?;
    let (id, extended, error_frame) = parse_id(id_text)?;

    let mut kind = if error_frame {
        FrameKind::Error
    } else {
        FrameKind::Classic
    };
    let data = if let Some(fd) = rest.strip_prefix('#') {
        let mut chars = fd.chars();
        let flags = chars
            .next()
            .and_then(|c| c.to_digit(16))
            .ok_or_else(|| LineError::BadFdFlags(frame.to_string()))?;
        kind = FrameKind::Fd {
            brs: flags & FD_BRS != 0,
            esi: flags & FD_ESI != 0,
        };
        let data = parse_data(chars.as_str())?;
        if data.len() > 64 {
            return Err(LineError::FdTooLong(data.len()));
        }
        if !FD_LENGTHS.contains(&data.len()) {
            return Err(LineError::FdLength(data.len()));
        }
        data
    } else if let Some(len) = rest.strip_prefix(['R', 'r']) {
        kind = FrameKind::Remote;
        let len = match len {
            "" => 0,
            digit => digit
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= 8 && digit.len() == 1)
                .ok_or_else(|| LineError::BadRemote(digit.to_string()))?,
        };
        vec![0; len]
    } else {
        let data = parse_data(rest)?;
        if data.len() > 8 {
            return Err(LineError::ClassicTooLong(data.len()));
        }
        data
    };

    if error_frame && kind != FrameKind::Error {
        return Err(LineError::Unsupported(
            "an error frame (id flag 20000000) written as a CAN FD or remote frame",
        ));
    }
    Ok(LogEntry {
        timestamp: 0.0,
        interface: String::new(),
        frame: Frame {
            id,
            extended,
            data,
            kind,
        },
    })
}

fn parse_timestamp(field: &str) -> Result<f64, LineError> {
    let bad = || LineError::BadTimestamp(field.to_string());
    let inner = field
        .strip_prefix('(')
        .and_then(|f| f.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (secs, frac) = inner.split_once('.').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || !digits(frac) || secs.len() > 20 {
        return Err(bad());
    }
    inner.parse::<f64>().map_err(|_| bad())
}

/// Id, extended flag and error-frame flag of an id field.
fn parse_id(text: &str) -> Result<(u32, bool, bool), LineError> {
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LineError::NotHex {
            what: "id",
            text: text.to_string(),
        });
    }
    match text.len() {
        3 | 8 => {}
        9.. => return Err(LineError::IdTooLong(text.to_string())),
        _ => return Err(LineError::IdLength(text.to_string())),
    }
    let value = u32::from_str_radix(text, 16).map_err(|_| LineError::NotHex {
        what: "id",
        text: text.to_string(),
    })?;
    match text.len() {
        3 if value > 0x7FF => Err(LineError::StandardIdRange(value)),
        3 => Ok((value, false, false)),
        8 if value & ERR_FLAG != 0 && value & 0xC000_0000 == 0 => {
            Ok((value & !ERR_FLAG, false, true))
        }
        8 if value > 0x1FFF_FFFF => Err(LineError::IdFlags(value)),
        _ => Ok((value, true, false)),
    }
}

/// Hex byte pairs, optionally separated by `.` between bytes (as `cansend` accepts).
fn parse_data(text: &str) -> Result<Vec<u8>, LineError> {
    if text.contains('_') {
        return Err(LineError::Unsupported("the `_<dlc>` length code suffix"));
    }
    let not_hex = || LineError::NotHex {
        what: "data",
        text: text.to_string(),
    };
    if !text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.') {
        return Err(not_hex());
    }
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let digits = text.bytes().filter(|b| *b != b'.').count();
    let mut out = Vec::with_capacity(digits / 2);
    for part in text.split('.') {
        if part.is_empty() {
            return Err(not_hex());
        }
        if part.len() % 2 != 0 {
            return Err(LineError::OddDigits(digits));
        }
        out.extend(hex::decode(part).map_err(|_| not_hex())?);
    }
    Ok(out)
}

/// Format an entry as a candump line (no newline): 3- or 8-digit id, uppercase hex.
///
/// The timestamp is written with microsecond resolution (negative or non-finite as 0).
pub fn format_entry(entry: &LogEntry) -> String {
    let micros = (entry.timestamp * 1e6).round();
    let micros = if micros.is_finite() && micros > 0.0 {
        micros as u64
    } else {
        0
    };
    let (secs, frac) = (micros / 1_000_000, micros % 1_000_000);

    let frame = &entry.frame;
    let id = if frame.kind == FrameKind::Error {
        format!("{:08X}", (frame.id & 0x1FFF_FFFF) | ERR_FLAG)
    } else if frame.extended {
        format!("{:08X}", frame.id & 0x1FFF_FFFF)
    } else {
        format!("{:03X}", frame.id & 0x7FF)
    };
    let hex = || hex::encode_upper(&frame.data);
    let body = match frame.kind {
        FrameKind::Remote => match frame.data.len() {
            0 => "R".to_string(),
            n => format!("R{}", n.min(8)),
        },
        FrameKind::Fd { brs, esi } => {
            format!("#{:X}{}", u8::from(brs) | (u8::from(esi) << 1), hex())
        }
        FrameKind::Classic | FrameKind::Error => hex(),
    };
    format!("({secs:010}.{frac:06}) {} {id}#{body}", entry.interface)
}

/// Reads a candump log line by line, skipping blank lines.
pub struct LogReader<R: BufRead> {
    inner: R,
    line_no: usize,
    buf: Vec<u8>,
    failed: bool,
}

impl<R: BufRead> LogReader<R> {
    /// A reader over any buffered source (a file in a `BufReader`, a byte slice, ...).
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            line_no: 0,
            buf: Vec::new(),
            failed: false,
        }
    }

    /// The 1-based number of the last line read (0 before the first).
    pub fn line_number(&self) -> usize {
        self.line_no
    }
}

impl<R: BufRead> Iterator for LogReader<R> {
    type Item = Result<LogEntry, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            self.buf.clear();
            match self.inner.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {
                    self.line_no += 1;
                    let Ok(text) = std::str::from_utf8(&self.buf) else {
                        return Some(Err(LogError::Line {
                            line: self.line_no,
                            kind: LineError::NotText,
                        }));
                    };
                    if text.trim().is_empty() {
                        continue;
                    }
                    return Some(parse_line(text, self.line_no));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    // A failing source would fail again: report once, then end.
                    self.failed = true;
                    return Some(Err(LogError::Io {
                        line: self.line_no + 1,
                        source,
                    }));
                }
            }
        }
    }
}

/// Writes candump log lines.
pub struct LogWriter<W: Write> {
    inner: W,
}

impl<W: Write> LogWriter<W> {
    /// A writer into any byte sink (wrap files in a `BufWriter`).
    pub fn new(inner: W) -> Self {
        Self { inner }
    }

    /// Write one entry as a line.
    pub fn write_entry(&mut self, entry: &LogEntry) -> io::Result<()> {
        writeln!(self.inner, "{}", format_entry(entry))
    }

    /// Flush the underlying sink.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// The underlying sink.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn entry(line: &str) -> LogEntry {
        parse_line(line, 1).unwrap_or_else(|e| panic!("{e}"))
    }

    #[rstest]
    #[case::classic("(1700000000.123456) can0 123#DEADBEEF", 1_700_000_000.123_456, 0x123, false, &[0xDE, 0xAD, 0xBE, 0xEF])]
    #[case::extended("(0000000001.000000) vcan1 1F334455#0011", 1.0, 0x1F33_4455, true, &[0x00, 0x11])]
    #[case::extended_small("(0000000001.000000) can0 00000123#01", 1.0, 0x123, true, &[0x01])]
    #[case::empty_data("(1.5) can0 7FF#", 1.5, 0x7FF, false, &[])]
    #[case::lowercase("(1.5) can0 1ab#deadbeef", 1.5, 0x1AB, false, &[0xDE, 0xAD, 0xBE, 0xEF])]
    #[case::dots("(1.5) can0 123#11.22.33", 1.5, 0x123, false, &[0x11, 0x22, 0x33])]
    #[case::eight_bytes("(1.5) can0 000#0011223344556677", 1.5, 0, false, &[0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77])]
    #[case::crlf_and_spaces("  (1.5)\tcan0   123#01 \r\n", 1.5, 0x123, false, &[0x01])]
    fn classic_lines(
        #[case] line: &str,
        #[case] ts: f64,
        #[case] id: u32,
        #[case] extended: bool,
        #[case] data: &[u8],
    ) {
        let e = entry(line);
        assert!((e.timestamp - ts).abs() < 1e-6, "{}", e.timestamp);
        assert_eq!(
            e.frame,
            Frame {
                id,
                extended,
                data: data.to_vec(),
                kind: FrameKind::Classic,
            }
        );
        assert!(e.interface.contains("can"));
    }

    #[rstest]
    #[case::remote("(1.0) can0 123#R", FrameKind::Remote, 0)]
    #[case::remote_len("(1.0) can0 123#R5", FrameKind::Remote, 5)]
    #[case::remote_extended("(1.0) can0 1F334455#R8", FrameKind::Remote, 8)]
    #[case::fd_brs("(1.0) can0 123##1AABB", FrameKind::Fd { brs: true, esi: false }, 2)]
    #[case::fd_esi("(1.0) can0 123##2AABB", FrameKind::Fd { brs: false, esi: true }, 2)]
    #[case::fd_no_data("(1.0) can0 123##0", FrameKind::Fd { brs: false, esi: false }, 0)]
    #[case::fd_fdf_bit("(1.0) can0 123##4AA", FrameKind::Fd { brs: false, esi: false }, 1)]
    #[case::fd_flags_f("(1.0) can0 1F334455##F00112233445566778899AABB", FrameKind::Fd { brs: true, esi: true }, 12)]
    fn remote_and_fd_lines(#[case] line: &str, #[case] kind: FrameKind, #[case] len: usize) {
        let e = entry(line);
        assert_eq!((e.frame.kind, e.frame.data.len()), (kind, len));
    }

    #[test]
    fn fd_64_bytes() {
        let line = format!("(1.0) can0 123##1{}", "A5".repeat(64));
        let e = entry(&line);
        assert_eq!(e.frame.data, vec![0xA5; 64]);
        assert_eq!(
            format_entry(&e),
            format!("(0000000001.000000) can0 123##1{}", "A5".repeat(64))
        );
    }

    #[test]
    fn error_frame() {
        let e = entry("(1.0) can0 20000080#0000000000000000");
        assert_eq!(e.frame.kind, FrameKind::Error);
        assert_eq!(
            (e.frame.id, e.frame.extended, e.frame.data.len()),
            (0x80, false, 8)
        );
    }

    #[rstest]
    #[case::empty("   ", LineError::Empty)]
    #[case::no_parens("can0 123#00", LineError::BadTimestamp("can0".into()))]
    #[case::letters_in_time("(17000.abc) can0 123#00", LineError::BadTimestamp("(17000.abc)".into()))]
    #[case::open_paren("(1700000000.123456 can0 123#00", LineError::BadTimestamp("(1700000000.123456".into()))]
    #[case::negative_time("(-1.0) can0 123#00", LineError::BadTimestamp("(-1.0)".into()))]
    #[case::no_fraction("(1700000000) can0 123#00", LineError::BadTimestamp("(1700000000)".into()))]
    #[case::no_interface("(1.0)", LineError::Missing("interface"))]
    #[case::no_frame("(1.0) can0", LineError::Missing("frame"))]
    #[case::extra("(1.0) can0 123#00 R", LineError::ExtraText("R".into()))]
    #[case::no_hash("(1.0) can0 12300", LineError::NoSeparator("12300".into()))]
    #[case::odd_digits("(1.0) can0 123#ABC", LineError::OddDigits(3))]
    #[case::odd_with_dots("(1.0) can0 123#AB.C", LineError::OddDigits(3))]
    #[case::empty_byte("(1.0) can0 123#AB..CD", LineError::NotHex { what: "data", text: "AB..CD".into() })]
    #[case::id_too_long("(1.0) can0 123456789#00", LineError::IdTooLong("123456789".into()))]
    #[case::id_four_digits("(1.0) can0 1234#00", LineError::IdLength("1234".into()))]
    #[case::id_empty("(1.0) can0 #00", LineError::IdLength(String::new()))]
    #[case::standard_range("(1.0) can0 800#00", LineError::StandardIdRange(0x800))]
    #[case::id_not_hex("(1.0) can0 G23#00", LineError::NotHex { what: "id", text: "G23".into() })]
    #[case::id_plus("(1.0) can0 +23#00", LineError::NotHex { what: "id", text: "+23".into() })]
    #[case::id_flags("(1.0) can0 C0000123#00", LineError::IdFlags(0xC000_0123))]
    #[case::data_not_hex("(1.0) can0 123#ZZ", LineError::NotHex { what: "data", text: "ZZ".into() })]
    #[case::data_unicode("(1.0) can0 123#\u{c4}\u{c4}", LineError::NotHex { what: "data", text: "\u{c4}\u{c4}".into() })]
    #[case::classic_nine("(1.0) can0 123#001122334455667788", LineError::ClassicTooLong(9))]
    #[case::fd_nine("(1.0) can0 123##1001122334455667788", LineError::FdLength(9))]
    #[case::fd_no_flags("(1.0) can0 123##", LineError::BadFdFlags("123##".into()))]
    #[case::fd_bad_flags("(1.0) can0 123##G00", LineError::BadFdFlags("123##G00".into()))]
    #[case::remote_nine("(1.0) can0 123#R9", LineError::BadRemote("9".into()))]
    #[case::error_as_fd(
        "(1.0) can0 20000080##100",
        LineError::Unsupported(
            "an error frame (id flag 20000000) written as a CAN FD or remote frame"
        )
    )]
    #[case::error_as_remote(
        "(1.0) can0 20000080#R",
        LineError::Unsupported(
            "an error frame (id flag 20000000) written as a CAN FD or remote frame"
        )
    )]
    #[case::remote_junk("(1.0) can0 123#R05", LineError::BadRemote("05".into()))]
    #[case::len8_dlc(
        "(1.0) can0 123#1122334455667788_9",
        LineError::Unsupported("the `_<dlc>` length code suffix")
    )]
    fn malformed_lines(#[case] line: &str, #[case] want: LineError) {
        let err = parse_line(line, 7).unwrap_err();
        assert_eq!(err.line(), 7);
        assert_eq!(err.kind(), Some(&want), "{err}");
        assert!(err.to_string().starts_with("line 7: "), "{err}");
    }

    #[rstest]
    #[case::classic("123#DEADBEEF", 0x123, false, 4, FrameKind::Classic)]
    #[case::extended("1F334455#11", 0x1F33_4455, true, 1, FrameKind::Classic)]
    #[case::fd("123##1AABB", 0x123, false, 2, FrameKind::Fd { brs: true, esi: false })]
    fn frame_fields(
        #[case] text: &str,
        #[case] id: u32,
        #[case] extended: bool,
        #[case] len: usize,
        #[case] kind: FrameKind,
    ) {
        let e = parse_frame(text).unwrap();
        assert_eq!(
            (
                e.frame.id,
                e.frame.extended,
                e.frame.data.len(),
                e.frame.kind
            ),
            (id, extended, len, kind)
        );
        assert_eq!(
            parse_frame("123#ZZ").unwrap_err(),
            LineError::NotHex {
                what: "data",
                text: "ZZ".into()
            }
        );
    }

    #[test]
    fn fd_longer_than_64_bytes() {
        let line = format!("(1.0) can0 123##1{}", "00".repeat(65));
        assert_eq!(
            parse_line(&line, 1).unwrap_err().kind(),
            Some(&LineError::FdTooLong(65))
        );
    }

    #[rstest]
    #[case("(1700000000.123456) can0 123#DEADBEEF")]
    #[case("(0000000000.000001) vcan0 1F334455#")]
    #[case("(1700000000.999999) can1 7FF#R")]
    #[case("(1700000000.000000) can1 00000001#R8")]
    #[case("(1700000000.500000) can0 123##1AABB")]
    #[case("(1700000000.500000) can0 1F334455##3")]
    #[case("(1700000000.500000) can0 1F334455##2")]
    #[case("(1700000000.500000) can0 20000004#0000080000000000")]
    fn canonical_lines_round_trip(#[case] line: &str) {
        assert_eq!(format_entry(&entry(line)), line);
    }

    #[test]
    fn generated_entries_round_trip() {
        let mut state: u64 = 0x1234_5678;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        for _ in 0..500 {
            let extended = next() % 2 == 0;
            let id = if extended {
                (next() as u32) & 0x1FFF_FFFF
            } else {
                (next() as u32) & 0x7FF
            };
            let kind = next() % 3;
            let (len, kind) = match kind {
                0 => ((next() % 9) as usize, FrameKind::Classic),
                1 => (
                    FD_LENGTHS[(next() % 16) as usize],
                    FrameKind::Fd {
                        brs: next() % 2 == 0,
                        esi: next() % 2 == 0,
                    },
                ),
                _ => ((next() % 9) as usize, FrameKind::Remote),
            };
            let data = if kind == FrameKind::Remote {
                vec![0; len]
            } else {
                (0..len).map(|_| next() as u8).collect()
            };
            let e = LogEntry {
                timestamp: (next() % 2_000_000_000) as f64 + (next() % 1_000_000) as f64 / 1e6,
                interface: format!("can{}", next() % 4),
                frame: Frame::with_kind(id, extended, data, kind).unwrap(),
            };
            let line = format_entry(&e);
            let back = parse_line(&line, 1).unwrap_or_else(|err| panic!("{line}: {err}"));
            assert_eq!(back.frame, e.frame, "{line}");
            assert_eq!(back.interface, e.interface);
            assert!((back.timestamp - e.timestamp).abs() < 1e-6, "{line}");
            assert_eq!(format_entry(&back), line);
        }
    }

    #[test]
    fn reader_skips_blank_lines_and_reports_bad_ones() {
        let log =
            b"(1.0) can0 123#01\n\n   \n(2.0) can0 123#0\n(3.0) can0 \xFF#00\n(4.0) can0 124#02";
        let items: Vec<_> = LogReader::new(&log[..]).collect();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0].as_ref().unwrap().frame.data, [0x01]);
        let err = items[1].as_ref().unwrap_err();
        assert_eq!(
            (err.line(), err.kind()),
            (4, Some(&LineError::OddDigits(1)))
        );
        let err = items[2].as_ref().unwrap_err();
        assert_eq!((err.line(), err.kind()), (5, Some(&LineError::NotText)));
        let last = items[3].as_ref().unwrap();
        assert_eq!((last.frame.id, last.timestamp), (0x124, 4.0));
    }

    struct Failing;

    impl io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("device gone"))
        }
    }

    #[test]
    fn reader_reports_io_errors_once() {
        let mut reader = LogReader::new(io::BufReader::new(Failing));
        let err = reader.next().unwrap().unwrap_err();
        assert!(matches!(err, LogError::Io { line: 1, .. }), "{err}");
        assert!(reader.next().is_none());
    }

    #[test]
    fn writer_writes_lines_that_read_back() {
        let entries: Vec<LogEntry> = [
            "(1.0) can0 123#01",
            "(2.0) can1 1F334455##1AABB",
            "(3.0) can0 7FF#R2",
        ]
        .iter()
        .map(|l| entry(l))
        .collect();
        let mut writer = LogWriter::new(Vec::new());
        for e in &entries {
            writer.write_entry(e).unwrap();
        }
        writer.flush().unwrap();
        let bytes = writer.into_inner();
        let back: Vec<LogEntry> = LogReader::new(&bytes[..]).map(Result::unwrap).collect();
        assert_eq!(back, entries);
        assert!(String::from_utf8(bytes).unwrap().ends_with("7FF#R2\n"));
    }

    #[test]
    fn arbitrary_lines_never_panic() {
        let alphabet: Vec<char> = "()#R.0123456789abcdefABCDEFGxz_ \t\u{e9}\u{1F600}"
            .chars()
            .collect();
        let mut state: u64 = 99;
        for _ in 0..5000 {
            let mut line = String::from("(1.0) can0 ");
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let len = (state >> 59) as usize;
            for _ in 0..len {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                line.push(alphabet[(state >> 33) as usize % alphabet.len()]);
            }
            if let Ok(e) = parse_line(&line, 1) {
                assert_eq!(
                    parse_line(&format_entry(&e), 1).unwrap().frame,
                    e.frame,
                    "{line}"
                );
            }
        }
    }
}
