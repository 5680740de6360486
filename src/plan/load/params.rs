//! Plan parameters: `${name}` placeholders replaced by the plan's defaults or overrides,
//! keeping line numbers.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::with_hint;
use crate::plan::error::{did_you_mean, InputError};

#[derive(Deserialize)]
pub(super) struct ParametersOnly {
    #[serde(default)]
    pub(super) parameters: BTreeMap<String, String>,
}

/// Every `${name}` in `text`: (byte offset, name).
pub(super) fn placeholders(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(i) = text[rest..].find("${") {
        let start = rest + i;
        match text[start..].find('}') {
            Some(end) => {
                out.push((start, text[start + 2..start + end].to_string()));
                rest = start + end + 1;
            }
            None => break,
        }
    }
    out
}

pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Replace `${name}` by the parameter values (defaults from the plan, then overrides).
/// Lines keep their numbers, so later errors still point at the right line.
pub(super) fn substitute(
    path: &Path,
    text: &str,
    overrides: &BTreeMap<String, String>,
) -> Result<(String, BTreeMap<String, String>), InputError> {
    let found = placeholders(text);
    // First pass: read the defaults with every placeholder neutralised (same length).
    let mut neutral = text.to_string();
    for (at, name) in &found {
        neutral.replace_range(*at..*at + name.len() + 3, &"_".repeat(name.len() + 3));
    }
    let defaults: ParametersOnly = serde_saphyr::from_str(&neutral)
        .map_err(|e| with_hint(InputError::from_yaml(path, &neutral, &e)))?;
    let mut values = defaults.parameters;
    for (k, v) in overrides {
        if !values.contains_key(k) {
            let known: Vec<&str> = values.keys().map(String::as_str).collect();
            let hint = did_you_mean(k, known.iter().copied())
                .map(|b| format!("; did you mean `{b}`?"))
                .unwrap_or_default();
            let declared = if known.is_empty() {
                "the plan declares no parameters".to_string()
            } else {
                format!("declared: {}", known.join(", "))
            };
            return Err(InputError::file(
                path,
                format!("parameter `{k}` is not declared by the plan ({declared}){hint}"),
            ));
        }
        values.insert(k.clone(), v.clone());
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, name) in &found {
        let value = values.get(name).ok_or_else(|| {
            let (line, col) = line_col(text, *at);
            let hint = did_you_mean(name, values.keys().map(String::as_str))
                .map(|b| format!("; did you mean `{b}`?"))
                .unwrap_or_default();
            InputError::at(
                path,
                text,
                line,
                col,
                format!("parameter `{name}` is not declared under `parameters:`{hint}"),
            )
        })?;
        out.push_str(&text[last..*at]);
        out.push_str(value);
        last = at + name.len() + 3;
    }
    out.push_str(&text[last..]);
    Ok((out, values))
}
