//! DBC text -> typed model: parse with can-dbc, then check and convert.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use can_dbc::{
    AttributeValue, Comment, MessageId, MultiplexIndicator, NumericValue, SignalExtendedValueType,
    ValueDescription,
};

use super::error::{DbcError, Location};
use super::model::{ByteOrder, Message, Multiplex, Signal, ValueType};

/// Pseudo-message that DBC editors use to hold signals not placed in any frame.
const INDEPENDENT_SIGNALS: &str = "VECTOR__INDEPENDENT_SIG_MSG";

/// Messages of a DBC text, plus notes about anything that was skipped.
pub(super) fn load(text: &str, origin: &str) -> Result<(Vec<Message>, Vec<String>), DbcError> {
    let ast = match parse_ast(text) {
        Ok(ast) => ast,
        Err(failure) => return Err(parse_error(text, origin, &failure)),
    };
    let scan = scan(text);
    Converter::new(text, origin, &ast, &scan).run()
}

/// What can-dbc reported: an error, or a panic inside it.
enum Failure {
    Error(can_dbc::DbcError),
    Panic,
}

fn parse_ast(text: &str) -> Result<can_dbc::Dbc, Failure> {
    match catch_unwind(AssertUnwindSafe(|| can_dbc::Dbc::try_from(text))) {
        Ok(Ok(ast)) => Ok(ast),
        Ok(Err(e)) => Err(Failure::Error(e)),
        Err(_) => Err(Failure::Panic),
    }
}

// ---------------------------------------------------------------------------------------
// Positions in the text
// ---------------------------------------------------------------------------------------

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

/// The text of the line containing a byte offset.
fn line_text(text: &str, offset: usize) -> &str {
    let offset = offset.min(text.len());
    let start = text
        .as_bytes()
        .iter()
        .take(offset)
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let end = text
        .as_bytes()
        .iter()
        .skip(offset)
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| offset + i);
    text.get(start..end)
        .unwrap_or_default()
        .trim_end_matches('\r')
}

fn location(text: &str, origin: &str, offset: Option<usize>) -> Location {
    match offset {
        Some(offset) => {
            let (line, column) = line_col(text, offset);
            Location {
                origin: origin.to_string(),
                line,
                column,
            }
        }
        None => Location {
            origin: origin.to_string(),
            line: 0,
            column: 0,
        },
    }
}

/// Where a `BO_` block is written in the text.
struct MessageSite {
    offset: usize,
    raw_id: Option<u64>,
    name: String,
    signals: Vec<(String, usize)>,
    open: bool,
}

/// Statement boundaries and message/signal sites found by a light scan of the text.
struct Scan {
    /// Byte offsets of lines that start a statement (column 0, outside a string) or a
    /// signal line; the text before any of them parses on its own.
    statement_starts: Vec<usize>,
    messages: Vec<MessageSite>,
}

fn keyword<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(word)?;
    rest.starts_with([' ', '\t']).then_some(rest)
}

fn scan(text: &str) -> Scan {
    let mut statement_starts = Vec::new();
    let mut messages: Vec<MessageSite> = Vec::new();
    let mut in_string = false;
    let mut line_start = 0;
    for raw_line in text.split_inclusive('\n') {
        let start = line_start;
        line_start += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        if !in_string {
            let trimmed = line.trim_start();
            let at = start + (line.len() - trimmed.len());
            if at == start && !trimmed.is_empty() {
                statement_starts.push(start);
            }
            if let Some(rest) = keyword(trimmed, "BO_") {
                let mut tokens = rest.split_whitespace();
                let raw_id = tokens.next().and_then(|t| t.parse::<u64>().ok());
                let name = tokens.next().unwrap_or_default();
                let name = name.split(':').next().unwrap_or_default().to_string();
                messages.push(MessageSite {
                    offset: at,
                    raw_id,
                    name,
                    signals: Vec::new(),
                    open: true,
                });
            } else if let Some(rest) = keyword(trimmed, "SG_") {
                // A message cut before one of its signals is still a whole statement.
                if at != start {
                    statement_starts.push(start);
                }
                if let Some(site) = messages.last_mut().filter(|m| m.open) {
                    let name = rest.split_whitespace().next().unwrap_or_default();
                    let name = name.split(':').next().unwrap_or_default().to_string();
                    site.signals.push((name, at));
                }
            } else if !trimmed.is_empty() && !trimmed.starts_with("//") {
                if let Some(site) = messages.last_mut() {
                    site.open = false;
                }
            }
        }
        // Follow string state as the grammar does: `\"` inside a string does not end it.
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (in_string, c) {
                (true, '\\') if chars.peek() == Some(&'"') => {
                    chars.next();
                }
                (_, '"') => in_string = !in_string,
                (false, '/') if chars.peek() == Some(&'/') => break,
                _ => {}
            }
        }
    }
    Scan {
        statement_starts,
        messages,
    }
}

// ---------------------------------------------------------------------------------------
// Parse errors
// ---------------------------------------------------------------------------------------

fn parse_error(text: &str, origin: &str, failure: &Failure) -> DbcError {
    if let Failure::Error(can_dbc::DbcError::Pest(pest)) = failure {
        // The pest location's Debug form is `Pos(offset)` or `Span((start, end))`.
        let offset = first_number(&format!("{:?}", pest.location));
        let at = location(text, origin, offset);
        let expected = humanize(&pest.variant.message());
        let source = offset
            .map(|o| line_text(text, o).trim())
            .unwrap_or_default();
        let message = if source.is_empty() {
            format!("DBC syntax error: {expected}")
        } else {
            format!("DBC syntax error: {expected} (in `{}`)", shorten(source))
        };
        return DbcError::Parse { at, message };
    }

    // Errors found while building the syntax tree carry no position. Find the first
    // statement whose inclusion makes the parse fail, then the offending token in it.
    let (start, end) = failing_statement(text);
    let statement = text.get(start..end).unwrap_or_default();
    let (token, message) = match failure {
        Failure::Panic => (None, "the DBC parser failed on this statement".to_string()),
        Failure::Error(e) => describe(e),
    };
    let offset = token
        .and_then(|t| find_token(statement, &t))
        .map(|i| start + i)
        .or_else(|| first_non_blank(statement).map(|i| start + i));
    let at = location(text, origin, offset.or(Some(start)));
    DbcError::Parse { at, message }
}

/// Grammar rule names in a parser message, in DBC terms.
fn humanize(message: &str) -> String {
    if message.contains("EOI") {
        return "expected the start of a DBC statement (VERSION, NS_, BS_, BU_, BO_, CM_, BA_DEF_, \
                BA_, VAL_, SIG_VALTYPE_, ...) or the end of the file"
            .to_string();
    }
    message
        .replace(
            "big_endian or little_endian",
            "byte order 0 (Motorola) or 1 (Intel)",
        )
        .replace(
            "multiplexer_indicator",
            "`:` or a multiplexer indicator (M, m<value>)",
        )
        .replace("quoted_str", "quoted string")
        .replace("min_max", "[min|max]")
        .replace('_', " ")
}

/// At most 80 characters, control characters escaped.
fn shorten(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == 77 && s.chars().count() > 80 {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn first_number(s: &str) -> Option<usize> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    let digits: String = s
        .get(start..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn first_non_blank(s: &str) -> Option<usize> {
    s.find(|c: char| !c.is_whitespace())
}

/// Byte offset of `token` in `s` where it stands as a whole token.
fn find_token(s: &str, token: &str) -> Option<usize> {
    if token.is_empty() {
        return None;
    }
    let is_word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-');
    s.match_indices(token).map(|(i, _)| i).find(|&i| {
        let before = s.get(..i).and_then(|b| b.chars().next_back());
        let after = s.get(i + token.len()..).and_then(|a| a.chars().next());
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// The offending token (if the error names one) and a description of the error.
fn describe(e: &can_dbc::DbcError) -> (Option<String>, String) {
    use can_dbc::DbcError as E;
    match e {
        E::InvalidUint(v) => (
            Some(v.clone()),
            format!("`{v}` is not a valid unsigned integer (0 to 2^64-1) here"),
        ),
        E::InvalidInt(v) => (
            Some(v.clone()),
            format!("`{v}` is not a valid 64-bit integer here"),
        ),
        E::InvalidFloat(v) => (Some(v.clone()), format!("`{v}` is not a valid number here")),
        E::InvalidNumericValue(v) => (Some(v.clone()), format!("`{v}` is not a valid number here")),
        E::UnknownMultiplexIndicator(v) => (
            Some(v.clone()),
            format!("`{v}` is not a multiplexer indicator (use `M` or `m<value>`)"),
        ),
        E::MessageIdOutOfRange(v) => (
            Some(v.to_string()),
            format!(
                "message id {v} is out of range: ids are 32-bit numbers \
                 (11-bit standard ids, or 29-bit extended ids with bit 31 set)"
            ),
        ),
        other => (
            None,
            format!(
                "this statement cannot be used: {}",
                other.to_string().replace('_', " ")
            ),
        ),
    }
}

/// Byte range of the first statement whose inclusion makes can-dbc fail with a
/// non-syntax error (or panic). Prefixes cut at statement boundaries parse on their own.
fn failing_statement(text: &str) -> (usize, usize) {
    let scan = scan(text);
    let mut ends: Vec<usize> = scan
        .statement_starts
        .into_iter()
        .filter(|&s| s > 0)
        .collect();
    ends.push(text.len());
    let fails = |end: usize| match parse_ast(text.get(..end).unwrap_or_default()) {
        Ok(_) | Err(Failure::Error(can_dbc::DbcError::Pest(_))) => false,
        Err(_) => true,
    };
    let (mut lo, mut hi) = (0usize, ends.len().saturating_sub(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ends.get(mid).copied().is_some_and(fails) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let end = ends.get(lo).copied().unwrap_or(text.len());
    let start = if lo == 0 {
        0
    } else {
        ends.get(lo - 1).copied().unwrap_or(0)
    };
    (start, end)
}

// ---------------------------------------------------------------------------------------
// Conversion
// ---------------------------------------------------------------------------------------

type SignalKey = (MessageId, String);

struct Converter<'a> {
    text: &'a str,
    origin: &'a str,
    ast: &'a can_dbc::Dbc,
    scan: &'a Scan,
    comments_msg: HashMap<MessageId, String>,
    comments_sig: HashMap<SignalKey, String>,
    value_tables: HashMap<SignalKey, BTreeMap<i64, String>>,
    value_types: HashMap<SignalKey, SignalExtendedValueType>,
    cycle_times: HashMap<MessageId, AttributeValue>,
    notes: Vec<String>,
}

impl<'a> Converter<'a> {
    fn new(text: &'a str, origin: &'a str, ast: &'a can_dbc::Dbc, scan: &'a Scan) -> Self {
        let mut comments_msg = HashMap::new();
        let mut comments_sig = HashMap::new();
        for comment in &ast.comments {
            match comment {
                Comment::Message { id, comment } => {
                    comments_msg.insert(*id, unescape(comment));
                }
                Comment::Signal {
                    message_id,
                    name,
                    comment,
                } => {
                    comments_sig.insert((*message_id, name.clone()), unescape(comment));
                }
                _ => {}
            }
        }
        let mut value_tables: HashMap<SignalKey, BTreeMap<i64, String>> = HashMap::new();
        for vd in &ast.value_descriptions {
            if let ValueDescription::Signal {
                message_id,
                name,
                value_descriptions,
            } = vd
            {
                let table = value_tables.entry((*message_id, name.clone())).or_default();
                for d in value_descriptions {
                    table.insert(d.id, unescape(&d.description));
                }
            }
        }
        let value_types = ast
            .signal_extended_value_type_list
            .iter()
            .map(|v| {
                (
                    (v.message_id, v.signal_name.clone()),
                    v.signal_extended_value_type,
                )
            })
            .collect();
        let cycle_times = ast
            .attribute_values_message
            .iter()
            .filter(|a| a.name == "GenMsgCycleTime")
            .map(|a| (a.message_id, a.value.clone()))
            .collect();
        Self {
            text,
            origin,
            ast,
            scan,
            comments_msg,
            comments_sig,
            value_tables,
            value_types,
            cycle_times,
            notes: Vec::new(),
        }
    }

    fn at(&self, offset: Option<usize>) -> Location {
        location(self.text, self.origin, offset)
    }

    fn run(mut self) -> Result<(Vec<Message>, Vec<String>), DbcError> {
        let mut messages: Vec<Message> = Vec::new();
        let mut ids: HashMap<(u32, bool), String> = HashMap::new();
        let mut names: HashSet<String> = HashSet::new();
        let mut converted: HashSet<SignalKey> = HashSet::new();
        let mut known_ids: HashSet<MessageId> = HashSet::new();

        for (index, m) in self.ast.messages.iter().enumerate() {
            let site = self
                .scan
                .messages
                .get(index)
                .filter(|s| s.name == m.name)
                .or_else(|| self.scan.messages.iter().find(|s| s.name == m.name));
            known_ids.insert(m.id);
            for s in &m.signals {
                converted.insert((m.id, s.name.clone()));
            }
            let Some(message) = self.message(m, site)? else {
                continue;
            };
            let at = self.at(site.map(|s| s.offset));
            let bad = |reason: String| DbcError::BadMessage {
                at: at.clone(),
                message: m.name.clone(),
                reason,
            };
            if let Some(other) = ids.get(&(message.id, message.extended)) {
                return Err(bad(format!(
                    "id {:#X} is already used by message {other}; ids must be unique",
                    message.id
                )));
            }
            if !names.insert(message.name.clone()) {
                return Err(bad(
                    "the name is used by an earlier message; names must be unique".into(),
                ));
            }
            ids.insert((message.id, message.extended), message.name.clone());
            messages.push(message);
        }

        self.note_dangling(&converted, &known_ids);
        Ok((messages, self.notes))
    }

    /// Convert one message; `Ok(None)` for the pseudo-message of unplaced signals.
    fn message(
        &mut self,
        m: &can_dbc::Message,
        site: Option<&MessageSite>,
    ) -> Result<Option<Message>, DbcError> {
        let at = self.at(site.map(|s| s.offset));
        let bad = |reason: String| DbcError::BadMessage {
            at: at.clone(),
            message: m.name.clone(),
            reason,
        };

        let (id, extended) = match m.id {
            MessageId::Standard(v) => (u32::from(v), false),
            MessageId::Extended(v) => (v, true),
        };
        if let Some(raw) = site.and_then(|s| s.raw_id) {
            if raw & 0x8000_0000 == 0 && raw > 0x7FF {
                return Err(bad(format!(
                    "standard id {raw} ({raw:#X}) needs more than 11 bits; write an extended \
                     id with bit 31 set ({})",
                    raw | 0x8000_0000
                )));
            }
            if raw & 0x8000_0000 != 0 && raw & 0x6000_0000 != 0 {
                if m.name == INDEPENDENT_SIGNALS {
                    self.notes.push(format!(
                        "{at}: skipped {INDEPENDENT_SIGNALS} (it holds {} signals not placed \
                         in any frame)",
                        m.signals.len()
                    ));
                    return Ok(None);
                }
                return Err(bad(format!(
                    "id {raw} ({raw:#X}) has bits 29-30 set; an extended id is 29 bits plus bit 31"
                )));
            }
        }
        let size = usize::try_from(m.size)
            .ok()
            .filter(|&s| s <= 64)
            .ok_or_else(|| {
                bad(format!(
                    "size {} bytes is more than 64 (the CAN FD maximum)",
                    m.size
                ))
            })?;

        let mut signals: Vec<Signal> = Vec::with_capacity(m.signals.len());
        let mut sites: Vec<Location> = Vec::with_capacity(m.signals.len());
        let mut sig_cursor = 0;
        for s in &m.signals {
            let sig_offset = site.and_then(|site| {
                let found = site
                    .signals
                    .iter()
                    .enumerate()
                    .skip(sig_cursor)
                    .find(|(_, (n, _))| *n == s.name)
                    .map(|(i, (_, off))| (i, *off));
                if let Some((i, _)) = found {
                    sig_cursor = i + 1;
                }
                found.map(|(_, off)| off)
            });
            let sig_at = self.at(sig_offset.or(site.map(|s| s.offset)));
            if signals.iter().any(|x| x.name == s.name) {
                return Err(DbcError::BadSignal {
                    at: sig_at,
                    message: m.name.clone(),
                    signal: s.name.clone(),
                    reason: "defined twice in this message".into(),
                });
            }
            signals.push(self.signal(m, s, size, sig_at.clone())?);
            sites.push(sig_at);
        }

        self.check_multiplexing(m, &signals, &sites, at)?;

        let cycle_time_ms = self
            .cycle_times
            .get(&m.id)
            .or_else(|| self.ast.attribute_default("GenMsgCycleTime"))
            .and_then(attribute_u32)
            .filter(|&t| t > 0);

        Ok(Some(Message {
            id,
            extended,
            name: m.name.clone(),
            size,
            signals,
            cycle_time_ms,
            comment: self.comments_msg.get(&m.id).cloned(),
        }))
    }

    fn signal(
        &self,
        m: &can_dbc::Message,
        s: &can_dbc::Signal,
        frame_size: usize,
        at: Location,
    ) -> Result<Signal, DbcError> {
        let bad = |reason: String| DbcError::BadSignal {
            at: at.clone(),
            message: m.name.clone(),
            signal: s.name.clone(),
            reason,
        };
        let key = (m.id, s.name.clone());

        let size = u32::try_from(s.size)
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "length {} bits; a signal is 1 to 64 bits long",
                    s.size
                ))
            })?;
        let start_bit = u32::try_from(s.start_bit).map_err(|_| {
            bad(format!(
                "start bit {} is beyond the {frame_size}-byte frame",
                s.start_bit
            ))
        })?;
        let byte_order = match s.byte_order {
            can_dbc::ByteOrder::LittleEndian => ByteOrder::Intel,
            can_dbc::ByteOrder::BigEndian => ByteOrder::Motorola,
        };
        let value_type = match self.value_types.get(&key) {
            Some(SignalExtendedValueType::IEEEfloat32Bit) => {
                if size != 32 {
                    return Err(bad(format!(
                        "SIG_VALTYPE_ 1 (float) needs a length of 32 bits, not {size}"
                    )));
                }
                ValueType::Float32
            }
            Some(SignalExtendedValueType::IEEEdouble64bit) => {
                if size != 64 {
                    return Err(bad(format!(
                        "SIG_VALTYPE_ 2 (double) needs a length of 64 bits, not {size}"
                    )));
                }
                ValueType::Float64
            }
            Some(SignalExtendedValueType::SignedOrUnsignedInteger) | None => match s.value_type {
                can_dbc::ValueType::Signed => ValueType::Signed,
                can_dbc::ValueType::Unsigned => ValueType::Unsigned,
            },
        };
        if !s.factor.is_finite() || s.factor == 0.0 {
            return Err(bad(format!(
                "factor {} must be a finite, non-zero number",
                s.factor
            )));
        }
        if !s.offset.is_finite() {
            return Err(bad(format!("offset {} must be a finite number", s.offset)));
        }
        let multiplex = match s.multiplexer_indicator {
            MultiplexIndicator::Plain => Multiplex::Plain,
            MultiplexIndicator::Multiplexor => Multiplex::Multiplexor,
            MultiplexIndicator::MultiplexedSignal(n) => Multiplex::Multiplexed(n),
            MultiplexIndicator::MultiplexorAndMultiplexedSignal(n) => {
                return Err(bad(format!(
                    "extended multiplexing (`m{n}M`, a multiplexed multiplexor) is not supported"
                )))
            }
        };

        let signal = Signal {
            name: s.name.clone(),
            start_bit,
            size,
            byte_order,
            value_type,
            factor: s.factor,
            offset: s.offset,
            min: numeric(s.min),
            max: numeric(s.max),
            unit: s.unit.clone(),
            multiplex,
            value_table: self.value_tables.get(&key).cloned().unwrap_or_default(),
            comment: self.comments_sig.get(&key).cloned(),
        };
        match signal.bytes_needed() {
            Some(needed) if needed <= frame_size => Ok(signal),
            needed => {
                let order = match byte_order {
                    ByteOrder::Intel => "Intel (@1)",
                    ByteOrder::Motorola => "Motorola (@0)",
                };
                let needed = needed.map_or_else(|| "more than 64".to_string(), |n| n.to_string());
                Err(bad(format!(
                    "{order} start bit {start_bit}, length {size} needs {needed} bytes, but the \
                     frame has {frame_size}; check the start bit, length and byte order"
                )))
            }
        }
    }

    fn check_multiplexing(
        &self,
        m: &can_dbc::Message,
        signals: &[Signal],
        sites: &[Location],
        at: Location,
    ) -> Result<(), DbcError> {
        let signal_at = |s: &Signal| {
            signals
                .iter()
                .position(|x| x.name == s.name)
                .and_then(|i| sites.get(i))
                .cloned()
                .unwrap_or_else(|| at.clone())
        };
        let bad = |reason: String| DbcError::BadMessage {
            at: at.clone(),
            message: m.name.clone(),
            reason,
        };
        let muxes: Vec<&Signal> = signals
            .iter()
            .filter(|s| s.multiplex == Multiplex::Multiplexor)
            .collect();
        if muxes.len() > 1 {
            return Err(bad(format!(
                "{} multiplexor (M) signals; only one multiplexor per message is supported",
                muxes.len()
            )));
        }
        let mux = muxes.first();
        if let Some(mux) = mux {
            if matches!(mux.value_type, ValueType::Float32 | ValueType::Float64) {
                return Err(DbcError::BadSignal {
                    at: signal_at(mux),
                    message: m.name.clone(),
                    signal: mux.name.clone(),
                    reason: "a multiplexor must be an integer signal, not a float".into(),
                });
            }
        }
        for s in signals {
            if let (Multiplex::Multiplexed(n), None) = (s.multiplex, mux) {
                return Err(DbcError::BadSignal {
                    at: signal_at(s),
                    message: m.name.clone(),
                    signal: s.name.clone(),
                    reason: format!(
                        "multiplexed (m{n}) but the message has no multiplexor (M) signal"
                    ),
                });
            }
        }
        for ext in self
            .ast
            .extended_multiplex
            .iter()
            .filter(|e| e.message_id == m.id)
        {
            let simple = match (signals.iter().find(|s| s.name == ext.signal_name), mux) {
                (Some(s), Some(mux)) => match (s.multiplex, ext.mappings.as_slice()) {
                    (Multiplex::Multiplexed(n), [only]) => {
                        ext.multiplexor_signal_name == mux.name
                            && only.min_value == n
                            && only.max_value == n
                    }
                    _ => false,
                },
                _ => false,
            };
            if !simple {
                return Err(bad(format!(
                    "SG_MUL_VAL_ for {} describes extended multiplexing, which is not supported",
                    ext.signal_name
                )));
            }
        }
        Ok(())
    }

    fn note_dangling(&mut self, converted: &HashSet<SignalKey>, known_ids: &HashSet<MessageId>) {
        let origin = self.origin;
        let describe = |id: &MessageId| id.raw().to_string();
        let mut notes = Vec::new();
        for (id, name) in self.value_tables.keys() {
            if !converted.contains(&(*id, name.clone())) && known_ids.contains(id) {
                notes.push(format!(
                    "{origin}: VAL_ {} {name} names no signal; ignored",
                    describe(id)
                ));
            }
        }
        for (id, name) in self.value_types.keys() {
            if !converted.contains(&(*id, name.clone())) && known_ids.contains(id) {
                notes.push(format!(
                    "{origin}: SIG_VALTYPE_ {} {name} names no signal; ignored",
                    describe(id)
                ));
            }
        }
        for (id, name) in self.comments_sig.keys() {
            if !converted.contains(&(*id, name.clone())) {
                notes.push(format!(
                    "{origin}: CM_ SG_ {} {name} names no signal; ignored",
                    describe(id)
                ));
            }
        }
        for id in self.comments_msg.keys() {
            if !known_ids.contains(id) {
                notes.push(format!(
                    "{origin}: CM_ BO_ {} names no message; ignored",
                    describe(id)
                ));
            }
        }
        notes.sort();
        self.notes.extend(notes);
    }
}

fn numeric(v: NumericValue) -> f64 {
    match v {
        NumericValue::Uint(u) => u as f64,
        NumericValue::Int(i) => i as f64,
        NumericValue::Double(d) => d,
    }
}

fn attribute_u32(v: &AttributeValue) -> Option<u32> {
    match v {
        AttributeValue::Uint(u) => u32::try_from(*u).ok(),
        AttributeValue::Int(i) => u32::try_from(*i).ok(),
        AttributeValue::Double(d) if d.is_finite() && *d >= 0.0 && *d <= f64::from(u32::MAX) => {
            Some(d.round() as u32)
        }
        _ => None,
    }
}

/// DBC strings escape a double quote as `\"`.
fn unescape(s: &str) -> String {
    s.replace("\\\"", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let text = "ab\nc\u{e9}d\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        // After the two-byte 'é' the column is 3 characters in.
        assert_eq!(line_col(text, 6), (2, 3));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn scan_skips_keywords_inside_strings() {
        let text = "CM_ BO_ 1 \"multi\nBO_ 2 Fake: 8 X\nend\";\nBO_ 3 Real: 8 X\n SG_ A : 0|8@1+ (1,0) [0|0] \"\" X\n";
        let s = scan(text);
        assert_eq!(s.messages.len(), 1);
        assert_eq!(s.messages[0].name, "Real");
        assert_eq!(s.messages[0].raw_id, Some(3));
        assert_eq!(s.messages[0].signals.len(), 1);
    }

    #[test]
    fn find_token_matches_whole_tokens() {
        assert_eq!(find_token("SG_ A : 12|123@1+", "123"), Some(11));
        assert_eq!(find_token("1234", "123"), None);
    }
}
