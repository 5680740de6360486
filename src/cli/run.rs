//! `hilrig run PLAN [--rig R] [--out DIR] [--junit F] [--virtual-time] [--test NAME]... [--dry-run]`

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::campaign::{self, CampaignDeps, CampaignSpec};
use crate::console::Output;
use crate::exit::{Failure, EXIT_ABORT};
use crate::plan::dry_run::{self, PlanPreview};
use crate::rig::choice::RigChoice;
use crate::sim::SimBenchProvider;
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

/// Run a plan or suite; its exit code, or why it did not run.
pub async fn run(a: RunArgs) -> Result<i32, Failure> {
    let spec = spec(&a, super::choose_rig(a.rig.clone())?);
    let (rig, plans) = campaign::load(&spec)?;
    if a.dry_run {
        let previews: Vec<_> = plans.1.iter().map(|p| PlanPreview::of(p)).collect();
        return Ok(if crate::stdio::print(&dry_run::text(&previews)) {
            0
        } else {
            EXIT_ABORT
        });
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
            let started =
                crate::serve::LiveServer::start(addr, hub, operator.clone(), cancel.clone()).await;
            Some(started.map_err(|e| {
                Failure::abort(format!("cannot serve the live page on {addr}: {e}"))
            })?)
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
    let deps = CampaignDeps {
        bench: &SimBenchProvider,
        sink: out.clone(),
        cancel,
        operator,
    };
    let done = campaign::run(&spec, rig, plans, deps).await;
    out.finish();
    if let Some(s) = live {
        s.shutdown().await;
    }
    Ok(done?.exit_code)
}

impl From<RuleArg> for DecisionRule {
    fn from(r: RuleArg) -> Self {
        match r {
            RuleArg::Simple => DecisionRule::Simple,
            RuleArg::Guarded => DecisionRule::Guarded,
        }
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
