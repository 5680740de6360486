//! Reading the four user files and checking them against each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, Spanned};

use super::condition::Condition;
use super::error::{did_you_mean, InputError};
use super::fixture::{protection_dimension, Fixture, PROTECTION_KEYS};
use super::limits::{Check, LimitProfile};
use super::model::{Plan, Step, Stimulus};
use crate::dbc::Dbc;
use crate::rig::Rig;

/// A file as read: its path, text and parsed value.
#[derive(Debug)]
pub struct Source<T> {
    /// Path as given.
    pub path: PathBuf,
    /// Full text (for error snippets and evidence copies).
    pub text: String,
    /// Parsed value.
    pub value: T,
}

impl<T> Source<T> {
    fn error(&self, loc: &Location, message: impl Into<String>) -> InputError {
        InputError::at_location(&self.path, &self.text, loc, message)
    }
}

/// Where a logical signal's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalSource {
    /// A DBC signal on the DUT bus.
    Can {
        /// Message name.
        message: String,
        /// Signal name.
        signal: String,
    },
    /// An instrument reading (`supply.v`, `load.i`, ...).
    Instrument,
}

/// A plan with everything it refers to, validated.
#[derive(Debug)]
pub struct LoadedPlan {
    /// The plan.
    pub plan: Source<Plan>,
    /// The DUT fixture.
    pub fixture: Source<Fixture>,
    /// The limit profile.
    pub limits: Source<LimitProfile>,
    /// The DUT's DBC.
    pub dbc: Dbc,
    /// Path of the DBC.
    pub dbc_path: PathBuf,
    /// Logical signal name -> source.
    pub signals: BTreeMap<String, SignalSource>,
}

/// Signals every rig provides from its instruments.
pub const INSTRUMENT_SIGNALS: [&str; 4] = ["supply.v", "supply.i", "load.v", "load.i"];

/// Read and parse one YAML file.
pub fn read_yaml<T: DeserializeOwned>(path: &Path) -> Result<Source<T>, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::file(path, format!("cannot read file: {e}")))?;
    let value = serde_saphyr::from_str::<T>(&text)
        .map_err(|e| with_hint(InputError::from_yaml(path, &text, &e)))?;
    Ok(Source {
        path: path.to_path_buf(),
        text,
        value,
    })
}

/// Add "did you mean" to serde's unknown field/variant messages.
fn with_hint(mut e: InputError) -> InputError {
    let m = &e.message;
    let (Some(start), Some(exp)) = (m.find("unknown "), m.find("expected one of ")) else {
        return e;
    };
    let found = m[start..].split('`').nth(1).map(str::to_string);
    let list = &m[exp + "expected one of ".len()..];
    let candidates: Vec<String> = list
        .split(',')
        .map(|c| c.trim().trim_matches('`').to_string())
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(found) = found {
        if let Some(best) = did_you_mean(&found, candidates.iter().map(String::as_str)) {
            e.message = format!("{m}; did you mean `{best}`?");
        }
    }
    e
}

/// Read a rig file; paths inside it become relative to the working directory.
pub fn load_rig(path: &Path) -> Result<Source<Rig>, InputError> {
    let mut rig: Source<Rig> = read_yaml(path)?;
    if let Some(sim) = &mut rig.value.simulation {
        sim.firmware = relative(path, &sim.firmware);
    }
    for inst in &mut rig.value.instruments {
        if let Some(m) = &mut inst.mapping {
            m.dbc = relative(path, &m.dbc);
        }
    }
    Ok(rig)
}

fn relative(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Load a plan, its fixture, limit profile and DBC, and validate them (and, when a rig is
/// given, every setpoint against its envelope). All problems found are returned.
pub fn load_plan(path: &Path, rig: Option<&Rig>) -> Result<LoadedPlan, Vec<InputError>> {
    let plan: Source<Plan> = read_yaml(path).map_err(|e| vec![e])?;
    let fixture_path = relative(path, &plan.value.dut);
    let fixture: Source<Fixture> = read_yaml(&fixture_path).map_err(|e| vec![e])?;
    let limits_ref = &plan.value.limits.value;
    let limits_path = if limits_ref.ends_with(".yaml") || limits_ref.contains('/') {
        relative(path, Path::new(limits_ref))
    } else {
        relative(
            &fixture_path,
            &Path::new("limits").join(format!("{limits_ref}.yaml")),
        )
    };
    if !limits_path.exists() {
        return Err(vec![plan.error(
            &plan.value.limits.referenced,
            format!(
                "limit profile `{limits_ref}` not found (looked for {})",
                limits_path.display()
            ),
        )]);
    }
    let limits: Source<LimitProfile> = read_yaml(&limits_path).map_err(|e| vec![e])?;
    let dbc_path = relative(&fixture_path, &fixture.value.dbc);
    let dbc =
        Dbc::from_file(&dbc_path).map_err(|e| vec![InputError::file(&dbc_path, e.to_string())])?;

    let mut errors = Vec::new();
    let signals = check_fixture(&fixture, &dbc, &mut errors);
    check_plan(&plan, &fixture, &limits, &dbc, &signals, rig, &mut errors);
    if errors.is_empty() {
        Ok(LoadedPlan {
            plan,
            fixture,
            limits,
            dbc,
            dbc_path,
            signals,
        })
    } else {
        Err(errors)
    }
}

fn check_fixture(
    fx: &Source<Fixture>,
    dbc: &Dbc,
    errors: &mut Vec<InputError>,
) -> BTreeMap<String, SignalSource> {
    let mut signals = BTreeMap::new();
    for name in INSTRUMENT_SIGNALS {
        signals.insert(name.to_string(), SignalSource::Instrument);
    }
    for (logical, target) in &fx.value.signals {
        let Some((msg, sig)) = target.value.split_once('.') else {
            errors.push(fx.error(
                &target.referenced,
                format!("`{}` should be `Message.Signal`", target.value),
            ));
            continue;
        };
        match dbc.signal(&target.value) {
            Some(_) => {
                signals.insert(
                    logical.clone(),
                    SignalSource::Can {
                        message: msg.to_string(),
                        signal: sig.to_string(),
                    },
                );
            }
            None => {
                let all: Vec<String> = dbc
                    .messages()
                    .iter()
                    .flat_map(|m| {
                        m.signals
                            .iter()
                            .map(move |s| format!("{}.{}", m.name, s.name))
                    })
                    .collect();
                let hint = did_you_mean(&target.value, all.iter().map(String::as_str))
                    .map(|b| format!("; did you mean `{b}`?"))
                    .unwrap_or_default();
                errors.push(fx.error(
                    &target.referenced,
                    format!("`{}` is not a signal in the DBC{hint}", target.value),
                ));
            }
        }
    }
    for (key, p) in &fx.value.protections {
        let Some(dim) = protection_dimension(key) else {
            let hint = did_you_mean(key, PROTECTION_KEYS)
                .map(|b| format!("; did you mean `{b}`?"))
                .unwrap_or_default();
            errors.push(fx.error(
                &p.referenced,
                format!(
                    "`{key}` is not a protection (known: {}){hint}",
                    PROTECTION_KEYS.join(", ")
                ),
            ));
            continue;
        };
        for (what, q) in [("trip", p.value.trip.0), ("release", p.value.release.0)] {
            if q.dim != dim {
                errors.push(fx.error(
                    &p.referenced,
                    format!(
                        "{key}.{what} is {}, but {} is expected",
                        q.dim.name(),
                        dim.name()
                    ),
                ));
            }
        }
    }
    if let Some(sr) = &fx.value.state_request {
        match dbc.message(&sr.message).and_then(|m| m.signal(&sr.signal)) {
            None => errors.push(InputError::file(
                &fx.path,
                format!(
                    "state_request: `{}.{}` is not in the DBC",
                    sr.message, sr.signal
                ),
            )),
            Some(sig) => {
                for label in [&sr.run, &sr.standby] {
                    if sig.label_value(label).is_none() {
                        errors.push(InputError::file(
                            &fx.path,
                            format!(
                                "state_request: `{label}` is not in the value table of {}.{}",
                                sr.message, sr.signal
                            ),
                        ));
                    }
                }
            }
        }
    }
    signals
}

fn check_condition(
    plan: &Source<Plan>,
    cond: &Spanned<Condition>,
    signals: &BTreeMap<String, SignalSource>,
    dbc: &Dbc,
    errors: &mut Vec<InputError>,
) -> Condition {
    let mut c = cond.value.clone();
    for s in c.signals() {
        if !signals.contains_key(s) {
            let hint = did_you_mean(s, signals.keys().map(String::as_str))
                .map(|b| format!("; did you mean `{b}`?"))
                .unwrap_or_default();
            errors.push(plan.error(
                &cond.referenced,
                format!("signal `{s}` is not defined in the DUT fixture{hint}"),
            ));
        }
    }
    let bound = bind_with(signals, dbc, &mut c);
    if let Err(msg) = bound {
        if c.signals().iter().all(|s| signals.contains_key(*s)) {
            errors.push(plan.error(&cond.referenced, msg));
        }
    }
    c
}

fn check_plan(
    plan: &Source<Plan>,
    fx: &Source<Fixture>,
    limits: &Source<LimitProfile>,
    dbc: &Dbc,
    signals: &BTreeMap<String, SignalSource>,
    rig: Option<&Rig>,
    errors: &mut Vec<InputError>,
) {
    let p = &plan.value;
    if p.repeat == 0 {
        errors.push(InputError::file(&plan.path, "repeat must be at least 1"));
    }
    let cells = fx.value.cells_in_series;
    for step in p.setup.iter().chain(&p.steps).chain(&p.teardown) {
        let at = &step.referenced;
        let mut checks: Vec<Result<(), crate::rig::EnvelopeViolation>> = Vec::new();
        let mut envelope = |r| checks.push(r);
        let env = rig.map(|r| &r.envelope);
        match &step.value {
            Step::Supply(s) => {
                if let (Some(env), Some(v)) = (env, s.voltage) {
                    envelope(env.check_supply_voltage(v.0));
                }
                if let (Some(env), Some(a)) = (env, s.current) {
                    envelope(env.check_supply_current(a.0));
                }
            }
            Step::Load(l) => {
                if let (Some(env), Some(a)) = (env, l.current) {
                    envelope(env.check_load_current(a.0));
                }
            }
            Step::Cells(c) => {
                match (c.all, c.cell, c.voltage) {
                    (Some(_), None, None) | (None, Some(_), Some(_)) => {}
                    _ => errors.push(plan.error(
                        at,
                        "cells: give either `all: VOLTAGE` or `cell: N` with `voltage: VOLTAGE`",
                    )),
                }
                if let Some(n) = c.cell {
                    if n == 0 || n > cells {
                        errors.push(plan.error(
                            at,
                            format!("cell {n} does not exist: the DUT has cells 1..{cells}"),
                        ));
                    }
                }
                if let Some(env) = env {
                    for v in c.all.iter().chain(c.voltage.iter()) {
                        envelope(env.check_cell_voltage(v.0));
                    }
                }
            }
            Step::Wait(_) => {}
            Step::WaitFor(w) => {
                check_condition(plan, &w.until, signals, dbc, errors);
            }
            Step::Trip(t) => {
                check_condition(plan, &t.detect, signals, dbc, errors);
                let Stimulus::Ramp(r) = &t.stimulus;
                if r.cell == 0 || r.cell > cells {
                    errors.push(plan.error(
                        at,
                        format!(
                            "ramp cell {} does not exist: the DUT has cells 1..{cells}",
                            r.cell
                        ),
                    ));
                }
                if r.rate.0 <= 0.0 {
                    errors.push(plan.error(at, "ramp rate must be positive"));
                }
                if let Some(env) = env {
                    envelope(env.check_cell_voltage(r.from.0));
                    envelope(env.check_cell_voltage(r.to.0));
                }
                let prot = &t.protection;
                let declared = fx.value.protections.get(&prot.value);
                if declared.is_none() {
                    let hint =
                        did_you_mean(&prot.value, fx.value.protections.keys().map(String::as_str))
                            .map(|b| format!("; did you mean `{b}`?"))
                            .unwrap_or_default();
                    errors.push(plan.error(
                        &prot.referenced,
                        format!(
                            "protection `{}` is not declared in the DUT fixture{hint}",
                            prot.value
                        ),
                    ));
                }
                for j in &t.judge {
                    match limits.value.criteria.get(&j.value) {
                        None => {
                            let hint = did_you_mean(
                                &j.value,
                                limits.value.criteria.keys().map(String::as_str),
                            )
                            .map(|b| format!("; did you mean `{b}`?"))
                            .unwrap_or_default();
                            errors.push(plan.error(
                                &j.referenced,
                                format!(
                                    "limit `{}` is not defined in profile `{}`{hint}",
                                    j.value, limits.value.profile
                                ),
                            ));
                        }
                        Some(c) => match &c.value.check {
                            Check::Threshold { tolerance } => {
                                if let Some(dim) = protection_dimension(&prot.value) {
                                    if tolerance.0.dim != dim {
                                        errors.push(limits.error(
                                            &c.referenced,
                                            format!(
                                                "tolerance is {}, but protection `{}` needs {}",
                                                tolerance.0.dim.name(),
                                                prot.value,
                                                dim.name()
                                            ),
                                        ));
                                    }
                                }
                            }
                            Check::TripTime { .. } => {}
                            Check::StimulusPeak { at_most } => {
                                if !fx.value.cell_limits.contains_key(at_most) {
                                    errors.push(limits.error(
                                        &c.referenced,
                                        format!("`{at_most}` is not in the DUT fixture's cell_limits ({})", fx.path.display()),
                                    ));
                                }
                            }
                        },
                    }
                }
            }
        }
        for v in checks.into_iter().filter_map(Result::err) {
            errors.push(plan.error(at, v.to_string()));
        }
    }
}

fn bind_with(
    signals: &BTreeMap<String, SignalSource>,
    dbc: &Dbc,
    c: &mut Condition,
) -> Result<(), String> {
    c.bind(&|sig, name| match signals.get(sig) {
        Some(SignalSource::Can { message, signal }) => {
            let s = dbc
                .message(message)
                .and_then(|m| m.signal(signal))
                .ok_or_else(|| format!("{message}.{signal} missing"))?;
            s.label_value(name).ok_or_else(|| {
                let known: Vec<&str> = s.value_table.values().map(String::as_str).collect();
                format!(
                    "`{name}` is not a value of `{sig}` (known: {})",
                    known.join(", ")
                )
            })
        }
        _ => Err(format!(
            "`{sig}` has no named values; compare it with a number or quantity"
        )),
    })
}

/// A condition with its enum names replaced by numbers from the DUT's DBC.
pub fn bind_condition(plan: &LoadedPlan, c: &Condition) -> Result<Condition, String> {
    let mut c = c.clone();
    bind_with(&plan.signals, &plan.dbc, &mut c)?;
    Ok(c)
}
