//! `hilrig supply|load [--rig R] [--id ID] set | on [--for D] | off | measure`: manual control
//! of one DC supply or electronic load, one engine for both ([`Manual`] says what differs).
//!
//! Every setpoint is checked against the rig's envelope before anything is sent. `set` and
//! `on` take the bench lock and program the protections (OVP/OCP, where the model has them)
//! to the envelope first; `off` is always allowed, even while a run holds the lock, and
//! fails unless the read-back confirms it. Read-only actions send nothing at connect but
//! `*IDN?` (no `*CLS`, no mode change). `on` leaves the output (input) on when the command
//! ends, as asked; `on --for D` stays in the foreground, switches it off after `D` (or on
//! Ctrl-C), and starts the out-of-process guard so that a killed hilrig still leaves it off
//! (see `crate::guard`). Exit codes as for `hilrig instruments`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::instruments::{end_timed_on, exit_for, parse_value, Session};
use super::EXIT_ABORT;
use crate::instrument::{ConnectMode, InstrumentError, Measurement, SwitchOff};
use crate::rig::{Envelope, Role};
use crate::scpi::Dialect;
use crate::units::Dimension;

/// The options `hilrig supply` and `hilrig load` share.
#[derive(Debug, Args)]
pub struct ManualOptions {
    /// Rig file (default: rig/sim.yaml, the built-in simulated bench).
    #[arg(long, global = true)]
    pub rig: Option<PathBuf>,
    /// Instrument id from the rig file (default: the rig's first of its kind).
    #[arg(long, global = true)]
    pub id: Option<String>,
    /// Wait this long for the bench lock when a run holds it (e.g. `30 s`, `10 min`).
    #[arg(long, global = true, value_name = "DURATION", allow_hyphen_values = true, value_parser = super::parse_duration)]
    pub wait: Option<Duration>,
    /// Change an instrument whose calibration has expired (as for `run`).
    #[arg(long, global = true)]
    pub allow_expired_calibration: bool,
}

/// One manual action, as given on the command line (setpoints still text).
#[derive(Debug)]
pub(super) enum Action {
    /// Program setpoints (at least one given).
    Set {
        /// Output voltage (supplies only).
        voltage: Option<String>,
        /// Current limit (supply) or sink current (load).
        current: Option<String>,
    },
    /// Switch on, for a while when `for_` is given.
    On {
        /// How long to hold it on.
        for_: Option<Duration>,
    },
    /// Switch off, confirmed by read-back.
    Off,
    /// Read voltage, current and state.
    Measure {
        /// One JSON object instead of a line for people.
        json: bool,
    },
}

/// What the manual command needs of one kind of instrument.
pub(super) trait Manual: Sized {
    /// Role in the rig file.
    const ROLE: Role;
    /// `supply` or `load`.
    const NAME: &'static str;
    /// `output` or `input`.
    const PORT: &'static str;
    /// Connect read-only (nothing but `*IDN?` sent); the errors met on the way.
    async fn connect(
        id: &str,
        address: &str,
        dialect: Dialect,
        timeout: Duration,
    ) -> Result<(Self, Vec<InstrumentError>), InstrumentError>;
    /// The identity string the instrument answered.
    fn identity(&self) -> &str;
    /// The dialect's connect sequence for `mode`; the errors a switch-off went past.
    async fn begin(&mut self, mode: ConnectMode) -> Result<Vec<InstrumentError>, InstrumentError>;
    /// Check setpoints against the rig's envelope (nothing sent).
    fn check(envelope: &Envelope, voltage: Option<f64>, current: Option<f64>)
        -> Result<(), String>;
    /// Program the protections from the envelope, where the model has them.
    async fn protect(&mut self, envelope: &Envelope) -> Result<(), InstrumentError>;
    /// Program the checked setpoints.
    async fn set(
        &mut self,
        voltage: Option<f64>,
        current: Option<f64>,
    ) -> Result<(), InstrumentError>;
    /// Switch the output (input) on or off.
    async fn switch(&mut self, on: bool) -> Result<(), InstrumentError>;
    /// Read the output (input) state back.
    async fn is_on(&mut self) -> Result<bool, InstrumentError>;
    /// Read terminal voltage and current.
    async fn measure(&mut self) -> Result<Measurement, InstrumentError>;
    /// Read the instrument's error queue.
    async fn check_errors(&mut self) -> Result<(), InstrumentError>;
    /// Switch off and confirm it by read-back, past `earlier` errors.
    async fn confirm_off(
        &mut self,
        earlier: Vec<InstrumentError>,
    ) -> Result<Vec<InstrumentError>, SwitchOff>;
}

/// Run one manual action on an instrument of kind `M`; returns the exit code.
pub(super) async fn run<M: Manual>(o: ManualOptions, action: Action) -> i32 {
    match drive::<M>(o, action).await {
        Ok(code) => code,
        Err(Fail::Usage(e)) => {
            eprintln!("error: {e}");
            EXIT_ABORT
        }
        Err(Fail::Instrument(e)) => {
            eprintln!("error: {e}");
            exit_for(&e)
        }
    }
}

/// Why a manual action stopped before it reached the instrument's own answer.
enum Fail {
    /// Bad input, a refused setpoint, a busy bench, the wrong unit: exit 2.
    Usage(String),
    /// The instrument could not be reached or refused the connect sequence.
    Instrument(InstrumentError),
}

impl From<String> for Fail {
    fn from(e: String) -> Self {
        Fail::Usage(e)
    }
}

impl From<InstrumentError> for Fail {
    fn from(e: InstrumentError) -> Self {
        Fail::Instrument(e)
    }
}

async fn drive<M: Manual>(o: ManualOptions, action: Action) -> Result<i32, Fail> {
    let session = Session::start(o.rig.clone()).await?;
    let inst = session.by_role(M::ROLE, o.id.as_deref())?;
    let label = format!("{} `{}`", M::NAME, inst.id);
    let envelope = &session.rig.envelope;
    // Every value is checked before anything is sent.
    let mut setpoints = (None, None);
    if let Action::Set { voltage, current } = &action {
        let parse =
            |text: &Option<String>, dim| text.as_deref().map(|t| parse_value(t, dim)).transpose();
        let checked = parse(voltage, Dimension::Voltage)
            .and_then(|v| Ok((v, parse(current, Dimension::Current)?)))
            .and_then(|(v, i)| M::check(envelope, v, i).map(|()| (v, i)));
        setpoints = checked.map_err(|e| format!("{label}: {e}"))?;
    }
    let changes = matches!(action, Action::Set { .. } | Action::On { .. });
    let _lock = if changes {
        let what = format!("hilrig {} --id {}", M::NAME, inst.id);
        Some(session.lock(&what, o.wait).await?)
    } else {
        None
    };
    let (dialect, address) = session.scpi_endpoint(inst)?;
    // Read-only actions send nothing at connect but `*IDN?`; a switch-off goes ahead past
    // the errors of the connect sequence.
    let mode = match action {
        Action::Measure { .. } => ConnectMode::ReadOnly,
        Action::Off => ConnectMode::SwitchOff,
        _ => ConnectMode::Settings,
    };
    let (mut dev, passed) =
        M::connect(&inst.id, &address, dialect, inst.timeout.duration()).await?;
    if let Err(e) = session.check_unit(
        inst,
        dev.identity(),
        mode == ConnectMode::Settings,
        o.allow_expired_calibration,
    ) {
        // A switch-off goes ahead whatever unit answers; anything else is refused.
        if mode != ConnectMode::SwitchOff {
            return Err(Fail::Usage(e));
        }
        eprintln!("warning: {e}");
    }
    // Only now, with the unit known, the connect sequence (none for read-only commands).
    let mut passed_all = passed;
    passed_all.extend(dev.begin(mode).await?);
    if let Action::Off = action {
        return Ok(match dev.confirm_off(passed_all).await {
            Ok(errors) => {
                for e in errors {
                    eprintln!("warning: {e}");
                }
                println!("{label}: {} off (read back)", M::PORT);
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_ABORT
            }
        });
    }
    // A timed switch-on starts its guard before anything is switched on.
    let timed = match action {
        Action::On { for_ } => for_,
        _ => None,
    };
    let guard = session.guard_timed_on(inst, timed)?;
    let result = async {
        if changes {
            dev.protect(envelope).await?;
        }
        match &action {
            Action::Set { .. } => {
                dev.set(setpoints.0, setpoints.1).await?;
                println!("{label}: set");
            }
            Action::On { .. } => {
                dev.switch(true).await?;
                println!("{label}: {} {}", M::PORT, on_off(dev.is_on().await?));
            }
            // A switch-off has its own path above.
            Action::Off => {}
            Action::Measure { json } => {
                let m = dev.measure().await?;
                let on = dev.is_on().await?;
                if *json {
                    println!(
                        "{}",
                        json!({"id": inst.id, "voltage_v": m.voltage, "current_a": m.current, (M::PORT): on})
                    );
                } else {
                    println!(
                        "{label}: {:.4} V, {:.4} A, {} {}",
                        m.voltage,
                        m.current,
                        M::PORT,
                        on_off(on)
                    );
                }
            }
        }
        if mode == ConnectMode::Settings {
            dev.check_errors().await?;
        }
        Ok::<(), InstrumentError>(())
    }
    .await;
    if changes {
        if let Some(note) = session.note() {
            eprintln!("{note}");
        }
    }
    let code = match &result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            exit_for(e)
        }
    };
    let Some(duration) = timed else {
        return Ok(code);
    };
    // The timed switch-on ends switched off, read back, whatever happened.
    Ok(end_timed_on(
        &mut dev,
        &label,
        M::PORT,
        duration,
        result.is_err().then_some(code),
        guard,
        async |d| d.is_on().await,
        async |d| d.confirm_off(Vec::new()).await,
    )
    .await)
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}
