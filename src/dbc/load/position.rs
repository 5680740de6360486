//! Positions in the text: line and column of a byte offset, and a first scan of where each
//! message and signal is written.

use crate::dbc::error::Location;

/// 1-based line and character column of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
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
pub(super) fn line_text(text: &str, offset: usize) -> &str {
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

pub(super) fn location(text: &str, origin: &str, offset: Option<usize>) -> Location {
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
pub(super) struct MessageSite {
    pub(super) offset: usize,
    pub(super) raw_id: Option<u64>,
    pub(super) name: String,
    pub(super) signals: Vec<(String, usize)>,
    pub(super) open: bool,
}

/// Statement boundaries and message/signal sites found by a light scan of the text.
pub(super) struct Scan {
    /// Byte offsets of lines that start a statement (column 0, outside a string) or a
    /// signal line; the text before any of them parses on its own.
    pub(super) statement_starts: Vec<usize>,
    pub(super) messages: Vec<MessageSite>,
}

pub(super) fn keyword<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(word)?;
    rest.starts_with([' ', '\t']).then_some(rest)
}

pub(super) fn scan(text: &str) -> Scan {
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
