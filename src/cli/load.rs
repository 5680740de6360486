//! `hilrig load [--rig R] [--id ID] set --current A | on | off | measure`: manual control of
//! an electronic load.
//!
//! The current is checked against the rig's envelope before anything is sent. `set` and `on`
//! take the bench lock and program the load's OCP to the envelope where the model has one;
//! `off` is always allowed, even while a run holds the lock. `on` and `on --for D` behave as
//! for `hilrig supply` (a timed switch-on with its guard). Exit codes as for
//! `hilrig instruments`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::instruments::{end_timed_on, exit_for, parse_value, Session};
use super::EXIT_ABORT;
use crate::instrument::{confirm_load_off, ConnectMode, InstrumentError, Load, ScpiLoad};
use crate::rig::Role;
use crate::units::Dimension;

/// Arguments of `hilrig load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Rig file (default: rig/sim.yaml, the built-in simulated bench).
    #[arg(long, global = true)]
    pub rig: Option<PathBuf>,
    /// Load id from the rig file (default: the rig's first load).
    #[arg(long, global = true)]
    pub id: Option<String>,
    /// Wait this long for the bench lock when a run holds it (e.g. `30 s`, `10 min`).
    #[arg(long, global = true, value_name = "DURATION", allow_hyphen_values = true, value_parser = super::parse_duration)]
    pub wait: Option<std::time::Duration>,
    /// Change an instrument whose calibration has expired (as for `run`).
    #[arg(long, global = true)]
    pub allow_expired_calibration: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: LoadAction,
}

/// `hilrig load` actions.
#[derive(Debug, Subcommand)]
pub enum LoadAction {
    /// Program the sink current in constant-current mode (`5 A` or `5`).
    Set {
        /// Sink current.
        #[arg(long, allow_negative_numbers = true)]
        current: String,
    },
    /// Switch the input on; it stays on after the command ends (see --for).
    #[command(long_about = LOAD_ON_HELP)]
    On {
        /// Keep the input on this long (`10 min`, at most 24 h), then switch it off; a guard
        /// process switches it off if hilrig is killed first.
        #[arg(long = "for", value_name = "DURATION", value_parser = super::instruments::parse_on_for)]
        for_: Option<std::time::Duration>,
    },
    /// Switch the input off.
    Off,
    /// Read terminal voltage, current and input state.
    Measure {
        /// One JSON object instead of a line for people.
        #[arg(long)]
        json: bool,
    },
}

const LOAD_ON_HELP: &str = "Switch the input on.

Without --for the input stays on after the command ends: that is what was asked, and no
process watches it (no guard). Switch it off with `hilrig load off`.

With --for D (`90 s`, `10 min`, at most 24 h) the command stays in the foreground holding
the bench lock, reads the input back once a second, and switches it off (confirmed by
read-back) when D has passed, on Ctrl-C or SIGTERM, or when the input went off by itself.
On a lab rig it first starts the out-of-process guard (`hilrig guard`, as `hilrig run`
does): if hilrig is killed (SIGKILL, the OOM killer) the guard switches the input off and
writes guard.json into a `hilrig-load-on-PID` directory of the system's temporary
directory.";

/// Run `hilrig load ...` and return the exit code.
pub async fn load(a: LoadArgs) -> i32 {
    let session = match Session::start(a.rig.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let inst = match session.by_role(Role::Load, a.id.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let envelope = &session.rig.envelope;
    let mut setpoint = None;
    if let LoadAction::Set { current } = &a.action {
        let checked = parse_value(current, Dimension::Current).and_then(|v| {
            envelope
                .check_load_current(v)
                .map(|()| v)
                .map_err(|e| e.to_string())
        });
        match checked {
            Ok(v) => setpoint = Some(v),
            Err(e) => {
                eprintln!("error: load `{}`: {e}", inst.id);
                return EXIT_ABORT;
            }
        }
    }
    let changes = matches!(a.action, LoadAction::Set { .. } | LoadAction::On { .. });
    let _lock = if changes {
        match session
            .lock(&format!("hilrig load --id {}", inst.id), a.wait)
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
    // Read-only actions send nothing at connect but `*IDN?` (no `*CLS`, no mode change);
    // a switch-off goes ahead past the errors of the connect sequence.
    let mode = match a.action {
        LoadAction::Measure { .. } => ConnectMode::ReadOnly,
        LoadAction::Off => ConnectMode::SwitchOff,
        _ => ConnectMode::Settings,
    };
    let timeout = inst.timeout.duration();
    let (mut load, passed) =
        match ScpiLoad::connect_with(&inst.id, &address, dialect, timeout, ConnectMode::ReadOnly)
            .await
        {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return exit_for(&e);
            }
        };
    if let Err(e) = session.check_unit(
        inst,
        load.identity(),
        mode == ConnectMode::Settings,
        a.allow_expired_calibration,
    ) {
        // A switch-off goes ahead whatever unit answers; anything else is refused.
        if mode == ConnectMode::SwitchOff {
            eprintln!("warning: {e}");
        } else {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    }
    // Only now, with the unit known, the connect sequence (none for read-only commands).
    let passed = match load.begin(mode).await {
        Ok(mut more) => {
            more.splice(0..0, passed);
            more
        }
        Err(e) => {
            eprintln!("error: {e}");
            return exit_for(&e);
        }
    };
    if let LoadAction::Off = a.action {
        return match confirm_load_off(&mut load, passed).await {
            Ok(errors) => {
                for e in errors {
                    eprintln!("warning: {e}");
                }
                println!("load `{}`: input off (read back)", inst.id);
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_ABORT
            }
        };
    }
    // A timed switch-on starts its guard before anything is switched on.
    let timed = match a.action {
        LoadAction::On { for_ } => for_,
        _ => None,
    };
    let guard = match session.guard_timed_on(inst, timed) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let result = async {
        if changes {
            match load
                .program_protection(envelope.max_discharge_current.0)
                .await
            {
                Ok(()) | Err(InstrumentError::Unsupported { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        match &a.action {
            LoadAction::Set { .. } => {
                if let Some(i) = setpoint {
                    load.set_current(i).await?;
                }
                println!("load `{}`: set", inst.id);
            }
            // A switch-off has its own path above.
            LoadAction::Off => {}
            LoadAction::On { .. } => {
                load.set_input(true).await?;
                let on = load.input().await?;
                println!("load `{}`: input {}", inst.id, if on { "on" } else { "off" });
            }
            LoadAction::Measure { json } => {
                let m = load.measure().await?;
                let on = load.input().await?;
                if *json {
                    println!(
                        "{}",
                        json!({"id": inst.id, "voltage_v": m.voltage, "current_a": m.current, "input": on})
                    );
                } else {
                    println!(
                        "load `{}`: {:.4} V, {:.4} A, input {}",
                        inst.id,
                        m.voltage,
                        m.current,
                        if on { "on" } else { "off" }
                    );
                }
            }
        }
        if mode == ConnectMode::Settings {
            load.check_errors().await?;
        }
        Ok(())
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
        return code;
    };
    // The timed switch-on ends with the input off, read back, whatever happened.
    end_timed_on(
        &mut load,
        &format!("load `{}`", inst.id),
        "input",
        duration,
        result.is_err().then_some(code),
        guard,
        async |i| i.input().await,
        async |i| confirm_load_off(i, Vec::new()).await,
    )
    .await
}
