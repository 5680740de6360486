//! `hilrig supply [--rig R] [--id ID] set --voltage V --current A | on | off | measure`:
//! manual control of a DC supply.
//!
//! Every setting is checked against the rig's envelope before anything is sent. `set` and
//! `on` take the bench lock and program OVP/OCP to the envelope first; `off` is always
//! allowed, even while a run holds the lock. `on` leaves the output on when the command
//! ends, as asked; `on --for D` stays in the foreground, switches it off after `D` (or on
//! Ctrl-C), and starts the out-of-process guard so that a killed hilrig still leaves it off
//! (see `crate::guard`). Exit codes as for `hilrig instruments`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::instruments::{end_timed_on, exit_for, parse_value, Session};
use super::EXIT_ABORT;
use crate::instrument::{confirm_supply_off, ConnectMode, ScpiSupply, Supply};
use crate::rig::Role;
use crate::units::Dimension;

/// Arguments of `hilrig supply`.
#[derive(Debug, Args)]
pub struct SupplyArgs {
    /// Rig file (default: rig/sim.yaml, the built-in simulated bench).
    #[arg(long, global = true)]
    pub rig: Option<PathBuf>,
    /// Supply id from the rig file (default: the rig's first supply).
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
    pub action: SupplyAction,
}

/// `hilrig supply` actions.
#[derive(Debug, Subcommand)]
pub enum SupplyAction {
    /// Program the output voltage and/or current limit (`58.4 V` or `58.4`).
    Set {
        /// Output voltage.
        #[arg(long, allow_negative_numbers = true)]
        voltage: Option<String>,
        /// Current limit.
        #[arg(long, allow_negative_numbers = true)]
        current: Option<String>,
    },
    /// Switch the output on; it stays on after the command ends (see --for).
    #[command(long_about = SUPPLY_ON_HELP)]
    On {
        /// Keep the output on this long (`10 min`, at most 24 h), then switch it off; a guard
        /// process switches it off if hilrig is killed first.
        #[arg(long = "for", value_name = "DURATION", value_parser = super::instruments::parse_on_for)]
        for_: Option<std::time::Duration>,
    },
    /// Switch the output off.
    Off,
    /// Read terminal voltage, current and output state.
    Measure {
        /// One JSON object instead of a line for people.
        #[arg(long)]
        json: bool,
    },
}

const SUPPLY_ON_HELP: &str = "Switch the output on.

Without --for the output stays on after the command ends: that is what was asked, and no
process watches it (no guard; a run disarms the I/O watchdog it armed when it ends cleanly,
but one left armed by a run that did not, or was killed, may still switch the supply off
when the host falls silent). Switch it off with `hilrig supply off`.

With --for D (`90 s`, `10 min`, at most 24 h) the command stays in the foreground holding
the bench lock, reads the output back once a second, and switches it off (confirmed by
read-back) when D has passed, on Ctrl-C or SIGTERM, or when the output went off by itself.
On a lab rig it first starts the out-of-process guard (`hilrig guard`, as `hilrig run`
does): if hilrig is killed (SIGKILL, the OOM killer) the guard switches the output off and
writes guard.json into a `hilrig-supply-on-PID` directory of the system's temporary
directory.";

/// Run `hilrig supply ...` and return the exit code.
pub async fn supply(a: SupplyArgs) -> i32 {
    let session = match Session::start(a.rig.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let inst = match session.by_role(Role::Supply, a.id.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let envelope = &session.rig.envelope;
    // Every value is checked before anything is sent.
    let mut setpoints = (None, None);
    if let SupplyAction::Set { voltage, current } = &a.action {
        if voltage.is_none() && current.is_none() {
            eprintln!("error: give --voltage, --current or both");
            return EXIT_ABORT;
        }
        let checked = || -> Result<(Option<f64>, Option<f64>), String> {
            let parse = |text: &Option<String>, dim| {
                text.as_deref().map(|t| parse_value(t, dim)).transpose()
            };
            let v = parse(voltage, Dimension::Voltage)?;
            let i = parse(current, Dimension::Current)?;
            if let Some(v) = v {
                envelope
                    .check_supply_voltage(v)
                    .map_err(|e| e.to_string())?;
            }
            if let Some(i) = i {
                envelope
                    .check_supply_current(i)
                    .map_err(|e| e.to_string())?;
            }
            Ok((v, i))
        };
        setpoints = match checked() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: supply `{}`: {e}", inst.id);
                return EXIT_ABORT;
            }
        };
    }
    let changes = matches!(a.action, SupplyAction::Set { .. } | SupplyAction::On { .. });
    let _lock = if changes {
        match session
            .lock(&format!("hilrig supply --id {}", inst.id), a.wait)
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
    // Read-only actions send nothing at connect but `*IDN?`; a switch-off goes ahead past
    // the errors of the connect sequence.
    let mode = match a.action {
        SupplyAction::Measure { .. } => ConnectMode::ReadOnly,
        SupplyAction::Off => ConnectMode::SwitchOff,
        _ => ConnectMode::Settings,
    };
    let timeout = inst.timeout.duration();
    let (mut psu, passed) =
        match ScpiSupply::connect_with(&inst.id, &address, dialect, timeout, ConnectMode::ReadOnly)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return exit_for(&e);
            }
        };
    if let Err(e) = session.check_unit(
        inst,
        psu.identity(),
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
    let passed = match psu.begin(mode).await {
        Ok(mut more) => {
            more.splice(0..0, passed);
            more
        }
        Err(e) => {
            eprintln!("error: {e}");
            return exit_for(&e);
        }
    };
    if let SupplyAction::Off = a.action {
        return match confirm_supply_off(&mut psu, passed).await {
            Ok(errors) => {
                for e in errors {
                    eprintln!("warning: {e}");
                }
                println!("supply `{}`: output off (read back)", inst.id);
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
        SupplyAction::On { for_ } => for_,
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
            psu.program_protection(
                envelope.max_pack_voltage.0,
                envelope.max_charge_current.0,
            )
            .await?;
        }
        match &a.action {
            SupplyAction::Set { .. } => {
                if let Some(v) = setpoints.0 {
                    psu.set_voltage(v).await?;
                }
                if let Some(i) = setpoints.1 {
                    psu.set_current(i).await?;
                }
                println!("supply `{}`: set", inst.id);
            }
            SupplyAction::On { .. } => {
                psu.set_output(true).await?;
                println!("supply `{}`: output {}", inst.id, on_off(psu.output().await?));
            }
            // A switch-off has its own path above.
            SupplyAction::Off => {}
            SupplyAction::Measure { json } => {
                let m = psu.measure().await?;
                let on = psu.output().await?;
                if *json {
                    println!(
                        "{}",
                        json!({"id": inst.id, "voltage_v": m.voltage, "current_a": m.current, "output": on})
                    );
                } else {
                    println!(
                        "supply `{}`: {:.4} V, {:.4} A, output {}",
                        inst.id,
                        m.voltage,
                        m.current,
                        on_off(on)
                    );
                }
            }
        }
        if mode == ConnectMode::Settings {
            psu.check_errors().await?;
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
    // The timed switch-on ends with the output off, read back, whatever happened.
    end_timed_on(
        &mut psu,
        &format!("supply `{}`", inst.id),
        "output",
        duration,
        result.is_err().then_some(code),
        guard,
        async |i| i.output().await,
        async |i| confirm_supply_off(i, Vec::new()).await,
    )
    .await
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}
