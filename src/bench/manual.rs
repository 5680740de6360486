//! `hilrig supply|load [--rig R] [--id ID] set | on [--for D] | off | measure`: manual control
//! of one DC supply or electronic load, one engine for both ([`Kind`] says what differs).
//!
//! Every setpoint is checked against the rig's envelope before anything is sent. `set` and
//! `on` take the bench lock and program the protections (OVP/OCP, where the model has them)
//! to the envelope first; `off` is always allowed, even while a run holds the lock, and
//! fails unless the read-back confirms it. Read-only actions send nothing at connect but
//! `*IDN?` (no `*CLS`, no mode change). `on` leaves the output (input) on when the command
//! ends, as asked; `on --for D` stays in the foreground, switches it off after `D` (or on
//! Ctrl-C), and starts the out-of-process guard so that a killed hilrig still leaves it off
//! (see `crate::guard`). Exit codes as for `hilrig instruments`.

use std::time::Duration;

use serde_json::json;

use super::session::Session;
use crate::exit::{Failure, EXIT_ABORT};
use crate::guard::Guard;
use crate::instrument::{
    confirm_load_off, confirm_supply_off, exit_for, ConnectMode, InstrumentError, Load,
    Measurement, ScpiLoad, ScpiSupply, Supply, SwitchOff,
};
use crate::rig::{Envelope, Role};
use crate::scpi::Dialect;
use crate::units::Dimension;

/// The options `hilrig supply` and `hilrig load` share.
#[derive(Debug, Default)]
pub struct ManualOptions {
    /// Instrument id from the rig file (default: the rig's first of its kind).
    pub id: Option<String>,
    /// Wait this long for the bench lock when a run holds it.
    pub wait: Option<Duration>,
    /// Change an instrument whose calibration has expired (as for `run`).
    pub allow_expired_calibration: bool,
}

/// One manual action, as given on the command line (setpoints still text).
#[derive(Debug)]
pub enum Action {
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

/// The two kinds of instrument under manual control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A DC supply (`hilrig supply`).
    Supply,
    /// An electronic load (`hilrig load`).
    Load,
}

impl Kind {
    /// Role in the rig file.
    fn role(self) -> Role {
        match self {
            Kind::Supply => Role::Supply,
            Kind::Load => Role::Load,
        }
    }

    /// `supply` or `load`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Supply => "supply",
            Kind::Load => "load",
        }
    }

    /// `output` or `input`.
    fn port(self) -> &'static str {
        match self {
            Kind::Supply => "output",
            Kind::Load => "input",
        }
    }

    /// Check setpoints against the rig's envelope (nothing sent); a load has no voltage.
    fn check(
        self,
        envelope: &Envelope,
        voltage: Option<f64>,
        current: Option<f64>,
    ) -> Result<(), String> {
        if let (Kind::Supply, Some(v)) = (self, voltage) {
            envelope
                .check_supply_voltage(v)
                .map_err(|e| e.to_string())?;
        }
        let Some(i) = current else { return Ok(()) };
        match self {
            Kind::Supply => envelope.check_supply_current(i),
            Kind::Load => envelope.check_load_current(i),
        }
        .map_err(|e| e.to_string())
    }

    /// Connect read-only (nothing but `*IDN?` sent); the errors met on the way.
    async fn connect(
        self,
        id: &str,
        address: &str,
        dialect: Dialect,
        timeout: Duration,
    ) -> Result<(Device, Vec<InstrumentError>), InstrumentError> {
        let mode = ConnectMode::ReadOnly;
        Ok(match self {
            Kind::Supply => {
                let (d, e) = ScpiSupply::connect_with(id, address, dialect, timeout, mode).await?;
                (Device::Supply(d), e)
            }
            Kind::Load => {
                let (d, e) = ScpiLoad::connect_with(id, address, dialect, timeout, mode).await?;
                (Device::Load(d), e)
            }
        })
    }
}

/// A connected supply or load.
enum Device {
    Supply(ScpiSupply),
    Load(ScpiLoad),
}

impl Device {
    /// The identity string the instrument answered.
    fn identity(&self) -> &str {
        match self {
            Device::Supply(d) => d.identity(),
            Device::Load(d) => d.identity(),
        }
    }

    /// The dialect's connect sequence for `mode`; the errors a switch-off went past.
    async fn begin(&mut self, mode: ConnectMode) -> Result<Vec<InstrumentError>, InstrumentError> {
        match self {
            Device::Supply(d) => d.begin(mode).await,
            Device::Load(d) => d.begin(mode).await,
        }
    }

    /// Program the protections from the envelope, where the model has them (a load
    /// without an OCP command is programmed nothing).
    async fn protect(&mut self, envelope: &Envelope) -> Result<(), InstrumentError> {
        let (v, charge, discharge) = (
            envelope.max_pack_voltage.0,
            envelope.max_charge_current.0,
            envelope.max_discharge_current.0,
        );
        match self {
            Device::Supply(d) => d.program_protection(v, charge).await,
            Device::Load(d) => match d.program_protection(discharge).await {
                Ok(()) | Err(InstrumentError::Unsupported { .. }) => Ok(()),
                Err(e) => Err(e),
            },
        }
    }

    /// Program the checked setpoints.
    async fn set(
        &mut self,
        voltage: Option<f64>,
        current: Option<f64>,
    ) -> Result<(), InstrumentError> {
        if let (Device::Supply(d), Some(v)) = (&mut *self, voltage) {
            d.set_voltage(v).await?;
        }
        match (self, current) {
            (Device::Supply(d), Some(i)) => d.set_current(i).await,
            (Device::Load(d), Some(i)) => d.set_current(i).await,
            (_, None) => Ok(()),
        }
    }

    /// Switch the output (input) on or off.
    async fn switch(&mut self, on: bool) -> Result<(), InstrumentError> {
        match self {
            Device::Supply(d) => d.set_output(on).await,
            Device::Load(d) => d.set_input(on).await,
        }
    }

    /// Read the output (input) state back.
    async fn is_on(&mut self) -> Result<bool, InstrumentError> {
        match self {
            Device::Supply(d) => d.output().await,
            Device::Load(d) => d.input().await,
        }
    }

    /// Read terminal voltage and current.
    async fn measure(&mut self) -> Result<Measurement, InstrumentError> {
        match self {
            Device::Supply(d) => Supply::measure(d).await,
            Device::Load(d) => Load::measure(d).await,
        }
    }

    /// Read the instrument's error queue.
    async fn check_errors(&mut self) -> Result<(), InstrumentError> {
        match self {
            Device::Supply(d) => Supply::check_errors(d).await,
            Device::Load(d) => Load::check_errors(d).await,
        }
    }

    /// Switch off and confirm it by read-back, past `earlier` errors.
    async fn confirm_off(
        &mut self,
        earlier: Vec<InstrumentError>,
    ) -> Result<Vec<InstrumentError>, SwitchOff> {
        match self {
            Device::Supply(d) => confirm_supply_off(d, earlier).await,
            Device::Load(d) => confirm_load_off(d, earlier).await,
        }
    }
}

/// Run one manual action on the `kind` of instrument in `session` (see
/// [`Session::start`]); returns the exit code, or the failure that stopped it.
pub async fn run(
    kind: Kind,
    session: Session,
    o: ManualOptions,
    action: Action,
) -> Result<i32, Failure> {
    let inst = session.by_role(kind.role(), o.id.as_deref())?;
    let label = format!("{} `{}`", kind.name(), inst.id);
    let envelope = &session.rig.envelope;
    // Every value is checked before anything is sent.
    let mut setpoints = (None, None);
    if let Action::Set { voltage, current } = &action {
        let parse =
            |text: &Option<String>, dim| text.as_deref().map(|t| parse_value(t, dim)).transpose();
        let checked = parse(voltage, Dimension::Voltage)
            .and_then(|v| Ok((v, parse(current, Dimension::Current)?)))
            .and_then(|(v, i)| kind.check(envelope, v, i).map(|()| (v, i)));
        setpoints = checked.map_err(|e| format!("{label}: {e}"))?;
    }
    let changes = matches!(action, Action::Set { .. } | Action::On { .. });
    let _lock = if changes {
        let what = format!("hilrig {} --id {}", kind.name(), inst.id);
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
    let (mut dev, passed) = kind
        .connect(&inst.id, &address, dialect, inst.timeout.duration())
        .await?;
    if let Err(e) = session.check_unit(
        inst,
        dev.identity(),
        mode == ConnectMode::Settings,
        o.allow_expired_calibration,
    ) {
        // A switch-off goes ahead whatever unit answers; anything else is refused.
        if mode != ConnectMode::SwitchOff {
            return Err(Failure::abort(e));
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
                println!("{label}: {} off (read back)", kind.port());
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
                println!("{label}: {} {}", kind.port(), on_off(dev.is_on().await?));
            }
            // A switch-off has its own path above.
            Action::Off => {}
            Action::Measure { json } => {
                let m = dev.measure().await?;
                let on = dev.is_on().await?;
                if *json {
                    println!(
                        "{}",
                        json!({"id": inst.id, "voltage_v": m.voltage, "current_a": m.current, (kind.port()): on})
                    );
                } else {
                    println!(
                        "{label}: {:.4} V, {:.4} A, {} {}",
                        m.voltage,
                        m.current,
                        kind.port(),
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
        kind.port(),
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

/// The longest `on --for` of a manual switch-on.
pub const MAX_ON_FOR: Duration = Duration::from_secs(24 * 3600);

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
async fn end_timed_on<T: ?Sized>(
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
fn parse_value(text: &str, dim: crate::units::Dimension) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) => Ok(v),
        Err(_) => crate::units::Quantity::parse_as(text, dim).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::supply_inside(Kind::Supply, Some(58.4), Some(10.0), None)]
    #[case::supply_voltage_above(Kind::Supply, Some(61.0), None, Some("supply voltage"))]
    #[case::supply_current_above(Kind::Supply, None, Some(25.0), Some("supply current"))]
    #[case::load_inside(Kind::Load, None, Some(25.0), None)]
    #[case::load_current_above(Kind::Load, None, Some(31.0), Some("load current"))]
    #[case::load_has_no_voltage(Kind::Load, Some(100.0), None, None)]
    #[case::negative(Kind::Supply, Some(-1.0), None, Some("supply voltage"))]
    fn setpoints_are_checked_against_the_envelope_of_their_kind(
        #[case] kind: Kind,
        #[case] voltage: Option<f64>,
        #[case] current: Option<f64>,
        #[case] refused: Option<&str>,
    ) {
        match (kind.check(&Envelope::example(), voltage, current), refused) {
            (Ok(()), None) => {}
            (Err(e), Some(what)) => assert!(e.starts_with(what), "{e}"),
            (got, want) => panic!("{kind:?}: {got:?}, expected refusal {want:?}"),
        }
    }

    #[rstest::rstest]
    #[case::number("58.4", Dimension::Voltage, Ok(58.4))]
    #[case::quantity("58.4 V", Dimension::Voltage, Ok(58.4))]
    #[case::milli("500 mA", Dimension::Current, Ok(0.5))]
    #[case::wrong_unit("5 A", Dimension::Voltage, Err(()))]
    fn a_setpoint_is_a_number_or_a_quantity(
        #[case] text: &str,
        #[case] dim: Dimension,
        #[case] want: Result<f64, ()>,
    ) {
        assert_eq!(parse_value(text, dim).map_err(|_| ()), want, "{text}");
    }

    #[test]
    fn names_and_ports_follow_the_kind() {
        assert_eq!(
            (
                Kind::Supply.name(),
                Kind::Supply.port(),
                Kind::Supply.role()
            ),
            ("supply", "output", Role::Supply)
        );
        assert_eq!(
            (Kind::Load.name(), Kind::Load.port(), Kind::Load.role()),
            ("load", "input", Role::Load)
        );
    }
}
