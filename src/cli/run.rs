//! `hilrig run PLAN [--rig R] [--out DIR] [--junit F] [--virtual-time] [--test NAME]... [--dry-run]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::EXIT_ABORT;
use std::collections::BTreeMap;

use super::output::Output;
use crate::guard::{Guard, GuardSpec};
use crate::plan::dry_run::{self, PlanPreview};
use crate::plan::load::load_plans;
use crate::plan::select::select_tests;
use crate::plan::{load_rig, load_suite, InputError, LoadedPlan};
use crate::report::{FirmwareInfo, Outcome, RunResults};
use crate::rig::Rig;
use crate::run::lock::BenchLock;
use crate::run::{execute, Event, RunOptions};
use crate::sim::Bench;
use crate::trace::{rfc3339, Clock};
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

/// The suite name (if any) and the plans to run.
type PlanList = (Option<String>, Vec<Arc<LoadedPlan>>);

/// The plans to run: one plan, or every plan of a suite with its overrides; with `--test`,
/// only the plans that have a named test, each with only the named tests.
fn plans_to_run(a: &RunArgs, rig: &Rig) -> Result<PlanList, Vec<InputError>> {
    let cli: BTreeMap<String, String> = a.params.iter().cloned().collect();
    let set = load_plans(&a.plan, Some(rig), &cli)?;
    let plans = select_tests(&a.plan, set.plans, &a.tests)?;
    Ok((
        set.suite.map(|s| s.value.suite),
        plans.into_iter().map(Arc::new).collect(),
    ))
}

/// Run a plan or suite and return the exit code.
pub async fn run(a: RunArgs) -> i32 {
    let choice = match super::rig_choice(a.rig.clone()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rig_path = choice.path.clone();
    let rig = match load_rig(&rig_path) {
        Ok(r) => r.value,
        Err(e) => {
            eprintln!("{choice}: {e}");
            return EXIT_ABORT;
        }
    };
    // Every plan is loaded and validated before anything is switched on.
    let (suite, plans) = match plans_to_run(&a, &rig) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}\n");
            }
            return EXIT_ABORT;
        }
    };
    if a.dry_run {
        let previews: Vec<_> = plans.iter().map(|p| PlanPreview::of(p)).collect();
        return if super::stdio::print(&dry_run::text(&previews)) {
            0
        } else {
            EXIT_ABORT
        };
    }
    // Evidence from an instrument past its calibration due date is not traceable.
    let expired = crate::report::calibration::expired_in(&rig, &crate::trace::today());
    for (id, serial, due, days) in &expired {
        eprintln!(
            "{}: instrument `{id}` (serial {serial}): calibration expired on {due} ({days} days \
             ago) per {}",
            if a.allow_expired_calibration {
                "warning"
            } else {
                "error"
            },
            rig_path.display()
        );
    }
    if !expired.is_empty() && !a.allow_expired_calibration {
        eprintln!(
            "refusing to run: results measured with an instrument past its calibration due date \
             are not traceable. Recalibrate it and update `calibration:` in the rig file, or \
             give --allow-expired-calibration (the report then flags the results)"
        );
        return EXIT_ABORT;
    }
    let what = format!("hilrig run {}", a.plan.display());
    let _lock = match BenchLock::acquire(
        &rig.station,
        rig.simulation.is_some(),
        &what,
        a.wait.unwrap_or_default(),
    )
    .await
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    if a.virtual_time && rig.simulation.is_none() {
        eprintln!(
            "error: --virtual-time needs a simulated rig (with a `simulation:` section); {} \
             drives real instruments, which run in real time",
            rig_path.display()
        );
        return EXIT_ABORT;
    }
    let wall_start = std::time::Instant::now();
    let bench_options = crate::sim::BenchOptions {
        scpi: if a.virtual_time {
            crate::sim::ScpiExposure::InMemory
        } else {
            crate::sim::ScpiExposure::Tcp
        },
        ..Default::default()
    };
    let mut bench = if rig.simulation.is_some() {
        match Bench::start_with(&rig, &rig_path, &bench_options).await {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("error: cannot start the simulated bench: {e}");
                return EXIT_ABORT;
            }
        }
    } else {
        None
    };
    let resolved = bench
        .as_ref()
        .map(|b| b.resolve(&rig))
        .unwrap_or_else(|| rig.clone());
    let firmware = bench.as_ref().map(|b| FirmwareInfo {
        id: b.image.id.clone(),
        version: b.image.version.clone(),
        sha256: b.image.sha256.clone(),
    });
    // `firmware:` on the suite or its plans: flash that image and prove over CAN that the
    // BMS runs it, before any test.
    let suite_firmware = suite
        .as_ref()
        .and_then(|_| load_suite(&a.plan).ok())
        .and_then(|s| s.value.firmware);
    let declared = crate::flash::declared_firmware(
        suite_firmware.as_deref(),
        plans
            .iter()
            .map(|p| (p.plan.value.plan.as_str(), p.plan.value.firmware.as_deref())),
    );
    // A firmware that cannot be flashed or proven refuses the run: it is still recorded
    // (results.json, junit.xml) with the bench brought to its safe state.
    let mut refused = None;
    let mut firmware_source = String::from("flashed by this run and read back from the BMS");
    let firmware = match (declared, plans.first()) {
        (Err(e), _) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
        (Ok(Some(id)), Some(first)) => match crate::flash::flash_declared(
            id,
            std::path::Path::new(crate::flash::DEFAULT_MANIFEST),
            &resolved,
            bench.as_mut().map(|b| b.flasher()),
            &first.dbc,
            first.fixture.value.version_message.as_deref(),
            &crate::flash::no_progress(),
        )
        .await
        {
            Ok(info) => Some(info),
            Err(e) => {
                let cause = format!("firmware `{id}`: {e}");
                eprintln!("error: {cause}");
                refused = Some(cause);
                None
            }
        },
        (Ok(None), Some(first)) => {
            // Not flashed: ask the BMS what it runs (the simulated bench's image must match).
            match crate::flash::readback::read_on_rig(
                &resolved,
                &first.dbc,
                first.fixture.value.version_message.as_deref(),
                firmware.as_ref(),
            )
            .await
            {
                Ok(info) => {
                    firmware_source = format!(
                        "read back from the BMS's {} message",
                        first
                            .fixture
                            .value
                            .version_message
                            .as_deref()
                            .unwrap_or(crate::flash::readback::DEFAULT_VERSION_MESSAGE)
                    );
                    Some(info)
                }
                Err(e) => {
                    eprintln!("warning: cannot read the firmware version from the BMS: {e}");
                    firmware_source = format!("not confirmed by the BMS ({e})");
                    firmware
                }
            }
        }
        _ => firmware,
    };
    let context = crate::report::context::RunContext::for_run(
        &rig,
        crate::report::context::ContextInput {
            dut_serial: a.dut_serial.as_deref(),
            operator: a.operator.as_deref(),
            ambient_c: a.ambient,
            virtual_time: a.virtual_time,
            firmware_source: Some(firmware_source),
            date: &crate::trace::today(),
        },
    );
    for w in context.warnings() {
        eprintln!("warning: {w}");
    }

    let stamp = rfc3339(SystemTime::now())
        .replace([':', '-'], "")
        .replace('.', "-");
    // A suite run is one bundle: `<stamp>-<suite>/`, its members `<suite run id>/<plan>`.
    let suite_run_id = suite
        .as_ref()
        .map(|name| format!("{}-{name}", &stamp[..15]));
    let top = match &suite_run_id {
        Some(id) => a.out.join(id),
        None => a.out.clone(),
    };
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
    let out = Arc::new(out);
    out.bench(&choice, &rig.station, context.simulated);
    out.expect(&plans);
    if let Some(fw) = &firmware {
        out.line(&format!(
            "firmware: {} {} sha256:{}",
            fw.id, fw.version, fw.sha256
        ));
        out.json(serde_json::json!({"event": "firmware", "id": fw.id, "version": fw.version, "sha256": fw.sha256}));
    }
    let mut all = Vec::new();
    let mut run_dirs = Vec::new();
    // Why the remaining plans of the suite do not run (the bench is not trustworthy).
    let mut stopped: Option<String> = None;
    for plan in plans {
        let member = context
            .member_of(suite_run_id.as_deref())
            .with_selection(crate::plan::select::selected_in(&plan.plan.value, &a.tests));
        let run_id = match &suite_run_id {
            Some(id) => format!("{id}/{}", plan.plan.value.plan),
            None => format!("{}-{}", &stamp[..15], plan.plan.value.plan),
        };
        let dir = match &suite_run_id {
            Some(_) => top.join(&plan.plan.value.plan),
            None => top.join(&run_id),
        };
        if let Some(reason) = &stopped {
            let r = crate::run::suite::not_started(
                &plan,
                &resolved,
                &run_id,
                reason,
                firmware.clone(),
                member,
                &dir,
            );
            match r {
                Ok(r) => {
                    out.line(&format!("NOT RUN {}: {reason}", r.plan));
                    all.push(r);
                }
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", dir.display());
                    return EXIT_ABORT;
                }
            }
            continue;
        }
        let clock = Clock::start();
        out.plan(
            &plan.plan.value.plan,
            &plan.plan.value.title,
            plan.plan.value.repeat,
            &rig.station,
            rule_name(
                a.decision_rule
                    .map(Into::into)
                    .unwrap_or(plan.limits.value.decision_rule),
            ),
        );
        let events = out.clone();
        let opts = RunOptions {
            dir: dir.clone(),
            run_id,
            decision_rule: a.decision_rule.map(Into::into),
            cancel: cancel.clone(),
            firmware: firmware.clone(),
            clock,
            on_event: Arc::new(move |e: &Event| events.event(e)),
            refused: refused.clone(),
            context: member,
            operator: operator.clone(),
        };
        // The evidence copies are the exact texts this run used (parameters substituted).
        let (inputs, missing) = crate::report::bundle::inputs_of(&plan, &rig_path);
        // The guard outside this process: it switches the bench off if this process dies
        // before handing over. Instruments of a simulated rig live in this process and end
        // with it, so they need none.
        let guard = if rig.simulation.is_none() {
            let spec = GuardSpec::of_rig(&resolved, &dir);
            if spec.instruments.is_empty() {
                None
            } else {
                match Guard::start(&spec) {
                    Ok(g) => Some(g),
                    Err(e) => {
                        eprintln!("error: {e}; nothing is switched on without it");
                        return EXIT_ABORT;
                    }
                }
            }
        } else {
            None
        };
        let executed = execute(plan, &resolved, opts).await;
        if let Some(g) = guard {
            match &executed {
                Ok(r) if r.safe_state_reached => g.release(),
                // Not confirmed by the run: the guard tries on its own and writes guard.json.
                _ => g.hand_over_unconfirmed(),
            }
        }
        let results = match executed {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "error: cannot write the run directory {}: {e}",
                    dir.display()
                );
                return EXIT_ABORT;
            }
        };
        if let Some(b) = &bench {
            let truth = b.truth.events(clock.origin);
            if let Ok(text) = serde_json::to_string_pretty(&truth) {
                if let Err(e) = crate::durable::write(dir.join("truth.json"), text + "\n") {
                    eprintln!("warning: cannot write truth.json: {e}");
                }
            }
        }
        match crate::report::bundle::seal(&dir, &inputs, missing, Default::default()) {
            Ok(s) => out.line(&s.summary(&dir)),
            Err(e) => eprintln!("warning: the evidence bundle is incomplete: {e}"),
        }
        out.line(&summary(&results, &dir));
        out.json(serde_json::json!({"event": "plan_finished", "plan": results.plan, "outcome": results.outcome, "dir": dir, "safe_state_reached": results.safe_state_reached}));
        // An aborted plan left the bench in its confirmed safe state: the suite goes on.
        stopped = crate::run::suite::stop_after(&results);
        all.push(results);
        run_dirs.push(dir.clone());
    }
    let name = suite
        .clone()
        .unwrap_or_else(|| all.first().map(|r| r.plan.clone()).unwrap_or_default());
    if suite.is_some() {
        if let Err(e) = crate::report::junit::write_all(&name, &all, &top.join("junit.xml")) {
            eprintln!(
                "error: cannot write {}: {e}",
                top.join("junit.xml").display()
            );
            return EXIT_ABORT;
        }
    }
    if let Some(id) = &suite_run_id {
        // The suite run is one bundle over every member.
        match crate::report::suite::seal(&top, &name, id, &all, Default::default()) {
            Ok(m) => out.line(&format!(
                "suite evidence: {} files in {}, manifest {}",
                m.files.len(),
                top.display(),
                if m.signature.is_some() {
                    "signed"
                } else {
                    "UNSIGNED (no station key; run `hilrig keygen`)"
                }
            )),
            Err(e) => eprintln!("warning: the suite evidence bundle is incomplete: {e}"),
        }
    }
    if let Some(j) = &a.junit {
        if let Err(e) = crate::report::junit::write_all(&name, &all, j) {
            eprintln!("error: cannot write {}: {e}", j.display());
            return EXIT_ABORT;
        }
    }
    let stored = match crate::results::named_store(a.db.clone()) {
        Some(url) => store_runs(&url, &run_dirs, &out).await,
        None => true,
    };
    let outcome = overall(&all);
    if suite.is_some() {
        out.line(&format!(
            "suite {name}: {} plan(s), {:?}; results in {}",
            all.len(),
            outcome,
            top.display()
        ));
    }
    let simulated: f64 = all.iter().map(|r| r.duration_s).sum();
    let wall = wall_start.elapsed().as_secs_f64();
    if a.virtual_time {
        out.line(&format!(
            "virtual time: {simulated:.1} s simulated in {wall:.3} s of wall time"
        ));
    }
    let mut code = crate::run::suite::exit_code(outcome, &all);
    if !stored {
        code = EXIT_ABORT;
    }
    if code != outcome.exit_code() && stored {
        out.line(&format!(
            "exit {code}: the bench's safe state was not confirmed after a plan (see SAFE STATE \
             NOT CONFIRMED above); check the instruments before the next run"
        ));
    }
    out.json(serde_json::json!({"event": "finished", "outcome": outcome, "exit_code": code, "simulated_s": simulated, "wall_s": wall, "simulated": context.simulated}));
    out.closing(context.simulated);
    out.finish();
    if let Some(s) = live {
        s.shutdown().await;
    }
    code
}

/// Imports the run's own bundles into the results store; false (after saying why) when
/// the store could not take one. Bundles without a station key's signature are stored as
/// unsigned: this process sealed them a moment ago.
async fn store_runs(url: &str, dirs: &[PathBuf], out: &Output) -> bool {
    use crate::results::{import_path, ImportOptions, Store};
    let store = match Store::open(url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: the results were not stored: {e}");
            return false;
        }
    };
    let options = ImportOptions {
        allow_unsigned: true,
        trusted: None,
    };
    let mut ok = true;
    for dir in dirs {
        match import_path(&store, dir, &options).await {
            Ok(r) => {
                for refused in &r.refused {
                    eprintln!("error: not stored: {refused}");
                    ok = false;
                }
                for i in &r.imported {
                    out.line(&format!("stored {} in {}", i.run_id, store.url()));
                    out.json(serde_json::json!({"event": "stored", "run_id": i.run_id, "bundle_sha256": i.bundle_sha256, "db": store.url()}));
                }
            }
            Err(e) => {
                eprintln!("error: {} was not stored: {e}", dir.display());
                ok = false;
            }
        }
    }
    ok
}

/// The worst outcome of several runs (aborted > failed > inconclusive > passed).
fn overall(all: &[RunResults]) -> Outcome {
    let rank = |o: Outcome| match o {
        Outcome::Passed => 0,
        Outcome::Inconclusive => 1,
        Outcome::Failed => 2,
        Outcome::Aborted => 3,
    };
    all.iter()
        .map(|r| r.outcome)
        .max_by_key(|o| rank(*o))
        .unwrap_or(Outcome::Aborted)
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
