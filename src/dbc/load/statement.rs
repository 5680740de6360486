//! The statements of the text, split into tokens with their byte offsets (for locations).

use crate::dbc::normalise::leading_keyword;

/// A statement of the text, split into tokens with their byte offsets (for locations).
pub(super) struct Statement {
    pub(super) keyword: &'static str,
    pub(super) offset: usize,
    pub(super) tokens: Vec<(String, usize)>,
}

/// Statements that refer to messages and signals, for locating problems in them.
pub(super) fn statements(normal: &str) -> Vec<Statement> {
    const WANTED: [&str; 5] = ["VAL_", "SIG_VALTYPE_", "SG_MUL_VAL_", "CM_", "BA_"];
    let mut out = Vec::new();
    let mut in_string = false;
    let mut line_start = 0;
    for raw_line in normal.split_inclusive('\n') {
        let start = line_start;
        line_start += raw_line.len();
        let was_in_string = in_string;
        for c in raw_line.chars() {
            if c == '"' {
                in_string = !in_string;
            }
        }
        if raw_line.contains("\\\"") {
            // Escaped quotes do not toggle: recount precisely.
            in_string = was_in_string;
            let mut chars = raw_line.chars().peekable();
            while let Some(c) = chars.next() {
                match (in_string, c) {
                    (true, '\\') if chars.peek() == Some(&'"') => {
                        chars.next();
                    }
                    (_, '"') => in_string = !in_string,
                    _ => {}
                }
            }
        }
        if was_in_string {
            continue;
        }
        let Some(keyword) = leading_keyword(raw_line).filter(|k| WANTED.contains(k)) else {
            continue;
        };
        let indent = raw_line.len() - raw_line.trim_start().len();
        out.push(Statement {
            keyword,
            offset: start + indent,
            tokens: tokens(raw_line, start),
        });
    }
    out
}

/// Tokens of one line: quoted strings whole, other tokens split at blanks and `:;,`.
pub(super) fn tokens(line: &str, base: usize) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize)> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if let Some(t) = current.take() {
                out.push(t);
            }
            let mut s = String::from('"');
            while let Some((_, c)) = chars.next() {
                if c == '\\' && chars.peek().map(|p| p.1) == Some('"') {
                    chars.next();
                    s.push('"');
                    continue;
                }
                s.push(c);
                if c == '"' {
                    break;
                }
            }
            out.push((s, base + i));
        } else if c.is_whitespace() || matches!(c, ':' | ';' | ',') {
            if let Some(t) = current.take() {
                out.push(t);
            }
        } else {
            match current.as_mut() {
                Some((s, _)) => s.push(c),
                None => current = Some((c.to_string(), base + i)),
            }
        }
    }
    if let Some(t) = current {
        out.push(t);
    }
    out
}
