//! Checking a plan against its fixture, limits, DBC and rig: targets, quantities, criteria,
//! steps and trips, collecting every error with its location.

use std::collections::BTreeMap;

use serde_saphyr::{Location, Spanned};

use super::{condition_problems, hint, signal_dimension, SignalSource, Source};
use crate::dbc::Dbc;
use crate::plan::condition::Condition;
use crate::plan::error::InputError;
use crate::plan::fixture::{Fixture, QuantityValue};
use crate::plan::limits::{Check, LimitProfile};
use crate::plan::model::{Plan, Step, Stimulus, Target};
use crate::rig::Rig;
use crate::units::Dimension;

pub(super) struct Checker<'a> {
    pub(super) plan: &'a Source<Plan>,
    pub(super) fx: &'a Source<Fixture>,
    pub(super) limits: &'a Source<LimitProfile>,
    pub(super) dbc: &'a Dbc,
    pub(super) signals: &'a BTreeMap<String, SignalSource>,
    pub(super) rig: Option<&'a Rig>,
    pub(super) errors: &'a mut Vec<InputError>,
}

impl<'a> Checker<'a> {
    pub(super) fn err(&mut self, at: &Location, msg: impl Into<String>) {
        let e = self.plan.error(at, msg);
        self.errors.push(e);
    }

    pub(super) fn check(&mut self) {
        let p = &self.plan.value;
        if p.repeat == 0 {
            self.errors.push(InputError::file(
                &self.plan.path,
                "repeat must be at least 1",
            ));
        }
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut soc_started = false;
        for step in p.setup.iter().chain(&p.steps).chain(&p.teardown) {
            let name = match &step.value {
                Step::Trip(t) => Some(t.name.clone()),
                Step::Measure(m) => Some(m.name.clone()),
                Step::Expect(e) => e.name.clone(),
                Step::Declaration(d) => Some(d.name.clone()),
                Step::Inverter(i) => i.test_name(),
                Step::Soc(x) => x.name.clone(),
                _ => None,
            };
            if let Some(n) = name {
                if let Some(first) = names.insert(n.clone(), step.referenced.line() as usize) {
                    self.err(&step.referenced, format!("test name `{n}` is used twice (first at line {first}); names must be unique"));
                }
            }
            self.step(&step.value, &step.referenced);
            if let Step::Soc(x) = &step.value {
                if x.start.is_some() {
                    soc_started = true;
                } else if !soc_started {
                    self.err(&step.referenced, "soc: a checkpoint before any `soc: {start: rest}`: the reference has no starting point");
                }
            }
        }
    }

    pub(super) fn condition(&mut self, cond: &Spanned<Condition>) {
        for msg in condition_problems(self.signals, self.dbc, &cond.value) {
            self.err(&cond.referenced, msg);
        }
        if cond.value.on_capture() {
            self.err(
                &cond.referenced,
                format!(
                    "`{}` reads the scope's record (`capture.*`): only a trip's `detect` may",
                    cond.value
                ),
            );
        }
    }

    /// A trip whose detect reads the scope's record: a step of `load.current` or a
    /// `short`, only `capture.*` signals, no release, only `trip_time` criteria.
    fn capture_trip(&mut self, t: &crate::plan::model::Trip, at: &Location) {
        for msg in condition_problems(self.signals, self.dbc, &t.detect.value) {
            self.err(&t.detect.referenced, msg);
        }
        let others: Vec<&str> = t
            .detect
            .value
            .signals()
            .into_iter()
            .filter(|s| !s.starts_with(crate::plan::condition::CAPTURE_PREFIX))
            .collect();
        if !others.is_empty() {
            self.err(
                &t.detect.referenced,
                format!(
                    "a detect on the scope's record reads `capture.*` only, not {}",
                    others.join(", ")
                ),
            );
        }
        match &t.stimulus.value {
            Stimulus::Step(s) if s.of == Target::LoadCurrent && s.rest.is_none() => {}
            Stimulus::Short(_) => {}
            _ => self.err(
                &t.stimulus.referenced,
                "a detect on the scope's record (`capture.*`) needs `step: {of: load.current, \
                 from, to}` without `rest`, or `short: {}`: the scope triggers on that step",
            ),
        }
        if t.release.is_some() {
            self.err(at, "a detect on the scope's record has no `release:`");
        }
        if let Some(rig) = self.rig {
            if !rig
                .instruments
                .iter()
                .any(|i| i.role == crate::rig::Role::Scope)
            {
                self.err(
                    &t.detect.referenced,
                    "`capture.*` needs a scope in the rig (`role: scope`); this rig has none",
                );
            }
        }
    }

    /// A `short` stimulus needs the rig's short-circuit switch, its prospective current at
    /// the envelope's highest pack voltage inside `max_short_current`, and the scope's
    /// record for `protection` short enough to be complete before `max_closed`.
    fn short_switch(&mut self, at: &Location, protection: &str) {
        let Some(rig) = self.rig else { return };
        let Some(path) = rig
            .instruments
            .iter()
            .filter(|i| i.role == crate::rig::Role::Short)
            .find_map(|i| i.short)
        else {
            self.err(
                at,
                "a `short` stimulus needs a short-circuit switch in the rig (`role: short` \
                 with `short: {channel, resistance, max_closed}`); this rig has none",
            );
            return;
        };
        let prospective = path.prospective_current(rig.envelope.max_pack_voltage.0);
        self.envelope(at, Target::Short, prospective);
        let delay = self
            .fx
            .value
            .protections
            .get(protection)
            .map_or(0.0, |p| p.value.delay.0);
        use crate::run::trip::capture::{post_trigger_s, PRE_TRIGGER_S};
        let record = PRE_TRIGGER_S + post_trigger_s(delay);
        if record >= path.max_closed.0 {
            self.err(
                at,
                format!(
                    "the scope's record for `{protection}` ({} µs before the trigger, 4 x the \
                     declared delay + 1 ms after: {}) does not fit in the short-circuit \
                     switch's max_closed {}: the switch would open before the record is \
                     complete",
                    PRE_TRIGGER_S * 1e6,
                    crate::units::display(record, crate::units::Dimension::Time),
                    path.max_closed
                ),
            );
        }
    }

    pub(super) fn envelope(&mut self, at: &Location, target: Target, value: f64) {
        if let Some(rig) = self.rig {
            if let Err(v) = target.check_envelope(&rig.envelope, value) {
                self.err(at, v.to_string());
            }
        }
    }

    pub(super) fn target(&mut self, at: &Location, t: Target) {
        let (n, max, what) = match t {
            Target::Cell(n) => (n, self.fx.value.cells_in_series, "cells"),
            Target::Ntc(n) => (n, self.fx.value.ntcs, "temperature sensors"),
            _ => return,
        };
        if n == 0 || n > max {
            self.err(
                at,
                format!("{t} does not exist: the DUT has {what} 1..{max}"),
            );
        }
    }

    pub(super) fn quantity(
        &mut self,
        at: &Location,
        what: &str,
        q: &QuantityValue,
        dim: Dimension,
    ) -> f64 {
        if q.0.dim != dim {
            self.err(
                at,
                format!(
                    "{what} is {}, but {} is expected here",
                    q.0.dim.name(),
                    dim.name()
                ),
            );
        }
        q.0.value
    }

    pub(super) fn criterion(&mut self, name: &Spanned<String>) -> Option<&'a Check> {
        let limits = self.limits;
        match limits.value.criteria.get(&name.value) {
            Some(c) => Some(&c.value.check),
            None => {
                let h = hint(
                    &name.value,
                    limits.value.criteria.keys().map(String::as_str),
                );
                self.err(
                    &name.referenced,
                    format!(
                        "limit `{}` is not defined in profile `{}`{h}",
                        name.value, limits.value.profile
                    ),
                );
                None
            }
        }
    }

    pub(super) fn step(&mut self, step: &Step, at: &Location) {
        let cells = self.fx.value.cells_in_series;
        match step {
            Step::Supply(s) => {
                if let Some(v) = s.voltage {
                    self.envelope(at, Target::SupplyVoltage, v.0);
                }
                if let Some(a) = s.current {
                    self.envelope(at, Target::SupplyCurrent, a.0);
                }
            }
            Step::Load(l) => {
                if let Some(a) = l.current {
                    self.envelope(at, Target::LoadCurrent, a.0);
                }
            }
            Step::Cells(c) => match (c.all, c.cell, c.voltage) {
                _ if c.release.is_some() => {
                    if c.all.is_some() || c.cell.is_some() || c.voltage.is_some() {
                        self.err(at, "cells: `release: all` stands alone; set voltages in a step of their own");
                    }
                }
                (Some(v), None, None) => self.envelope(at, Target::Cell(1), v.0),
                (None, Some(n), Some(v)) => {
                    if n == 0 || n > cells {
                        self.err(at, format!("cell {n} does not exist: the DUT has cells 1..{cells}"));
                    }
                    self.envelope(at, Target::Cell(n), v.0);
                }
                _ => self.err(at, "cells: give either `all: VOLTAGE`, `cell: N` with `voltage: VOLTAGE`, or `release: all`"),
            },
            Step::Temperatures(t) => match (t.all, t.sensor, t.temperature) {
                (Some(v), None, None) => self.envelope(at, Target::Ntc(1), v.0),
                (None, Some(n), Some(v)) => {
                    self.target(at, Target::Ntc(n));
                    self.envelope(at, Target::Ntc(n), v.0);
                }
                _ => self.err(at, "temperatures: give either `all: TEMPERATURE` or `sensor: N` with `temperature: TEMPERATURE`"),
            },
            Step::Wait(_) => {}
            Step::BmsRequest(r) => {
                let sr = self.fx.value.state_request.as_ref();
                let sig = sr.and_then(|sr| self.dbc.message(&sr.message).and_then(|m| m.signal(&sr.signal)));
                match sig {
                    None => self.err(&r.referenced, "bms_request: the DUT fixture declares no `state_request`"),
                    Some(sig) if sig.label_value(&r.value).is_none() => {
                        let known: Vec<&str> = sig.value_table.values().map(String::as_str).collect();
                        let h = hint(&r.value, known.iter().copied());
                        self.err(&r.referenced, format!("`{}` is not a state request (known: {}){h}", r.value, known.join(", ")));
                    }
                    Some(_) => {}
                }
            }
            Step::WaitFor(w) => {
                self.condition(&w.until);
                if w.timeout.0 <= 0.0 {
                    self.err(at, "wait_for: the timeout must be above 0 s");
                }
            }
            Step::Ramp(r) => {
                self.target(at, r.of);
                let d = r.of.dimension();
                let from = self.quantity(at, "from", &r.from, d);
                let to = self.quantity(at, "to", &r.to, d);
                let rate = self.quantity(at, "rate", &r.rate, r.of.rate_dimension());
                if rate <= 0.0 {
                    self.err(at, "rate must be positive (the direction comes from `from` and `to`)");
                }
                self.envelope(at, r.of, from);
                self.envelope(at, r.of, to);
            }
            Step::Expect(e) => {
                self.condition(&e.that);
                if let Some(j) = &e.judge {
                    if let Some(c) = self.criterion(j) {
                        if !matches!(c, Check::Holds) {
                            let k = c.kind();
                            self.err(&j.referenced, format!("`{}` is a `{k}` criterion; an expect step judges `holds` criteria", j.value));
                        }
                    }
                }
            }
            Step::Measure(m) => {
                if !self.signals.contains_key(&m.signal.value) {
                    let h = hint(&m.signal.value, self.signals.keys().map(String::as_str));
                    self.err(&m.signal.referenced, format!("signal `{}` is not defined in the DUT fixture{h}", m.signal.value));
                }
                let sig_dim = signal_dimension(self.signals, self.dbc, &m.signal.value);
                if let Some(c) = self.criterion(&m.judge) {
                    match c {
                        Check::Range { min, max } => {
                            for q in min.iter().chain(max.iter()) {
                                if let Some(d) = sig_dim.filter(|d| *d != q.0.dim) {
                                    let msg = format!("`{}` is {}, but limit `{}` is {}", m.signal.value, d.name(), m.judge.value, q.0.dim.name());
                                    self.err(&m.judge.referenced, msg);
                                }
                            }
                        }
                        other => {
                            let k = other.kind();
                            self.err(&m.judge.referenced, format!("`{}` is a `{k}` criterion; a measure step judges `range` criteria", m.judge.value));
                        }
                    }
                }
            }
            Step::Trip(t) => self.trip(t, at),
            Step::Inverter(i) => {
                let check = match i.judge.as_ref().map(|j| (j, self.criterion(j))) {
                    Some((_, Some(Check::Inverter(c)))) => Some(c),
                    Some((j, Some(other))) => {
                        let k = other.kind();
                        self.err(&j.referenced, format!("`{}` is a `{k}` criterion; an inverter step judges inverter checks", j.value));
                        None
                    }
                    _ => None,
                };
                for p in crate::plan::inverter::step_problems(i, &self.fx.value, check) {
                    self.err(at, p);
                }
            }
            Step::Prompt(p) => {
                if p.text.trim().is_empty() {
                    self.err(at, "prompt: `text` must say what the operator is asked");
                }
                let mut seen = std::collections::BTreeSet::new();
                for e in &p.entries {
                    let n = &e.value.name;
                    let ok = !n.is_empty()
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !ok {
                        self.err(&e.referenced, format!("prompt entry name `{n}` must be letters, digits and `_`"));
                    } else if !seen.insert(n.clone()) {
                        self.err(&e.referenced, format!("prompt entry `{n}` is asked twice"));
                    }
                }
            }
            Step::Soc(x) => self.soc(x, at),
            Step::Declaration(d) => {
                if let Some(c) = self.criterion(&d.judge) {
                    if !matches!(c, Check::EnergyCap { .. }) {
                        let k = c.kind();
                        self.err(&d.judge.referenced, format!("`{}` is a `{k}` criterion; a declaration step judges `energy_cap` criteria", d.judge.value));
                    }
                }
            }
        }
    }

    /// A `soc` step: a start, or a checkpoint with a name and a `soc_accuracy` criterion,
    /// over a fixture that declares `soc:` and maps the signal.
    fn soc(&mut self, x: &crate::plan::model::SocStep, at: &Location) {
        // The fixture's declaration is checked once per start (a checkpoint without a start
        // is refused on its own).
        match (&self.fx.value.soc, x.start) {
            (_, None) => {}
            (None, Some(_)) => self.err(at, "soc: the DUT fixture declares no `soc:` (capacity, capacity_tolerance, ocv, ocv_tolerance) for the reference"),
            (Some(d), Some(_)) => {
                for p in d.problems() {
                    self.err(at, format!("DUT fixture {p}"));
                }
            }
        }
        if x.start.is_some() {
            if x.name.is_some() || x.judge.is_some() || x.signal.is_some() {
                self.err(
                    at,
                    "soc: `start` stands alone; compare in a later step with `name` and `judge`",
                );
            }
            return;
        }
        if x.name.is_none() {
            self.err(
                at,
                "soc: give `start: rest`, or `name` and `judge` for a checkpoint",
            );
        }
        match &x.judge {
            None => self.err(
                at,
                "soc: a checkpoint needs `judge:` (a `soc_accuracy` criterion)",
            ),
            Some(j) => {
                if let Some(c) = self.criterion(j) {
                    if !matches!(c, Check::SocAccuracy { .. }) {
                        let k = c.kind();
                        self.err(&j.referenced, format!("`{}` is a `{k}` criterion; a soc step judges `soc_accuracy` criteria", j.value));
                    }
                }
            }
        }
        let signal = x.signal();
        if !self.signals.contains_key(signal) {
            let h = hint(signal, self.signals.keys().map(String::as_str));
            let where_ = x.signal.as_ref().map_or(at, |s| &s.referenced);
            self.err(
                where_,
                format!("signal `{signal}` is not defined in the DUT fixture{h}"),
            );
        }
    }

    /// A step trip's `rest` must lie beyond the declared release level of a protection that
    /// releases by itself: the BMS is then due to release at the step back.
    pub(super) fn step_rest(
        &mut self,
        at: &Location,
        protection: &str,
        from: f64,
        to: f64,
        rest: f64,
    ) {
        let Some(p) = self.fx.value.protections.get(protection) else {
            return;
        };
        let release = p.value.release.0;
        if p.value.latching {
            let msg = format!(
                "`rest`: protection `{protection}` is latching, so the BMS does not release at a \
                 rest value; leave `rest` out"
            );
            self.err(at, msg);
        } else if (to >= from && rest >= release.value) || (to < from && rest <= release.value) {
            let msg = format!(
                "`rest` {} does not lie beyond the declared release level {} of `{protection}`: \
                 the BMS is not due to release there",
                crate::units::display(rest, release.dim),
                crate::units::display(release.value, release.dim),
            );
            self.err(at, msg);
        }
    }

    pub(super) fn trip(&mut self, t: &crate::plan::model::Trip, at: &Location) {
        if t.detect.value.on_capture() {
            self.capture_trip(t, at);
        } else {
            self.condition(&t.detect);
        }
        if t.timeout.0 <= 0.0 {
            self.err(at, "trip: the timeout must be above 0 s");
        }
        let stim_at = &t.stimulus.referenced;
        let stim = &t.stimulus.value;
        let target = stim.target();
        self.target(stim_at, target);
        let d = target.dimension();
        match stim {
            Stimulus::Ramp(r) => {
                let from = self.quantity(stim_at, "from", &r.from, d);
                let to = self.quantity(stim_at, "to", &r.to, d);
                let rate = self.quantity(stim_at, "rate", &r.rate, target.rate_dimension());
                if rate <= 0.0 {
                    self.err(
                        stim_at,
                        "rate must be positive (the direction comes from `from` and `to`)",
                    );
                }
                self.envelope(stim_at, target, from);
                self.envelope(stim_at, target, to);
            }
            Stimulus::Step(s) => {
                let from = self.quantity(stim_at, "from", &s.from, d);
                let to = self.quantity(stim_at, "to", &s.to, d);
                self.envelope(stim_at, target, from);
                self.envelope(stim_at, target, to);
                if let Some(rest) = &s.rest {
                    let rest = self.quantity(stim_at, "rest", rest, d);
                    self.envelope(stim_at, target, rest);
                    if t.release.is_some() {
                        self.err(
                            stim_at,
                            "a step trip steps back to `rest` or ramps back with `release:`, \
                             not both",
                        );
                    }
                    self.step_rest(stim_at, &t.protection.value, from, to, rest);
                }
            }
            Stimulus::Short(_) => {
                if !t.detect.value.on_capture() {
                    self.err(
                        &t.detect.referenced,
                        "a `short` stimulus is timed on the scope's record: its detect reads \
                         `capture.*` (`capture.i < 1 A`)",
                    );
                }
                self.short_switch(stim_at, &t.protection.value);
            }
            Stimulus::Bisect(b) => {
                let low = self.quantity(stim_at, "no_trip", &b.no_trip, d);
                let high = self.quantity(stim_at, "trips", &b.trips, d);
                let rest = self.quantity(stim_at, "rest", &b.rest, d);
                let res = self.quantity(stim_at, "resolution", &b.resolution, d);
                if res <= 0.0 {
                    self.err(stim_at, "resolution must be positive");
                }
                for v in [low, high, rest] {
                    self.envelope(stim_at, target, v);
                }
            }
        }
        if let Some(r) = &t.release {
            self.condition(&r.detect);
            let to = self.quantity(at, "release.to", &r.to, d);
            self.quantity(at, "release.rate", &r.rate, target.rate_dimension());
            self.envelope(at, target, to);
        }
        let prot = &t.protection;
        match self.fx.value.protections.get(&prot.value) {
            None => {
                let h = hint(
                    &prot.value,
                    self.fx.value.protections.keys().map(String::as_str),
                );
                self.err(
                    &prot.referenced,
                    format!(
                        "protection `{}` is not declared in the DUT fixture{h}",
                        prot.value
                    ),
                );
            }
            Some(p) => {
                if p.value.trip.0.dim != d {
                    let msg = format!(
                        "the stimulus sets {} ({}), but protection `{}` is about {}",
                        d.name(),
                        target,
                        prot.value,
                        p.value.trip.0.dim.name()
                    );
                    self.err(stim_at, msg);
                }
            }
        }
        for j in &t.judge {
            let Some(c) = self.criterion(j) else { continue };
            if t.detect.value.on_capture() && !matches!(c, Check::TripTime { .. }) {
                let k = c.kind();
                self.err(
                    &j.referenced,
                    format!(
                        "limit `{}` (`{k}`): a trip timed on the scope's record judges \
                         `trip_time` criteria only",
                        j.value
                    ),
                );
                continue;
            }
            let method = stim.method();
            let fits = match c {
                Check::Threshold { tolerance } => {
                    if tolerance.0.dim != d {
                        let msg = format!(
                            "limit `{}`: tolerance is {}, but the stimulus is {}",
                            j.value,
                            tolerance.0.dim.name(),
                            d.name()
                        );
                        self.err(&j.referenced, msg);
                    }
                    matches!(stim, Stimulus::Ramp(_) | Stimulus::Bisect(_))
                }
                Check::ThresholdWindow { min, max } => {
                    for q in [min, max] {
                        if q.0.dim != d {
                            let msg = format!(
                                "limit `{}`: window is {}, but the stimulus is {}",
                                j.value,
                                q.0.dim.name(),
                                d.name()
                            );
                            self.err(&j.referenced, msg);
                        }
                    }
                    matches!(stim, Stimulus::Ramp(_) | Stimulus::Bisect(_))
                }
                Check::TripTime { .. } => {
                    matches!(
                        stim,
                        Stimulus::Ramp(_) | Stimulus::Step(_) | Stimulus::Short(_)
                    )
                }
                Check::StimulusPeak { at_most } => {
                    if !self.fx.value.cell_limits.contains_key(at_most) {
                        let msg = format!("limit `{}` names `{at_most}`, which is not in the DUT fixture's cell_limits", j.value);
                        self.err(&j.referenced, msg);
                    }
                    matches!(stim, Stimulus::Ramp(_) | Stimulus::Step(_))
                }
                Check::Release { .. } => {
                    if t.release.is_none() {
                        self.err(
                            &j.referenced,
                            format!(
                                "limit `{}` judges the release level: add `release:` to the trip",
                                j.value
                            ),
                        );
                    }
                    true
                }
                Check::Holds
                | Check::SocAccuracy { .. }
                | Check::Range { .. }
                | Check::EnergyCap { .. }
                | Check::Inverter(_)
                | Check::Unknown(_) => false,
            };
            if !fits {
                let k = c.kind();
                self.err(
                    &j.referenced,
                    format!(
                        "limit `{}` (`{k}`) cannot be judged from a `{method}` stimulus",
                        j.value
                    ),
                );
            }
        }
    }
}
