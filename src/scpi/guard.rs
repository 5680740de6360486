//! Raw SCPI lines typed by a person (`hilrig instruments scpi ID "CMD"`): which of their
//! commands change the instrument, and whether the voltages and currents they set stay
//! inside the rig's safety envelope.
//!
//! Recognised headers (short or long form, any case, with or without `SOURce[n]`, channel
//! suffixes, and trailing `LEVel`/`IMMediate`/`AMPLitude`/`POSitive`):
//! - `VOLTage` — a supply's output voltage (cell voltage on a cell simulator), checked
//!   against `max_pack_voltage` (the cell range on a cell simulator);
//! - `CURRent`, `CURRent:LIMit`, `CURRent:LIMit:NEGative` (its magnitude),
//!   `CURRent:STATic:L1|L2` (Chroma) — a supply's current limit against
//!   `max_charge_current`, a load's sink current against `max_discharge_current`;
//! - `VOLTage:PROTection`, `VOLTage:PROTection:REMote`, `OUTPut:OVP:VALue` — OVP levels,
//!   which may not be set above `max_pack_voltage` (that would weaken the protection);
//! - `CURRent:PROTection`, `OUTPut:OCP:VALue` — OCP levels, likewise against the current;
//! - `APPLy` (Rigol) — its voltage and current.
//!
//! The first numeric parameter is the value (channel lists `(@1)` and `CHn` arguments are
//! skipped); `MIN`/`DEF` count as zero; `MAX` and other words are refused, since their
//! magnitude is unknown here. Other settings are sent unchecked once settings are allowed.

use crate::rig::{Envelope, EnvelopeViolation, Role};

use super::reply::parse_reading;

/// One command of a line, after SCPI's header-path rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommand {
    /// The command as written (trimmed).
    pub text: String,
    /// Header mnemonics, upper case, with the path of earlier commands on the line.
    pub mnemonics: Vec<String>,
    /// The header ends in `?`.
    pub query: bool,
    /// Parameters, split at commas outside quotes and parentheses.
    pub params: Vec<String>,
}

/// Why a raw line is not sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// A setting without `--allow-settings`.
    #[error(
        "`{command}` changes the instrument; only queries are sent unless --allow-settings is \
         given"
    )]
    Setting {
        /// The command.
        command: String,
    },
    /// A value outside the envelope.
    #[error("`{command}`: {violation}")]
    Envelope {
        /// The command.
        command: String,
        /// What left the envelope.
        violation: EnvelopeViolation,
    },
    /// A protection switched off, or a reset, without the explicit flag.
    #[error("`{command}` {what}; it is sent only with --allow-unprotected (and --allow-settings)")]
    Unprotecting {
        /// The command.
        command: String,
        /// What it would do, e.g. `switches over-voltage protection off`.
        what: String,
    },
    /// A recognised setting whose value cannot be checked.
    #[error("`{command}`: {reason}; nothing was sent")]
    Unchecked {
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
}

/// Split a line into its commands (`;`), applying SCPI's header-path rule.
pub fn split_commands(line: &str) -> Vec<RawCommand> {
    let mut commands = Vec::new();
    let mut path: Vec<String> = Vec::new();
    for unit in split_outside(line, ';') {
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
            split_outside(params, ',')
                .into_iter()
                .map(|p| p.trim().to_string())
                .collect()
        };
        let (header, query) = match header.strip_suffix('?') {
            Some(h) => (h, true),
            None => (header, false),
        };
        let mnemonics: Vec<String> = if header.starts_with('*') {
            vec![header.to_ascii_uppercase()]
        } else {
            let own = header
                .trim_start_matches(':')
                .split(':')
                .map(str::to_ascii_uppercase);
            let mut m = if header.starts_with(':') {
                Vec::new()
            } else {
                path.clone()
            };
            m.extend(own);
            path = m[..m.len().saturating_sub(1)].to_vec();
            m
        };
        commands.push(RawCommand {
            text: unit.to_string(),
            mnemonics,
            query,
            params,
        });
    }
    commands
}

fn split_outside(text: &str, separator: char) -> Vec<&str> {
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

/// Whether every command of the line is a query.
pub fn only_queries(line: &str) -> bool {
    split_commands(line).iter().all(|c| c.query)
}

/// What a recognised setting sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Voltage,
    Current,
    OvpLevel,
    OcpLevel,
    Apply,
}

/// The header without `SOURce[n]`, channel suffixes and trailing optional nodes.
fn core_header(mnemonics: &[String]) -> Vec<String> {
    let mut core: Vec<String> = mnemonics
        .iter()
        .map(|m| {
            // `L1`/`L2` (Chroma levels) keep their digit; other suffixes are channels.
            if m == "L1" || m == "L2" {
                m.clone()
            } else {
                m.trim_end_matches(|c: char| c.is_ascii_digit()).to_string()
            }
        })
        .collect();
    if matches!(core.first().map(String::as_str), Some("SOUR" | "SOURCE")) {
        core.remove(0);
    }
    while matches!(
        core.last().map(String::as_str),
        Some(
            "LEV"
                | "LEVEL"
                | "IMM"
                | "IMMEDIATE"
                | "AMPL"
                | "AMPLITUDE"
                | "POS"
                | "POSITIVE"
                | "DC"
        )
    ) && core.len() > 1
    {
        core.pop();
    }
    core
}

fn recognise(c: &RawCommand) -> Option<Setting> {
    if c.query || c.mnemonics.first().is_some_and(|m| m.starts_with('*')) {
        return None;
    }
    let core = core_header(&c.mnemonics);
    let words: Vec<&str> = core.iter().map(String::as_str).collect();
    let volt = |w: &str| w == "VOLT" || w == "VOLTAGE";
    let curr = |w: &str| w == "CURR" || w == "CURRENT";
    let prot = |w: &str| w == "PROT" || w == "PROTECTION";
    let lim = |w: &str| w == "LIM" || w == "LIMIT";
    match words.as_slice() {
        [v] if volt(v) => Some(Setting::Voltage),
        [c] if curr(c) => Some(Setting::Current),
        [c, l] if curr(c) && lim(l) => Some(Setting::Current),
        [c, l, n] if curr(c) && lim(l) && (*n == "NEG" || *n == "NEGATIVE") => {
            Some(Setting::Current)
        }
        [c, s, l] if curr(c) && (*s == "STAT" || *s == "STATIC") && l.starts_with('L') => {
            Some(Setting::Current)
        }
        [v, p] if volt(v) && prot(p) => Some(Setting::OvpLevel),
        [v, p, r] if volt(v) && prot(p) && (*r == "REM" || *r == "REMOTE") => {
            Some(Setting::OvpLevel)
        }
        [c, p] if curr(c) && prot(p) => Some(Setting::OcpLevel),
        [o, x, v] if (*o == "OUTP" || *o == "OUTPUT") && (*v == "VAL" || *v == "VALUE") => match *x
        {
            "OVP" => Some(Setting::OvpLevel),
            "OCP" => Some(Setting::OcpLevel),
            _ => None,
        },
        [a] if *a == "APPL" || *a == "APPLY" => Some(Setting::Apply),
        _ => None,
    }
}

/// The numeric parameters, without channel lists and `CHn` arguments.
fn values(c: &RawCommand) -> Vec<&str> {
    c.params
        .iter()
        .map(String::as_str)
        .filter(|p| !p.starts_with("(@"))
        .filter(|p| {
            let upper = p.to_ascii_uppercase();
            !(upper.starts_with("CH") && upper[2..].chars().all(|ch| ch.is_ascii_digit()))
        })
        .collect()
}

fn number(command: &RawCommand, text: &str, unit: &str) -> Result<f64, Refusal> {
    match text.to_ascii_uppercase().as_str() {
        "MIN" | "MINIMUM" | "DEF" | "DEFAULT" => Ok(0.0),
        word if word.chars().all(|c| c.is_ascii_alphabetic()) => Err(Refusal::Unchecked {
            command: command.text.clone(),
            reason: format!(
                "`{text}` has no value that can be checked against the envelope; give a number"
            ),
        }),
        _ => parse_reading(text, Some(unit))
            .map(|q| q.value)
            .map_err(|reason| Refusal::Unchecked {
                command: command.text.clone(),
                reason,
            }),
    }
}

/// What a command would take away from the bench's protection: a reset or recall
/// (`*RST`, `*RCL`, `SYST:PRES`) or a protection switched off (OVP, OCP, fuse, I/O
/// watchdog); None for anything else.
pub fn unprotecting(c: &RawCommand) -> Option<String> {
    if c.query {
        return None;
    }
    let core = core_header(&c.mnemonics);
    let words: Vec<&str> = core.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["*RST"] => return Some("resets the instrument (protection levels included)".into()),
        ["*RCL"] => {
            return Some("recalls a stored setup, which may carry other protection levels".into())
        }
        [s, p] if (*s == "SYST" || *s == "SYSTEM") && (*p == "PRES" || *p == "PRESET") => {
            return Some("presets the instrument (protection levels included)".into())
        }
        _ => {}
    }
    let stat = |w: &str| w == "STAT" || w == "STATE";
    let without_state: Vec<&str> = match words.split_last() {
        Some((last, rest)) if stat(last) => rest.to_vec(),
        _ => words.clone(),
    };
    let volt = |w: &str| w == "VOLT" || w == "VOLTAGE";
    let curr = |w: &str| w == "CURR" || w == "CURRENT";
    let prot = |w: &str| w == "PROT" || w == "PROTECTION";
    let outp = |w: &str| w == "OUTP" || w == "OUTPUT";
    let name = match without_state.as_slice() {
        [o, "OVP"] if outp(o) => "over-voltage protection",
        [o, "OCP"] if outp(o) => "over-current protection",
        [v, p] if volt(v) && prot(p) && stat(words.last().copied().unwrap_or("")) => {
            "over-voltage protection"
        }
        [c, p] if curr(c) && prot(p) && stat(words.last().copied().unwrap_or("")) => {
            "over-current protection"
        }
        [o, p, "WDOG"] if outp(o) && prot(p) => "the I/O watchdog",
        ["FUSE"] => "the fuse (over-current protection)",
        _ => return None,
    };
    let off = values(c)
        .last()
        .is_some_and(|v| matches!(v.to_ascii_uppercase().as_str(), "OFF" | "0"));
    off.then(|| format!("switches {name} off"))
}

/// Check a typed line before it is sent: queries pass; settings need `allow_settings`, and
/// every recognised voltage or current (see the module documentation) must lie inside
/// `envelope` for an instrument in `role`. Returns the checks made, for the operator.
pub fn check_line(
    line: &str,
    role: Role,
    envelope: &Envelope,
    allow_settings: bool,
) -> Result<Vec<String>, Refusal> {
    check_line_with(line, role, envelope, allow_settings, false)
}

/// As [`check_line`]; resets and protections switched off (see [`unprotecting`]) are
/// refused unless `allow_unprotected`.
pub fn check_line_with(
    line: &str,
    role: Role,
    envelope: &Envelope,
    allow_settings: bool,
    allow_unprotected: bool,
) -> Result<Vec<String>, Refusal> {
    let mut checked = Vec::new();
    for c in split_commands(line) {
        if c.query {
            continue;
        }
        if !allow_settings {
            return Err(Refusal::Setting { command: c.text });
        }
        if let Some(what) = unprotecting(&c) {
            if !allow_unprotected {
                return Err(Refusal::Unprotecting {
                    command: c.text,
                    what,
                });
            }
            checked.push(format!("{} {what} (--allow-unprotected)", c.text));
            continue;
        }
        let Some(setting) = recognise(&c) else {
            continue;
        };
        let vals = values(&c);
        let envelope_err = |violation| Refusal::Envelope {
            command: c.text.clone(),
            violation,
        };
        let first = |unit: &str| -> Result<f64, Refusal> {
            match vals.first() {
                Some(text) => number(&c, text, unit),
                None => Err(Refusal::Unchecked {
                    command: c.text.clone(),
                    reason: "no value to check".into(),
                }),
            }
        };
        let check_voltage = |v: f64| match role {
            Role::CellSim => envelope.check_cell_voltage(v),
            _ => envelope.check_supply_voltage(v),
        };
        let check_current = |a: f64| match role {
            Role::Load => envelope.check_load_current(a.abs()),
            _ => envelope.check_supply_current(a.abs()),
        };
        match setting {
            Setting::Voltage | Setting::OvpLevel => {
                let v = first("V")?;
                check_voltage(v).map_err(envelope_err)?;
                checked.push(format!("{} = {v} V inside the envelope", c.text));
            }
            Setting::Current | Setting::OcpLevel => {
                let a = first("A")?;
                if role == Role::CellSim {
                    continue;
                }
                check_current(a).map_err(envelope_err)?;
                checked.push(format!("{} = {} A inside the envelope", c.text, a.abs()));
            }
            Setting::Apply => {
                let v = first("V")?;
                check_voltage(v).map_err(envelope_err)?;
                if let Some(text) = vals.get(1) {
                    let a = number(&c, text, "A")?;
                    check_current(a).map_err(envelope_err)?;
                }
                checked.push(format!("{} inside the envelope", c.text));
            }
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{Amps, Celsius, Volts};
    use rstest::rstest;

    fn envelope() -> Envelope {
        Envelope {
            max_pack_voltage: Volts(60.0),
            max_charge_current: Amps(30.0),
            max_discharge_current: Amps(40.0),
            cell_voltage_min: Volts(2.0),
            cell_voltage_max: Volts(4.0),
            temperature_min: Celsius(-30.0),
            temperature_max: Celsius(80.0),
            max_short_current: None,
        }
    }

    #[rstest]
    #[case("*IDN?")]
    #[case("MEAS:VOLT? (@1)")]
    #[case(":MEAS:ALL? CH1")]
    #[case("VOLT?;CURR?")]
    fn queries_pass_without_the_flag(#[case] line: &str) {
        assert!(only_queries(line));
        assert!(check_line(line, Role::Supply, &envelope(), false).is_ok());
    }

    #[rstest]
    #[case("OUTP ON")]
    #[case("*RST")]
    #[case("VOLT?;VOLT 5")]
    fn settings_need_the_flag(#[case] line: &str) {
        let refusal = check_line(line, Role::Supply, &envelope(), false).unwrap_err();
        assert!(matches!(refusal, Refusal::Setting { .. }), "{refusal}");
        assert!(refusal.to_string().contains("--allow-settings"));
    }

    #[rstest]
    #[case("VOLT 58.4", Role::Supply, true)]
    #[case("VOLT 61", Role::Supply, false)]
    #[case("SOURce:VOLTage:LEVel:IMMediate:AMPLitude 61 V", Role::Supply, false)]
    #[case("VOLT 60500 mV", Role::Supply, false)]
    #[case(":SOUR2:VOLT 65", Role::Supply, false)]
    #[case("VOLT 65,(@2)", Role::Supply, false)]
    #[case("VOLT 5,(@2)", Role::Supply, true)]
    #[case("CURR 31", Role::Supply, false)]
    #[case("CURR 31", Role::Load, true)]
    #[case("CURR 41", Role::Load, false)]
    #[case("CURR:STAT:L1 45", Role::Load, false)]
    #[case("CURR:LIM 35", Role::Supply, false)]
    #[case("CURR:LIM:NEG -35", Role::Supply, false)]
    #[case("VOLT:PROT 70", Role::Supply, false)]
    #[case(":OUTP:OVP:VAL CH1,70", Role::Supply, false)]
    #[case(":OUTP:OCP:VAL CH1,20", Role::Supply, true)]
    #[case(":APPL CH1,58,35", Role::Supply, false)]
    #[case(":APPL CH1,58,10", Role::Supply, true)]
    #[case("SOUR3:VOLT 4.2", Role::CellSim, false)]
    #[case("SOUR3:VOLT 3.7", Role::CellSim, true)]
    #[case("SOUR:VOLT 12;CURR 35", Role::Supply, false)]
    #[case("OUTP ON", Role::Supply, true)]
    #[case("VOLT MIN", Role::Supply, true)]
    fn settings_stay_inside_the_envelope(
        #[case] line: &str,
        #[case] role: Role,
        #[case] allowed: bool,
    ) {
        let result = check_line(line, role, &envelope(), true);
        assert_eq!(result.is_ok(), allowed, "{line}: {result:?}");
        if let Err(refusal) = result {
            assert!(
                matches!(refusal, Refusal::Envelope { .. }),
                "{line}: {refusal}"
            );
            assert!(refusal.to_string().contains("envelope"), "{refusal}");
        }
    }

    #[rstest]
    #[case("VOLT MAX")]
    #[case("VOLT five")]
    #[case("VOLT")]
    fn unreadable_values_are_refused(#[case] line: &str) {
        let refusal = check_line(line, Role::Supply, &envelope(), true).unwrap_err();
        assert!(matches!(refusal, Refusal::Unchecked { .. }), "{refusal}");
    }

    #[test]
    fn the_header_path_carries_across_semicolons() {
        let commands = split_commands("SOUR:VOLT 12;CURR 3;:OUTP ON");
        let headers: Vec<String> = commands.iter().map(|c| c.mnemonics.join(":")).collect();
        assert_eq!(headers, ["SOUR:VOLT", "SOUR:CURR", "OUTP"]);
    }

    #[rstest::rstest]
    #[case(":OUTP:OVP CH1,OFF", "switches over-voltage protection off")]
    #[case(":OUTP:OCP CH1,OFF", "switches over-current protection off")]
    #[case(":OUTPut:OVP:STATe CH2,0", "switches over-voltage protection off")]
    #[case("VOLT:PROT:STAT OFF", "switches over-voltage protection off")]
    #[case("CURR:PROT:STAT 0,(@1)", "switches over-current protection off")]
    #[case(":SOUR:CURR:PROT:STAT OFF", "switches over-current protection off")]
    #[case("OUTP:PROT:WDOG OFF", "switches the I/O watchdog off")]
    #[case("FUSE OFF", "switches the fuse (over-current protection) off")]
    #[case("*RST", "resets the instrument")]
    #[case("*rcl 1", "recalls a stored setup")]
    #[case("SYST:PRES", "presets the instrument")]
    fn protection_off_and_resets_are_refused(#[case] line: &str, #[case] what: &str) {
        let error = check_line(line, Role::Supply, &envelope(), true).unwrap_err();
        match &error {
            Refusal::Unprotecting { what: said, .. } => {
                assert!(said.starts_with(what), "{line}: {said}")
            }
            other => panic!("{line}: {other}"),
        }
        assert!(error.to_string().contains("--allow-unprotected"));
        assert!(check_line_with(line, Role::Supply, &envelope(), true, true).is_ok());
    }

    #[rstest::rstest]
    #[case(":OUTP:OVP CH1,ON")]
    #[case("VOLT:PROT:STAT ON")]
    #[case("*CLS")]
    #[case(":OUTP CH1,OFF")]
    fn protection_on_and_output_off_pass(#[case] line: &str) {
        assert!(
            check_line(line, Role::Supply, &envelope(), true).is_ok(),
            "{line}"
        );
    }
}
