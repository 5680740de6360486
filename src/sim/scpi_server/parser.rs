//! The simulated instruments' own SCPI parser: header patterns in SCPI notation (short and
//! long forms, optional nodes, numeric suffixes), `;`-separated commands under the
//! header-path rule, channel lists and words, and parameter checks with SCPI error codes.
//! It shares no code with the client's command rendering in `crate::scpi`.

use super::{fault, Action, ScpiFault};
use crate::scpi::reply::parse_reading;

/// One mnemonic of a header pattern: `[SOURce]` is optional, short form `SOUR`; `SOURce#`
/// takes the channel as a numeric suffix (`SOUR2`).
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) short: String,
    pub(super) long: String,
    pub(super) optional: bool,
    pub(super) channel: bool,
}

/// A header in SCPI notation and what it does (an [`Action`] of a supply, load or cell
/// simulator, or another instrument's own action type).
#[derive(Debug, Clone)]
pub(super) struct Pattern<A = Action> {
    pub(super) nodes: Vec<Node>,
    pub(super) action: A,
}

impl<A> Pattern<A> {
    /// Build from SCPI notation, e.g. `[SOURce#]:VOLTage[:LEVel]` (upper case = short form).
    pub(super) fn new(notation: &str, action: A) -> Self {
        let nodes = notation
            .split(':')
            .filter(|part| !part.is_empty() && *part != "[" && *part != "]")
            .map(|part| {
                // `[:LEVel]` splits into `...[` and `LEVel]`: a node is optional when a `[`
                // opens before its name or a `]` closes right after it.
                let unopened = part.trim_start_matches('[');
                let name_end = unopened.find(['[', ']']).unwrap_or(unopened.len());
                let (name, after) = unopened.split_at(name_end);
                let optional = part.starts_with('[') || after.starts_with(']');
                let channel = name.ends_with('#');
                let name = name.trim_end_matches('#');
                Node {
                    short: name
                        .chars()
                        .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                        .collect(),
                    long: name.to_ascii_uppercase(),
                    optional,
                    channel,
                }
            })
            .collect();
        Pattern { nodes, action }
    }

    /// None: no match; Some(suffix): a match, with the channel suffix if one was given.
    pub(super) fn matches(&self, mnemonics: &[String]) -> Option<Option<u32>> {
        match_nodes(mnemonics, &self.nodes)
    }
}

fn match_nodes(input: &[String], nodes: &[Node]) -> Option<Option<u32>> {
    let Some((node, rest)) = nodes.split_first() else {
        return input.is_empty().then_some(None);
    };
    if let Some(suffix) = input.first().and_then(|m| mnemonic_matches(m, node)) {
        if let Some(later) = match_nodes(&input[1..], rest) {
            return Some(suffix.or(later));
        }
    }
    if node.optional {
        return match_nodes(input, rest);
    }
    None
}

/// `m` is upper case. On a channel node a numeric suffix is the channel; elsewhere only the
/// suffix 1 (SCPI's default) is accepted. None: no match; Some(suffix) otherwise.
fn mnemonic_matches(m: &str, node: &Node) -> Option<Option<u32>> {
    if m == node.short || m == node.long {
        return Some(None);
    }
    let name = m.trim_end_matches(|c: char| c.is_ascii_digit());
    let suffix = &m[name.len()..];
    if suffix.is_empty() || !(name == node.short || name == node.long) {
        return None;
    }
    if node.channel {
        suffix.parse::<u32>().ok().map(Some)
    } else {
        (suffix == "1").then_some(None)
    }
}

pub(super) fn measures(prefix: &str) -> Vec<Pattern> {
    vec![
        Pattern::new(
            &format!("{prefix}[:SCALar]:VOLTage[:DC]"),
            Action::MeasureVoltage,
        ),
        Pattern::new(
            &format!("{prefix}[:SCALar]:CURRent[:DC]"),
            Action::MeasureCurrent,
        ),
        Pattern::new(
            &format!("{prefix}[:SCALar]:POWer[:DC]"),
            Action::MeasurePower,
        ),
    ]
}

/// One command of a line: header mnemonics (upper case), query flag, parameters.
#[derive(Debug, PartialEq)]
pub(super) struct Command {
    pub(super) common: bool,
    pub(super) mnemonics: Vec<String>,
    pub(super) query: bool,
    pub(super) params: Vec<String>,
}

/// Split a line at `;` and apply SCPI's header-path rule: a command not starting with `:`
/// or `*` continues from the path of the previous one.
pub(super) fn parse_line(line: &str) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut path: Vec<String> = Vec::new();
    for unit in split_outside_quotes(line, ';') {
        let unit = unit.trim();
        if unit.is_empty() {
            continue;
        }
        let (header, params) = match unit.find(char::is_whitespace) {
            Some(at) => (&unit[..at], unit[at..].trim()),
            None => (unit, ""),
        };
        let params: Vec<String> = if params.is_empty() {
            Vec::new()
        } else {
            split_outside_quotes(params, ',')
                .into_iter()
                .map(|p| p.trim().to_string())
                .collect()
        };
        let (header, query) = match header.strip_suffix('?') {
            Some(h) => (h, true),
            None => (header, false),
        };
        if header.starts_with('*') {
            commands.push(Command {
                common: true,
                mnemonics: vec![header.to_ascii_uppercase()],
                query,
                params,
            });
            continue;
        }
        let absolute = header.starts_with(':');
        let own: Vec<String> = header
            .trim_start_matches(':')
            .split(':')
            .map(str::to_ascii_uppercase)
            .collect();
        let mut mnemonics = if absolute { Vec::new() } else { path.clone() };
        mnemonics.extend(own);
        path = mnemonics[..mnemonics.len().saturating_sub(1)].to_vec();
        commands.push(Command {
            common: false,
            mnemonics,
            query,
            params,
        });
    }
    commands
}

/// Split at `separator` outside quotes and parentheses (a channel list `(@1,2)` is one part).
pub(super) fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '(' => depth += 1,
            None if c == ')' => depth = depth.saturating_sub(1),
            None if c == separator && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            None => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A channel list `(@1,3)` or `(@1:3)`; None when `text` is not a channel list.
pub(super) fn channel_list(text: &str) -> Option<Result<Vec<u32>, ScpiFault>> {
    let inner = text.trim().strip_prefix("(@")?.strip_suffix(')')?;
    let bad = || fault(-222, "Data out of range;channel list");
    let mut channels = Vec::new();
    for part in inner.split(',') {
        let part = part.trim();
        let parsed = match part.split_once(':') {
            Some((from, to)) => match (from.trim().parse::<u32>(), to.trim().parse::<u32>()) {
                (Ok(from), Ok(to)) if from <= to && to - from < 64 => {
                    channels.extend(from..=to);
                    Ok(())
                }
                _ => Err(bad()),
            },
            None => part
                .parse::<u32>()
                .map(|n| channels.push(n))
                .map_err(|_| bad()),
        };
        if let Err(e) = parsed {
            return Some(Err(e));
        }
    }
    Some(Ok(channels))
}

/// A channel word: `CH2`, `OUT2`, `OUTP2`, `OUTPUT2`, or a bare number.
pub(super) fn channel_word(text: &str) -> Option<u32> {
    let upper = text.trim().to_ascii_uppercase();
    let digits = ["OUTPUT", "OUTP", "OUT", "CH"]
        .iter()
        .find_map(|prefix| upper.strip_prefix(prefix))
        .unwrap_or(&upper);
    digits.parse::<u32>().ok()
}

pub(super) fn single(params: &[String]) -> Result<&str, ScpiFault> {
    match params {
        [] => Err(fault(-109, "Missing parameter")),
        [one] => Ok(one),
        _ => Err(fault(-108, "Parameter not allowed")),
    }
}

pub(super) fn no_params(params: &[String]) -> Result<(), ScpiFault> {
    if params.is_empty() {
        Ok(())
    } else {
        Err(fault(-108, "Parameter not allowed"))
    }
}

pub(super) fn boolean(params: &[String]) -> Result<bool, ScpiFault> {
    match single(params)?.to_ascii_uppercase().as_str() {
        "ON" | "1" => Ok(true),
        "OFF" | "0" => Ok(false),
        _ => Err(fault(-224, "Illegal parameter value")),
    }
}

/// A numeric parameter in `0..=max` (`MIN`/`MAX`/`DEF` allowed, unit suffix optional).
pub(super) fn numeric(params: &[String], max: f64, unit: &str) -> Result<f64, ScpiFault> {
    numeric_between(params, 0.0, max, unit)
}

/// A numeric parameter in `min..=max` (`MIN`/`MAX`/`DEF` allowed, unit suffix optional).
pub(super) fn numeric_between(
    params: &[String],
    min: f64,
    max: f64,
    unit: &str,
) -> Result<f64, ScpiFault> {
    let text = single(params)?;
    let value = match text.to_ascii_uppercase().as_str() {
        "MIN" | "MINIMUM" => min,
        "DEF" | "DEFAULT" => 0.0_f64.clamp(min, max),
        "MAX" | "MAXIMUM" => max,
        _ => {
            let expected = (!unit.is_empty()).then_some(unit);
            parse_reading(text, expected)
                .map_err(|_| fault(-104, "Data type error"))?
                .value
        }
    };
    // A little slack so that a range limit written with rounding is still accepted.
    let slack = 1e-9 * max.abs().max(min.abs()).max(1.0);
    if value < min - slack || value > max + slack {
        return Err(fault(-222, "Data out of range"));
    }
    Ok(value)
}
