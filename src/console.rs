//! The console reporter of a run (`hilrig run`), over run's events as `serve` is: a
//! progress line on a terminal, plain lines otherwise, JSON lines with `--json`.
//!
//! The progress line (text mode on a terminal) reads, in at most 80 columns (cut with `…`):
//! `[plan k/N PLAN: ]TEST · repeat k/N · ELAPSED · ~LEFT left | signal value, ...`: the plan
//! only in a suite, the test's name (or `phase: kind` for a step that is no test), the repeat
//! of `steps`, the time since the first plan started and the time left by the dry-run
//! estimate (`≤` when conditions may end steps sooner), and the key signals with their units,
//! a DBC value-table entry by its name (`bms.state fault`). It is cleared when the run ends,
//! an interrupted one included (and when the output is dropped on an early exit).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::campaign::{CampaignEvent, CampaignSink};
use crate::plan::dry_run::{Bound, PlanPreview};
use crate::plan::load::{LoadedPlan, SignalSource};
use crate::report::junit::limit_text;
use crate::report::TestResult;
use crate::report::{Outcome, RunResults};
use crate::rig::choice::RigChoice;
use crate::run::Event;
use crate::units::display_unit;
use crate::verdict::DecisionRule;

/// Where operator output goes.
pub struct Output {
    json: bool,
    bar: Option<ProgressBar>,
    started: Instant,
    plan: Mutex<String>,
    progress: Mutex<Progress>,
    /// The live page's events (`--serve`): every JSON object, in JSON mode or not.
    live: Option<std::sync::Arc<crate::serve::Hub>>,
}

/// Width of the progress line.
pub const PROGRESS_COLUMNS: usize = 80;

/// What the progress line knows between events.
#[derive(Default)]
struct Progress {
    /// The plans expected, in order.
    plans: Vec<PlanInfo>,
    /// Index of the running plan in `plans`.
    current: Option<usize>,
    /// When the first plan started.
    first_start: Option<Instant>,
    /// When the running plan started.
    plan_start: Option<Instant>,
    /// Test name (or `phase: kind`) of the running step.
    doing: String,
    /// Repeat of the running step (0 outside `steps`).
    repeat: u32,
    /// The latest key signal values.
    values: Vec<(String, f64)>,
}

/// A plan as the progress line needs it.
struct PlanInfo {
    id: String,
    repeat: u32,
    total: Bound,
    /// (phase, index) -> test name.
    tests: BTreeMap<(&'static str, usize), String>,
    signals: BTreeMap<String, SignalLabel>,
}

/// How a signal's value is written: its unit, and the names of its raw values (DBC `VAL_`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SignalLabel {
    /// Unit of the value as recorded (empty when none).
    pub unit: String,
    /// Names of values (DBC value table).
    pub names: BTreeMap<i64, String>,
}

/// The signals of a plan with units and value names, from its fixture's DBC and the
/// instruments' dimensions.
pub fn signal_labels(plan: &LoadedPlan) -> BTreeMap<String, SignalLabel> {
    plan.signals
        .iter()
        .map(|(name, src)| {
            let label = match src {
                SignalSource::Can { message, signal } => plan
                    .dbc
                    .message(message)
                    .and_then(|m| m.signal(signal))
                    .map(|s| SignalLabel {
                        unit: s.unit.clone(),
                        names: s.value_table.clone(),
                    })
                    .unwrap_or_default(),
                SignalSource::Instrument(dim) => SignalLabel {
                    unit: dim.unit().to_string(),
                    names: BTreeMap::new(),
                },
                SignalSource::Modbus { unit } => SignalLabel {
                    unit: unit.clone(),
                    names: BTreeMap::new(),
                },
            };
            (name.clone(), label)
        })
        .collect()
}

/// A signal's value for people: the value's name when the DBC names it, else the value with
/// its unit (a setpoint `x_set` takes the unit of `x`, else of its last letter: v, i, t).
pub fn signal_text(name: &str, value: f64, labels: &BTreeMap<String, SignalLabel>) -> String {
    let base = name.strip_suffix("_set").unwrap_or(name);
    let label = labels.get(name).or_else(|| labels.get(base));
    if let Some(l) = label {
        if value.fract() == 0.0 && value.abs() < 1e15 {
            if let Some(n) = l.names.get(&(value as i64)) {
                return format!("{name} {n}");
            }
        }
    }
    let unit = match label {
        Some(l) => l.unit.as_str(),
        None => match base.rsplit('.').next() {
            Some("v") => "V",
            Some("i") => "A",
            Some("t") => "°C",
            _ => "",
        },
    };
    let number = match unit {
        "V" => format!("{value:.3} V"),
        "mV" => format!("{value:.0} mV"),
        "" => trimmed(value),
        u => format!("{} {u}", trimmed(value)),
    };
    format!("{name} {number}")
}

/// A number with at most 3 decimals and no trailing zeros.
fn trimmed(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// The parts of one progress line.
#[derive(Debug, Clone, Default)]
pub struct ProgressLine {
    /// Plan id (shown in a suite; a single plan is named on the line above).
    pub plan: String,
    /// `(k, N)` of the plan in a suite of N > 1 plans.
    pub plan_of: Option<(usize, usize)>,
    /// Test name, or `phase: kind`.
    pub doing: String,
    /// `(k, N)` of the repeat, inside `steps`.
    pub repeat: Option<(u32, u32)>,
    /// Time since the run's first plan started.
    pub elapsed: Duration,
    /// Estimated time left, and whether it is an upper bound.
    pub left: Option<Bound>,
    /// Key signals, already written with units or value names.
    pub values: Vec<String>,
}

impl ProgressLine {
    /// The line, cut to `PROGRESS_COLUMNS` characters with `…`.
    pub fn render(&self) -> String {
        let mut s = match self.plan_of {
            Some((k, n)) => format!("plan {k}/{n} {}: {}", self.plan, self.doing),
            None => self.doing.clone(),
        };
        if let Some((k, n)) = self.repeat {
            s.push_str(&format!(" · repeat {k}/{n}"));
        }
        s.push_str(&format!(" · {}", clock(self.elapsed.as_secs_f64())));
        if let Some(b) = self.left {
            let mark = if b.at_most { "≤" } else { "~" };
            s.push_str(&format!(" · {mark}{} left", clock(b.seconds)));
        }
        if !self.values.is_empty() {
            s.push_str(" | ");
            s.push_str(&self.values.join(", "));
        }
        cut(&s, PROGRESS_COLUMNS)
    }
}

/// `m:ss`, or `h:mm:ss` from an hour on.
fn clock(seconds: f64) -> String {
    let t = seconds.max(0.0).round() as u64;
    let (h, m, s) = (t / 3600, t / 60 % 60, t % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// `text` in at most `columns` characters, ending in `…` when cut.
fn cut(text: &str, columns: usize) -> String {
    if text.chars().count() <= columns {
        return text.to_string();
    }
    let mut s: String = text.chars().take(columns.saturating_sub(1)).collect();
    s.push('…');
    s
}

impl Output {
    /// JSON lines, a progress line on a terminal, or plain lines.
    pub fn new(json: bool) -> Self {
        let bar = (!json && std::io::stdout().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Self {
            json,
            bar,
            started: Instant::now(),
            plan: Mutex::new(String::new()),
            progress: Mutex::new(Progress::default()),
            live: None,
        }
    }

    /// The plans this run is expected to run, for the progress line's names and estimate.
    pub fn expect(&self, plans: &[Arc<LoadedPlan>]) {
        // Units and value names of each plan's signals, for JSON readers and the live page.
        for p in plans {
            self.json(serde_json::json!({
                "event": "signal_labels",
                "plan": p.plan.value.plan,
                "signals": signal_labels(p),
            }));
        }
        if self.bar.is_none() {
            return;
        }
        let infos = plans
            .iter()
            .map(|p| {
                let preview = PlanPreview::of(p);
                PlanInfo {
                    id: preview.plan.clone(),
                    repeat: preview.repeat,
                    total: preview.total,
                    tests: preview
                        .steps
                        .iter()
                        .filter_map(|s| s.test.clone().map(|t| ((s.phase, s.index), t)))
                        .collect(),
                    signals: signal_labels(p),
                }
            })
            .collect();
        self.progress().plans = infos;
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Redraw the progress line from what is known.
    fn redraw(&self) {
        let Some(bar) = &self.bar else {
            return;
        };
        let p = self.progress();
        let plan = self.plan.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let info = p.current.and_then(|i| p.plans.get(i));
        let now = Instant::now();
        let in_plan = p
            .plan_start
            .map(|t| now.duration_since(t).as_secs_f64())
            .unwrap_or(0.0);
        let left = p.current.and_then(|i| {
            let this = p.plans.get(i)?.total;
            let rest = p.plans[i + 1..].iter().fold(
                Bound {
                    seconds: (this.seconds - in_plan).max(0.0),
                    at_most: this.at_most,
                },
                |acc, q| Bound {
                    seconds: acc.seconds + q.total.seconds,
                    at_most: acc.at_most || q.total.at_most,
                },
            );
            Some(rest)
        });
        let no_labels = BTreeMap::new();
        let labels = info.map(|i| &i.signals).unwrap_or(&no_labels);
        let line = ProgressLine {
            plan,
            plan_of: p
                .current
                .filter(|_| p.plans.len() > 1)
                .map(|i| (i + 1, p.plans.len())),
            doing: p.doing.clone(),
            repeat: info.filter(|_| p.repeat > 0).map(|i| (p.repeat, i.repeat)),
            elapsed: p
                .first_start
                .map(|t| now.duration_since(t))
                .unwrap_or_default(),
            left,
            values: p
                .values
                .iter()
                .map(|(n, v)| signal_text(n, *v, labels))
                .collect(),
        };
        bar.set_message(line.render());
    }

    /// Also publish every JSON object to the live page's event stream.
    pub fn with_live(mut self, hub: std::sync::Arc<crate::serve::Hub>) -> Self {
        self.live = Some(hub);
        self
    }

    /// A line for people (not printed in JSON mode).
    pub fn line(&self, text: &str) {
        if self.json {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(text),
            None => say(text),
        }
    }

    /// A JSON object for machines (printed only in JSON mode).
    pub fn json(&self, value: serde_json::Value) {
        if !self.json && self.live.is_none() {
            return;
        }
        let text = value.to_string();
        if let Some(hub) = &self.live {
            hub.publish(text.clone());
        }
        if self.json {
            say(&text);
        }
    }

    /// The first line: the bench, where its name came from, and SIMULATED on the simulated
    /// bench (the JSON event carries `simulated`).
    pub fn bench(&self, choice: &RigChoice, station: &str, simulated: bool) {
        self.line(&bench_line(choice, station, simulated));
        self.json(json!({"event": "bench", "rig": choice.path, "rig_source": choice.source.to_string(), "station": station, "simulated": simulated}));
    }

    /// The last line on the simulated bench: SIMULATED again, under the results.
    pub fn closing(&self, simulated: bool) {
        if simulated {
            self.line(SIMULATED_LINE);
        }
    }

    /// A plan starts.
    pub fn plan(&self, id: &str, title: &str, repeats: u32, station: &str, rule: &str) {
        *self.plan.lock().unwrap_or_else(|e| e.into_inner()) = id.to_string();
        {
            let mut p = self.progress();
            let now = Instant::now();
            p.first_start.get_or_insert(now);
            p.plan_start = Some(now);
            p.current = p.plans.iter().position(|i| i.id == id);
            p.doing = "starting".into();
            p.repeat = 0;
            p.values.clear();
        }
        self.line(&format!(
            "hilrig: {id} ({title}) on {station} — {repeats} repeat(s), decision rule {rule}"
        ));
        self.json(json!({"event": "plan", "plan": id, "title": title, "repeat": repeats, "station": station, "decision_rule": rule}));
    }

    /// A runner event.
    pub fn event(&self, e: &Event) {
        self.json(e.to_json());
        if self.json {
            return;
        }
        match e {
            Event::Step {
                phase,
                index,
                repeat,
                kind,
            } => {
                if self.bar.is_none() {
                    let plan = self.plan.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let msg = if *repeat > 0 {
                        format!("{plan}: repeat {repeat}, {phase}[{index}] {kind}")
                    } else {
                        format!("{plan}: {phase}[{index}] {kind}")
                    };
                    tracing::info!("{msg}");
                    return;
                }
                {
                    let mut p = self.progress();
                    let test = p
                        .current
                        .and_then(|i| p.plans.get(i))
                        .and_then(|i| i.tests.get(&(phase.key(), *index)).cloned());
                    p.doing = test.unwrap_or_else(|| format!("{phase}: {kind}"));
                    p.repeat = *repeat;
                }
                self.redraw();
            }
            Event::Signals { values } => {
                if self.bar.is_some() {
                    self.progress().values = values.clone();
                    self.redraw();
                }
            }
            Event::Test(t) => self.line(&test_lines(t)),
            Event::TestRevised(t) => self.line(&format!(
                "revised after the plan's delay check:\n{}",
                test_lines(t)
            )),
            Event::Aborting { cause } => match &self.bar {
                Some(bar) => bar.println(format!("ABORT {cause}")),
                None => eprintln!("ABORT {cause}"),
            },
            // The question itself is asked on stderr by the prompt: the progress line is
            // cleared and stops redrawing until it is answered, so it never covers the
            // question or what the operator types.
            Event::Prompt(_) => {
                if let Some(bar) = &self.bar {
                    bar.disable_steady_tick();
                    bar.set_message("");
                    bar.tick();
                    bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
                }
            }
            Event::PromptAnswered(p) => {
                if let Some(bar) = &self.bar {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    bar.enable_steady_tick(Duration::from_millis(500));
                }
                let a: Vec<String> = p.answers.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.line(&format!("answered ({}): {}", p.answered_by, a.join(", ")));
            }
        }
    }

    /// Stop the progress line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        tracing::debug!(
            "output finished after {:.1} s",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// What the console says on the simulated bench, first and last.
pub const SIMULATED_LINE: &str = "SIMULATED BENCH — not a physical test";

/// The first line of a run: which bench, and SIMULATED when it is the simulated one.
pub fn bench_line(choice: &RigChoice, station: &str, simulated: bool) -> String {
    if simulated {
        format!("{SIMULATED_LINE}: {choice}, station {station}")
    } else {
        format!("bench: {choice}, station {station}")
    }
}

impl Drop for Output {
    /// An early exit (an error after the run started) clears the progress line too.
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            if !bar.is_finished() {
                bar.finish_and_clear();
            }
        }
    }
}

/// Print a line; a closed stdout (a pipe whose reader went away) must not stop a run.
fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// A finished test as lines: verdict and name, then each measurement against its limit.
pub fn test_lines(t: &TestResult) -> String {
    let mut out = format!("{:<5} {}", t.verdict.word(), t.name);
    if let Some(m) = &t.message {
        out.push_str(&format!("\n      {m}"));
    }
    for m in &t.measurements {
        out.push_str(&format!(
            "\n      {:<30} {:<14} {:>24} (k = {}) limit {:<26} {}",
            m.criterion,
            m.quantity,
            crate::verdict::gum::stated(m.value, m.uncertainty, &m.unit),
            m.coverage_factor,
            limit_text(&m.limit, &m.unit),
            m.verdict.word()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn labels() -> BTreeMap<String, SignalLabel> {
        let state = SignalLabel {
            unit: String::new(),
            names: [(0, "standby"), (4, "fault")]
                .into_iter()
                .map(|(k, v)| (k, v.to_string()))
                .collect(),
        };
        let volts = SignalLabel {
            unit: "V".into(),
            names: BTreeMap::new(),
        };
        let amps = SignalLabel {
            unit: "A".into(),
            names: BTreeMap::new(),
        };
        BTreeMap::from([
            ("bms.state".to_string(), state),
            ("cell[5].v".to_string(), volts),
            ("supply.i".to_string(), amps),
        ])
    }

    #[rstest]
    #[case::enum_by_name("bms.state", 4.0, "bms.state fault")]
    #[case::enum_unnamed_value("bms.state", 9.0, "bms.state 9")]
    #[case::volts("cell[5].v", 3.65, "cell[5].v 3.650 V")]
    #[case::amps("supply.i", 1.5, "supply.i 1.5 A")]
    #[case::setpoint_takes_the_signals_unit("cell[5].v_set", 3.7, "cell[5].v_set 3.700 V")]
    #[case::unknown_setpoint_by_its_letter("cells.v_set", 3.3, "cells.v_set 3.300 V")]
    #[case::unknown("x.y", 2.0, "x.y 2")]
    fn signals_have_units_and_value_names(
        #[case] name: &str,
        #[case] value: f64,
        #[case] want: &str,
    ) {
        assert_eq!(signal_text(name, value, &labels()), want);
    }

    fn line() -> ProgressLine {
        ProgressLine {
            plan: "cell-overvoltage-charge".into(),
            plan_of: None,
            doing: "OV cell 5".into(),
            repeat: Some((2, 3)),
            elapsed: Duration::from_secs(75),
            left: Some(Bound {
                seconds: 40.0,
                at_most: true,
            }),
            values: vec!["bms.state fault".into()],
        }
    }

    #[rstest]
    #[case::single_plan(line(), "OV cell 5 · repeat 2/3 · 1:15 · ≤0:40 left | bms.state fault")]
    #[case::suite(
        ProgressLine { plan: "ov".into(), plan_of: Some((2, 5)), repeat: None, values: vec![], ..line() },
        "plan 2/5 ov: OV cell 5 · 1:15 · ≤0:40 left"
    )]
    #[case::exact_estimate_over_an_hour(
        ProgressLine { plan: "p".into(), repeat: None, values: vec![], elapsed: Duration::from_secs(3725),
                       left: Some(Bound { seconds: 5.0, at_most: false }), ..line() },
        "OV cell 5 · 1:02:05 · ~0:05 left"
    )]
    #[case::no_estimate(
        ProgressLine { plan: "p".into(), doing: "setup: wait_for".into(), repeat: None, left: None, values: vec![], ..line() },
        "setup: wait_for · 1:15"
    )]
    fn the_progress_line_names_test_repeat_and_time(
        #[case] line: ProgressLine,
        #[case] want: &str,
    ) {
        assert_eq!(line.render(), want);
    }

    /// Long names and many signals are cut to 80 columns, ending in `…`.
    #[test]
    fn a_long_progress_line_is_cut_to_80_columns() {
        let long = ProgressLine {
            doing: "a test whose name is very long indeed, longer than any terminal would like"
                .into(),
            values: vec!["cell[5].v 3.650 V".into(), "bms.state fault".into()],
            ..line()
        };
        let text = long.render();
        assert_eq!(text.chars().count(), PROGRESS_COLUMNS, "{text}");
        assert!(text.ends_with('…'), "{text}");
        assert!(text.starts_with("a test whose name"), "{text}");
    }
}

/// The console and JSON-lines reporter of a campaign.
impl CampaignSink for Output {
    fn event(&self, e: &CampaignEvent<'_>) {
        let out = self;
        match e {
            CampaignEvent::Warning(w) => eprintln!("warning: {w}"),
            CampaignEvent::Error(w) => eprintln!("error: {w}"),
            CampaignEvent::Bench {
                choice,
                station,
                simulated,
            } => out.bench(choice, station, *simulated),
            CampaignEvent::Plans(plans) => out.expect(plans),
            CampaignEvent::Firmware(fw) => {
                out.line(&format!(
                    "firmware: {} {} sha256:{}",
                    fw.id, fw.version, fw.sha256
                ));
                out.json(serde_json::json!({"event": "firmware", "id": fw.id, "version": fw.version, "sha256": fw.sha256}));
            }
            CampaignEvent::NotStarted { plan, reason } => {
                out.line(&format!("NOT RUN {plan}: {reason}"))
            }
            CampaignEvent::PlanStarted {
                plan,
                station,
                rule,
            } => out.plan(
                &plan.plan.value.plan,
                &plan.plan.value.title,
                plan.plan.value.repeat,
                station,
                rule_name(*rule),
            ),
            CampaignEvent::Run(e) => out.event(e),
            CampaignEvent::Sealed(line) => out.line(line),
            CampaignEvent::PlanFinished { results, dir } => {
                out.line(&summary(results, dir));
                out.json(serde_json::json!({"event": "plan_finished", "plan": results.plan, "outcome": results.outcome, "dir": dir, "safe_state_reached": results.safe_state_reached}));
            }
            CampaignEvent::SuiteSealed { files, dir, signed } => out.line(&format!(
                "suite evidence: {files} files in {}, manifest {}",
                dir.display(),
                if *signed {
                    "signed"
                } else {
                    "UNSIGNED (no station key; run `hilrig keygen`)"
                }
            )),
            CampaignEvent::Stored {
                run_id,
                bundle_sha256,
                db,
            } => {
                out.line(&format!("stored {run_id} in {db}"));
                out.json(serde_json::json!({"event": "stored", "run_id": run_id, "bundle_sha256": bundle_sha256, "db": db}));
            }
            CampaignEvent::SuiteFinished {
                name,
                plans,
                outcome,
                dir,
            } => out.line(&format!(
                "suite {name}: {plans} plan(s), {outcome:?}; results in {}",
                dir.display()
            )),
            CampaignEvent::Finished(done) => {
                let (simulated, wall) = (done.simulated_s, done.wall_s);
                if done.virtual_time {
                    out.line(&format!(
                        "virtual time: {simulated:.1} s simulated in {wall:.3} s of wall time"
                    ));
                }
                if let Some(note) = &done.exit_note {
                    out.line(note);
                }
                out.json(serde_json::json!({"event": "finished", "outcome": done.outcome, "exit_code": done.exit_code, "simulated_s": simulated, "wall_s": wall, "simulated": done.simulated}));
                out.closing(done.simulated);
            }
        }
    }
}

/// A decision rule in words.
pub fn rule_name(r: DecisionRule) -> &'static str {
    match r {
        DecisionRule::Simple => "simple acceptance",
        DecisionRule::Guarded => "guarded acceptance",
    }
}

/// The end-of-run lines: counts, abort cause, unconfirmed safe-state actions, where.
pub fn summary(r: &RunResults, dir: &std::path::Path) -> String {
    use crate::verdict::Verdict::*;
    let count = |v| r.tests.iter().filter(|t| t.verdict == v).count();
    let mut lines = vec![format!(
        "{}: {} passed, {} failed, {} inconclusive in {:.1} s",
        match r.outcome {
            Outcome::Passed => "PASSED",
            Outcome::Failed => "FAILED",
            Outcome::Inconclusive => "INCONCLUSIVE",
            Outcome::Aborted => "ABORTED",
        },
        count(Pass),
        count(Fail),
        count(Inconclusive),
        r.duration_s
    )];
    if let Some(a) = &r.abort {
        let during = a
            .during
            .as_ref()
            .map(|d| format!(" (during {d})"))
            .unwrap_or_default();
        lines.push(format!("aborted: {}{during}", a.cause));
    }
    if let Some(first) = r.not_run.first() {
        lines.push(format!("{} test(s) {}", r.not_run.len(), first.reason));
    }
    for s in r.safe_state.iter().filter(|s| !s.ok) {
        lines.push(format!(
            "SAFE STATE NOT CONFIRMED: {} {}: {}",
            s.instrument,
            s.action,
            s.error.as_deref().unwrap_or("")
        ));
    }
    for s in r.safe_state.iter().filter(|s| s.sent_not_confirmed()) {
        let tail = if s.action.contains("not confirmed") {
            ""
        } else {
            ": sent, not confirmed"
        };
        lines.push(format!("safe state: {} {}{tail}", s.instrument, s.action));
    }
    if let Some(w) = &r.watchdog {
        if let Some(why) = &w.left_armed {
            lines.push(format!(
                "watchdog: the I/O watchdog of supply `{}` is left armed ({} s): {why}",
                w.instrument, w.armed_s
            ));
        }
    }
    for st in &r.statistics {
        if st.n > 1 && !st.unit.is_empty() {
            let (min, mean, max) = (
                display_unit(st.min, &st.unit),
                display_unit(st.mean, &st.unit),
                display_unit(st.max, &st.unit),
            );
            lines.push(format!(
                "  {} / {}: min {min}, mean {mean}, max {max} over {} repeats",
                st.test, st.criterion, st.n
            ));
        }
    }
    lines.push(format!(
        "safe state reached: {}; results in {}",
        if r.safe_state_reached { "yes" } else { "NO" },
        dir.display()
    ));
    lines.join("\n")
}

#[cfg(test)]
mod summary_tests {
    use super::*;
    use crate::report::{SafeStateAction, RESULTS_SCHEMA};

    fn step(instrument: &str, action: &str, ok: bool, confirmed: bool) -> SafeStateAction {
        SafeStateAction {
            instrument: instrument.into(),
            action: action.into(),
            ok,
            confirmed,
            error: (!ok).then(|| "no answer".into()),
        }
    }

    #[test]
    fn the_summary_names_safe_state_steps_that_were_sent_not_confirmed() {
        let safe = [
            step("supply", "output off (confirmed by read-back)", true, true),
            step("cells", "all cells to nominal 3.300 V", true, false),
            step(
                "dut",
                "BMS standby request over CAN: sent, not confirmed (the fixture declares no \
                 `confirm`)",
                true,
                false,
            ),
            step("load", "input off (confirmed by read-back)", false, false),
        ];
        let r: RunResults = serde_json::from_value(serde_json::json!({
            "schema": RESULTS_SCHEMA, "run_id": "r", "plan": "p", "title": "t",
            "requirements": [], "station": "s", "dut": "d", "limit_profile": "l",
            "decision_rule": "guarded", "firmware": null, "clock_anchor": "x",
            "duration_s": 1.0, "outcome": "passed", "abort": null,
            "safe_state_reached": false, "safe_state": safe, "tests": [], "trace_rows": 0
        }))
        .unwrap();
        let text = summary(&r, std::path::Path::new("/tmp/run"));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.contains(&"safe state: cells all cells to nominal 3.300 V: sent, not confirmed"),
            "{text}"
        );
        assert!(
            lines.contains(
                &"safe state: dut BMS standby request over CAN: sent, not confirmed (the fixture \
                  declares no `confirm`)"
            ),
            "{text}"
        );
        assert!(
            lines.contains(
                &"SAFE STATE NOT CONFIRMED: load input off (confirmed by read-back): no answer"
            ),
            "{text}"
        );
        assert!(!text.contains("safe state: supply"), "{text}");
    }

    /// A watchdog left armed is named in the summary; a disarmed one is not.
    #[rstest::rstest]
    #[case::left_armed(
        Some("disarming it failed: no reply"),
        Some("watchdog: the I/O watchdog of supply `psu` is left armed (5 s): disarming it failed: no reply")
    )]
    #[case::disarmed(None, None)]
    fn the_summary_names_a_watchdog_left_armed(
        #[case] left_armed: Option<&str>,
        #[case] line: Option<&str>,
    ) {
        let r: RunResults = serde_json::from_value(serde_json::json!({
            "schema": RESULTS_SCHEMA, "run_id": "r", "plan": "p", "title": "t",
            "requirements": [], "station": "s", "dut": "d", "limit_profile": "l",
            "decision_rule": "guarded", "firmware": null, "clock_anchor": "x",
            "duration_s": 1.0, "outcome": "passed", "abort": null,
            "safe_state_reached": true, "safe_state": [], "tests": [], "trace_rows": 0,
            "watchdog": {"instrument": "psu", "armed_s": 5.0, "disarmed": left_armed.is_none(),
                         "left_armed": left_armed}
        }))
        .unwrap();
        let text = summary(&r, std::path::Path::new("/tmp/run"));
        let found: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("watchdog:"))
            .collect();
        assert_eq!(found, line.into_iter().collect::<Vec<_>>(), "{text}");
    }
}
