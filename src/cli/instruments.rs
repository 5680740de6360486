//! `hilrig instruments check|ping|scpi [--rig R]`, and the rig session that `hilrig supply`
//! and `hilrig load` share.
//!
//! On a simulated rig (the default) the simulated bench is started inside the command, as
//! `hilrig run` does, and stops when the command ends.
//!
//! Exit codes: 0 done (check: every instrument passed); 1 a check failed, or the instrument
//! reported an error in its error queue; 2 nothing was sent or the command could not finish:
//! bad input, a refused setting (no `--allow-settings`, outside the envelope), no connection,
//! a timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use super::EXIT_ABORT;
use crate::guard::{Guard, GuardSpec};
use crate::plan::load_rig;
use crate::report::calibration::{self, Calibration};
use crate::report::InstrumentIdentity;
use crate::rig::{InstrumentConfig, Rig, Role};
use crate::run::lock::BenchLock;
use crate::scpi::guard::{check_line_with, only_queries};
use crate::scpi::ping::ping;
use crate::scpi::{resolve_dialect, Client, Dialect, ScpiError};
use crate::sim::{Bench, BenchOptions};
use crate::trace::today;

/// Exit code when a check failed or the instrument reported an error.
pub const EXIT_FAILED: i32 = 1;

/// Arguments of `hilrig instruments`.
#[derive(Debug, Args)]
pub struct InstrumentsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: InstrumentsCommand,
}

/// `hilrig instruments` subcommands.
#[derive(Debug, Subcommand)]
pub enum InstrumentsCommand {
    /// Check every SCPI instrument of the rig: `*IDN?` against its dialect and the rig's
    /// serial number, its error queue (read, not cleared first), and the calibration due date
    /// from the rig's `calibration:` map.
    Check(CheckArgs),
    /// Round-trip latency of `*IDN?` to one instrument: min, median and p99.
    Ping(PingArgs),
    /// Send one SCPI line to an instrument and print the reply. Queries are sent freely;
    /// settings only with --allow-settings, and only inside the rig's envelope.
    #[command(long_about = SCPI_HELP)]
    Scpi(ScpiArgs),
}

const SCPI_HELP: &str = "Send one SCPI line to an instrument and print the reply.

Queries (every command ending in `?`) are sent freely. Anything else needs --allow-settings,
takes the bench lock, and is checked first: these headers are recognised (short or long form,
any case, with or without SOURce[n], channel suffixes and trailing LEVel/IMMediate/AMPLitude):

  VOLTage                           supply voltage (cell voltage on a cell simulator)
  CURRent, CURRent:LIMit[:NEGative] supply current limit / load current
  CURRent:STATic:L1|L2              load current (Chroma)
  VOLTage:PROTection[:REMote], OUTPut:OVP:VALue   OVP level, at most the envelope's voltage
  CURRent:PROTection, OUTPut:OCP:VALue            OCP level, at most the envelope's current
  APPLy                             voltage and current (Rigol)

Their first numeric parameter must lie inside the rig's envelope (MIN/DEF count as zero; MAX
is refused). Other settings are sent unchecked. After the line the error queue is read; an
error there exits with 1.";

/// Arguments of `hilrig instruments check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Rig file (default: rig/sim.yaml, the built-in simulated bench).
    #[arg(long)]
    pub rig: Option<PathBuf>,
    /// One JSON object on stdout instead of lines for people.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `hilrig instruments ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// Instrument id from the rig file.
    pub id: String,
    /// Rig file (default: rig/sim.yaml, the built-in simulated bench).
    #[arg(long)]
    pub rig: Option<PathBuf>,
    /// Number of timed queries (one untimed query goes first).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub count: u32,
    /// One JSON object on stdout instead of a line for people.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `hilrig instruments scpi`.
#[derive(Debug, Args)]
pub struct ScpiArgs {
    /// Instrument id from the rig file.
    pub id: String,
    /// The SCPI line, e.g. "MEAS:VOLT?" or "VOLT 12;CURR 2".
    pub line: String,
    /// Rig file (default: rig/sim.yaml, the built-in simulated bench).
    #[arg(long)]
    pub rig: Option<PathBuf>,
    /// Allow commands that change the instrument (still checked against the envelope).
    #[arg(long)]
    pub allow_settings: bool,
    /// Also allow resets (`*RST`, `*RCL`, `SYST:PRES`) and switching a protection off.
    #[arg(long)]
    pub allow_unprotected: bool,
    /// Wait this long for the bench lock when a run holds it (e.g. `30 s`, `10 min`).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = super::parse_duration)]
    pub wait: Option<Duration>,
}

/// Run `hilrig instruments ...` and return the exit code.
pub async fn instruments(a: InstrumentsArgs) -> i32 {
    match a.command {
        InstrumentsCommand::Check(c) => check(c).await,
        InstrumentsCommand::Ping(p) => ping_cmd(p).await,
        InstrumentsCommand::Scpi(s) => scpi(s).await,
    }
}

/// A loaded rig, with the simulated bench running when the rig is simulated.
pub(super) struct Session {
    /// The rig, with simulated endpoints resolved.
    pub rig: Rig,
    rig_path: PathBuf,
    _bench: Option<Bench>,
}

impl Session {
    /// Load the rig (default rig/sim.yaml) and start the simulated bench if it is one.
    pub async fn start(rig: Option<PathBuf>) -> Result<Session, String> {
        let choice = crate::rig::choice::choose_from_env(rig).map_err(|e| e.to_string())?;
        let rig_path = choice.path.clone();
        let loaded = load_rig(&rig_path)
            .map_err(|e| format!("{choice}: {e}"))?
            .value;
        if loaded.simulation.is_none() {
            return Ok(Session {
                rig: loaded,
                rig_path,
                _bench: None,
            });
        }
        let bench = Bench::start_with(&loaded, &rig_path, &BenchOptions::default())
            .await
            .map_err(|e| format!("cannot start the simulated bench: {e}"))?;
        Ok(Session {
            rig: bench.resolve(&loaded),
            rig_path,
            _bench: Some(bench),
        })
    }

    /// Whether the simulated bench serves this rig.
    pub fn simulated(&self) -> bool {
        self.rig.simulation.is_some()
    }

    /// The instrument with this id.
    pub fn instrument(&self, id: &str) -> Result<&InstrumentConfig, String> {
        self.rig
            .instruments
            .iter()
            .find(|i| i.id == id)
            .ok_or_else(|| {
                let ids: Vec<&str> = self.rig.instruments.iter().map(|i| i.id.as_str()).collect();
                format!(
                    "rig {} has no instrument `{id}`; it has: {}",
                    self.rig_path.display(),
                    ids.join(", ")
                )
            })
    }

    /// The instrument with this id, or the rig's first one in `role`.
    pub fn by_role(&self, role: Role, id: Option<&str>) -> Result<&InstrumentConfig, String> {
        let inst = match id {
            Some(id) => self.instrument(id)?,
            None => self.rig.instrument(role).ok_or_else(|| {
                format!(
                    "rig {} has no instrument with role {}",
                    self.rig_path.display(),
                    role_name(role)
                )
            })?,
        };
        if inst.role != role {
            return Err(format!(
                "instrument `{}` has role {}, not {}",
                inst.id,
                role_name(inst.role),
                role_name(role)
            ));
        }
        Ok(inst)
    }

    /// The dialect and address of a SCPI instrument.
    pub fn scpi_endpoint(&self, inst: &InstrumentConfig) -> Result<(Dialect, String), String> {
        let name = inst.dialect.as_deref().ok_or_else(|| {
            format!(
                "instrument `{}` has no `dialect:`; it is not a SCPI instrument",
                inst.id
            )
        })?;
        let base = self.rig_path.parent().unwrap_or(Path::new("."));
        let dialect =
            resolve_dialect(name, base).map_err(|e| format!("instrument `{}`: {e}", inst.id))?;
        let address = inst
            .address
            .clone()
            .ok_or_else(|| format!("instrument `{}` has no `address:`", inst.id))?;
        Ok((dialect, address))
    }

    /// Take the bench lock for a command that changes an instrument.
    pub async fn lock(&self, what: &str, wait: Option<Duration>) -> Result<BenchLock, String> {
        let wait = wait.unwrap_or_default();
        BenchLock::acquire(&self.rig.station, self.simulated(), what, wait)
            .await
            .map_err(|e| e.to_string())
    }

    /// Check the unit that answered (`idn`) is the rig file's: its serial, and for a
    /// command that changes it, a calibration that has not expired (unless
    /// `allow_expired`, the same override as `run`).
    pub fn check_unit(
        &self,
        inst: &InstrumentConfig,
        idn: &str,
        changes: bool,
        allow_expired: bool,
    ) -> Result<(), String> {
        let identity = InstrumentIdentity::parse(&inst.id, idn);
        if let Some(expected) = &inst.serial {
            if identity.other_serial_than(Some(expected)) {
                return Err(format!(
                    "instrument `{}`: serial {} is not the rig file's {expected}; another unit \
                     is connected, or the rig file is out of date",
                    inst.id, identity.serial
                ));
            }
        }
        let serial = inst
            .serial
            .clone()
            .or(Some(identity.serial).filter(|s| !s.is_empty()));
        if changes {
            if let Calibration::Expired { due, days_over } =
                calibration::judge(&self.rig.calibration, serial.as_deref(), &today())
            {
                if !allow_expired {
                    return Err(format!(
                        "instrument `{}`: calibration overdue since {due} ({days_over} days); \
                         give --allow-expired-calibration to use it anyway",
                        inst.id
                    ));
                }
                eprintln!(
                    "warning: instrument `{}`: calibration overdue since {due}",
                    inst.id
                );
            }
        }
        Ok(())
    }

    /// A note for people when settings do not outlive the command.
    pub fn note(&self) -> Option<&'static str> {
        self.simulated().then_some(
            "note: simulated bench started for this command; its settings end with it \
             (`hilrig sim serve` keeps one running)",
        )
    }
}

/// The longest `on --for` of a manual switch-on.
pub(super) const MAX_ON_FOR: Duration = Duration::from_secs(24 * 3600);

/// `--for` of `supply on` / `load on`: a duration above zero and at most 24 h (`10 min`).
pub(super) fn parse_on_for(text: &str) -> Result<Duration, String> {
    let d = super::parse_duration(text)?;
    if d.is_zero() || d > MAX_ON_FOR {
        return Err(format!("`{text}` is not above 0 s and at most 24 h"));
    }
    Ok(d)
}

impl Session {
    /// For `on --for` (`timed` set): start the out-of-process guard of `inst`, which
    /// switches it off if this process dies before it does. None without `--for`, on a
    /// simulated rig (its instruments end with this process) and for a dialect the guard
    /// cannot drive.
    pub fn guard_timed_on(
        &self,
        inst: &InstrumentConfig,
        timed: Option<Duration>,
    ) -> Result<Option<Guard>, String> {
        let Some(duration) = timed.filter(|_| !self.simulated()) else {
            return Ok(None);
        };
        let dir = std::env::temp_dir().join(format!(
            "hilrig-{}-on-{}",
            role_name(inst.role),
            std::process::id()
        ));
        let command = format!(
            "{} on --for {} s",
            role_name(inst.role),
            duration.as_secs_f64()
        );
        let Some(spec) = GuardSpec::of_instrument(inst, &dir, &command) else {
            return Ok(None);
        };
        if spec
            .instruments
            .iter()
            .any(|i| crate::scpi::builtin_dialect(&i.dialect).is_none())
        {
            return Err(format!(
                "instrument `{}`: the guard process knows only the built-in dialects, so \
                 nothing switches `{}` off if hilrig is killed; use `on` without --for",
                inst.id,
                inst.dialect.as_deref().unwrap_or_default()
            ));
        }
        Guard::start(&spec)
            .map(Some)
            .map_err(|e| format!("{e}; nothing is switched on without it"))
    }
}

/// Keep an output on until `duration` has passed or Ctrl-C or SIGTERM arrives (Ok, why),
/// or the once-a-second read-back `still_on` says off or fails (Err, why).
async fn hold_on(
    duration: Duration,
    mut still_on: impl AsyncFnMut() -> Result<bool, crate::instrument::InstrumentError>,
) -> Result<String, String> {
    let end = tokio::time::Instant::now() + duration;
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async move {
        #[cfg(unix)]
        if let Some(mut t) = terminate {
            t.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::pin!(terminated);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => {
                return Ok(format!("{} s passed", duration.as_secs_f64()));
            }
            _ = &mut interrupt => return Ok("interrupted".into()),
            _ = &mut terminated => return Ok("terminate signal".into()),
            _ = tick.tick() => match still_on().await {
                Ok(true) => {}
                Ok(false) => return Err("it went off by itself (read back off)".into()),
                Err(e) => return Err(format!("the read-back failed: {e}")),
            },
        }
    }
}

/// The end of a timed switch-on (`--for`): hold the output on (unless the switch-on failed
/// with exit code `failed`), then switch it off and read it back whatever happened; release
/// the guard when the read-back confirmed it, otherwise leave it to the guard to try on its
/// own. `label` names the instrument (``supply `psu` ``), `part` what was switched
/// (`output`, `input`). Returns the exit code.
#[allow(clippy::too_many_arguments)]
pub(super) async fn end_timed_on<T: ?Sized>(
    inst: &mut T,
    label: &str,
    part: &str,
    duration: Duration,
    failed: Option<i32>,
    guard: Option<Guard>,
    mut still_on: impl AsyncFnMut(&mut T) -> Result<bool, crate::instrument::InstrumentError>,
    switch_off: impl AsyncFnOnce(
        &mut T,
    ) -> Result<
        Vec<crate::instrument::InstrumentError>,
        crate::instrument::SwitchOff,
    >,
) -> i32 {
    let code = match failed {
        Some(code) => code,
        None => {
            eprintln!(
                "{label}: held on for {} s; Ctrl-C switches it off now",
                duration.as_secs_f64()
            );
            match hold_on(duration, async || still_on(&mut *inst).await).await {
                Ok(why) => {
                    eprintln!("{label}: {why}; switching the {part} off");
                    0
                }
                Err(why) => {
                    eprintln!("error: {label}: {why}; switching the {part} off");
                    EXIT_ABORT
                }
            }
        }
    };
    let confirmed_off = match switch_off(inst).await {
        Ok(errors) => {
            for e in errors {
                eprintln!("warning: {e}");
            }
            println!("{label}: {part} off (read back)");
            true
        }
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    };
    match guard {
        Some(g) if confirmed_off => g.release(),
        Some(g) => g.hand_over_unconfirmed(),
        None => {}
    }
    if confirmed_off {
        code
    } else {
        EXIT_ABORT
    }
}

/// A setting from the command line: a bare number, or a quantity with its unit (`58.4 V`).
pub(super) fn parse_value(text: &str, dim: crate::units::Dimension) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) => Ok(v),
        Err(_) => crate::units::Quantity::parse_as(text, dim).map_err(|e| e.to_string()),
    }
}

/// The exit code for an instrument error: 1 when the instrument itself reported it, 2 when
/// the command could not get through (connection, timeout, reply, unsupported).
pub(super) fn exit_for(error: &crate::instrument::InstrumentError) -> i32 {
    match error.scpi() {
        Some(ScpiError::Instrument { .. }) => EXIT_FAILED,
        _ => EXIT_ABORT,
    }
}

/// A role as written in rig files.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Supply => "supply",
        Role::Load => "load",
        Role::CellSim => "cell_sim",
        Role::Chamber => "chamber",
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Pass,
    Warn,
    Skip,
    Fail,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "ok",
            Verdict::Warn => "ok (warning)",
            Verdict::Skip => "not checked",
            Verdict::Fail => "FAILED",
        }
    }
}

/// The findings for one instrument.
struct Finding {
    verdict: Verdict,
    lines: Vec<(Verdict, String)>,
    idn: Option<String>,
    errors: Vec<(i32, String)>,
    calibration_due: Option<String>,
}

impl Finding {
    fn new() -> Self {
        Finding {
            verdict: Verdict::Pass,
            lines: Vec::new(),
            idn: None,
            errors: Vec::new(),
            calibration_due: None,
        }
    }

    fn add(&mut self, verdict: Verdict, line: String) {
        self.verdict = self.verdict.max(verdict);
        self.lines.push((verdict, line));
    }
}

async fn check_one(session: &Session, inst: &InstrumentConfig, today: &str) -> Finding {
    let mut f = Finding::new();
    if inst.dialect.is_none() {
        f.add(
            Verdict::Skip,
            "not a SCPI instrument (no `dialect:`); CAN instruments are not checked here".into(),
        );
        return f;
    }
    let (dialect, address) = match session.scpi_endpoint(inst) {
        Ok(e) => e,
        Err(e) => {
            f.add(Verdict::Fail, e);
            return f;
        }
    };
    let base = session.rig_path.parent().unwrap_or(Path::new("."));
    for finding in crate::instrument::coverage::review(&session.rig, base)
        .into_iter()
        .filter(|finding| finding.instrument == inst.id)
    {
        let verdict = match finding.severity {
            crate::instrument::coverage::Severity::Warning => Verdict::Warn,
            crate::instrument::coverage::Severity::Error => Verdict::Fail,
        };
        f.add(verdict, format!("envelope: {}", finding.message));
    }
    let timeout = inst.timeout.duration();
    let mut client = match Client::connect_for(&address, &dialect, timeout).await {
        Ok((client, _)) => client,
        Err(e) => {
            f.add(Verdict::Fail, e.to_string());
            return f;
        }
    };
    let serial_seen = match client.query("*IDN?").await {
        Ok(idn) => {
            let idn = idn.trim().to_string();
            if dialect.matches_identity(&idn) {
                f.add(Verdict::Pass, format!("identity: {idn}"));
            } else {
                f.add(
                    Verdict::Fail,
                    format!(
                        "identity: {idn:?} is not {} {} (dialect `{}`); check the address and \
                         the dialect in the rig file",
                        dialect.maker_text(),
                        dialect.model_text(),
                        dialect.id
                    ),
                );
            }
            let identity = InstrumentIdentity::parse(&inst.id, &idn);
            match &inst.serial {
                Some(expected) if identity.other_serial_than(Some(expected)) => f.add(
                    Verdict::Fail,
                    format!(
                        "serial: the instrument says {}, the rig file says {expected}; \
                         another unit is connected, or the rig file is out of date",
                        identity.serial
                    ),
                ),
                Some(expected) => f.add(
                    Verdict::Pass,
                    format!("serial: {expected} as in the rig file"),
                ),
                None => {}
            }
            f.idn = Some(idn);
            Some(identity.serial).filter(|s| !s.is_empty())
        }
        Err(e) => {
            f.add(Verdict::Fail, format!("identity: {e}"));
            return f;
        }
    };
    match client.error_queue().await {
        Ok(errors) if errors.is_empty() => f.add(Verdict::Pass, "error queue: empty".into()),
        Ok(errors) => {
            let text: Vec<String> = errors
                .iter()
                .map(|(code, message)| format!("{code},\"{message}\""))
                .collect();
            f.add(
                Verdict::Fail,
                format!(
                    "error queue: {}; see the instrument's programming guide, then clear it \
                     (*CLS)",
                    text.join("; ")
                ),
            );
            f.errors = errors;
        }
        Err(e) => f.add(Verdict::Fail, format!("error queue: {e}")),
    }
    let serial = inst.serial.clone().or(serial_seen);
    let cal = calibration::judge(&session.rig.calibration, serial.as_deref(), today);
    f.calibration_due = cal.due().map(str::to_string);
    match cal {
        Calibration::NoRecord => f.add(
            Verdict::Warn,
            format!(
                "calibration: no record for serial {} in the rig's `calibration:`",
                serial.as_deref().unwrap_or("(unknown)")
            ),
        ),
        Calibration::Unreadable { due } => f.add(
            Verdict::Fail,
            format!(
                "calibration: due date `{due}` for {} is not YYYY-MM-DD",
                serial.as_deref().unwrap_or_default()
            ),
        ),
        Calibration::Expired { due, days_over } => f.add(
            Verdict::Fail,
            format!(
                "calibration: overdue since {due} ({days_over} days); do not use it for \
                 evidence until it is calibrated"
            ),
        ),
        Calibration::Valid {
            due,
            days_left: Some(left),
        } if left <= calibration::DUE_SOON_DAYS => f.add(
            Verdict::Warn,
            format!("calibration: due {due}, in {left} days"),
        ),
        Calibration::Valid { due, .. } => f.add(Verdict::Pass, format!("calibration: due {due}")),
    }
    f
}

async fn check(a: CheckArgs) -> i32 {
    let session = match Session::start(a.rig).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let today = today();
    let mut worst = Verdict::Pass;
    let mut report = Vec::new();
    for inst in &session.rig.instruments {
        let f = check_one(&session, inst, &today).await;
        if f.verdict != Verdict::Skip {
            worst = worst.max(f.verdict);
        }
        if a.json {
            report.push(json!({
                "id": inst.id,
                "role": inst.role,
                "dialect": inst.dialect,
                "address": inst.address,
                "verdict": match f.verdict {
                    Verdict::Pass => "pass",
                    Verdict::Warn => "warn",
                    Verdict::Skip => "skip",
                    Verdict::Fail => "fail",
                },
                "idn": f.idn,
                "errors": f.errors.iter().map(|(c, m)| json!({"code": c, "message": m})).collect::<Vec<_>>(),
                "calibration_due": f.calibration_due,
                "findings": f.lines.iter().map(|(_, l)| l).collect::<Vec<_>>(),
            }));
        } else {
            println!(
                "{} ({}, {}): {}",
                inst.id,
                inst.dialect.as_deref().unwrap_or("CAN"),
                inst.address
                    .as_deref()
                    .or(inst.bus.as_deref())
                    .unwrap_or("-"),
                f.verdict.word()
            );
            for (verdict, line) in &f.lines {
                let mark = match verdict {
                    Verdict::Fail => "✗",
                    Verdict::Warn => "!",
                    _ => " ",
                };
                println!("  {mark} {line}");
            }
        }
    }
    let failed = worst == Verdict::Fail;
    if a.json {
        println!(
            "{}",
            json!({
                "station": session.rig.station,
                "date": today,
                "passed": !failed,
                "instruments": report,
            })
        );
    } else if failed {
        println!("instruments check: FAILED");
    } else {
        println!("instruments check: passed");
    }
    if failed {
        EXIT_FAILED
    } else {
        0
    }
}

async fn ping_cmd(a: PingArgs) -> i32 {
    let session = match Session::start(a.rig).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let endpoint = session.instrument(&a.id).and_then(|inst| {
        let (dialect, address) = session.scpi_endpoint(inst)?;
        Ok((inst.id.clone(), dialect, address, inst.timeout.duration()))
    });
    let result = match endpoint {
        Ok((id, dialect, address, timeout)) => {
            let count = a.count as usize;
            // The queries run on a thread of their own with a single-threaded runtime, so
            // that a round trip is not stretched by hand-overs between worker threads.
            let timed = tokio::task::spawn_blocking(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the runtime: {e}"))?;
                rt.block_on(async {
                    let (mut client, _) = Client::connect_for(&address, &dialect, timeout)
                        .await
                        .map_err(|e| format!("instrument `{id}`: {e}"))?;
                    // The first query is not timed: it pays for the connection's first packets.
                    client
                        .query("*IDN?")
                        .await
                        .map_err(|e| format!("instrument `{id}`: {e}"))?;
                    let latency = ping(&mut client, "*IDN?", count)
                        .await
                        .map_err(|e| format!("instrument `{id}`: {e}"))?;
                    Ok::<_, String>((address, latency))
                })
            })
            .await;
            timed.unwrap_or_else(|e| Err(format!("the timing thread failed: {e}")))
        }
        Err(e) => Err(e),
    };
    match result {
        Ok((address, l)) => {
            if a.json {
                println!(
                    "{}",
                    json!({"id": a.id, "address": address, "query": "*IDN?", "latency_s": l})
                );
            } else {
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                println!(
                    "{}: {} × *IDN? over {address}: min {:.3} ms, median {:.3} ms, p99 {:.3} ms \
                     (mean {:.3} ms, max {:.3} ms)",
                    a.id,
                    l.count,
                    ms(l.min),
                    ms(l.median),
                    ms(l.p99),
                    ms(l.mean),
                    ms(l.max)
                );
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_ABORT
        }
    }
}

async fn scpi(a: ScpiArgs) -> i32 {
    let session = match Session::start(a.rig).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let inst = match session.instrument(&a.id) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let checks = match check_line_with(
        &a.line,
        inst.role,
        &session.rig.envelope,
        a.allow_settings,
        a.allow_unprotected,
    ) {
        Ok(c) => c,
        Err(refusal) => {
            eprintln!("error: instrument `{}`: {refusal}", inst.id);
            return EXIT_ABORT;
        }
    };
    for c in &checks {
        eprintln!("checked: {c}");
    }
    let settings = !only_queries(&a.line);
    let _lock = if settings {
        match session
            .lock(
                &format!("hilrig instruments scpi {} {:?}", a.id, a.line),
                a.wait,
            )
            .await
        {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_ABORT;
            }
        }
    } else {
        None
    };
    let (dialect, address) = match session.scpi_endpoint(inst) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let (mut client, _) =
        match Client::connect_for(&address, &dialect, inst.timeout.duration()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: instrument `{}`: {e}", inst.id);
                return EXIT_ABORT;
            }
        };
    // Identity and serial first: a wrong instrument receives nothing but `*IDN?`.
    match client.query("*IDN?").await {
        Ok(idn) => {
            let idn = idn.trim();
            if !dialect.matches_identity(idn) {
                eprintln!(
                    "error: instrument `{}`: answers `*IDN?` with {idn:?}, but dialect `{}` is \
                     for {} {}; nothing else was sent",
                    inst.id,
                    dialect.id,
                    dialect.maker_text(),
                    dialect.model_text()
                );
                return EXIT_ABORT;
            }
            let identity = InstrumentIdentity::parse(&inst.id, idn);
            if let Some(expected) = &inst.serial {
                if identity.other_serial_than(Some(expected)) {
                    eprintln!(
                        "error: instrument `{}`: serial {} is not the rig file's {expected}; \
                         nothing else was sent",
                        inst.id, identity.serial
                    );
                    return EXIT_ABORT;
                }
            }
        }
        Err(e) => {
            eprintln!("error: instrument `{}`: {e}", inst.id);
            return EXIT_ABORT;
        }
    }
    if settings {
        // Remote control first where the model needs it (e.g. EA's SYST:LOCK 1).
        for command in dialect.on_connect.clone() {
            if let Err(e) = client.write_checked(&command).await {
                eprintln!("error: instrument `{}`: {e}", inst.id);
                return EXIT_FAILED;
            }
        }
    }
    let sent = if a.line.split(';').any(|c| crate::scpi::is_query(c.trim())) {
        client.query(&a.line).await.map(Some)
    } else {
        client.write(&a.line).await.map(|()| None)
    };
    let mut code = 0;
    match sent {
        Ok(Some(reply)) => println!("{reply}"),
        Ok(None) => {}
        Err(ScpiError::Timeout { .. }) => {
            eprintln!(
                "error: instrument `{}`: no reply to `{}`; reading its error queue",
                inst.id, a.line
            );
            code = EXIT_ABORT;
        }
        Err(e) => {
            eprintln!("error: instrument `{}`: {e}", inst.id);
            return EXIT_ABORT;
        }
    }
    match client.error_queue().await {
        Ok(errors) if errors.is_empty() => {}
        Ok(errors) => {
            for (c, m) in errors {
                eprintln!(
                    "error: instrument `{}` reported {c},\"{m}\" after `{}`",
                    inst.id, a.line
                );
            }
            code = EXIT_FAILED;
        }
        Err(e) => {
            eprintln!(
                "error: instrument `{}`: reading the error queue: {e}",
                inst.id
            );
            code = EXIT_ABORT;
        }
    }
    if settings {
        if let Some(note) = session.note() {
            eprintln!("{note}");
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("90 s", Ok(90.0))]
    #[case("10min", Ok(600.0))]
    #[case("24 h", Ok(86_400.0))]
    #[case("0 s", Err("is not above 0 s and at most 24 h"))]
    #[case("-5 s", Err("negative"))]
    #[case("25 h", Err("is not above 0 s and at most 24 h"))]
    #[case("5 V", Err(""))]
    fn on_for_is_a_duration_above_zero_and_at_most_a_day(
        #[case] text: &str,
        #[case] want: Result<f64, &str>,
    ) {
        match (parse_on_for(text), want) {
            (Ok(d), Ok(s)) => assert_eq!(d.as_secs_f64(), s),
            (Err(e), Err(part)) => assert!(e.contains(part), "{e}"),
            (got, want) => panic!("{text}: {got:?}, expected {want:?}"),
        }
    }
}
