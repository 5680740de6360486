//! The checks a run makes before it switches anything on, shared by `hilrig validate` and
//! `hilrig run` (so "ok" means "run would start"): the rig's envelope, instruments, buses,
//! references and calibration dates, and the fixture's periods, levels and chemistry.
//! Values a file gives without a position of their own are located by their key in the
//! file's text, so every error still has a line and column.

use std::collections::BTreeSet;

use super::error::InputError;
use super::fixture::Fixture;
use super::load::Source;
use crate::rig::{Rig, Role};

/// The shortest period hilrig accepts (sampling, setpoint updates, cyclic messages): a
/// shorter one would flood the bus or hang a virtual-time run.
pub const MIN_PERIOD_S: f64 = 0.001;

/// The most cells in series a fixture may declare (hilrig keeps per-cell state).
pub const MAX_CELLS_IN_SERIES: u32 = 1024;

/// The most NTC sensors a fixture may declare.
pub const MAX_NTCS: u32 = 256;

/// Cell chemistries a fixture may name (case does not matter).
pub const KNOWN_CHEMISTRIES: [&str; 9] = [
    "LFP", "LiFePO4", "NMC", "NCM", "NCA", "LTO", "LCO", "LMO", "LMFP",
];

/// Line and column (1-based) of the value of the `nth` (0-based) `key:` in `text`;
/// (0, 0) when the key is not written (a default).
pub fn locate(text: &str, key: &str, nth: usize) -> (usize, usize) {
    let needle = format!("{key}:");
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(pos) = line[from..].find(&needle) {
            let at = from + pos;
            let before = line[..at].chars().next_back();
            let starts_word = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            if starts_word {
                if seen == nth {
                    let rest = &line[at + needle.len()..];
                    let value = rest.len() - rest.trim_start().len();
                    let col = line[..at + needle.len() + value].chars().count() + 1;
                    return (i + 1, col);
                }
                seen += 1;
            }
            from = at + needle.len();
        }
    }
    (0, 0)
}

fn at<T>(src: &Source<T>, key: &str, nth: usize, message: impl Into<String>) -> InputError {
    let (line, column) = locate(&src.text, key, nth);
    if line == 0 {
        InputError::file(&src.path, message)
    } else {
        InputError::at(&src.path, &src.text, line, column, message)
    }
}

/// Everything wrong with a rig that would stop a run before it starts.
pub fn check_rig(rig: &Source<Rig>) -> Vec<InputError> {
    let r = &rig.value;
    let mut errors = Vec::new();
    let e = &r.envelope;
    let positive = [
        ("max_pack_voltage", e.max_pack_voltage.0, "V"),
        ("max_charge_current", e.max_charge_current.0, "A"),
        ("max_discharge_current", e.max_discharge_current.0, "A"),
        ("cell_voltage_max", e.cell_voltage_max.0, "V"),
    ];
    for (key, v, unit) in positive {
        if v <= 0.0 {
            errors.push(at(
                rig,
                key,
                0,
                format!("envelope.{key} is {v} {unit}; it must be above zero"),
            ));
        }
    }
    if e.cell_voltage_min.0 < 0.0 {
        errors.push(at(
            rig,
            "cell_voltage_min",
            0,
            "envelope.cell_voltage_min is negative; a cell voltage is 0 V or more",
        ));
    }
    if e.cell_voltage_min.0 >= e.cell_voltage_max.0 {
        errors.push(at(
            rig,
            "cell_voltage_min",
            0,
            format!(
                "envelope.cell_voltage_min ({}) is not below cell_voltage_max ({})",
                e.cell_voltage_min, e.cell_voltage_max
            ),
        ));
    }
    if e.temperature_min.0 >= e.temperature_max.0 {
        errors.push(at(
            rig,
            "temperature_min",
            0,
            format!(
                "envelope.temperature_min ({}) is not below temperature_max ({})",
                e.temperature_min, e.temperature_max
            ),
        ));
    }
    if r.sample_period.0 < MIN_PERIOD_S {
        errors.push(at(
            rig,
            "sample_period",
            0,
            format!(
                "sample_period {} is shorter than {} ms",
                r.sample_period,
                MIN_PERIOD_S * 1e3
            ),
        ));
    }
    let mut ids = BTreeSet::new();
    let bus_ids: BTreeSet<&str> = r.buses.iter().map(|b| b.id.as_str()).collect();
    let mut update_periods = 0;
    let mut short_switch: Option<&str> = None;
    // Cells each SCPI cell simulator drives (first, last), to find overlaps.
    let mut cell_ranges: Vec<(&str, (u32, u32))> = Vec::new();
    for (n, inst) in r.instruments.iter().enumerate() {
        let id_at = |msg: String| at(rig, "id", n, msg);
        if !ids.insert(inst.id.as_str()) {
            errors.push(id_at(format!(
                "instrument id `{}` is given twice; each instrument needs its own id",
                inst.id
            )));
        }
        match (inst.role, inst.over_scpi()) {
            (Role::Chamber, _) => errors.push(id_at(format!(
                "instrument `{}`: thermal chambers are not supported yet",
                inst.id
            ))),
            (Role::Scope, _) => {
                match inst.dialect.as_deref() {
                    None => errors.push(id_at(format!("scope `{}` has no `dialect:`", inst.id))),
                    Some(d) if crate::scpi::builtin_scope_dialect(d).is_none() => errors.push(at(
                        rig,
                        "dialect",
                        dialect_index(r, n),
                        format!(
                            "scope `{}`: unknown scope dialect `{d}` (known: {})",
                            inst.id,
                            crate::scpi::builtin_scope_dialects()
                                .iter()
                                .map(|d| d.id.clone())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )),
                    Some(_) => {}
                }
                match inst.capture {
                    None => errors.push(id_at(format!(
                        "scope `{}` has no `capture: {{channel, volts_per_amp}}`",
                        inst.id
                    ))),
                    Some(c) if !(c.volts_per_amp.is_finite() && c.volts_per_amp > 0.0) => errors
                        .push(id_at(format!(
                            "scope `{}`: capture.volts_per_amp {} is not above zero",
                            inst.id, c.volts_per_amp
                        ))),
                    Some(_) => {}
                }
                if inst.address.is_none() {
                    errors.push(id_at(format!("scope `{}` has no `address:`", inst.id)));
                }
            }
            (Role::Short, _) => {
                if let Some(first) = short_switch.replace(&inst.id) {
                    errors.push(id_at(format!(
                        "short-circuit switch `{}`: the rig already has one (`{first}`); a \
                         rig has at most one",
                        inst.id
                    )));
                }
                let dialect = inst
                    .dialect
                    .as_deref()
                    .map(|d| (d, crate::scpi::builtin_switch_dialect(d)));
                match dialect {
                    None => errors.push(id_at(format!(
                        "short-circuit switch `{}` has no `dialect:`",
                        inst.id
                    ))),
                    Some((d, None)) => errors.push(at(
                        rig,
                        "dialect",
                        dialect_index(r, n),
                        format!(
                            "short-circuit switch `{}`: unknown switch dialect `{d}` (known: {})",
                            inst.id,
                            crate::scpi::builtin_switch_dialect_ids().join(", ")
                        ),
                    )),
                    Some((_, Some(_))) => {}
                }
                if inst.address.is_none() {
                    errors.push(id_at(format!(
                        "short-circuit switch `{}` has no `address:`",
                        inst.id
                    )));
                }
                let switch_dialect = dialect.and_then(|(_, d)| d);
                for problem in short_path_problems(inst, switch_dialect.as_ref(), e) {
                    errors.push(id_at(problem));
                }
            }
            (_, true) => {
                if inst.role == Role::CellSim {
                    let channels = inst
                        .dialect
                        .as_deref()
                        .and_then(crate::scpi::builtin_dialect)
                        .map_or(0, |d| d.channel_numbers().len() as u32);
                    let range = (
                        inst.cell_offset.saturating_add(1),
                        inst.cell_offset.saturating_add(channels.max(1)),
                    );
                    if inst.cell_offset >= MAX_CELLS_IN_SERIES {
                        errors.push(id_at(format!(
                            "cell simulator `{}`: cell_offset {} is outside 0 .. {}",
                            inst.id,
                            inst.cell_offset,
                            MAX_CELLS_IN_SERIES - 1
                        )));
                    } else if let Some((other, _)) = cell_ranges
                        .iter()
                        .find(|(_, (lo, hi))| range.0 <= *hi && *lo <= range.1)
                    {
                        errors.push(id_at(format!(
                            "cell simulator `{}` drives cells {} to {}, which `{other}` drives \
                             too: give each unit its own `cell_offset`",
                            inst.id, range.0, range.1
                        )));
                    } else {
                        cell_ranges.push((inst.id.as_str(), range));
                    }
                }
                match inst.dialect.as_deref() {
                    None => {
                        errors.push(id_at(format!("instrument `{}` has no `dialect:`", inst.id)))
                    }
                    Some(d) => match crate::scpi::builtin_dialect(d) {
                        None => errors.push(at(
                            rig,
                            "dialect",
                            dialect_index(r, n),
                            format!(
                                "instrument `{}`: unknown dialect `{d}` (known: {})",
                                inst.id,
                                crate::scpi::builtin_dialects()
                                    .iter()
                                    .map(|d| d.id.clone())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )),
                        Some(dialect)
                            if format!("{:?}", dialect.role) != format!("{:?}", inst.role) =>
                        {
                            errors.push(id_at(format!(
                                "instrument `{}` is a {:?} but dialect `{d}` is for a {:?}",
                                inst.id, inst.role, dialect.role
                            )))
                        }
                        Some(_) => {}
                    },
                }
                if inst.address.is_none() {
                    errors.push(id_at(format!("instrument `{}` has no `address:`", inst.id)));
                }
            }
            (_, false) => {
                match inst.bus.as_deref() {
                    None => {
                        errors.push(id_at(format!("cell simulator `{}` has no `bus:`", inst.id)))
                    }
                    Some(b) if !bus_ids.contains(b) => errors.push(id_at(format!(
                        "cell simulator `{}`: no bus `{b}` in the rig (buses: {})",
                        inst.id,
                        bus_ids.iter().copied().collect::<Vec<_>>().join(", ")
                    ))),
                    Some(_) => {}
                }
                match &inst.mapping {
                    None => errors.push(id_at(format!(
                        "cell simulator `{}` has no `mapping:`",
                        inst.id
                    ))),
                    Some(m) => {
                        if !m.dbc.is_file() {
                            errors.push(at(
                                rig,
                                "dbc",
                                0,
                                format!(
                                    "cell simulator `{}`: DBC {} not found",
                                    inst.id,
                                    m.dbc.display()
                                ),
                            ));
                        }
                        if m.update_period.0 < MIN_PERIOD_S {
                            errors.push(at(
                                rig,
                                "update_period",
                                update_periods,
                                format!(
                                    "cell simulator `{}`: update_period {} is shorter than {} ms",
                                    inst.id,
                                    m.update_period,
                                    MIN_PERIOD_S * 1e3
                                ),
                            ));
                        }
                        update_periods += 1;
                    }
                }
            }
        }
    }
    let mut bus_seen = BTreeSet::new();
    for b in &r.buses {
        if !bus_seen.insert(b.id.as_str()) {
            errors.push(at(
                rig,
                "id",
                r.instruments.len(),
                format!("bus id `{}` is given twice", b.id),
            ));
        }
        if b.bitrate == 0 || b.bitrate > 8_000_000 {
            errors.push(at(
                rig,
                "bitrate",
                0,
                format!(
                    "bus `{}`: bitrate {} bit/s is not a CAN bit rate",
                    b.id, b.bitrate
                ),
            ));
        }
    }
    if let Some(sim) = &r.simulation {
        if !sim.firmware.is_file() {
            errors.push(at(
                rig,
                "firmware",
                0,
                format!(
                    "simulation: firmware image {} not found",
                    sim.firmware.display()
                ),
            ));
        }
    }
    for (serial, due) in &r.calibration {
        if !is_date(due) {
            errors.push(at(
                rig,
                serial,
                0,
                format!(
                    "calibration due date `{due}` of serial {serial} is not a date (YYYY-MM-DD)"
                ),
            ));
        }
    }
    errors
}

/// How many instruments before instrument `n` wrote a `dialect:` key.
fn dialect_index(r: &Rig, n: usize) -> usize {
    r.instruments[..n]
        .iter()
        .filter(|i| i.dialect.is_some())
        .count()
}

/// Whether `s` is a real calendar date `YYYY-MM-DD`.
pub fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.trim().split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// Everything wrong with a fixture's own values (its DBC references are checked with it).
pub fn check_fixture(fx: &Source<Fixture>) -> Vec<InputError> {
    let f = &fx.value;
    let mut errors = Vec::new();
    if f.cells_in_series == 0 || f.cells_in_series > MAX_CELLS_IN_SERIES {
        errors.push(at(
            fx,
            "cells_in_series",
            0,
            format!(
                "cells_in_series {} is outside 1 .. {MAX_CELLS_IN_SERIES}",
                f.cells_in_series
            ),
        ));
    }
    if f.ntcs > MAX_NTCS {
        errors.push(at(
            fx,
            "ntcs",
            0,
            format!("ntcs {} is more than {MAX_NTCS}", f.ntcs),
        ));
    }
    if !KNOWN_CHEMISTRIES
        .iter()
        .any(|c| c.eq_ignore_ascii_case(f.chemistry.trim()))
    {
        errors.push(at(
            fx,
            "chemistry",
            0,
            format!(
                "unknown cell chemistry `{}` (known: {})",
                f.chemistry,
                KNOWN_CHEMISTRIES.join(", ")
            ),
        ));
    }
    if f.nominal_cell_voltage.0 <= 0.0 {
        errors.push(at(
            fx,
            "nominal_cell_voltage",
            0,
            "nominal_cell_voltage must be above zero",
        ));
    }
    if let Some(p) = f.sampling_period {
        if p.0 < MIN_PERIOD_S {
            errors.push(at(
                fx,
                "sampling_period",
                0,
                format!(
                    "sampling_period {p} is shorter than {} ms",
                    MIN_PERIOD_S * 1e3
                ),
            ));
        }
    }
    if let Some(sr) = &f.state_request {
        if sr.cycle.0 < MIN_PERIOD_S {
            errors.push(at(
                fx,
                "cycle",
                0,
                format!(
                    "state_request.cycle {} is shorter than {} ms",
                    sr.cycle,
                    MIN_PERIOD_S * 1e3
                ),
            ));
        }
    }
    for (key, p) in &f.protections {
        let (trip, release) = (p.value.trip.0, p.value.release.0);
        if trip.dim != release.dim {
            continue; // reported with the dimensions
        }
        // Over-limits release below their trip level, under-limits above it.
        let upward = matches!(key.as_str(), "ov" | "otc" | "otd" | "occ" | "ocd" | "scd");
        let wrong = if upward {
            release.value > trip.value
        } else {
            release.value < trip.value
        };
        if wrong {
            errors.push(InputError::at_location(
                &fx.path,
                &fx.text,
                &p.referenced,
                format!(
                    "protection `{key}`: release {} is {} its trip level {}; a protection \
                     releases on the safe side of where it trips",
                    crate::units::display(release.value, release.dim),
                    if upward { "above" } else { "below" },
                    crate::units::display(trip.value, trip.dim),
                ),
            ));
        }
    }
    errors
}

/// Why a criterion's `check:` was not read: a known check with a wrong field or value, or
/// a name no check has (with the known ones and the closest).
fn unknown_check(name: &str, v: &serde_json::Value) -> String {
    use super::limits::CHECK_KINDS;
    let key = match v {
        serde_json::Value::String(s) => Some(s.as_str()),
        serde_json::Value::Object(o) if o.len() == 1 => o.keys().next().map(String::as_str),
        _ => None,
    };
    match key {
        Some(k) if CHECK_KINDS.contains(&k) => format!(
            "criterion `{name}`: check `{k}` has a missing, misspelled or invalid field or value \
             in `{v}` (quantities need units, e.g. `50 mV`, `2 s`)"
        ),
        _ => {
            let h = key
                .and_then(|k| super::error::did_you_mean(k, CHECK_KINDS.iter().copied()))
                .map(|b| format!("; did you mean `{b}`?"))
                .unwrap_or_default();
            format!(
                "criterion `{name}`: `{v}` is no check hilrig knows{h} (the checks are {})",
                CHECK_KINDS.join(", ")
            )
        }
    }
}

/// Everything wrong with a limit profile's own values: tolerances are not negative, and a
/// window's minimum is below its maximum.
pub fn check_limits(lp: &Source<super::limits::LimitProfile>) -> Vec<InputError> {
    use super::limits::Check;
    let mut errors = Vec::new();
    for (name, c) in &lp.value.criteria {
        let problem = match &c.value.check {
            Check::Threshold { tolerance, .. } | Check::Release { tolerance, .. }
                if tolerance.0.value < 0.0 =>
            {
                Some(format!("criterion `{name}`: the tolerance is negative"))
            }
            Check::ThresholdWindow { min, max } if min.0.value >= max.0.value => Some(format!(
                "criterion `{name}`: the window's min is not below its max"
            )),
            Check::Unknown(v) => Some(unknown_check(name, v)),
            _ => None,
        };
        if let Some(p) = problem {
            errors.push(InputError::at_location(
                &lp.path,
                &lp.text,
                &c.referenced,
                p,
            ));
        }
    }
    errors
}

/// What kind of hilrig file `text` is, from its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A rig (`station:`).
    Rig,
    /// A suite (`suite:` and `plans:`).
    Suite,
    /// A test plan (`plan:`).
    Plan,
    /// A DUT fixture (`dut:` and `cells_in_series:`).
    Fixture,
    /// A limit profile (`profile:` and `criteria:`).
    LimitProfile,
    /// A DBC file (`VERSION`, `NS_ :` or `BO_` lines).
    Dbc,
    /// A Modbus register map (`map:` and `registers:`).
    RegisterMap,
}

impl FileKind {
    /// The kind of a file's text, by its top-level keys (`None`: none of them).
    pub fn of_text(text: &str) -> Option<FileKind> {
        if text
            .lines()
            .any(|l| l.starts_with("BO_ ") || l.starts_with("NS_ :") || l.starts_with("VERSION \""))
        {
            return Some(FileKind::Dbc);
        }
        let keys: BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with([' ', '\t', '#', '-']))
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim()))
            .collect();
        let has = |k: &str| keys.contains(k);
        Some(if has("station") {
            FileKind::Rig
        } else if has("suite") && has("plans") {
            FileKind::Suite
        } else if has("plan") {
            FileKind::Plan
        } else if has("profile") && has("criteria") {
            FileKind::LimitProfile
        } else if has("cells_in_series") || (has("dut") && has("protections")) {
            FileKind::Fixture
        } else if has("map") && has("registers") {
            FileKind::RegisterMap
        } else {
            return None;
        })
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Rig => "rig",
            FileKind::Suite => "suite",
            FileKind::Plan => "test plan",
            FileKind::Fixture => "DUT fixture",
            FileKind::LimitProfile => "limit profile",
            FileKind::Dbc => "DBC",
            FileKind::RegisterMap => "Modbus register map",
        }
    }
}

/// The longest `max_closed` a short-circuit switch may declare: a short-circuit stimulus
/// is over in milliseconds, and a path closed longer heats the resistor and the cells.
pub const MAX_SHORT_CLOSED_S: f64 = 1.0;

/// What is wrong with a short-circuit switch's `short:` path: missing, a resistance that is
/// not above zero, a `max_closed` outside (0, 1 s], a channel the dialect lacks, or a
/// prospective current (at the envelope's highest pack voltage) beyond the envelope.
fn short_path_problems(
    inst: &crate::rig::InstrumentConfig,
    dialect: Option<&crate::scpi::SwitchDialect>,
    envelope: &crate::rig::Envelope,
) -> Vec<String> {
    let id = &inst.id;
    let Some(path) = inst.short else {
        return vec![format!(
            "short-circuit switch `{id}` has no `short: {{channel, resistance, max_closed}}`"
        )];
    };
    let mut out = Vec::new();
    let r = path.resistance.0;
    if !(r.is_finite() && r > 0.0) {
        out.push(format!(
            "short-circuit switch `{id}`: short.resistance {} is not above zero",
            path.resistance
        ));
    } else if let Err(v) =
        envelope.check_short_current(path.prospective_current(envelope.max_pack_voltage.0))
    {
        out.push(format!(
            "short-circuit switch `{id}`: at max_pack_voltage {} its path would carry {}; {v}",
            envelope.max_pack_voltage,
            crate::units::display(
                path.prospective_current(envelope.max_pack_voltage.0),
                crate::units::Dimension::Current
            )
        ));
    }
    let closed = path.max_closed.0;
    if !(closed.is_finite() && closed > 0.0 && closed <= MAX_SHORT_CLOSED_S) {
        out.push(format!(
            "short-circuit switch `{id}`: short.max_closed {} is outside (0 s, {MAX_SHORT_CLOSED_S} s]",
            path.max_closed
        ));
    }
    if let Some(Err(e)) = dialect.map(|d| d.check_channel(path.channel)) {
        out.push(format!("short-circuit switch `{id}`: short.channel: {e}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::dbc(
        "VERSION \"1.0\"\n\nBO_ 849 Pylon_Limits: 8 BMS\n",
        Some(FileKind::Dbc)
    )]
    #[case::dbc_without_version("NS_ :\n\tCM_\nBS_:\n", Some(FileKind::Dbc))]
    #[case::register_map(
        "map: m\ntitle: t\nregisters:\n  inv.cvl: {}\n",
        Some(FileKind::RegisterMap)
    )]
    #[case::plan("plan: p\nsteps: []\n", Some(FileKind::Plan))]
    #[case::neither("hello: world\n", None)]
    fn dbcs_and_register_maps_are_recognised(#[case] text: &str, #[case] kind: Option<FileKind>) {
        assert_eq!(FileKind::of_text(text), kind);
    }

    /// A short-circuit switch's path is checked against its dialect and the envelope.
    #[rstest::rstest]
    #[case::sound(
        "{channel: 101, resistance: 250 mOhm, max_closed: 50 ms}",
        Some(300.0),
        None
    )]
    #[case::no_allowance(
        "{channel: 101, resistance: 250 mOhm, max_closed: 50 ms}",
        None,
        Some("max_short_current")
    )]
    #[case::too_much_current(
        "{channel: 101, resistance: 100 mOhm, max_closed: 50 ms}",
        Some(300.0),
        Some("600.0000 A")
    )]
    #[case::zero_resistance(
        "{channel: 101, resistance: 0 Ohm, max_closed: 50 ms}",
        Some(300.0),
        Some("not above zero")
    )]
    #[case::closed_too_long(
        "{channel: 101, resistance: 250 mOhm, max_closed: 5 s}",
        Some(300.0),
        Some("max_closed")
    )]
    #[case::no_such_channel(
        "{channel: 121, resistance: 250 mOhm, max_closed: 50 ms}",
        Some(300.0),
        Some("101..=120")
    )]
    fn short_paths_are_checked(
        #[case] path: &str,
        #[case] max_short: Option<f64>,
        #[case] says: Option<&str>,
    ) {
        let inst: crate::rig::InstrumentConfig = serde_saphyr::from_str(&format!(
            "{{id: sc, role: short, dialect: keysight-daq970a, address: 'tcp://127.0.0.1:1', short: {path}}}"
        ))
        .unwrap();
        let mut envelope = crate::rig::Envelope::example();
        envelope.max_short_current = max_short.map(crate::units::Amps);
        let dialect = crate::scpi::builtin_switch_dialect("keysight-daq970a");
        let problems = short_path_problems(&inst, dialect.as_ref(), &envelope);
        match says {
            None => assert!(problems.is_empty(), "{problems:?}"),
            Some(s) => assert!(problems.iter().any(|p| p.contains(s)), "{problems:?}"),
        }
    }

    /// A rig has at most one short-circuit switch; the second is named with its line.
    #[test]
    fn a_second_short_circuit_switch_is_refused() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = root.join("rig/sim.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let entry = "  - id: short\n    role: short";
        assert!(text.contains(entry));
        let twice = text.replacen(
            entry,
            &format!("  - id: short2\n    role: short\n    dialect: keysight-daq970a\n    address: sim://short2\n    short: {{channel: 102, resistance: 250 mOhm, max_closed: 50 ms}}\n{entry}"),
            1,
        );
        let rig = Source {
            path: path.clone(),
            value: serde_saphyr::from_str::<Rig>(&twice).unwrap(),
            text: twice,
        };
        let errors = check_rig(&rig);
        let all = format!("{errors:?}");
        assert!(all.contains("already has one (`short2`)"), "{all}");
        let sound = Source {
            path,
            value: serde_saphyr::from_str::<Rig>(&text).unwrap(),
            text,
        };
        let once = format!("{:?}", check_rig(&sound));
        assert!(!once.contains("already has one"), "{once}");
    }

    #[test]
    fn locate_finds_the_value_of_the_nth_key() {
        let text = "a: 1\ninstruments:\n  - id: x\n  - {id: y, role: load}\n";
        assert_eq!(locate(text, "id", 0), (3, 9));
        assert_eq!(locate(text, "id", 1), (4, 10));
        assert_eq!(locate(text, "missing", 0), (0, 0));
    }

    #[test]
    fn calibration_dates_must_be_real_dates() {
        assert!(is_date("2027-02-28"));
        assert!(is_date("2028-02-29"));
        assert!(!is_date("2027-02-29"));
        assert!(!is_date("2027-13-45"));
        assert!(!is_date("27-1-1"));
    }

    #[test]
    fn files_are_recognised_by_their_keys() {
        assert_eq!(FileKind::of_text("station: s\n"), Some(FileKind::Rig));
        assert_eq!(
            FileKind::of_text("dut: x\nchemistry: LFP\ncells_in_series: 16\n"),
            Some(FileKind::Fixture)
        );
        assert_eq!(
            FileKind::of_text("profile: p\ncriteria: {}\n"),
            Some(FileKind::LimitProfile)
        );
        assert_eq!(FileKind::of_text("plan: p\ndut: x\n"), Some(FileKind::Plan));
    }
}
