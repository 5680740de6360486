//! What the `can-dbc` grammar chokes on in files that DBC editors write, made parseable
//! without moving any byte: statements written over several lines.
//!
//! Vector's tools (and others) break long `VAL_`, `VAL_TABLE_`, `SG_MUL_VAL_`, `BA_DEF_`
//! (long `ENUM` lists) and `CM_` statements over several lines; the `can-dbc` grammar wants
//! each statement on one line. A line that continues a `;`-terminated statement (it does not
//! start with a DBC keyword, and the statement has not reached its `;`) is joined to it by
//! turning the line breaks before it into spaces. The text keeps its length, so every byte
//! offset the parser reports is an offset into the original file, and locations (computed
//! on the original text) keep their line and column.

/// Keywords of statements that end at the line's end (they start a statement, and so never
/// continue one).
const UNTERMINATED: [&str; 22] = [
    "VERSION",
    "NS_",
    "NS_DESC_",
    "BS_",
    "BU_",
    "BO_",
    "SG_",
    "BA_DEF_SGTYPE_",
    "BA_SGTYPE_",
    "EV_DATA_",
    "SGTYPE_",
    "SGTYPE_VAL_",
    "SIG_TYPE_REF_",
    "CAT_DEF_",
    "CAT_",
    "FILTER",
    "BU_SG_REL_",
    "BU_EV_REL_",
    "BU_BO_REL_",
    "SG_REL_",
    "BU_REL_",
    "BO_REL_",
];

/// Statements that end with `;` (and so may run over several lines).
const TERMINATED: [&str; 16] = [
    "CM_",
    "BA_DEF_",
    "BA_",
    "VAL_",
    "VAL_TABLE_",
    "SIG_GROUP_",
    "SIG_VALTYPE_",
    "BO_TX_BU_",
    "BA_DEF_REL_",
    "BA_REL_",
    "BA_DEF_DEF_REL_",
    "BA_DEF_DEF_",
    "SG_MUL_VAL_",
    "EV_",
    "ENVVAR_DATA_",
    "SIGTYPE_VALTYPE_",
];

/// The keyword a line starts with (after indentation), if any.
pub(super) fn leading_keyword(line: &str) -> Option<&'static str> {
    let trimmed = line.trim_start();
    let word_end = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(trimmed.len());
    let word = trimmed.get(..word_end)?;
    UNTERMINATED
        .iter()
        .chain(TERMINATED.iter())
        .copied()
        .find(|k| *k == word)
}

/// A statement joined from several lines: where it starts and how many lines it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Joined {
    /// Byte offset where the statement starts.
    pub offset: usize,
    /// Lines the statement was written on.
    pub lines: usize,
}

/// The text with continuation lines joined to their statements (same length), and the
/// statements that were joined.
pub(super) fn join_continuations(text: &str) -> (String, Vec<Joined>) {
    let mut bytes = text.as_bytes().to_vec();
    let mut joined: Vec<Joined> = Vec::new();
    let mut in_string = false;
    // The open `;`-terminated statement: (start offset, end of its last content, lines).
    let mut open: Option<(usize, usize, usize)> = None;
    let mut in_ns = false;
    let mut line_start = 0;
    for raw_line in text.split_inclusive('\n') {
        let start = line_start;
        line_start += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let content_end = start + line.len();
        let began_in_string = in_string;
        let terminated = scan_line(line, &mut in_string);
        if began_in_string {
            // Inside a multi-line string: part of the open statement, if any.
            if let Some((_, end, lines)) = open.as_mut() {
                *end = content_end;
                *lines += 1;
            }
            if terminated {
                open = None;
            }
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        if let Some(keyword) = leading_keyword(line) {
            if in_ns && line.starts_with([' ', '\t']) {
                // A symbol listed under `NS_ :`.
                continue;
            }
            in_ns = keyword == "NS_";
            if let Some((offset, _, lines)) = open.take() {
                if lines > 1 {
                    joined.push(Joined { offset, lines });
                }
            }
            if TERMINATED.contains(&keyword) && !terminated {
                open = Some((start + (line.len() - trimmed.len()), content_end, 1));
            }
            continue;
        }
        if in_ns && line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((offset, end, lines)) = open {
            // A continuation: the line breaks since the statement's last content become spaces.
            for b in bytes.get_mut(end..start).into_iter().flatten() {
                if *b == b'\n' || *b == b'\r' {
                    *b = b' ';
                }
            }
            open = if terminated {
                joined.push(Joined {
                    offset,
                    lines: lines + 1,
                });
                None
            } else {
                Some((offset, content_end, lines + 1))
            };
        }
    }
    if let Some((offset, _, lines)) = open {
        if lines > 1 {
            joined.push(Joined { offset, lines });
        }
    }
    // Only ASCII line breaks were replaced by ASCII spaces: still UTF-8.
    let normal = String::from_utf8(bytes).unwrap_or_else(|_| text.to_string());
    (normal, joined)
}

/// Follow string state over one line; true when a `;` outside strings and comments ends it.
fn scan_line(line: &str, in_string: &mut bool) -> bool {
    let mut terminated = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (*in_string, c) {
            (true, '\\') if chars.peek() == Some(&'"') => {
                chars.next();
            }
            (_, '"') => *in_string = !*in_string,
            (false, '/') if chars.peek() == Some(&'/') => break,
            (false, ';') => terminated = true,
            (false, c) if !c.is_whitespace() => terminated = false,
            _ => {}
        }
    }
    terminated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_lines_join_without_moving_bytes() {
        let text = "VAL_ 1 S 0 \"a\" 1 \"b\"\r\n 2 \"c\"\n\n3 \"d\" ;\nBO_ 2 M: 8 X\n";
        let (normal, joined) = join_continuations(text);
        assert_eq!(normal.len(), text.len());
        assert_eq!(
            normal,
            "VAL_ 1 S 0 \"a\" 1 \"b\"   2 \"c\"  3 \"d\" ;\nBO_ 2 M: 8 X\n"
        );
        assert_eq!(
            joined,
            vec![Joined {
                offset: 0,
                lines: 3
            }]
        );
    }

    #[test]
    fn strings_over_lines_and_name_lists_are_left_alone() {
        let text =
            "NS_ :\n\tCM_\n\tVAL_\nBS_:\nCM_ BO_ 1 \"two\nlines; here\";\nVAL_ 1 S 0 \"x\";\n";
        let (normal, joined) = join_continuations(text);
        assert_eq!(normal, text);
        assert!(joined.is_empty());
    }

    #[test]
    fn an_unterminated_statement_is_not_joined_to_the_next_one() {
        let text = "VAL_ 1 S 0 \"x\"\nBO_ 2 M: 8 X\n SG_ A : 0|8@1+ (1,0) [0|0] \"\" X\n";
        let (normal, _) = join_continuations(text);
        assert_eq!(normal, text);
    }

    #[test]
    fn keywords_are_whole_words() {
        assert_eq!(
            leading_keyword("  BA_DEF_DEF_ \"x\" 1;"),
            Some("BA_DEF_DEF_")
        );
        assert_eq!(leading_keyword("BO_TX_BU_ 1 : A;"), Some("BO_TX_BU_"));
        assert_eq!(leading_keyword("40 \"x\""), None);
        assert_eq!(leading_keyword("BOX 1"), None);
    }
}
