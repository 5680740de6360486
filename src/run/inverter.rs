//! hilrig as the inverter: the keep-alive it sends (which a plan can stop), and the
//! judgement of the inverter checks of a limit profile (`plan::inverter::InverterCheck`)
//! over the history of the announced signals.
//!
//! Every check reads the whole history of the run so far (every update of `inv.*`, the
//! BMS's fault signals and the instruments' readings, see `signals::keeps_history`); a
//! trip-related check looks at the first time the named protection's fault
//! (`bms.fault.<protection>`) was set in the run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::RunError;
use crate::can::{Bus, Frame};
use crate::plan::fixture::Fixture;
use crate::plan::inverter::{
    alarm_signal, CurrentSign, InverterCheck, InverterInterface, InverterStep, KeepAliveReaction,
};
use crate::plan::LoadedPlan;
use crate::verdict::Limit;

/// The keep-alive hilrig sends as the inverter, and whether a plan has stopped it.
#[derive(Debug, Default)]
pub struct KeepAliveSwitch {
    off: AtomicBool,
    stopped_at: Mutex<Option<Instant>>,
    last_sent: Mutex<Option<Instant>>,
}

impl KeepAliveSwitch {
    /// Switch the keep-alive on or off; switching it off records when the last keep-alive
    /// went out (now, if none did), the instant a BMS's loss timeout counts from.
    pub fn set(&self, on: bool) {
        let was_off = self.off.swap(!on, Ordering::SeqCst);
        let mut s = self.stopped_at.lock().unwrap_or_else(|e| e.into_inner());
        if !on && !was_off {
            let last = *self.last_sent.lock().unwrap_or_else(|e| e.into_inner());
            *s = Some(last.unwrap_or_else(Instant::now));
        }
    }

    fn sent(&self) {
        *self.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// When the last keep-alive went out before a plan stopped it.
    pub fn stopped_at(&self) -> Option<Instant> {
        *self.stopped_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_on(&self) -> bool {
        !self.off.load(Ordering::SeqCst)
    }
}

/// The keep-alive frame and its period, from the fixture's `inverter.keepalive`.
pub fn keepalive_frame(plan: &LoadedPlan) -> Result<Option<(Frame, Duration)>, RunError> {
    let Some(k) = plan
        .fixture
        .value
        .inverter
        .as_ref()
        .and_then(|i| i.keepalive.as_ref())
    else {
        return Ok(None);
    };
    let m = plan.dbc.message(&k.message).ok_or_else(|| {
        RunError::setup(format!(
            "inverter keep-alive message `{}` is not in the DBC",
            k.message
        ))
    })?;
    let data = m
        .encode(&[])
        .map_err(|e| RunError::setup(format!("inverter keep-alive `{}`: {e}", k.message)))?;
    let frame = Frame::new(m.id, m.extended, &data)
        .map_err(|e| RunError::setup(format!("inverter keep-alive `{}`: {e}", k.message)))?;
    Ok(Some((
        frame,
        k.period.duration().max(Duration::from_millis(1)),
    )))
}

/// Send the keep-alive every period while the switch is on.
pub fn spawn_keepalive(
    bus: Arc<dyn Bus>,
    frame: Frame,
    period: Duration,
    switch: Arc<KeepAliveSwitch>,
    faults: mpsc::UnboundedSender<RunError>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            if !switch.is_on() {
                continue;
            }
            if let Err(e) = bus.send(frame.clone()).await {
                let _ = faults.send(RunError::bus(format!("DUT bus (inverter keep-alive): {e}")));
                return;
            }
            switch.sent();
        }
    })
}

/// Why an inverter check could not be measured; the test fails with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotMeasured(pub String);

impl From<String> for NotMeasured {
    fn from(text: String) -> Self {
        NotMeasured(text)
    }
}

impl From<&str> for NotMeasured {
    fn from(text: &str) -> Self {
        NotMeasured(text.to_string())
    }
}

/// One value an inverter check judges, before the decision rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// What it is (`announced_cvl`, `derate_lead`, ...).
    pub quantity: &'static str,
    /// The value (SI unit).
    pub value: f64,
    /// The acceptance interval.
    pub limit: Limit,
    /// Unit.
    pub unit: &'static str,
    /// Where the value comes from.
    pub basis: String,
    /// Its uncertainty budget.
    pub contributions: Vec<crate::verdict::gum::Contribution>,
}

impl Judged {
    /// The same value with one more line in its uncertainty budget.
    fn plus(mut self, c: crate::verdict::gum::Contribution) -> Self {
        self.contributions.push(c);
        self
    }
}

/// A signal's history as (seconds on the run clock, value).
pub type Series = Vec<(f64, f64)>;

/// What a check reads: signal histories, the time now, the keep-alive stop.
pub struct View<'a> {
    /// A signal's history by logical name.
    pub series: &'a dyn Fn(&str) -> Series,
    /// Now, on the run clock (s).
    pub now: f64,
    /// When the keep-alive was stopped (s), if it was.
    pub keepalive_stopped: Option<f64>,
    /// The longest interval seen between two updates of a signal (s; 0 when unknown).
    pub gap: &'a dyn Fn(&str) -> f64,
}

fn first_rise(s: &Series) -> Option<f64> {
    s.iter().find(|(_, v)| *v != 0.0).map(|(t, _)| *t)
}

/// The start of the latest stretch of non-zero values: the most recent fault of a
/// protection a plan has tripped more than once.
fn latest_rise(s: &Series) -> Option<f64> {
    let mut rise = None;
    let mut before = 0.0;
    for (t, v) in s {
        if *v != 0.0 && before == 0.0 {
            rise = Some(*t);
        }
        before = *v;
    }
    rise
}

fn judged(
    quantity: &'static str,
    value: f64,
    limit: Limit,
    unit: &'static str,
    basis: String,
) -> Judged {
    Judged {
        quantity,
        value,
        limit,
        unit,
        basis,
        contributions: Vec::new(),
    }
}

/// Judge one inverter check; `Err` says why it could not be measured (a failure).
pub fn judge(
    check: &InverterCheck,
    fx: &Fixture,
    protection: Option<&str>,
    v: &View<'_>,
) -> Result<Vec<Judged>, NotMeasured> {
    let inv: &InverterInterface = fx
        .inverter
        .as_ref()
        .ok_or("the DUT fixture has no `inverter:` section")?;
    let nonempty = |name: &str| -> Result<Series, NotMeasured> {
        let s = (v.series)(name);
        if s.is_empty() {
            Err(format!("no announcement of `{name}` was observed").into())
        } else {
            Ok(s)
        }
    };
    // The trip a check judges: the protection's latest fault (a plan that trips it again
    // judges each trip in its own `inverter:` step).
    let fault_at = |p: &str| -> Result<f64, NotMeasured> {
        latest_rise(&(v.series)(&format!("bms.fault.{p}")))
            .ok_or_else(|| NotMeasured(format!("protection `{p}` never tripped in this run")))
    };
    // A fault is seen when the BMS's status message carrying it arrives: up to one of its
    // cycles after it was set. The announcements themselves are what the inverter sees, at
    // their receive time, so the times from a fault carry this one term.
    let fault_seen = |p: &str| {
        let g = (v.gap)(&format!("bms.fault.{p}"));
        crate::verdict::gum::Contribution::rectangular(
            format!(
                "`bms.fault.{p}` seen up to {:.0} ms after it was set (its longest update gap)",
                g * 1000.0
            ),
            g,
        )
    };
    let max = |s: &Series| s.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
    let min = |s: &Series| s.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
    match check {
        InverterCheck::AnnouncedLimits {} => {
            let cells = fx.cells_in_series as f64;
            let cell = |k: &str| fx.cell_limits.get(k).map(|q| q.0.value);
            let trip = |k: &str| fx.protections.get(k).map(|p| p.value.trip.0.value);
            let mut out = Vec::new();
            let cvl_max = inv
                .max_charge_voltage
                .map(|q| q.0)
                .or(cell("upper_charge_voltage").map(|u| u * cells))
                .ok_or("the fixture gives neither inverter.max_charge_voltage nor cell_limits.upper_charge_voltage")?;
            let s = nonempty("inv.cvl")?;
            out.push(judged(
                "announced_cvl",
                max(&s),
                Limit::at_most(cvl_max),
                "V",
                format!(
                    "highest CVL announced ({} announcements) against cells × upper charge voltage",
                    s.len()
                ),
            ));
            let ccl_max = [cell("max_charge_current"), trip("occ")]
                .into_iter()
                .flatten()
                .fold(f64::INFINITY, f64::min);
            if ccl_max.is_finite() {
                let s = nonempty("inv.ccl")?;
                out.push(judged("announced_ccl", max(&s), Limit::at_most(ccl_max), "A", "highest CCL announced against the cell maker's charge current and the declared OCC trip".into()));
            }
            if let Some(dcl_max) = inv.max_discharge_current.map(|q| q.0).or(trip("ocd")) {
                let s = nonempty("inv.dcl")?;
                out.push(judged(
                    "announced_dcl",
                    max(&s),
                    Limit::at_most(dcl_max),
                    "A",
                    "highest DCL announced against the pack's discharge current limit".into(),
                ));
            }
            if let Some(low) = cell("lower_discharge_voltage") {
                let s = nonempty("inv.dvl")?;
                out.push(judged(
                    "announced_dvl",
                    min(&s),
                    Limit {
                        low: Some(low * cells),
                        high: None,
                    },
                    "V",
                    "lowest DVL announced against cells × lower discharge voltage".into(),
                ));
            }
            Ok(out)
        }
        InverterCheck::DerateBeforeTrip {} => {
            let p = protection.ok_or("no protection named")?;
            let lead = inv
                .derate_lead
                .ok_or("the fixture declares no inverter.derate_lead")?
                .0;
            let limit_sig = match p {
                "uv" | "ocd" | "otd" => "inv.dcl",
                _ => "inv.ccl",
            };
            let trip_t = fault_at(p)?;
            let s: Series = nonempty(limit_sig)?
                .into_iter()
                .filter(|(t, _)| *t <= trip_t)
                .collect();
            let full = max(&s);
            // The derating that led to the trip: the first announcement below the maximum
            // after the last one at the maximum.
            let last_full = s
                .iter()
                .rposition(|(_, x)| *x >= full)
                .ok_or("no announcement before the trip")?;
            let lead_s = match s.get(last_full + 1) {
                Some((t, _)) => trip_t - t,
                None => 0.0,
            };
            Ok(vec![judged("derate_lead", lead_s, Limit { low: Some(lead), high: None }, "s", format!("`{limit_sig}` first below its maximum {full} A before the `{p}` fault, from the announcements")).plus(fault_seen(p))])
        }
        InverterCheck::DisabledAfterTrip { within } => {
            let p = protection.ok_or("no protection named")?;
            let (enable, limit_sig) = match p {
                "uv" | "ocd" | "otd" => ("inv.discharge_enable", "inv.dcl"),
                _ => ("inv.charge_enable", "inv.ccl"),
            };
            let trip_t = fault_at(p)?;
            let fault = (v.series)(&format!("bms.fault.{p}"));
            let cleared = fault
                .iter()
                .find(|(t, x)| *t > trip_t && *x == 0.0)
                .map_or(v.now, |(t, _)| *t);
            let en = nonempty(enable)?;
            let lim = nonempty(limit_sig)?;
            let at = |s: &Series, t: f64| s.iter().rev().find(|(u, _)| *u <= t).map(|x| x.1);
            let stopped = |t: f64| at(&en, t) == Some(0.0) && at(&lim, t) == Some(0.0);
            let first = en
                .iter()
                .chain(lim.iter())
                .map(|x| x.0)
                .filter(|t| *t >= trip_t && *t <= cleared && stopped(*t))
                .fold(f64::INFINITY, f64::min);
            if !first.is_finite() {
                return Err(format!(
                    "after the `{p}` fault `{enable}` and `{limit_sig}` were never 0 together"
                )
                .into());
            }
            let stale = en
                .iter()
                .chain(lim.iter())
                .filter(|(t, _)| *t > first && *t <= cleared)
                .find(|(t, _)| !stopped(*t));
            if let Some((t, _)) = stale {
                return Err(format!("`{enable}` or `{limit_sig}` announced again above 0 at {t:.3} s while the `{p}` fault was still set").into());
            }
            Ok(vec![judged("disable_time", first - trip_t, Limit::between(0.0, within.0), "s", format!("from the `{p}` fault to the first announcement of `{enable}` = 0 and `{limit_sig}` = 0")).plus(fault_seen(p))])
        }
        InverterCheck::AlarmBits { within } => {
            let p = protection.ok_or("no protection named")?;
            let sig = alarm_signal(p).ok_or("not a protection")?;
            let trip_t = fault_at(p)?;
            let s = nonempty(sig)?;
            let mut out = Vec::new();
            // Before the first fault of any protection, no protection bit may be set.
            let first_fault = crate::plan::fixture::PROTECTION_KEYS
                .iter()
                .filter_map(|k| first_rise(&(v.series)(&format!("bms.fault.{k}"))))
                .fold(trip_t, f64::min);
            for other in [
                "inv.alarm.ov",
                "inv.alarm.uv",
                "inv.alarm.ot",
                "inv.alarm.ut",
                "inv.alarm.occ",
                "inv.alarm.ocd",
            ] {
                let false_alarm = (v.series)(other)
                    .iter()
                    .any(|(t, x)| *t < first_fault && *x != 0.0);
                if false_alarm {
                    return Err(format!("`{other}` was set before any fault").into());
                }
            }
            let set = s
                .iter()
                .find(|(t, x)| *t >= trip_t && *x != 0.0)
                .map(|x| x.0)
                .ok_or_else(|| {
                    NotMeasured(format!("`{sig}` was never set after the `{p}` fault"))
                })?;
            out.push(
                judged(
                    "alarm_delay",
                    set - trip_t,
                    Limit::between(0.0, within.0),
                    "s",
                    format!("from the `{p}` fault to `{sig}` announced"),
                )
                .plus(fault_seen(p)),
            );
            Ok(out)
        }
        InverterCheck::AnnouncePeriod {
            tolerance,
            stale_after,
        } => {
            let mut out = Vec::new();
            let names = [
                (
                    "inv.cvl",
                    ["limits_longest_gap", "limits_shortest_gap", "limits_age"],
                ),
                (
                    "inv.charge_enable",
                    ["flags_longest_gap", "flags_shortest_gap", "flags_age"],
                ),
            ];
            for (sig, [longest_q, shortest_q, age_q]) in names {
                let s = nonempty(sig)?;
                if s.len() < 2 {
                    return Err(
                        format!("only one announcement of `{sig}`: no period to judge").into(),
                    );
                }
                let gaps: Vec<f64> = s.windows(2).map(|w| w[1].0 - w[0].0).collect();
                let longest = gaps.iter().copied().fold(0.0, f64::max);
                let shortest = gaps.iter().copied().fold(f64::INFINITY, f64::min);
                let p = inv.period.0;
                let limit = Limit::between(p - tolerance.0, p + tolerance.0);
                out.push(judged(
                    longest_q,
                    longest,
                    limit,
                    "s",
                    format!("longest gap between announcements of `{sig}`"),
                ));
                out.push(judged(
                    shortest_q,
                    shortest,
                    limit,
                    "s",
                    format!("shortest gap between announcements of `{sig}`"),
                ));
                let age = v.now - s.last().map_or(0.0, |x| x.0);
                out.push(judged(
                    age_q,
                    age,
                    Limit::between(0.0, stale_after.0),
                    "s",
                    format!("age of the latest announcement of `{sig}`"),
                ));
            }
            Ok(out)
        }
        InverterCheck::AnnouncedMeasurements { voltage, current } => {
            let latest = |n: &str| (v.series)(n).last().map(|x| x.1);
            let pack_v = latest("inv.pack_v").ok_or("no announcement of `inv.pack_v`")?;
            let pack_i = latest("inv.pack_i").ok_or("no announcement of `inv.pack_i`")?;
            let supply_v = latest("supply.v").ok_or("no reading of `supply.v`")?;
            let into_pack = latest("supply.i").unwrap_or(0.0) - latest("load.i").unwrap_or(0.0);
            if into_pack.abs() <= current.0 {
                return Err(format!("the pack current {into_pack:.3} A is within the tolerance of 0 A: the sign convention cannot be checked; charge or discharge during this step").into());
            }
            let expected = match inv.current_sign {
                CurrentSign::ChargePositive => into_pack,
                CurrentSign::DischargePositive => -into_pack,
            };
            Ok(vec![
                judged("announced_voltage", pack_v, Limit::between(supply_v - voltage.0, supply_v + voltage.0), "V", format!("`inv.pack_v` against the supply's reading {supply_v:.3} V")),
                judged("announced_current", pack_i, Limit::between(expected - current.0, expected + current.0), "A", format!("`inv.pack_i` against supply.i − load.i = {into_pack:.3} A with sign convention {:?}", inv.current_sign)),
            ])
        }
        InverterCheck::KeepaliveLoss { allowance } => {
            let loss = inv
                .keepalive_loss
                .as_ref()
                .ok_or("the fixture declares no inverter.keepalive_loss")?;
            let stopped = v
                .keepalive_stopped
                .ok_or("the plan never stopped the keep-alive (`inverter: {keepalive: off}`)")?;
            if loss.reaction == KeepAliveReaction::None {
                return Ok(Vec::new());
            }
            let names = [
                "inv.charge_enable",
                "inv.discharge_enable",
                "inv.ccl",
                "inv.dcl",
            ];
            let all: Vec<Series> = names.iter().map(|n| (v.series)(n)).collect();
            let at = |s: &Series, t: f64| s.iter().rev().find(|(u, _)| *u <= t).map(|x| x.1);
            let reacted = all
                .iter()
                .flat_map(|s| s.iter().map(|x| x.0))
                .filter(|t| *t >= stopped)
                .filter(|t| all.iter().all(|s| at(s, *t) == Some(0.0)))
                .fold(f64::INFINITY, f64::min);
            if !reacted.is_finite() {
                return Err(format!("{:.3} s after the keep-alive stopped, the BMS still announced charge/discharge enabled or current limits above 0", v.now - stopped).into());
            }
            Ok(vec![judged(
                "keepalive_reaction",
                reacted - stopped,
                Limit::between(0.0, loss.within.0 + allowance.0),
                "s",
                "from the last keep-alive to both enables cleared and both limits 0".into(),
            )])
        }
    }
}

/// Put an `inverter:` step's judged values into its test result, under the decision rule
/// (a value that could not be judged fails the test with the reason).
pub fn judge_into(
    result: &mut crate::report::TestResult,
    plan: &LoadedPlan,
    step: &InverterStep,
    judged: Result<Vec<Judged>, NotMeasured>,
    rule: crate::plan::DecisionRule,
) {
    use crate::verdict::Verdict;
    let criterion = step
        .judge
        .as_ref()
        .map(|j| j.value.as_str())
        .unwrap_or_default();
    let values = match judged {
        Err(message) => {
            result.verdict = Verdict::Fail;
            result.message = Some(message.0);
            return;
        }
        Ok(values) => values,
    };
    let Some(c) = plan.limits.value.criteria.get(criterion) else {
        return;
    };
    for v in values {
        let mr = super::trip::judged(
            criterion,
            super::trip::Measured {
                quantity: v.quantity,
                value: v.value,
                contributions: v.contributions,
                limit: v.limit,
                unit: v.unit,
                budget: v.basis,
            },
            &c.value.provenance,
            rule,
        );
        if mr.verdict != Verdict::Pass && result.verdict == Verdict::Pass {
            result.verdict = mr.verdict;
            result.message = Some(format!(
                "{} {} {} outside [{}, {}]",
                v.quantity,
                v.value,
                v.unit,
                v.limit.low.map_or("-".into(), |x| x.to_string()),
                v.limit.high.map_or("-".into(), |x| x.to_string())
            ));
        }
        result.measurements.push(mr);
    }
}

/// Run an `inverter:` step: switch the keep-alive, then judge its check (if it has one).
pub fn run_step(
    plan: &LoadedPlan,
    signals: &super::signals::Signals,
    switch: &KeepAliveSwitch,
    clock: &crate::trace::Clock,
    step: &InverterStep,
) -> Option<Result<Vec<Judged>, NotMeasured>> {
    if let Some(k) = step.keepalive {
        switch.set(k.0);
    }
    let j = step.judge.as_ref()?;
    let check = match plan
        .limits
        .value
        .criteria
        .get(&j.value)
        .map(|c| &c.value.check)
    {
        Some(crate::plan::Check::Inverter(c)) => c,
        _ => return Some(Err(format!("`{}` is not an inverter check", j.value).into())),
    };
    let series = |n: &str| -> Series {
        signals
            .history(n)
            .into_iter()
            .map(|(at, x)| (clock.t(at), x))
            .collect()
    };
    let gap = |n: &str| signals.longest_gap(n).unwrap_or(0.0);
    let view = View {
        series: &series,
        now: clock.now(),
        keepalive_stopped: switch.stopped_at().map(|t| clock.t(t)),
        gap: &gap,
    };
    Some(judge(
        check,
        &plan.fixture.value,
        step.protection.as_ref().map(|p| p.value.as_str()),
        &view,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{Amps, Seconds, Volts};
    use rstest::rstest;
    use std::collections::BTreeMap;

    fn fixture() -> Fixture {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::plan::load::read_yaml::<Fixture>(&root.join("fixtures/sim-bms-16s-lfp.yaml"))
            .unwrap()
            .value
    }

    /// Announcements every second from 0 to `end` s, valued by `f(t)`.
    fn every_second(end: u32, f: impl Fn(f64) -> f64) -> Series {
        (0..=end).map(|t| (t as f64, f(t as f64))).collect()
    }

    fn judge_with(
        check: &InverterCheck,
        protection: Option<&str>,
        series: BTreeMap<&str, Series>,
        keepalive_stopped: Option<f64>,
    ) -> Result<Vec<Judged>, NotMeasured> {
        let get = |n: &str| series.get(n).cloned().unwrap_or_default();
        let gap = |n: &str| {
            if n.starts_with("bms.fault.") {
                0.1
            } else {
                0.0
            }
        };
        let view = View {
            gap: &gap,
            series: &get,
            now: 30.0,
            keepalive_stopped,
        };
        judge(check, &fixture(), protection, &view)
    }

    /// The fault at 20 s; CCL at 18 A until `derate_from`, then 10 % per second.
    fn ov_run(derate_from: f64, after_trip: f64) -> BTreeMap<&'static str, Series> {
        let ccl = every_second(30, |t| {
            if t >= 20.0 {
                after_trip
            } else if t >= derate_from {
                (18.0 - 1.8 * (t - derate_from + 1.0)).max(3.6)
            } else {
                18.0
            }
        });
        let enable = every_second(30, |t| if t >= 20.0 { after_trip.min(1.0) } else { 1.0 });
        BTreeMap::from([
            ("bms.fault.ov", vec![(0.0, 0.0), (19.5, 1.0)]),
            ("inv.ccl", ccl),
            ("inv.charge_enable", enable),
            (
                "inv.alarm.ov",
                every_second(30, |t| (t >= 20.0) as u8 as f64),
            ),
        ])
    }

    /// A protection tripped twice: the checks judge the latest trip.
    #[test]
    fn a_second_trip_is_judged_on_its_own() {
        let check = InverterCheck::DisabledAfterTrip {
            within: Seconds(2.0),
        };
        let mut run = ov_run(10.0, 0.0);
        run.insert(
            "bms.fault.ov",
            vec![(0.0, 0.0), (5.2, 1.0), (6.0, 0.0), (19.5, 1.0)],
        );
        let j = judge_with(&check, Some("ov"), run, None).unwrap();
        assert!(
            (j[0].value - 0.5).abs() < 1e-9,
            "from the second fault: {j:?}"
        );
        assert_eq!(latest_rise(&vec![(0.0, 1.0), (1.0, 1.0)]), Some(0.0));
        assert_eq!(latest_rise(&vec![(0.0, 0.0)]), None);
    }

    #[rstest]
    #[case::early_enough(10.0, 9.5, true)]
    #[case::too_late(18.0, 1.5, false)]
    #[case::never(25.0, 0.0, false)]
    fn derating_lead_is_measured_to_the_fault(
        #[case] derate_from: f64,
        #[case] lead: f64,
        #[case] passes: bool,
    ) {
        let j = judge_with(
            &InverterCheck::DerateBeforeTrip {},
            Some("ov"),
            ov_run(derate_from, 0.0),
            None,
        )
        .unwrap();
        assert_eq!(j[0].quantity, "derate_lead");
        assert!((j[0].value - lead).abs() < 1e-9, "{:?}", j[0]);
        let inside = j[0].limit.low.is_none_or(|l| j[0].value >= l);
        assert_eq!(inside, passes);
    }

    #[test]
    fn stale_limits_after_the_trip_are_refused() {
        let check = InverterCheck::DisabledAfterTrip {
            within: Seconds(2.0),
        };
        let ok = judge_with(&check, Some("ov"), ov_run(10.0, 0.0), None).unwrap();
        assert!((ok[0].value - 0.5).abs() < 1e-9, "{ok:?}");
        // The fault is seen through a 100 ms status message: one rectangular term.
        assert_eq!(ok[0].contributions.len(), 1, "{ok:?}");
        let u = ok[0].contributions[0].standard_uncertainty;
        assert!((u - 0.1 / 3f64.sqrt()).abs() < 1e-9, "{u}");
        let stale = judge_with(&check, Some("ov"), ov_run(10.0, 18.0), None).unwrap_err();
        assert!(stale.0.contains("never 0 together"), "{stale}");
        let mut flapping = ov_run(10.0, 0.0);
        flapping.get_mut("inv.ccl").unwrap().push((25.5, 18.0));
        let e = judge_with(&check, Some("ov"), flapping, None).unwrap_err();
        assert!(e.0.contains("announced again above 0"), "{e}");
    }

    #[test]
    fn an_alarm_bit_before_any_fault_is_refused() {
        let check = InverterCheck::AlarmBits {
            within: Seconds(2.0),
        };
        let mut run = ov_run(10.0, 0.0);
        assert!(judge_with(&check, Some("ov"), run.clone(), None).is_ok());
        run.insert("inv.alarm.uv", vec![(3.0, 1.0)]);
        let e = judge_with(&check, Some("ov"), run, None).unwrap_err();
        assert!(e.0.contains("inv.alarm.uv"), "{e}");
    }

    #[rstest]
    #[case::charging_positive(5.0, 5.0, true)]
    #[case::sign_inverted(5.0, -5.0, false)]
    fn the_announced_current_follows_the_declared_sign(
        #[case] supply_i: f64,
        #[case] announced: f64,
        #[case] passes: bool,
    ) {
        let check = InverterCheck::AnnouncedMeasurements {
            voltage: Volts(0.5),
            current: Amps(0.5),
        };
        let series = BTreeMap::from([
            ("inv.pack_v", vec![(1.0, 52.8)]),
            ("inv.pack_i", vec![(1.0, announced)]),
            ("supply.v", vec![(1.0, 53.0)]),
            ("supply.i", vec![(1.0, supply_i)]),
        ]);
        let j = judge_with(&check, None, series, None).unwrap();
        let current = j
            .iter()
            .find(|x| x.quantity == "announced_current")
            .unwrap();
        let inside = current.limit.low.is_none_or(|l| current.value >= l)
            && current.limit.high.is_none_or(|h| current.value <= h);
        assert_eq!(inside, passes, "{current:?}");
    }

    #[test]
    fn no_current_means_the_sign_cannot_be_checked() {
        let check = InverterCheck::AnnouncedMeasurements {
            voltage: Volts(0.5),
            current: Amps(0.5),
        };
        let series = BTreeMap::from([
            ("inv.pack_v", vec![(1.0, 52.8)]),
            ("inv.pack_i", vec![(1.0, 0.0)]),
            ("supply.v", vec![(1.0, 53.0)]),
            ("supply.i", vec![(1.0, 0.1)]),
        ]);
        let e = judge_with(&check, None, series, None).unwrap_err();
        assert!(e.0.contains("cannot be checked"), "{e}");
    }

    #[rstest]
    #[case::reacts(Some(14.0), Some(4.0))]
    #[case::ignores(None, None)]
    fn keepalive_loss_is_timed_from_the_stop(
        #[case] zero_at: Option<f64>,
        #[case] after: Option<f64>,
    ) {
        let v = |t: f64, on: f64| {
            if zero_at.is_some_and(|z| t >= z) {
                0.0
            } else {
                on
            }
        };
        let series = BTreeMap::from([
            ("inv.charge_enable", every_second(30, |t| v(t, 1.0))),
            ("inv.discharge_enable", every_second(30, |t| v(t, 1.0))),
            ("inv.ccl", every_second(30, |t| v(t, 18.0))),
            ("inv.dcl", every_second(30, |t| v(t, 30.0))),
        ]);
        let check = InverterCheck::KeepaliveLoss {
            allowance: Seconds(1.5),
        };
        let r = judge_with(&check, None, series.clone(), Some(10.0));
        match after {
            Some(a) => assert!((r.unwrap()[0].value - a).abs() < 1e-9),
            None => assert!(r.unwrap_err().0.contains("still announced"), "ignored"),
        }
        let e = judge_with(&check, None, series, None).unwrap_err();
        assert!(e.0.contains("never stopped the keep-alive"), "{e}");
    }
}
