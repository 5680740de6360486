//! Input errors that point at a file, line and column, with a source snippet.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

/// A problem in a user file, located precisely.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong and what to do.
    pub message: String,
    /// The source line, for the snippet.
    pub source_line: Option<String>,
}

impl InputError {
    /// An error at a location in `text` (the file's contents).
    pub fn at(
        file: &Path,
        text: &str,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        let source_line = line
            .checked_sub(1)
            .and_then(|i| text.lines().nth(i))
            .map(str::to_string);
        Self {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            source_line,
        }
    }

    /// An error at a serde-saphyr location.
    pub fn at_location(
        file: &Path,
        text: &str,
        loc: &Location,
        message: impl Into<String>,
    ) -> Self {
        Self::at(
            file,
            text,
            loc.line() as usize,
            loc.column() as usize,
            message,
        )
    }

    /// An error about a whole file (cannot be read, and the like).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
            source_line: None,
        }
    }

    /// From a serde-saphyr deserialization error.
    pub fn from_yaml(file: &Path, text: &str, err: &serde_saphyr::Error) -> Self {
        let plain = err.without_snippet();
        let message = strip_location_suffix(&plain.to_string());
        match plain.location() {
            Some(loc) if loc.line() > 0 => Self::at_location(file, text, &loc, message),
            _ => Self::file(file, message),
        }
    }
}

fn strip_location_suffix(msg: &str) -> String {
    // serde-saphyr appends " at line L, column C"; the location is printed separately. A
    // message that spans lines is kept whole (joined), not cut after its first line.
    let joined = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match joined.rfind(" at line ") {
        Some(i) if joined[i..].contains("column") => joined[..i].to_string(),
        _ => joined,
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        if self.line == 0 {
            return write!(f, "  --> {}", self.file.display());
        }
        write!(
            f,
            "  --> {}:{}:{}",
            self.file.display(),
            self.line,
            self.column
        )?;
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            let caret_pad: String = src
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad} |\n{num} | {src}\n{pad} | {caret_pad}^")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// Closest candidate to `word` by edit distance, for "did you mean" hints.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance between two texts, in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_and_caret() {
        let e = InputError::at(
            Path::new("p.yaml"),
            "a: 1\nvoltage: 3.65\n",
            2,
            10,
            "no unit",
        );
        let s = e.to_string();
        assert!(s.contains("p.yaml:2:10"), "{s}");
        assert!(s.contains("2 | voltage: 3.65"), "{s}");
        assert!(s.ends_with("|          ^"), "{s}");
    }

    #[test]
    fn suggests_near_names() {
        assert_eq!(
            did_you_mean("timout", ["timeout", "detect", "name"]),
            Some("timeout")
        );
        assert_eq!(did_you_mean("zzz", ["timeout"]), None);
    }
}

#[cfg(test)]
mod message_tests {
    use super::strip_location_suffix;

    #[test]
    fn yaml_messages_are_not_cut_at_a_line_break() {
        assert_eq!(
            strip_location_suffix(
                "budget exceeded (used\n  5000 of 4000 nodes) at line 3, column 1"
            ),
            "budget exceeded (used 5000 of 4000 nodes)"
        );
        assert_eq!(
            strip_location_suffix("unknown field `x` at line 2, column 5"),
            "unknown field `x`"
        );
    }
}
