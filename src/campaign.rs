//! A campaign: one plan or a suite run on one bench, end to end — the rig and plans loaded
//! and checked, calibration dates, the bench lock, the bench a simulated rig needs (from a
//! [`BenchProvider`]), the firmware flashed or read back, each plan executed under the
//! out-of-process guard and sealed as evidence, the suite's bundle and JUnit report, the
//! results store, and the exit code.
//!
//! `hilrig run` parses its arguments into a [`CampaignSpec`] and drives [`run`]; tests and
//! other front ends drive it the same way. What happens is told to a [`CampaignSink`] as typed
//! [`CampaignEvent`]s (the console and JSON-lines reporter is one sink); what stops a campaign
//! before its plans run is a [`CampaignError`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::guard::{Guard, GuardSpec};
use crate::plan::load::load_plans;
use crate::plan::select::select_tests;
use crate::plan::{load_rig, load_suite, InputError, LoadedPlan};
use crate::report::{FirmwareInfo, Outcome, RunResults};
use crate::rig::choice::RigChoice;
use crate::rig::Rig;
use crate::run::lock::{BenchLock, LockError};
use crate::run::operator::Operator;
use crate::run::{execute, Event, RunOptions};
use crate::trace::{rfc3339, Clock};
use crate::verdict::DecisionRule;

use crate::exit::EXIT_ABORT;

/// What to run, and how: `hilrig run`'s options as data.
#[derive(Debug, Clone)]
pub struct CampaignSpec {
    /// The plan or suite file.
    pub plan: PathBuf,
    /// The rig file, and where the choice came from.
    pub rig: RigChoice,
    /// The directory run directories are made in.
    pub out: PathBuf,
    /// Also write the JUnit report here.
    pub junit: Option<PathBuf>,
    /// Overrides the limit profile's decision rule.
    pub decision_rule: Option<DecisionRule>,
    /// A paused clock that jumps to the next event (simulated rigs only).
    pub virtual_time: bool,
    /// How long to wait for the bench lock.
    pub wait: Duration,
    /// Only these tests (by name); empty: all.
    pub tests: Vec<String>,
    /// Plan parameter overrides.
    pub params: BTreeMap<String, String>,
    /// Run even with an instrument past its calibration date.
    pub allow_expired_calibration: bool,
    /// The results store URL, when the runs are to be stored.
    pub db: Option<String>,
    /// The item's serial number.
    pub dut_serial: Option<String>,
    /// Who runs the test.
    pub operator: Option<String>,
    /// The ambient temperature in °C.
    pub ambient_c: Option<f64>,
}

/// Why a campaign did not run (exit code 2). The texts are what the operator reads.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// The rig file cannot be loaded.
    #[error("{choice}: {error}")]
    Rig {
        /// Which rig, and why it was chosen.
        choice: String,
        /// What is wrong with it.
        error: InputError,
    },
    /// A plan, suite, fixture, limit profile or DBC has errors (each located).
    #[error("{}", .0.iter().map(|e| format!("{e}\n")).collect::<Vec<_>>().join("\n"))]
    Inputs(Vec<InputError>),
    /// An instrument is past its calibration date (lines per instrument, then the refusal).
    #[error(
        "{}refusing to run: results measured with an instrument past its calibration due date \
         are not traceable. Recalibrate it and update `calibration:` in the rig file, or give \
         --allow-expired-calibration (the report then flags the results)",
        .0.iter().map(|l| format!("error: {l}\n")).collect::<String>()
    )]
    ExpiredCalibration(Vec<String>),
    /// Another run holds the bench.
    #[error("error: {0}")]
    Lock(#[from] LockError),
    /// `--virtual-time` on a rig of real instruments.
    #[error(
        "error: --virtual-time needs a simulated rig (with a `simulation:` section); {0} drives \
         real instruments, which run in real time"
    )]
    VirtualTimeNeedsSimulation(String),
    /// The simulated bench did not start.
    #[error("error: cannot start the simulated bench: {0}")]
    Bench(String),
    /// The plans name different firmware images.
    #[error("error: {0}")]
    Firmware(String),
    /// The out-of-process guard did not start: nothing is switched on without it.
    #[error("error: {0}; nothing is switched on without it")]
    Guard(String),
    /// A run directory or report file could not be written.
    #[error("error: cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The run directory could not be written.
    #[error("error: cannot write the run directory {path}: {source}")]
    RunDir {
        /// The run directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A campaign that did not run fails the command with its text as written, exit code 2.
impl From<CampaignError> for crate::exit::Failure {
    fn from(e: CampaignError) -> Self {
        crate::exit::Failure::plain(e)
    }
}

/// What a campaign tells its reporter, in the order it happens.
#[derive(Debug)]
pub enum CampaignEvent<'a> {
    /// Something the operator should know that does not stop the campaign.
    Warning(String),
    /// An error that does not stop the campaign but makes its exit code 2 (a run not stored).
    Error(String),
    /// The bench the campaign runs on.
    Bench {
        /// Which rig file, and why.
        choice: &'a RigChoice,
        /// The station id.
        station: &'a str,
        /// Whether the bench is simulated.
        simulated: bool,
    },
    /// The plans about to run.
    Plans(&'a [Arc<LoadedPlan>]),
    /// The firmware the BMS runs.
    Firmware(&'a FirmwareInfo),
    /// A plan of a suite that is not started, and why.
    NotStarted {
        /// The plan id.
        plan: &'a str,
        /// Why not.
        reason: &'a str,
    },
    /// A plan starts.
    PlanStarted {
        /// The plan.
        plan: &'a LoadedPlan,
        /// The station id.
        station: &'a str,
        /// The decision rule it is judged by.
        rule: DecisionRule,
    },
    /// An event of the executor.
    Run(&'a Event),
    /// A plan's evidence bundle was sealed (the summary line).
    Sealed(String),
    /// A plan ended.
    PlanFinished {
        /// Its results.
        results: &'a RunResults,
        /// Its run directory.
        dir: &'a Path,
    },
    /// The suite's bundle was sealed.
    SuiteSealed {
        /// How many files its manifest lists.
        files: usize,
        /// The suite's directory.
        dir: &'a Path,
        /// Whether the manifest is signed.
        signed: bool,
    },
    /// A run was stored in the results store.
    Stored {
        /// The run id.
        run_id: &'a str,
        /// The bundle's SHA-256.
        bundle_sha256: &'a str,
        /// The store's URL (no password).
        db: &'a str,
    },
    /// The suite ended.
    SuiteFinished {
        /// The suite's name.
        name: &'a str,
        /// How many plans ran or were recorded.
        plans: usize,
        /// The worst outcome.
        outcome: Outcome,
        /// The suite's directory.
        dir: &'a Path,
    },
    /// The campaign ended.
    Finished(&'a CampaignOutcome),
}

/// A reporter of campaign events.
pub trait CampaignSink: Send + Sync {
    /// Take one event.
    fn event(&self, e: &CampaignEvent<'_>);
}

/// How a campaign ended.
#[derive(Debug, Clone)]
pub struct CampaignOutcome {
    /// The worst outcome of its plans.
    pub outcome: Outcome,
    /// The process exit code.
    pub exit_code: i32,
    /// Why the exit code is not the outcome's, when it is not.
    pub exit_note: Option<String>,
    /// Seconds simulated (the sum of the plans' durations).
    pub simulated_s: f64,
    /// Seconds of wall time.
    pub wall_s: f64,
    /// Whether it ran on the paused, jumping clock.
    pub virtual_time: bool,
    /// Whether the bench was simulated.
    pub simulated: bool,
    /// Every plan's results, in order.
    pub runs: Vec<RunResults>,
}

/// The bench a rig needs besides its instruments: the simulated bench for a rig with a
/// `simulation:` section. The runner does not know what provides it.
#[async_trait::async_trait]
pub trait BenchProvider: Send + Sync {
    /// Start the bench `rig` (read from `rig_path`) describes; None for a rig of real
    /// instruments. `in_memory`: serve instruments in memory (virtual time) instead of TCP.
    async fn start(
        &self,
        rig: &Rig,
        rig_path: &Path,
        in_memory: bool,
    ) -> Result<Option<Box<dyn ProvidedBench>>, String>;
}

/// A bench started for a campaign.
pub trait ProvidedBench: Send {
    /// The rig with its endpoints resolved to where the bench listens.
    fn resolve(&self, rig: &Rig) -> Rig;
    /// The firmware the bench's BMS runs.
    fn firmware(&self) -> FirmwareInfo;
    /// What really happened inside the BMS since `origin`, as `truth.json`.
    fn truth_json(&self, origin: tokio::time::Instant) -> Option<String>;
    /// The flasher of the bench's BMS.
    fn flasher(&mut self) -> Box<dyn crate::flash::Flasher + '_>;
}

/// No bench besides the instruments: for providers that never start one.
pub struct NoBench;

#[async_trait::async_trait]
impl BenchProvider for NoBench {
    async fn start(
        &self,
        _: &Rig,
        _: &Path,
        _: bool,
    ) -> Result<Option<Box<dyn ProvidedBench>>, String> {
        Ok(None)
    }
}

/// The suite name (if any) and the plans to run.
pub type PlanList = (Option<String>, Vec<Arc<LoadedPlan>>);

/// The rig and the plans to run: one plan, or every plan of a suite with its overrides; with
/// tests named, only the plans that have one, each with only the named tests. Every plan is
/// loaded and validated before anything is switched on.
pub fn load(spec: &CampaignSpec) -> Result<(Rig, PlanList), CampaignError> {
    let rig = load_rig(&spec.rig.path)
        .map_err(|error| CampaignError::Rig {
            choice: spec.rig.to_string(),
            error,
        })?
        .value;
    let set = load_plans(&spec.plan, Some(&rig), &spec.params).map_err(CampaignError::Inputs)?;
    let plans = select_tests(&spec.plan, set.plans, &spec.tests).map_err(CampaignError::Inputs)?;
    let list = (
        set.suite.map(|s| s.value.suite),
        plans.into_iter().map(Arc::new).collect(),
    );
    Ok((rig, list))
}

/// Everything a campaign needs besides its spec.
pub struct CampaignDeps<'a> {
    /// Starts the simulated bench when the rig has one.
    pub bench: &'a dyn BenchProvider,
    /// Where events go.
    pub sink: Arc<dyn CampaignSink>,
    /// Cancelled on Ctrl-C, SIGTERM, or the live page's STOP.
    pub cancel: CancellationToken,
    /// Who answers prompts and who stopped the run.
    pub operator: Operator,
}

/// Run a campaign. Err: it did not start (nothing was switched on), or a run directory or
/// report could not be written; Ok: every plan ran or was recorded as not run.
pub async fn run(
    spec: &CampaignSpec,
    rig: Rig,
    (suite, plans): PlanList,
    deps: CampaignDeps<'_>,
) -> Result<CampaignOutcome, CampaignError> {
    let sink = deps.sink;
    let rig_path = spec.rig.path.clone();
    check_calibration(spec, &rig, sink.as_ref())?;
    let what = format!("hilrig run {}", spec.plan.display());
    let _lock =
        BenchLock::acquire(&rig.station, rig.simulation.is_some(), &what, spec.wait).await?;
    if spec.virtual_time && rig.simulation.is_none() {
        return Err(CampaignError::VirtualTimeNeedsSimulation(
            rig_path.display().to_string(),
        ));
    }
    let wall_start = std::time::Instant::now();
    let mut bench = deps
        .bench
        .start(&rig, &rig_path, spec.virtual_time)
        .await
        .map_err(CampaignError::Bench)?;
    let resolved = bench
        .as_ref()
        .map(|b| b.resolve(&rig))
        .unwrap_or_else(|| rig.clone());
    let (firmware, firmware_source, refused) =
        firmware(spec, &suite, &plans, &resolved, &mut bench, sink.as_ref()).await?;
    let context = crate::report::context::RunContext::for_run(
        &rig,
        crate::report::context::ContextInput {
            dut_serial: spec.dut_serial.as_deref(),
            operator: spec.operator.as_deref(),
            ambient_c: spec.ambient_c,
            virtual_time: spec.virtual_time,
            firmware_source: Some(firmware_source),
            date: &crate::trace::today(),
        },
    );
    for w in context.warnings() {
        sink.event(&CampaignEvent::Warning(w.to_string()));
    }
    let stamp = rfc3339(SystemTime::now())
        .replace([':', '-'], "")
        .replace('.', "-");
    // A suite run is one bundle: `<stamp>-<suite>/`, its members `<suite run id>/<plan>`.
    let suite_run_id = suite
        .as_ref()
        .map(|name| format!("{}-{name}", &stamp[..15]));
    let top = match &suite_run_id {
        Some(id) => spec.out.join(id),
        None => spec.out.clone(),
    };
    sink.event(&CampaignEvent::Bench {
        choice: &spec.rig,
        station: &rig.station,
        simulated: context.simulated,
    });
    sink.event(&CampaignEvent::Plans(&plans));
    if let Some(fw) = &firmware {
        sink.event(&CampaignEvent::Firmware(fw));
    }
    let mut all = Vec::new();
    let mut run_dirs = Vec::new();
    // Why the remaining plans of the suite do not run (the bench is not trustworthy).
    let mut stopped: Option<String> = None;
    for plan in plans {
        let member = context.member_of(suite_run_id.as_deref()).with_selection(
            crate::plan::select::selected_in(&plan.plan.value, &spec.tests),
        );
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
            )
            .map_err(|source| CampaignError::Write {
                path: dir.clone(),
                source,
            })?;
            sink.event(&CampaignEvent::NotStarted {
                plan: &r.plan,
                reason,
            });
            all.push(r);
            continue;
        }
        let clock = Clock::start();
        sink.event(&CampaignEvent::PlanStarted {
            plan: &plan,
            station: &rig.station,
            rule: spec
                .decision_rule
                .unwrap_or(plan.limits.value.decision_rule),
        });
        let events = sink.clone();
        let opts = RunOptions {
            dir: dir.clone(),
            run_id,
            decision_rule: spec.decision_rule,
            cancel: deps.cancel.clone(),
            firmware: firmware.clone(),
            clock,
            on_event: Arc::new(move |e: &Event| events.event(&CampaignEvent::Run(e))),
            refused: refused.clone(),
            context: member,
            operator: deps.operator.clone(),
        };
        // The evidence copies are the exact texts this run used (parameters substituted).
        let (inputs, missing) = crate::report::bundle::inputs_of(&plan, &rig_path);
        // The guard outside this process: it switches the bench off if this process dies
        // before handing over. Instruments of a simulated rig live in this process and end
        // with it, so they need none.
        let guard = match rig.simulation {
            Some(_) => None,
            None => {
                let spec = GuardSpec::of_rig(&resolved, &dir);
                match spec.instruments.is_empty() {
                    true => None,
                    false => {
                        Some(Guard::start(&spec).map_err(|e| CampaignError::Guard(e.to_string()))?)
                    }
                }
            }
        };
        let executed = execute(plan, &resolved, opts).await;
        if let Some(g) = guard {
            match &executed {
                Ok(r) if r.safe_state_reached => g.release(),
                // Not confirmed by the run: the guard tries on its own and writes guard.json.
                _ => g.hand_over_unconfirmed(),
            }
        }
        let results = executed.map_err(|source| CampaignError::RunDir {
            path: dir.clone(),
            source,
        })?;
        if let Some(text) = bench.as_ref().and_then(|b| b.truth_json(clock.origin)) {
            if let Err(e) = crate::durable::write(dir.join("truth.json"), text + "\n") {
                sink.event(&CampaignEvent::Warning(format!(
                    "cannot write truth.json: {e}"
                )));
            }
        }
        match crate::report::bundle::seal(&dir, &inputs, missing, Default::default()) {
            Ok(s) => sink.event(&CampaignEvent::Sealed(s.summary(&dir))),
            Err(e) => sink.event(&CampaignEvent::Warning(format!(
                "the evidence bundle is incomplete: {e}"
            ))),
        }
        sink.event(&CampaignEvent::PlanFinished {
            results: &results,
            dir: &dir,
        });
        // An aborted plan left the bench in its confirmed safe state: the suite goes on.
        stopped = crate::run::suite::stop_after(&results);
        all.push(results);
        run_dirs.push(dir);
    }
    let name = suite
        .clone()
        .unwrap_or_else(|| all.first().map(|r| r.plan.clone()).unwrap_or_default());
    let write_junit = |path: &Path| {
        crate::report::junit::write_all(&name, &all, path).map_err(|source| CampaignError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    if suite.is_some() {
        write_junit(&top.join("junit.xml"))?;
    }
    if let Some(id) = &suite_run_id {
        // The suite run is one bundle over every member.
        match crate::report::suite::seal(&top, &name, id, &all, Default::default()) {
            Ok(m) => sink.event(&CampaignEvent::SuiteSealed {
                files: m.files.len(),
                dir: &top,
                signed: m.signature.is_some(),
            }),
            Err(e) => sink.event(&CampaignEvent::Warning(format!(
                "the suite evidence bundle is incomplete: {e}"
            ))),
        }
    }
    if let Some(j) = &spec.junit {
        write_junit(j)?;
    }
    let stored = match crate::results::named_store(spec.db.clone()) {
        Some(url) => store_runs(&url, &run_dirs, sink.as_ref()).await,
        None => true,
    };
    let outcome = overall(&all);
    if suite.is_some() {
        sink.event(&CampaignEvent::SuiteFinished {
            name: &name,
            plans: all.len(),
            outcome,
            dir: &top,
        });
    }
    let mut exit_code = crate::run::suite::exit_code(outcome, &all);
    let mut exit_note = None;
    if !stored {
        exit_code = EXIT_ABORT;
    } else if exit_code != outcome.exit_code() {
        exit_note = Some(format!(
            "exit {exit_code}: the bench's safe state was not confirmed after a plan (see SAFE \
             STATE NOT CONFIRMED above); check the instruments before the next run"
        ));
    }
    let finished = CampaignOutcome {
        outcome,
        exit_code,
        exit_note,
        simulated_s: all.iter().map(|r| r.duration_s).sum(),
        wall_s: wall_start.elapsed().as_secs_f64(),
        virtual_time: spec.virtual_time,
        simulated: context.simulated,
        runs: all,
    };
    sink.event(&CampaignEvent::Finished(&finished));
    Ok(finished)
}

/// Evidence from an instrument past its calibration due date is not traceable: refused
/// unless the spec allows it, then each is a warning.
fn check_calibration(
    spec: &CampaignSpec,
    rig: &Rig,
    sink: &dyn CampaignSink,
) -> Result<(), CampaignError> {
    let lines: Vec<String> = crate::report::calibration::expired_in(rig, &crate::trace::today())
        .into_iter()
        .map(|(id, serial, due, days)| {
            format!(
                "instrument `{id}` (serial {serial}): calibration expired on {due} ({days} days \
                 ago) per {}",
                spec.rig.path.display()
            )
        })
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    if !spec.allow_expired_calibration {
        return Err(CampaignError::ExpiredCalibration(lines));
    }
    for l in lines {
        sink.event(&CampaignEvent::Warning(l));
    }
    Ok(())
}

/// The firmware of the campaign, how it was obtained, and why the plans must not start when
/// it could not be flashed. `firmware:` on the suite or its plans: flash that image and prove
/// over CAN that the BMS runs it; otherwise ask the BMS what it runs.
async fn firmware(
    spec: &CampaignSpec,
    suite: &Option<String>,
    plans: &[Arc<LoadedPlan>],
    resolved: &Rig,
    bench: &mut Option<Box<dyn ProvidedBench>>,
    sink: &dyn CampaignSink,
) -> Result<(Option<FirmwareInfo>, String, Option<String>), CampaignError> {
    let running = bench.as_ref().map(|b| b.firmware());
    let suite_firmware = suite
        .as_ref()
        .and_then(|_| load_suite(&spec.plan).ok())
        .and_then(|s| s.value.firmware);
    let declared = crate::flash::declared_firmware(
        suite_firmware.as_deref(),
        plans
            .iter()
            .map(|p| (p.plan.value.plan.as_str(), p.plan.value.firmware.as_deref())),
    )
    .map_err(CampaignError::Firmware)?;
    let flashed = String::from("flashed by this run and read back from the BMS");
    let Some(first) = plans.first() else {
        return Ok((running, flashed, None));
    };
    let version_message = first.fixture.value.version_message.as_deref();
    if let Some(id) = declared {
        let manifest = Path::new(crate::flash::DEFAULT_MANIFEST);
        let r = crate::flash::flash_declared(
            id,
            manifest,
            resolved,
            bench.as_mut().map(|b| b.flasher()),
            &first.dbc,
            version_message,
            &crate::flash::no_progress(),
        )
        .await;
        // A firmware that cannot be flashed or proven refuses the run: it is still recorded
        // (results.json, junit.xml) with the bench brought to its safe state.
        return Ok(match r {
            Ok(info) => (Some(info), flashed, None),
            Err(e) => {
                let cause = format!("firmware `{id}`: {e}");
                sink.event(&CampaignEvent::Error(cause.clone()));
                (None, flashed, Some(cause))
            }
        });
    }
    // Not flashed: ask the BMS what it runs (the simulated bench's image must match).
    match crate::flash::readback::read_on_rig(
        resolved,
        &first.dbc,
        version_message,
        running.as_ref(),
    )
    .await
    {
        Ok(info) => Ok((
            Some(info),
            format!(
                "read back from the BMS's {} message",
                version_message.unwrap_or(crate::flash::readback::DEFAULT_VERSION_MESSAGE)
            ),
            None,
        )),
        Err(e) => {
            sink.event(&CampaignEvent::Warning(format!(
                "cannot read the firmware version from the BMS: {e}"
            )));
            Ok((running, format!("not confirmed by the BMS ({e})"), None))
        }
    }
}

/// Imports the campaign's own bundles into the results store; false (after saying why) when
/// the store could not take one. Bundles without a station key's signature are stored as
/// unsigned: this process sealed them a moment ago.
async fn store_runs(url: &str, dirs: &[PathBuf], sink: &dyn CampaignSink) -> bool {
    use crate::results::{import_path, ImportOptions, Store};
    let store = match Store::open(url).await {
        Ok(s) => s,
        Err(e) => {
            sink.event(&CampaignEvent::Error(format!(
                "the results were not stored: {e}"
            )));
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
                    sink.event(&CampaignEvent::Error(format!("not stored: {refused}")));
                    ok = false;
                }
                for i in &r.imported {
                    sink.event(&CampaignEvent::Stored {
                        run_id: &i.run_id,
                        bundle_sha256: &i.bundle_sha256,
                        db: store.url(),
                    });
                }
            }
            Err(e) => {
                sink.event(&CampaignEvent::Error(format!(
                    "{} was not stored: {e}",
                    dir.display()
                )));
                ok = false;
            }
        }
    }
    ok
}

/// The worst outcome of several runs (aborted > failed > inconclusive > passed).
pub fn overall(all: &[RunResults]) -> Outcome {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_calibration_lists_each_instrument_then_refuses() {
        let e = CampaignError::ExpiredCalibration(vec![
            "instrument `psu` (serial A1): calibration expired on 2026-01-01 (10 days ago) per r.yaml"
                .into(),
        ]);
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "error: instrument `psu` (serial A1): calibration expired on 2026-01-01 (10 days ago) \
             per r.yaml"
        );
        assert!(lines[1].starts_with("refusing to run: "), "{text}");
        assert!(
            lines[1].ends_with("(the report then flags the results)"),
            "{text}"
        );
    }

    fn results(outcome: Outcome) -> RunResults {
        serde_json::from_value(serde_json::json!({
            "schema": crate::report::RESULTS_SCHEMA, "run_id": "r", "plan": "p", "title": "t",
            "requirements": [], "station": "s", "dut": "d", "limit_profile": "l",
            "decision_rule": "guarded", "firmware": null, "clock_anchor": "x",
            "duration_s": 1.0, "outcome": outcome, "abort": null,
            "safe_state_reached": true, "safe_state": [], "tests": [], "trace_rows": 0
        }))
        .unwrap()
    }

    #[rstest::rstest]
    #[case::none(&[], Outcome::Aborted)]
    #[case::passed(&[Outcome::Passed], Outcome::Passed)]
    #[case::worst_wins(&[Outcome::Passed, Outcome::Failed, Outcome::Inconclusive], Outcome::Failed)]
    #[case::aborted_beats_failed(&[Outcome::Failed, Outcome::Aborted], Outcome::Aborted)]
    fn the_campaign_outcome_is_the_worst_plan_outcome(
        #[case] plans: &[Outcome],
        #[case] want: Outcome,
    ) {
        let all: Vec<RunResults> = plans.iter().map(|o| results(*o)).collect();
        assert_eq!(overall(&all), want);
    }
}
