//! What a validated plan would do (`hilrig run --dry-run`), worked out from the files alone.
//!
//! Per step: the setpoints it sends (with units) and how long it takes. A `wait`, a `ramp`
//! step and the hold of an `expect ... for` take a known time; a step that ends on a
//! condition (`wait_for`, an `expect ... within`, a trip and its release, each probe of a
//! bisection) is counted at its timeout, so the total is an upper bound, said "at most". A
//! bisection's probe count follows from its bracket and resolution; its hold is at least
//! twice the fixture's declared delay (the detection path, only known on the bench, adds
//! to that). Nothing here touches an instrument.

use super::load::LoadedPlan;
use super::model::{Step, Stimulus, Target, Trip};
use crate::units::{display, Dimension};

/// How long something takes: `seconds`, exactly or at most.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// Seconds.
    pub seconds: f64,
    /// True when a condition may end it sooner.
    pub at_most: bool,
}

impl Bound {
    const ZERO: Bound = Bound {
        seconds: 0.0,
        at_most: false,
    };

    fn exact(seconds: f64) -> Bound {
        Bound {
            seconds,
            at_most: false,
        }
    }

    fn at_most(seconds: f64) -> Bound {
        Bound {
            seconds,
            at_most: true,
        }
    }

    fn plus(self, other: Bound) -> Bound {
        Bound {
            seconds: self.seconds + other.seconds,
            at_most: self.at_most || other.at_most,
        }
    }

    fn times(self, n: u32) -> Bound {
        Bound {
            seconds: self.seconds * f64::from(n),
            at_most: self.at_most,
        }
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at_most {
            f.write_str("at most ")?;
        }
        let s = self.seconds;
        write!(f, "{s:.1} s")?;
        if s >= 60.0 {
            let whole = s.round() as u64;
            let (h, m, sec) = (whole / 3600, whole / 60 % 60, whole % 60);
            if h > 0 {
                write!(f, " ({h} h {m} min {sec} s)")?;
            } else {
                write!(f, " ({m} min {sec} s)")?;
            }
        }
        Ok(())
    }
}

/// One step as it would run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepPreview {
    /// `setup`, `steps` or `teardown`.
    pub phase: &'static str,
    /// Index in its phase.
    pub index: usize,
    /// Step kind.
    pub kind: &'static str,
    /// The test it is, if any.
    pub test: Option<String>,
    /// What it sends or waits for, in words with units.
    pub actions: Vec<String>,
    /// How long it takes.
    pub duration: Bound,
}

/// One plan as it would run.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanPreview {
    /// Plan id.
    pub plan: String,
    /// The plan file.
    pub file: String,
    /// How many times `steps` run.
    pub repeat: u32,
    /// Every step, setup, steps (once) and teardown.
    pub steps: Vec<StepPreview>,
    /// Setup, `repeat` times the steps, and teardown.
    pub total: Bound,
}

impl PlanPreview {
    /// The preview of a validated plan.
    pub fn of(plan: &LoadedPlan) -> PlanPreview {
        let p = &plan.plan.value;
        let mut steps = Vec::new();
        let mut total = Bound::ZERO;
        for (phase, list, times) in [
            ("setup", &p.setup, 1),
            ("steps", &p.steps, p.repeat),
            ("teardown", &p.teardown, 1),
        ] {
            for (index, s) in list.iter().enumerate() {
                let (actions, duration) = step(plan, &s.value);
                total = total.plus(duration.times(times));
                steps.push(StepPreview {
                    phase,
                    index,
                    kind: s.value.kind(),
                    test: s.value.test_name(),
                    actions,
                    duration,
                });
            }
        }
        PlanPreview {
            plan: p.plan.clone(),
            file: plan.plan.path.display().to_string(),
            repeat: p.repeat,
            steps,
            total,
        }
    }

    /// The preview as text lines.
    pub fn text(&self) -> Vec<String> {
        use super::outline::wrap;
        let mut out = vec![format!("plan {} ({})", self.plan, self.file)];
        let mut phase = "";
        for s in &self.steps {
            if s.phase != phase {
                phase = s.phase;
                out.push(if phase == "steps" && self.repeat > 1 {
                    format!("  steps (run {} times):", self.repeat)
                } else {
                    format!("  {phase}:")
                });
            }
            let test = s
                .test
                .as_ref()
                .map(|t| format!(" `{t}`"))
                .unwrap_or_default();
            let took = if s.duration == Bound::ZERO {
                String::new()
            } else {
                format!("; {}", s.duration)
            };
            let head = format!("[{}] {}{test}:", s.index, s.kind);
            out.extend(wrap(
                &format!("{head} {}{took}", s.actions.join("; ")),
                "    ",
                "        ",
            ));
        }
        out.push(format!("  estimated duration: {}", self.total));
        out
    }
}

/// The previews of several plans as text, with the sum when there are more than one.
pub fn text(previews: &[PlanPreview]) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in previews {
        if !out.is_empty() {
            out.push(String::new());
        }
        out.extend(p.text());
    }
    if previews.len() > 1 {
        let total = previews
            .iter()
            .fold(Bound::ZERO, |sum, p| sum.plus(p.total));
        out.push(String::new());
        out.push(format!(
            "estimated duration of {} plans: {total}",
            previews.len()
        ));
    }
    out.push("dry run: nothing was connected or switched on".into());
    out.join("\n")
}

fn secs(s: f64) -> String {
    display(s, Dimension::Time)
}

/// The setpoints of one step and its duration.
fn step(plan: &LoadedPlan, s: &Step) -> (Vec<String>, Bound) {
    let fx = &plan.fixture.value;
    let set = |what: String, value: String| format!("{what} to {value}");
    match s {
        Step::Supply(x) => {
            let mut a = Vec::new();
            if let Some(u) = x.voltage {
                a.push(set("supply voltage".into(), u.to_string()));
            }
            if let Some(i) = x.current {
                a.push(set("supply current limit".into(), i.to_string()));
            }
            if let Some(on) = x.output {
                a.push(format!("supply output {}", if on.0 { "on" } else { "off" }));
            }
            (a, Bound::ZERO)
        }
        Step::Load(x) => {
            let mut a = Vec::new();
            if let Some(i) = x.current {
                a.push(set("load current".into(), i.to_string()));
            }
            if let Some(on) = x.input {
                a.push(format!("load input {}", if on.0 { "on" } else { "off" }));
            }
            (a, Bound::ZERO)
        }
        Step::Cells(c) if c.release.is_some() => (
            vec!["cell simulator releases every cell (the pack's own cells seen)".into()],
            Bound::ZERO,
        ),
        Step::Cells(c) => {
            let a = match (c.all, c.cell, c.voltage) {
                (Some(u), _, _) => set(format!("cells 1-{}", fx.cells_in_series), u.to_string()),
                (None, Some(k), Some(u)) => set(Target::Cell(k).to_string(), u.to_string()),
                _ => "nothing".into(),
            };
            (vec![a], Bound::ZERO)
        }
        Step::Temperatures(t) => {
            let a = match (t.all, t.sensor, t.temperature) {
                (Some(c), _, _) => set(format!("ntc 1-{}", fx.ntcs), c.to_string()),
                (None, Some(k), Some(c)) => set(Target::Ntc(k).to_string(), c.to_string()),
                _ => "nothing".into(),
            };
            (vec![a], Bound::ZERO)
        }
        Step::BmsRequest(r) => (
            vec![format!("BMS state request `{}`", r.value)],
            Bound::ZERO,
        ),
        Step::Wait(d) => (vec![format!("wait {d}")], Bound::exact(d.0)),
        Step::WaitFor(w) => (
            vec![format!("until `{}`", w.until.value)],
            Bound::at_most(w.timeout.0),
        ),
        Step::Ramp(r) => {
            let span = (r.to.0.value - r.from.0.value).abs() / r.rate.0.value;
            (
                vec![format!(
                    "ramp {} from {} to {} at {}",
                    r.of, r.from.0, r.to.0, r.rate.0
                )],
                Bound::exact(span),
            )
        }
        Step::Expect(x) => {
            let mut a = vec![format!("check `{}`", x.that.value)];
            let mut d = Bound::ZERO;
            if let Some(w) = x.within {
                a.push(format!("within {w}"));
                d = d.plus(Bound::at_most(w.0));
            }
            if let Some(h) = x.hold {
                a.push(format!("for {h}"));
                d = d.plus(Bound::exact(h.0));
            }
            (a, d)
        }
        Step::Measure(m) => match m.over {
            Some(o) => (
                vec![format!("read `{}` over {o}", m.signal.value)],
                Bound::exact(o.0),
            ),
            None => (vec![format!("read `{}`", m.signal.value)], Bound::ZERO),
        },
        Step::Declaration(d) => (
            vec![format!(
                "judge the fixture's declarations ({})",
                d.judge.value
            )],
            Bound::ZERO,
        ),
        Step::Trip(t) => trip(plan, t),
        Step::Soc(x) => match (&x.start, &x.judge) {
            (Some(_), _) => (
                vec![
                    "start the SOC reference from the OCV at rest (load's voltage reading)".into(),
                ],
                Bound::ZERO,
            ),
            (None, Some(j)) => (
                vec![format!(
                    "compare `{}` with the SOC reference ({})",
                    x.signal(),
                    j.value
                )],
                Bound::ZERO,
            ),
            (None, None) => (Vec::new(), Bound::ZERO),
        },
        Step::Inverter(i) => {
            let mut a = Vec::new();
            if let Some(k) = i.keepalive {
                a.push(format!(
                    "inverter keep-alive {}",
                    if k.0 { "on" } else { "off" }
                ));
            }
            if let Some(j) = &i.judge {
                a.push(format!("judge the inverter announcements ({})", j.value));
            }
            (a, Bound::ZERO)
        }
        Step::Prompt(p) => {
            let fields: Vec<String> = p
                .fields()
                .into_iter()
                .map(|(n, d)| match d {
                    Some(d) => format!("{n} (default `{d}`)"),
                    None => format!("{n} (no default: needs an operator)"),
                })
                .collect();
            (
                vec![format!(
                    "ask the operator \"{}\": {}",
                    p.text,
                    fields.join(", ")
                )],
                Bound::ZERO,
            )
        }
    }
}

/// A trip's stimulus and release, and its duration bound.
fn trip(plan: &LoadedPlan, t: &Trip) -> (Vec<String>, Bound) {
    let delay = plan.declared_delay(&t.protection.value);
    let timeout = t.timeout.0;
    let mut a = Vec::new();
    let mut d = match &t.stimulus.value {
        Stimulus::Ramp(r) => {
            a.push(format!(
                "ramp {} from {} to {} at {} until `{}`",
                r.of, r.from.0, r.to.0, r.rate.0, t.detect.value
            ));
            Bound::at_most(timeout)
        }
        Stimulus::Step(s) => {
            let settle = s.settle_or_twice(delay).as_secs_f64();
            a.push(format!(
                "{} to {} for {} (settle), then to {} until `{}`",
                s.of,
                s.from.0,
                secs(settle),
                s.to.0,
                t.detect.value
            ));
            let mut d = Bound::exact(settle).plus(Bound::at_most(timeout));
            if let Some(rest) = s.rest {
                a.push(format!("then {} back to {rest}", s.of, rest = rest.0));
                d = d.plus(Bound::at_most(timeout));
            }
            d
        }
        Stimulus::Short(s) => {
            let settle = s.settle().as_secs_f64();
            a.push(format!(
                "hold for {} (settle), arm the scope, close the short-circuit switch until \
                 `{}` on the record, open it again",
                secs(settle),
                t.detect.value
            ));
            Bound::exact(settle).plus(Bound::at_most(timeout))
        }
        Stimulus::Bisect(b) => {
            let hold = b.hold.map(|h| h.0).unwrap_or(0.0).max(2.0 * delay);
            let span = (b.trips.0.value - b.no_trip.0.value).abs();
            let halvings = if b.resolution.0.value > 0.0 && span > b.resolution.0.value {
                (span / b.resolution.0.value).log2().ceil() as u32
            } else {
                0
            };
            let probes = 2 + halvings;
            a.push(format!(
                "bisect {} between {} and {} to {} ({probes} probes held {} each, \
                 {} between probes)",
                b.of,
                b.no_trip.0,
                b.trips.0,
                b.resolution.0,
                secs(hold),
                b.rest.0
            ));
            Bound::at_most((timeout + hold) * f64::from(probes))
        }
    };
    if let Some(r) = &t.release {
        a.push(format!(
            "release: back to {} at {} until `{}`",
            r.to.0, r.rate.0, r.detect.value
        ));
        d = d.plus(Bound::at_most(r.timeout.0));
    }
    (a, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::load::load_plan;
    use rstest::rstest;

    #[rstest]
    #[case::exact(Bound::exact(12.0), "12.0 s")]
    #[case::at_most(Bound::at_most(75.0), "at most 75.0 s (1 min 15 s)")]
    #[case::hours(Bound::exact(3725.0), "3725.0 s (1 h 2 min 5 s)")]
    fn bounds_read_as_text(#[case] b: Bound, #[case] want: &str) {
        assert_eq!(b.to_string(), want);
    }

    #[test]
    fn the_overcharge_plan_sums_setup_repeats_and_teardown() {
        let path =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-plans/overcharge.yaml");
        let plan = load_plan(&path, None).unwrap();
        let p = PlanPreview::of(&plan);
        // Setup: 5 s + (settle + 10 s) + 5 s; steps: (20 s + 5 s) x 3; teardown: nothing.
        let delay = plan.fixture.value.protections["ov"].value.delay.0;
        let want = 5.0 + 2.0 * delay + 10.0 + 5.0 + 3.0 * 25.0;
        assert!((p.total.seconds - want).abs() < 1e-9, "{:?}", p.total);
        assert!(p.total.at_most);
        let text = p.text().join("\n");
        assert!(text.contains("supply voltage to 56.0000 V"), "{text}");
        assert!(text.contains("cells 1-16 to 3.3000 V"), "{text}");
    }
}
