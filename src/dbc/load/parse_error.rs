//! Parse errors: what can-dbc reported, turned into a located message in plain words.

use super::position::{line_text, location, scan};
use super::{parse_ast, Failure};
use crate::dbc::error::DbcError;

/// A located parse error; `text` is the original, `normal` what the parser read (same offsets).
pub(super) fn parse_error(text: &str, normal: &str, origin: &str, failure: &Failure) -> DbcError {
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
    let (start, end) = failing_statement(normal);
    let statement = normal.get(start..end).unwrap_or_default();
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
pub(super) fn humanize(message: &str) -> String {
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
pub(super) fn shorten(s: &str) -> String {
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

pub(super) fn first_number(s: &str) -> Option<usize> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    let digits: String = s
        .get(start..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

pub(super) fn first_non_blank(s: &str) -> Option<usize> {
    s.find(|c: char| !c.is_whitespace())
}

/// Byte offset of `token` in `s` where it stands as a whole token.
pub(super) fn find_token(s: &str, token: &str) -> Option<usize> {
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
pub(super) fn describe(e: &can_dbc::DbcError) -> (Option<String>, String) {
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
pub(super) fn failing_statement(text: &str) -> (usize, usize) {
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
