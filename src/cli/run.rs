//! `hilrig run PLAN [--rig R] [--out DIR] [--junit F] [--virtual-time] [--test NAME]... [--dry-run]`

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::output::Output;
use super::EXIT_ABORT;
use crate::campaign::{
    self, CampaignDeps, CampaignError, CampaignEvent, CampaignSink, CampaignSpec,
};
use crate::plan::dry_run::{self, PlanPreview};
use crate::report::{Outcome, RunResults};
use crate::rig::choice::RigChoice;
use crate::sim::SimBenchProvider;
use crate::units::display_unit;
use crate::verdict::DecisionRule;

/// Arguments of `hilrig run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The test plan or suite.
    pub plan: PathBuf,
    /// Rig file (default: `HILRIG_RIG`, else `rig` in hilrig.toml, else rig/sim.yaml, the
    /// built-in simulated bench).
    #[arg(long)]
    pub rig: Option<PathBuf>,
    /// Directory for run directories.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Also write the JUnit report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Override the limit profile's decision rule.
    #[arg(long, value_enum)]
    pub decision_rule: Option<RuleArg>,
    /// Run on a paused clock that jumps to the next event (simulated rigs only): the
    /// simulated bench serves its instruments in memory instead of on TCP.
    #[arg(long)]
    pub virtual_time: bool,
    /// Wait this long for the bench lock when another run holds it (e.g. `30 min`);
    /// without it, a busy bench is an error (exit 2) naming the holder.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = super::parse_duration)]
    pub wait: Option<std::time::Duration>,
    /// Run only this test (repeatable; a name as `hilrig list` prints it): of a suite, only
    /// the plans that have one. Setup and teardown still run.
    #[arg(long = "test", value_name = "NAME")]
    pub tests: Vec<String>,
    /// Load and check rig and plans, print the setpoints each step would send and an
    /// estimated duration, and stop: no instrument, no bench lock, no run directory.
    #[arg(long)]
    pub dry_run: bool,
    /// Print progress and results as JSON lines (one object per event) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Override a plan parameter (`name=value`, repeatable); wins over suite overrides.
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Run even when an instrument's calibration has expired (the report then says that
    /// its results are not traceable).
    #[arg(long)]
    pub allow_expired_calibration: bool,
    /// Store each plan run's sealed bundle in this results store at the end
    /// (`sqlite://PATH` or `postgres://...`; default: `$HILRIG_DB` when set, else none).
    /// A store that cannot take them makes the exit code 2.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Serial number of the item tested (the BMS), recorded in every output.
    #[arg(long)]
    pub dut_serial: Option<String>,
    /// Who runs the test, recorded in every output (default: $HILRIG_OPERATOR).
    #[arg(long)]
    pub operator: Option<String>,
    /// Ambient temperature during the run (`23 °C`), when no sensor reports it.
    #[arg(long, value_parser = parse_temperature)]
    pub ambient: Option<f64>,
    /// Serve the live page of the run on this address (`127.0.0.1:0` picks a port): plots,
    /// verdicts, prompts and a STOP; a non-loopback address needs the printed token.
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<std::net::SocketAddr>,
}

fn parse_temperature(s: &str) -> Result<f64, String> {
    crate::units::Quantity::parse_as(s, crate::units::Dimension::Temperature)
        .map_err(|e| e.to_string())
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not `name=value`"))
}

/// Decision rule names on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RuleArg {
    /// Simple acceptance.
    Simple,
    /// Guarded acceptance.
    Guarded,
}

/// The campaign this command line asks for.
fn spec(a: &RunArgs, rig: RigChoice) -> CampaignSpec {
    CampaignSpec {
        plan: a.plan.clone(),
        rig,
        out: a.out.clone(),
        junit: a.junit.clone(),
        decision_rule: a.decision_rule.map(Into::into),
        virtual_time: a.virtual_time,
        wait: a.wait.unwrap_or_default(),
        tests: a.tests.clone(),
        params: a.params.iter().cloned().collect(),
        allow_expired_calibration: a.allow_expired_calibration,
        db: a.db.clone(),
        dut_serial: a.dut_serial.clone(),
        operator: a.operator.clone(),
        ambient_c: a.ambient,
    }
}

/// Run a plan or suite and return the exit code.
pub async fn run(a: RunArgs) -> i32 {
    let choice = match super::rig_choice(a.rig.clone()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let spec = spec(&a, choice);
    let (rig, plans) = match campaign::load(&spec) {
        Ok(loaded) => loaded,
        Err(e) => return abort(&e),
    };
    if a.dry_run {
        let previews: Vec<_> = plans.1.iter().map(|p| PlanPreview::of(p)).collect();
        return if super::stdio::print(&dry_run::text(&previews)) {
            0
        } else {
            EXIT_ABORT
        };
    }
    let cancel = CancellationToken::new();
    spawn_signal_handlers(cancel.clone());
    let mut operator = crate::run::operator::Operator::default();
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        operator = operator.with_terminal();
    }
    let mut out = Output::new(a.json);
    let live = match a.serve {
        Some(addr) => {
            let hub = Arc::new(crate::serve::Hub::default());
            operator = operator.with_page();
            out = out.with_live(hub.clone());
            match crate::serve::LiveServer::start(addr, hub, operator.clone(), cancel.clone()).await
            {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("error: cannot serve the live page on {addr}: {e}");
                    return EXIT_ABORT;
                }
            }
        }
        None => None,
    };
    if let Some(s) = &live {
        let line = format!("live page: {}", s.url);
        if a.json {
            eprintln!("{line}");
        } else {
            out.line(&line);
        }
        if let Some(t) = &s.token {
            eprintln!("live page token: {t} (`Authorization: Bearer {t}` or `?token={t}`)");
        }
    }
    let console = Arc::new(Console(Arc::new(out)));
    let deps = CampaignDeps {
        bench: &SimBenchProvider,
        sink: console.clone(),
        cancel,
        operator,
    };
    let code = match campaign::run(&spec, rig, plans, deps).await {
        Ok(done) => done.exit_code,
        Err(e) => abort(&e),
    };
    console.0.finish();
    if let Some(s) = live {
        s.shutdown().await;
    }
    code
}

/// Print why the campaign did not run; its exit code.
fn abort(e: &CampaignError) -> i32 {
    eprintln!("{e}");
    EXIT_ABORT
}

/// The console and JSON-lines reporter of a campaign.
struct Console(Arc<Output>);

impl CampaignSink for Console {
    fn event(&self, e: &CampaignEvent<'_>) {
        let out = &self.0;
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

impl From<RuleArg> for DecisionRule {
    fn from(r: RuleArg) -> Self {
        match r {
            RuleArg::Simple => DecisionRule::Simple,
            RuleArg::Guarded => DecisionRule::Guarded,
        }
    }
}

fn rule_name(r: DecisionRule) -> &'static str {
    match r {
        DecisionRule::Simple => "simple acceptance",
        DecisionRule::Guarded => "guarded acceptance",
    }
}

fn spawn_signal_handlers(cancel: CancellationToken) {
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupt: stopping the run and bringing the bench to its safe state");
            c.cancel();
        }
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut s) = signal(SignalKind::terminate()) {
            if s.recv().await.is_some() {
                eprintln!("terminate: stopping the run and bringing the bench to its safe state");
                cancel.cancel();
            }
        }
    });
}

/// The end-of-run lines: counts, abort cause, unconfirmed safe-state actions, where.
fn summary(r: &RunResults, dir: &std::path::Path) -> String {
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
mod tests {
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
