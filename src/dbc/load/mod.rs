//! DBC text -> typed model: parse with can-dbc, then check and convert.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use can_dbc::{
    AttributeDefinition, AttributeValue, AttributeValueType, Comment, MessageId,
    MultiplexIndicator, NumericValue, SignalExtendedValueType, ValueDescription,
};

use super::error::{DbcError, Location, Warning};
use super::model::{ByteOrder, Message, Multiplex, MuxSelector, Signal, ValueType};
use super::normalise::join_continuations;
use crate::can::FD_LENGTHS;
use overlap::check_overlaps;
use parse_error::parse_error;
use position::{location, scan, MessageSite, Scan};
use statement::{statements, Statement};

mod overlap;
mod parse_error;
mod position;
mod statement;

/// Pseudo-message that DBC editors use to hold signals not placed in any frame.
const INDEPENDENT_SIGNALS: &str = "VECTOR__INDEPENDENT_SIG_MSG";

/// What loading produced: messages, notes and warnings.
type Loaded = (Vec<Message>, Vec<String>, Vec<Warning>);

/// Messages of a DBC text, plus notes about anything read differently and warnings.
pub(super) fn load(text: &str, origin: &str) -> Result<Loaded, DbcError> {
    // Statements written over several lines are joined (same byte offsets) for can-dbc.
    let (normal, joined) = join_continuations(text);
    let ast = match parse_ast(&normal) {
        Ok(ast) => ast,
        Err(failure) => return Err(parse_error(text, &normal, origin, &failure)),
    };
    let scan = scan(&normal);
    let (messages, mut notes, warnings) =
        Converter::new(text, &normal, origin, &ast, &scan).run()?;
    if let Some(first) = joined.first() {
        let lines: usize = joined.iter().map(|j| j.lines).sum();
        notes.insert(
            0,
            format!(
                "{}: read {} statement(s) written over several lines ({lines} lines; \
                 VAL_, CM_ and the like as DBC editors break long ones) as one statement each",
                location(text, origin, Some(first.offset)),
                joined.len()
            ),
        );
    }
    Ok((messages, notes, warnings))
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

type SignalKey = (MessageId, String);

/// The raw id text of a message id, as written in the DBC.
fn raw_id(id: &MessageId) -> String {
    match id {
        MessageId::Standard(v) => v.to_string(),
        MessageId::Extended(v) => (u64::from(*v) | 0x8000_0000).to_string(),
    }
}

struct Converter<'a> {
    text: &'a str,
    origin: &'a str,
    ast: &'a can_dbc::Dbc,
    scan: &'a Scan,
    statements: Vec<Statement>,
    comments_msg: HashMap<MessageId, String>,
    comments_sig: HashMap<SignalKey, String>,
    value_tables: HashMap<SignalKey, BTreeMap<i64, String>>,
    value_types: HashMap<SignalKey, SignalExtendedValueType>,
    cycle_times: HashMap<MessageId, AttributeValue>,
    notes: Vec<String>,
    warnings: Vec<Warning>,
}

impl<'a> Converter<'a> {
    fn new(
        text: &'a str,
        normal: &str,
        origin: &'a str,
        ast: &'a can_dbc::Dbc,
        scan: &'a Scan,
    ) -> Self {
        let mut me = Self {
            text,
            origin,
            ast,
            scan,
            statements: statements(normal),
            comments_msg: HashMap::new(),
            comments_sig: HashMap::new(),
            value_tables: HashMap::new(),
            value_types: HashMap::new(),
            cycle_times: HashMap::new(),
            notes: Vec::new(),
            warnings: Vec::new(),
        };
        for comment in &ast.comments {
            match comment {
                Comment::Message { id, comment } => {
                    me.comments_msg.insert(*id, unescape(comment));
                }
                Comment::Signal {
                    message_id,
                    name,
                    comment,
                } => {
                    me.comments_sig
                        .insert((*message_id, name.clone()), unescape(comment));
                }
                _ => {}
            }
        }
        let mut seen_tables: HashMap<SignalKey, usize> = HashMap::new();
        for vd in &ast.value_descriptions {
            if let ValueDescription::Signal {
                message_id,
                name,
                value_descriptions,
            } = vd
            {
                let key = (*message_id, name.clone());
                let nth = seen_tables.entry(key.clone()).or_insert(0);
                *nth += 1;
                let nth = *nth;
                let site = me.find_nth("VAL_", &[&raw_id(message_id), name], nth);
                if nth > 1 {
                    me.warn(
                        site.as_ref().map(|s| s.0),
                        format!(
                            "a second VAL_ table for {} {name}; its entries are added to \
                             the first (later labels win)",
                            raw_id(message_id)
                        ),
                    );
                }
                let mut table = me.value_tables.remove(&key).unwrap_or_default();
                let mut seen_here: HashSet<i64> = HashSet::new();
                for d in value_descriptions {
                    if !seen_here.insert(d.id) {
                        let at = site
                            .as_ref()
                            .and_then(|(_, toks)| {
                                let value = d.id.to_string();
                                toks.iter()
                                    .skip(3)
                                    .step_by(2)
                                    .filter(|(t, _)| *t == value)
                                    .nth(1)
                                    .map(|(_, o)| *o)
                            })
                            .or(site.as_ref().map(|s| s.0));
                        me.warn(
                            at,
                            format!(
                                "VAL_ {} {name}: value {} is labelled twice; the later label \
                                 `{}` is used",
                                raw_id(message_id),
                                d.id,
                                unescape(&d.description)
                            ),
                        );
                    }
                    table.insert(d.id, unescape(&d.description));
                }
                me.value_tables.insert(key, table);
            }
        }
        me.value_types = ast
            .signal_extended_value_type_list
            .iter()
            .map(|v| {
                (
                    (v.message_id, v.signal_name.clone()),
                    v.signal_extended_value_type,
                )
            })
            .collect();
        me.cycle_times = ast
            .attribute_values_message
            .iter()
            .filter(|a| a.name == "GenMsgCycleTime")
            .map(|a| (a.message_id, a.value.clone()))
            .collect();
        me
    }

    /// The `nth` (1-based) statement with this keyword whose first tokens after the keyword
    /// are `lead`: its offset and tokens.
    fn find_nth(
        &self,
        keyword: &str,
        lead: &[&str],
        nth: usize,
    ) -> Option<(usize, Vec<(String, usize)>)> {
        self.statements
            .iter()
            .filter(|s| {
                s.keyword == keyword
                    && s.tokens.len() > lead.len()
                    && s.tokens
                        .iter()
                        .skip(1)
                        .zip(lead)
                        .all(|((t, _), want)| t == want)
            })
            .nth(nth.saturating_sub(1))
            .map(|s| (s.offset, s.tokens.clone()))
    }

    fn find(&self, keyword: &str, lead: &[&str]) -> Option<usize> {
        self.find_nth(keyword, lead, 1).map(|s| s.0)
    }

    fn warn(&mut self, offset: Option<usize>, message: String) {
        let at = self.at(offset);
        self.warnings.push(Warning { at, message });
    }

    fn at(&self, offset: Option<usize>) -> Location {
        location(self.text, self.origin, offset)
    }

    #[allow(clippy::type_complexity)]
    fn run(mut self) -> Result<(Vec<Message>, Vec<String>, Vec<Warning>), DbcError> {
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
        if messages.is_empty() {
            return Err(DbcError::Empty {
                at: Location {
                    origin: self.origin.to_string(),
                    line: 1,
                    column: 1,
                },
            });
        }

        self.warn_dangling(&converted, &known_ids);
        self.warnings
            .sort_by_key(|w| (w.at.line, w.at.column, w.message.clone()));
        Ok((messages, self.notes, self.warnings))
    }

    /// `Some(true)` when `VFrameFormat` marks the message CAN FD, `Some(false)` classic,
    /// `None` when the file does not say.
    fn frame_format(&self, id: MessageId) -> Option<bool> {
        let value = self
            .ast
            .attribute_values_message
            .iter()
            .find(|a| a.message_id == id && a.name == "VFrameFormat")
            .map(|a| &a.value)
            .or_else(|| self.ast.attribute_default("VFrameFormat"))?;
        let name = match value {
            AttributeValue::String(s) => s.clone(),
            v => {
                let index = usize::try_from(attribute_u32(v)?).ok()?;
                self.ast
                    .attribute_definitions
                    .iter()
                    .find_map(|d| match d {
                        AttributeDefinition::Message(n, AttributeValueType::Enum(values))
                            if n == "VFrameFormat" =>
                        {
                            values.get(index).cloned()
                        }
                        _ => None,
                    })?
            }
        };
        match name.as_str() {
            "StandardCAN_FD" | "ExtendedCAN_FD" => Some(true),
            "StandardCAN" | "ExtendedCAN" | "J1939PG" => Some(false),
            _ => None,
        }
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
        let format = self.frame_format(m.id);
        let fd = match (size > 8, format) {
            (false, f) => f == Some(true),
            (true, _) if !FD_LENGTHS.contains(&size) => {
                return Err(bad(format!(
                    "{size} bytes is not a CAN frame length: a classic frame carries 0 to 8 \
                     bytes, a CAN FD frame 0 to 8, 12, 16, 20, 24, 32, 48 or 64"
                )))
            }
            (true, Some(false)) => {
                return Err(bad(format!(
                    "a classic CAN message (VFrameFormat) of {size} bytes: classic frames carry \
                     at most 8; mark it StandardCAN_FD or ExtendedCAN_FD, or shorten it"
                )))
            }
            (true, Some(true)) => true,
            (true, None) => {
                self.warnings.push(Warning {
                    at: at.clone(),
                    message: format!(
                        "message {}: {size} bytes needs CAN FD, but no VFrameFormat attribute \
                         marks it CAN FD; read as a CAN FD message",
                        m.name
                    ),
                });
                true
            }
        };

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
            let signal = self.signal(m, s, size, sig_at.clone())?;
            if signal.min > signal.max {
                self.warnings.push(Warning {
                    at: sig_at.clone(),
                    message: format!(
                        "signal {}.{}: minimum {} is greater than maximum {}",
                        m.name, s.name, signal.min, signal.max
                    ),
                });
            }
            signals.push(signal);
            sites.push(sig_at);
        }

        self.check_multiplexing(m, &mut signals, &sites, at)?;
        check_overlaps(&m.name, size, &signals, &sites)?;

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
            fd,
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
                Multiplex::MultiplexedMultiplexor(n)
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
            selector: None,
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

    /// Multiplexor roles, `SG_MUL_VAL_` selectors (assigned here) and the values selected.
    fn check_multiplexing(
        &mut self,
        m: &can_dbc::Message,
        signals: &mut [Signal],
        sites: &[Location],
        at: Location,
    ) -> Result<(), DbcError> {
        let site_of = |i: usize| sites.get(i).cloned().unwrap_or_else(|| at.clone());
        let bad_signal = |i: usize, s: &Signal, reason: String| DbcError::BadSignal {
            at: site_of(i),
            message: m.name.clone(),
            signal: s.name.clone(),
            reason,
        };
        let tops: Vec<usize> = signals
            .iter()
            .enumerate()
            .filter(|(_, s)| s.multiplex == Multiplex::Multiplexor)
            .map(|(i, _)| i)
            .collect();
        if tops.len() > 1 {
            return Err(DbcError::BadMessage {
                at: at.clone(),
                message: m.name.clone(),
                reason: format!(
                    "{} multiplexor (M) signals; a message has one (nested multiplexors are \
                     written mNM with SG_MUL_VAL_)",
                    tops.len()
                ),
            });
        }
        let top = tops.first().copied();
        for (i, s) in signals.iter().enumerate() {
            if s.is_multiplexor() && matches!(s.value_type, ValueType::Float32 | ValueType::Float64)
            {
                return Err(bad_signal(
                    i,
                    s,
                    "a multiplexor must be an integer signal, not a float".into(),
                ));
            }
            if let (Multiplex::Multiplexed(n) | Multiplex::MultiplexedMultiplexor(n), None) =
                (s.multiplex, top)
            {
                return Err(bad_signal(
                    i,
                    s,
                    format!("multiplexed (m{n}) but the message has no multiplexor (M) signal"),
                ));
            }
        }

        // Extended multiplexing: SG_MUL_VAL_ says which multiplexor selects a signal.
        let id_text = raw_id(&m.id);
        for ext in self
            .ast
            .extended_multiplex
            .iter()
            .filter(|e| e.message_id == m.id)
        {
            let stmt = self.find(
                "SG_MUL_VAL_",
                &[&id_text, &ext.signal_name, &ext.multiplexor_signal_name],
            );
            let stmt_at = self.at(stmt);
            let bad = |reason: String| DbcError::BadSignal {
                at: stmt_at.clone(),
                message: m.name.clone(),
                signal: ext.signal_name.clone(),
                reason,
            };
            let Some(i) = signals.iter().position(|s| s.name == ext.signal_name) else {
                self.warnings.push(Warning {
                    at: stmt_at.clone(),
                    message: format!(
                        "SG_MUL_VAL_ {id_text} {}: message {} has no such signal; ignored",
                        ext.signal_name, m.name
                    ),
                });
                continue;
            };
            let Some(mux) = signals
                .iter()
                .find(|s| s.name == ext.multiplexor_signal_name)
            else {
                return Err(bad(format!(
                    "SG_MUL_VAL_ names multiplexor {}, which message {} does not have",
                    ext.multiplexor_signal_name, m.name
                )));
            };
            if !mux.is_multiplexor() {
                return Err(bad(format!(
                    "SG_MUL_VAL_ names {} as its multiplexor, but {} is not one (M or mNM)",
                    mux.name, mux.name
                )));
            }
            if ext.multiplexor_signal_name == ext.signal_name {
                return Err(bad("a signal cannot select itself".into()));
            }
            let max = mux.raw_range().1;
            let mut ranges = Vec::new();
            for r in &ext.mappings {
                if r.min_value > r.max_value {
                    return Err(bad(format!(
                        "SG_MUL_VAL_ range {}-{} runs backwards",
                        r.min_value, r.max_value
                    )));
                }
                if r.max_value as f64 > max {
                    return Err(bad(format!(
                        "SG_MUL_VAL_ value {} is beyond what multiplexor {} ({} bits) can hold \
                         (at most {max})",
                        r.max_value, mux.name, mux.size
                    )));
                }
                ranges.push((r.min_value, r.max_value));
            }
            let Some(s) = signals.get_mut(i) else {
                continue;
            };
            if !matches!(
                s.multiplex,
                Multiplex::Multiplexed(_) | Multiplex::MultiplexedMultiplexor(_)
            ) {
                return Err(bad(
                    "SG_MUL_VAL_ for a signal that is not multiplexed (no mN in its SG_ line)"
                        .into(),
                ));
            }
            let multiplexor = ext.multiplexor_signal_name.clone();
            match s.selector.as_mut() {
                Some(sel) if sel.multiplexor == multiplexor => sel.ranges.extend(ranges),
                Some(sel) => {
                    return Err(bad(format!(
                        "selected by both {} and {multiplexor} in SG_MUL_VAL_ statements",
                        sel.multiplexor
                    )))
                }
                None => {
                    s.selector = Some(MuxSelector {
                        multiplexor,
                        ranges,
                    })
                }
            }
        }

        let nested = signals
            .iter()
            .any(|s| matches!(s.multiplex, Multiplex::MultiplexedMultiplexor(_)));
        for (i, s) in signals.iter().enumerate() {
            match (s.multiplex, &s.selector) {
                (Multiplex::Multiplexed(_) | Multiplex::MultiplexedMultiplexor(_), None)
                    if nested =>
                {
                    return Err(bad_signal(
                        i,
                        s,
                        "the message nests multiplexors (mNM), but no SG_MUL_VAL_ says which \
                         multiplexor selects this signal"
                            .into(),
                    ))
                }
                (Multiplex::Multiplexed(n) | Multiplex::MultiplexedMultiplexor(n), None) => {
                    if let Some(mux) = top.and_then(|t| signals.get(t)) {
                        let max = mux.raw_range().1;
                        if n as f64 > max {
                            return Err(bad_signal(
                                i,
                                s,
                                format!(
                                    "m{n}: multiplexor {} ({} bits) never has the value {n} \
                                     (at most {max}), so the signal is never sent",
                                    mux.name, mux.size
                                ),
                            ));
                        }
                    }
                }
                _ => {}
            }
            // Selector chains end at the top multiplexor.
            let mut current = s;
            let mut steps = 0;
            while let Some(sel) = &current.selector {
                steps += 1;
                let next = signals.iter().find(|x| x.name == sel.multiplexor);
                match next {
                    Some(n) if steps <= signals.len() => current = n,
                    Some(_) => {
                        return Err(bad_signal(
                            i,
                            s,
                            "its SG_MUL_VAL_ multiplexors select each other in a circle".into(),
                        ))
                    }
                    None => break,
                }
            }
        }
        Ok(())
    }

    fn warn_dangling(&mut self, converted: &HashSet<SignalKey>, known_ids: &HashSet<MessageId>) {
        let mut found: Vec<(Option<usize>, String)> = Vec::new();
        let what = |id: &MessageId, name: &str, kind: &str| {
            if known_ids.contains(id) {
                format!(
                    "{kind} {} {name}: the message has no signal {name}; ignored",
                    raw_id(id)
                )
            } else {
                format!(
                    "{kind} {} {name}: no message has id {}; ignored",
                    raw_id(id),
                    raw_id(id)
                )
            }
        };
        for (id, name) in self.value_tables.keys() {
            if !converted.contains(&(*id, name.clone())) {
                found.push((
                    self.find("VAL_", &[&raw_id(id), name]),
                    what(id, name, "VAL_"),
                ));
            }
        }
        for (id, name) in self.value_types.keys() {
            if !converted.contains(&(*id, name.clone())) {
                found.push((
                    self.find("SIG_VALTYPE_", &[&raw_id(id), name]),
                    what(id, name, "SIG_VALTYPE_"),
                ));
            }
        }
        for (id, name) in self.comments_sig.keys() {
            if !converted.contains(&(*id, name.clone())) {
                found.push((
                    self.find("CM_", &["SG_", &raw_id(id), name]),
                    what(id, name, "CM_ SG_"),
                ));
            }
        }
        for id in self.comments_msg.keys() {
            if !known_ids.contains(id) {
                found.push((
                    self.find("CM_", &["BO_", &raw_id(id)]),
                    format!("CM_ BO_ {}: no message has this id; ignored", raw_id(id)),
                ));
            }
        }
        for ext in &self.ast.extended_multiplex {
            if !known_ids.contains(&ext.message_id) {
                found.push((
                    self.find("SG_MUL_VAL_", &[&raw_id(&ext.message_id), &ext.signal_name]),
                    format!(
                        "SG_MUL_VAL_ {} {}: no message has this id; ignored",
                        raw_id(&ext.message_id),
                        ext.signal_name
                    ),
                ));
            }
        }
        for (offset, message) in found {
            self.warn(offset, message);
        }
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
    use super::parse_error::find_token;
    use super::position::line_col;
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
