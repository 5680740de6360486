//! The connected bench for one run: instruments, the DUT bus, samplers, the state-request
//! keep-alive, fault watchdogs, and the safe-state sequence.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant, MissedTickBehavior};

use super::signals::{spawn_monitor, Signals};
use crate::can::{self, Bus, Frame};
use crate::dbc::Message;
use crate::instrument::cellsim::{CellSim, CellSimSet};
use crate::instrument::{self, Driver, InstrumentError, Load, Measurement, Supply};
use crate::plan::condition::Op;
use crate::plan::load::bind_condition;
use crate::plan::{Condition, LoadedPlan, SignalSource, Target};
use crate::report::{InstrumentIdentity, SafeStateAction, WatchdogRecord};
use crate::rig::{Envelope, InstrumentConfig, Rig};

/// An instrument shared by the executor and its sampler; the mutex serializes its commands.
pub type Shared<T> = Arc<Mutex<Box<T>>>;

/// How long one safe-state action may take.
pub const SAFE_STEP_TIMEOUT: Duration = Duration::from_secs(3);

/// Without a frame from the DUT for this long, the bus is considered dead.
pub const DEAD_BUS_AFTER: Duration = Duration::from_secs(2);

/// Setpoint update period for ramps of instrument setpoints.
pub const DEFAULT_UPDATE_PERIOD: Duration = Duration::from_millis(100);

/// The supply's I/O watchdog delay, where the model has one.
pub const SUPPLY_WATCHDOG: Duration = Duration::from_secs(5);

/// How long the safe state waits for the BMS's answer to its standby request (a few cycles
/// of a status message; within [`SAFE_STEP_TIMEOUT`]).
pub const STANDBY_CONFIRM_WITHIN: Duration = Duration::from_secs(2);

/// How often the safe state looks for the BMS's answer while it waits.
const CONFIRM_POLL: Duration = Duration::from_millis(10);

/// Sample the error queue of SCPI instruments every this many samples.
const ERROR_CHECK_EVERY: u32 = 10;

/// The cyclic state request, resolved against the DBC.
struct StateRequest {
    message: Message,
    signal: String,
    labels: Vec<(String, f64)>,
    run: f64,
    standby: f64,
    cycle: Duration,
    confirm: Option<Confirm>,
}

/// The fixture's `confirm:` of the standby request, bound to the DBC.
struct Confirm {
    /// As written in the fixture (enum names kept), for the record.
    text: String,
    /// With enum names replaced by numbers.
    cond: Condition,
    /// Per signal it names: the DBC's value-table names by physical value.
    labels: BTreeMap<String, Vec<(f64, String)>>,
}

/// The connected bench.
pub struct Station {
    /// The DC supply.
    pub supply: Option<Shared<dyn Supply>>,
    /// The electronic load.
    pub load: Option<Shared<dyn Load>>,
    /// The cell simulator.
    pub cells: Option<Shared<dyn CellSim>>,
    /// The DUT bus.
    pub dut_bus: Option<Arc<dyn Bus>>,
    /// The live signal table.
    pub signals: Signals,
    /// The envelope every command is checked against.
    pub envelope: Envelope,
    /// The DUT's cells in series and nominal voltage (for the safe state).
    pub cells_in_series: u32,
    /// Nominal cell voltage.
    pub nominal_cell_voltage: f64,
    state_request: Option<StateRequest>,
    /// The inverter keep-alive (frame, period) the fixture declares.
    keepalive: Option<(Frame, Duration)>,
    /// Whether a plan has stopped the inverter keep-alive.
    pub keepalive_switch: Arc<super::inverter::KeepAliveSwitch>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The DUT bus monitor: it outlives the other background tasks, so that the safe state
    /// reads the BMS's answer to its standby request.
    monitor: std::sync::Mutex<Option<JoinHandle<()>>>,
    supply_entry: Option<InstrumentConfig>,
    load_entry: Option<InstrumentConfig>,
    /// The SCPI instruments' `*IDN?` answers, in connect order.
    pub identities: Vec<InstrumentIdentity>,
    /// The supply's I/O watchdog, once armed: the supply's id and the delay programmed.
    watchdog: std::sync::Mutex<Option<(String, Duration)>>,
}

/// Connect a rig entry again (after a lost connection), as the same kind of instrument.
async fn reconnect(entry: &InstrumentConfig) -> Result<Driver, String> {
    let no_bus = |_: &str| Err("a SCPI instrument has no bus".to_string());
    Ok(instrument::connect(entry, no_bus).await?.driver)
}

fn shared<T: ?Sized>(b: Box<T>) -> Arc<Mutex<Box<T>>> {
    Arc::new(Mutex::new(b))
}

impl Station {
    /// Connect every instrument and bus the run needs. Anything connected before a failure
    /// is returned with the error so that it can still be brought to its safe state.
    pub async fn connect(
        rig: &Rig,
        plan: &LoadedPlan,
        signals: Signals,
    ) -> (Station, Option<String>) {
        let fx = &plan.fixture.value;
        let mut st = Station {
            supply: None,
            load: None,
            cells: None,
            dut_bus: None,
            signals,
            envelope: rig.envelope.clone(),
            cells_in_series: fx.cells_in_series,
            nominal_cell_voltage: fx.nominal_cell_voltage.0,
            state_request: None,
            keepalive: None,
            keepalive_switch: Arc::default(),
            tasks: std::sync::Mutex::new(Vec::new()),
            monitor: std::sync::Mutex::new(None),
            supply_entry: None,
            load_entry: None,
            identities: Vec::new(),
            watchdog: std::sync::Mutex::new(None),
        };
        let err = st.connect_all(rig, plan).await.err();
        (st, err)
    }

    /// Record an instrument's `*IDN?` answer. One that reports another serial number than
    /// the rig file gives is refused: the rig's calibration record would not be this
    /// instrument's. It is kept connected all the same, so that the safe state reaches it.
    fn record_identity(
        &mut self,
        inst: &crate::rig::InstrumentConfig,
        address: &str,
        idn: &str,
    ) -> Result<(), String> {
        let identity = InstrumentIdentity::parse(&inst.id, idn);
        let mismatch = identity.other_serial_than(inst.serial.as_deref()).then(|| {
            format!(
                "instrument `{}` at {address} reports serial number {} (`*IDN?` answered \
                     {idn:?}), but the rig file gives {}, so its calibration record would not \
                     apply; connect the instrument the rig names, or correct `serial:` and the \
                     calibration entry in the rig file",
                inst.id,
                identity.serial,
                inst.serial.as_deref().unwrap_or_default().trim()
            )
        });
        self.identities.push(identity);
        mismatch.map_or(Ok(()), Err)
    }

    async fn connect_all(&mut self, rig: &Rig, plan: &LoadedPlan) -> Result<(), String> {
        // Each bus is opened once and shared: an adapter (SLCAN) can be opened only once.
        let mut buses: BTreeMap<String, Arc<dyn Bus>> = BTreeMap::new();
        let mut open_bus = |b: &crate::rig::BusConfig| -> Result<Arc<dyn Bus>, String> {
            if let Some(bus) = buses.get(&b.id) {
                return Ok(bus.clone());
            }
            let bus: Arc<dyn Bus> = Arc::from(
                can::open(&b.endpoint()).map_err(|e| format!("CAN bus `{}`: {e}", b.id))?,
            );
            buses.insert(b.id.clone(), bus.clone());
            Ok(bus)
        };
        if let Some(b) = rig.dut_bus() {
            let bus = open_bus(b)?;
            let dbc = Arc::new(plan.dbc.clone());
            let monitor = spawn_monitor(bus.as_ref(), dbc, &plan.signals, self.signals.clone());
            if let Some(old) = self
                .monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .replace(monitor)
            {
                old.abort();
            }
            if let Some(sr) = &plan.fixture.value.state_request {
                let m = plan
                    .dbc
                    .message(&sr.message)
                    .ok_or("state request message missing from DBC")?;
                let s = m
                    .signal(&sr.signal)
                    .ok_or("state request signal missing from DBC")?;
                self.state_request = Some(StateRequest {
                    message: m.clone(),
                    signal: sr.signal.clone(),
                    labels: s
                        .value_table
                        .iter()
                        .map(|(k, v)| (v.clone(), *k as f64))
                        .collect(),
                    run: s
                        .label_value(&sr.run)
                        .ok_or("state request run value missing")?,
                    standby: s
                        .label_value(&sr.standby)
                        .ok_or("state request standby value missing")?,
                    cycle: sr.cycle.duration(),
                    confirm: sr
                        .confirm
                        .as_ref()
                        .map(|c| bind_confirm(plan, &c.value))
                        .transpose()?,
                });
            }
            self.keepalive = super::inverter::keepalive_frame(plan)?;
            self.dut_bus = Some(bus);
        }
        // Cell simulators, one or several (a pack split over SCPI units), driven as one.
        let mut cell_units: Vec<Box<dyn CellSim>> = Vec::new();
        for inst in &rig.instruments {
            let on_bus = |bus_id: &str| {
                let b = rig
                    .bus(bus_id)
                    .ok_or_else(|| format!("no bus `{bus_id}` in the rig"))?;
                open_bus(b)
            };
            let connected = instrument::connect(inst, on_bus).await?;
            match connected.driver {
                Driver::Supply(s) => {
                    self.supply = Some(shared(s));
                    self.supply_entry = Some(inst.clone());
                }
                Driver::Load(l) => {
                    self.load = Some(shared(l));
                    self.load_entry = Some(inst.clone());
                }
                Driver::Cells(c) => cell_units.push(c),
            }
            if let Some((address, idn)) = &connected.identity {
                self.record_identity(inst, address, idn)?;
            }
        }
        self.cells = match cell_units.len() {
            0 => None,
            1 => cell_units.pop().map(shared),
            _ => Some(shared(
                Box::new(CellSimSet::new(cell_units)) as Box<dyn CellSim>
            )),
        };
        Ok(())
    }

    fn spawn(&self, h: JoinHandle<()>) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(h);
    }

    /// Program instrument protection (OVP/OCP) to the envelope.
    pub async fn program_protection(&self) -> Result<(), String> {
        if let Some(s) = &self.supply {
            let mut s = s.lock().await;
            s.program_protection(
                self.envelope.max_pack_voltage.0,
                self.envelope.max_charge_current.0,
            )
            .await
            .map_err(|e| format!("programming supply protection: {e}"))?;
            // Where the model has an I/O watchdog, arm it: the samplers' queries feed it while
            // the run lives, and the output goes off by itself if the host falls silent.
            let armed = s
                .arm_watchdog(SUPPLY_WATCHDOG)
                .await
                .map_err(|e| format!("arming the supply's watchdog: {e}"))?;
            if armed {
                let delay = s
                    .dialect()
                    .watchdog
                    .as_ref()
                    .map_or(SUPPLY_WATCHDOG, |w| w.delay_for(SUPPLY_WATCHDOG));
                tracing::info!("supply watchdog armed ({} s)", delay.as_secs());
                *self.watchdog.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((s.id().to_string(), delay));
            }
        }
        Ok(())
    }

    /// Start samplers, the state-request keep-alive and the dead-bus watchdog. Faults are
    /// reported on the returned channel.
    pub fn start_background(&self, sample_period: Duration) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(s) = &self.supply {
            let names = ["supply.v", "supply.i"];
            self.spawn(spawn_sampler(
                s.clone(),
                names,
                sample_period,
                self.signals.clone(),
                tx.clone(),
            ));
        }
        if let Some(l) = &self.load {
            let names = ["load.v", "load.i"];
            self.spawn(spawn_sampler(
                l.clone(),
                names,
                sample_period,
                self.signals.clone(),
                tx.clone(),
            ));
        }
        if let (Some(bus), Some(sr)) = (&self.dut_bus, &self.state_request) {
            let bus = bus.clone();
            let frame = encode_request(sr, sr.run);
            let cycle = sr.cycle;
            let tx2 = tx.clone();
            self.spawn(tokio::spawn(async move {
                let Some(frame) = frame else {
                    let _ = tx2.send("cannot encode the state request".into());
                    return;
                };
                let mut tick = tokio::time::interval(cycle);
                loop {
                    tick.tick().await;
                    if let Err(e) = bus.send(frame.clone()).await {
                        let _ = tx2.send(format!("DUT bus: {e}"));
                        return;
                    }
                }
            }));
        }
        if let (Some(bus), Some((frame, period))) = (&self.dut_bus, &self.keepalive) {
            self.spawn(super::inverter::spawn_keepalive(
                bus.clone(),
                frame.clone(),
                *period,
                self.keepalive_switch.clone(),
                tx.clone(),
            ));
        }
        if self.dut_bus.is_some() {
            let sig = self.signals.clone();
            let started = Instant::now();
            self.spawn(tokio::spawn(async move {
                let mut tick = tokio::time::interval(DEAD_BUS_AFTER / 4);
                loop {
                    tick.tick().await;
                    let last = sig.last_bus_frame().unwrap_or(started);
                    if last.elapsed() > DEAD_BUS_AFTER {
                        let _ = tx.send(format!(
                            "no frame from the DUT on its CAN bus for {:.1} s",
                            last.elapsed().as_secs_f64()
                        ));
                        return;
                    }
                }
            }));
        }
        rx
    }

    /// Stop the background tasks (samplers, keep-alive, dead-bus watchdog). The DUT bus
    /// monitor keeps running until the end of [`Station::safe_state`], which reads the BMS's
    /// answer from it.
    pub fn stop_background(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// Drive every instrument to its safe state: load input off, supply output off, cells to
    /// nominal, BMS standby request. Each action is bounded in time, failures do not stop
    /// the sequence, and each outcome is recorded: confirmed when an answer shows it took
    /// effect (the instrument's read-back, the BMS's own state), otherwise sent only.
    pub async fn safe_state(&self) -> Vec<SafeStateAction> {
        let out = self.drive_safe_state().await;
        self.stop_monitor();
        out
    }

    fn stop_monitor(&self) {
        if let Some(m) = self
            .monitor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            m.abort();
        }
    }

    async fn drive_safe_state(&self) -> Vec<SafeStateAction> {
        self.stop_background();
        let mut out = Vec::new();
        if let Some(l) = &self.load {
            let switch_off = async || -> Result<(), String> {
                let mut g = l.lock().await;
                g.set_input(false).await.map_err(|e| e.to_string())?;
                match g.input().await.map_err(|e| e.to_string())? {
                    false => Ok(()),
                    true => Err("input still on after switching it off".to_string()),
                }
            };
            let mut r = bounded(switch_off()).await;
            if let (Err(first), Some(entry)) = (&r, &self.load_entry) {
                // A lost connection: reconnect once (with *CLS in the dialect's connect
                // sequence) and try again.
                let again = bounded(async {
                    let Driver::Load(fresh) = reconnect(entry).await? else {
                        return Err(format!("`{}` is not a load", entry.id));
                    };
                    *l.lock().await = fresh;
                    switch_off().await
                })
                .await;
                r = again.map_err(|e| format!("{first}; after reconnecting: {e}"));
            }
            out.push(confirmed_action(
                l.lock().await.id(),
                "input off (confirmed by read-back)",
                r,
            ));
        }
        if let Some(s) = &self.supply {
            let switch_off = async || -> Result<(), String> {
                let mut g = s.lock().await;
                g.set_output(false).await.map_err(|e| e.to_string())?;
                match g.output().await.map_err(|e| e.to_string())? {
                    false => Ok(()),
                    true => Err("output still on after switching it off".to_string()),
                }
            };
            let mut r = bounded(switch_off()).await;
            if let (Err(first), Some(entry)) = (&r, &self.supply_entry) {
                let again = bounded(async {
                    let Driver::Supply(fresh) = reconnect(entry).await? else {
                        return Err(format!("`{}` is not a supply", entry.id));
                    };
                    *s.lock().await = fresh;
                    switch_off().await
                })
                .await;
                r = again.map_err(|e| format!("{first}; after reconnecting: {e}"));
            }
            out.push(confirmed_action(
                s.lock().await.id(),
                "output off (confirmed by read-back)",
                r,
            ));
        }
        // A CAN frame is only sent: nothing on the bus acknowledges it to us. Unless an
        // answer confirms it, it counts as done (sent, not confirmed) only while the DUT's
        // bus is alive (a frame from the DUT within the dead-bus time).
        let bus_alive = || {
            self.bus_alive()
                .map_err(|e| format!("sent, but not confirmed: {e}"))
        };
        if let Some(c) = &self.cells {
            let v = self.nominal_cell_voltage;
            let n = self.cells_in_series;
            let r = bounded(async {
                let mut g = c.lock().await;
                for cell in 1..=n {
                    g.set_cell_voltage(cell, v)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            })
            .await;
            let (id, over_can) = {
                let g = c.lock().await;
                (g.id().to_string(), g.over_can())
            };
            let (text, r) = if over_can {
                let text = format!(
                    "all cells to nominal {v:.3} V over CAN: sent, not confirmed (the cell \
                     simulator gives no read-back)"
                );
                (text, r.and_then(|_| bus_alive()))
            } else {
                let text = format!(
                    "all cells to nominal {v:.3} V over SCPI: accepted by the unit, not read back"
                );
                (text, r)
            };
            out.push(action(&id, &text, r));
        }
        if let (Some(bus), Some(sr)) = (&self.dut_bus, &self.state_request) {
            out.push(self.request_standby(bus.as_ref(), sr).await);
        }
        out
    }

    /// At the end of the run, after [`Station::safe_state`]: the supply's I/O watchdog,
    /// when [`Station::program_protection`] armed one. Disarmed (bounded in time) when the
    /// safe state was confirmed (`safe_state_reached`), so that an idle bench or the next
    /// manual command is not switched off by it; otherwise left armed, as a second line of
    /// defence. None when no watchdog was armed.
    pub async fn end_watchdog(&self, safe_state_reached: bool) -> Option<WatchdogRecord> {
        let (id, delay) = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let supply = self.supply.as_ref()?;
        Some(end_watchdog(supply, &id, delay, safe_state_reached).await)
    }

    /// Whether the DUT's bus is alive: a frame from the DUT within the dead-bus time.
    fn bus_alive(&self) -> Result<(), String> {
        match self.signals.last_bus_frame() {
            Some(t) if t.elapsed() <= DEAD_BUS_AFTER => Ok(()),
            Some(t) => Err(format!(
                "no frame from the DUT for {:.1} s",
                t.elapsed().as_secs_f64()
            )),
            None => Err("no frame from the DUT was ever received".into()),
        }
    }

    /// Send the standby request. With the fixture's `confirm`, repeat it every cycle until
    /// the condition holds on values received after the first request, for at most
    /// [`STANDBY_CONFIRM_WITHIN`]; without one, it is sent, not confirmed.
    async fn request_standby(&self, bus: &dyn Bus, sr: &StateRequest) -> SafeStateAction {
        let send = async || -> Result<(), String> {
            let f = encode_request(sr, sr.standby).ok_or("cannot encode the standby request")?;
            bounded(async { bus.send(f).await.map_err(|e| e.to_string()) }).await
        };
        let sent_at = Instant::now();
        let sent = send().await;
        let Some(confirm) = &sr.confirm else {
            let r = sent.and_then(|_| {
                self.bus_alive()
                    .map_err(|e| format!("sent, but not confirmed: {e}"))
            });
            return action(
                "dut",
                "BMS standby request over CAN: sent, not confirmed (the fixture declares no \
                 `confirm`)",
                r,
            );
        };
        let what = format!(
            "BMS standby request over CAN (confirmed by `{}`)",
            confirm.text
        );
        if let Err(e) = sent {
            return action("dut", &what, Err(e));
        }
        let deadline = sent_at + STANDBY_CONFIRM_WITHIN;
        let mut next_send = sent_at + sr.cycle;
        loop {
            if self.signals.eval_since(&confirm.cond, sent_at) == Some(true) {
                return confirmed_action("dut", &what, Ok(()));
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_send {
                // Repeated as the BMS expects its request every cycle; a failure to send
                // shows as the missing answer.
                if let Err(e) = send().await {
                    tracing::warn!("safe state: repeating the standby request: {e}");
                }
                next_send += sr.cycle;
            }
            tokio::time::sleep(CONFIRM_POLL.min(deadline.saturating_duration_since(now))).await;
        }
        let dead = self
            .bus_alive()
            .err()
            .map(|e| format!("; {e}"))
            .unwrap_or_default();
        action(
            "dut",
            &what,
            Err(format!(
                "sent, but not confirmed: `{}` did not hold within {} s of the request; last \
                 seen: {}{dead}",
                confirm.text,
                STANDBY_CONFIRM_WITHIN.as_secs_f64(),
                self.last_seen(confirm, sent_at)
            )),
        )
    }

    /// The latest value of each signal of a confirm condition, with its value-table name
    /// and whether it arrived before `since`.
    fn last_seen(&self, confirm: &Confirm, since: Instant) -> String {
        let seen: Vec<String> = confirm
            .cond
            .signals()
            .into_iter()
            .map(|name| match self.signals.get(name) {
                None => format!("{name}: nothing received"),
                Some((v, at)) => {
                    let label = confirm
                        .labels
                        .get(name)
                        .and_then(|ls| ls.iter().find(|(x, _)| Op::Eq.apply(*x, v)))
                        .map(|(_, l)| format!(" ({l})"))
                        .unwrap_or_default();
                    let stale = if at < since {
                        ", received before the request"
                    } else {
                        ""
                    };
                    format!("{name} = {v}{label}{stale}")
                }
            })
            .collect();
        seen.join(", ")
    }

    /// Set any stimulus target, checked against the envelope first; recorded in the trace.
    /// Returns when the command was issued and when the instrument had accepted it.
    pub async fn set_target(
        &self,
        target: Target,
        value: f64,
    ) -> Result<(Instant, Instant), String> {
        target
            .check_envelope(&self.envelope, value)
            .map_err(|e| e.to_string())?;
        let issued = Instant::now();
        let e = |e: &dyn std::fmt::Display| e.to_string();
        match target {
            Target::Cell(n) => {
                let c = self.cells.as_ref().ok_or("the rig has no cell simulator")?;
                c.lock()
                    .await
                    .set_cell_voltage(n, value)
                    .await
                    .map_err(|x| e(&x))?;
            }
            Target::Ntc(n) => {
                let c = self.cells.as_ref().ok_or("the rig has no cell simulator")?;
                c.lock()
                    .await
                    .set_temperature(n, value)
                    .await
                    .map_err(|x| e(&x))?;
            }
            Target::SupplyCurrent | Target::SupplyVoltage => {
                let s = self.supply.as_ref().ok_or("the rig has no supply")?;
                let mut g = s.lock().await;
                if target == Target::SupplyCurrent {
                    g.set_current(value).await.map_err(|x| e(&x))?;
                } else {
                    g.set_voltage(value).await.map_err(|x| e(&x))?;
                }
            }
            Target::LoadCurrent => {
                let l = self.load.as_ref().ok_or("the rig has no load")?;
                l.lock().await.set_current(value).await.map_err(|x| e(&x))?;
            }
        }
        let unit = target.dimension().unit();
        self.signals
            .update(issued, &[(&target.channel(), value, unit)]);
        Ok((issued, Instant::now()))
    }

    /// Send one state request by its value-table name.
    pub async fn send_state_request(&self, label: &str) -> Result<(), String> {
        let (bus, sr) = match (&self.dut_bus, &self.state_request) {
            (Some(b), Some(sr)) => (b, sr),
            _ => return Err("the DUT has no state request".into()),
        };
        let value = sr
            .labels
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("`{label}` is not a state request"))?;
        let f = encode_request(sr, value).ok_or("cannot encode the state request")?;
        bus.send(f).await.map_err(|e| e.to_string())?;
        self.signals
            .update(Instant::now(), &[("dut.state_request", value, "")]);
        Ok(())
    }

    /// How often a ramp of this target updates its setpoint.
    pub async fn update_period(&self, target: Target) -> Duration {
        match (target, &self.cells) {
            (Target::Cell(_) | Target::Ntc(_), Some(c)) => c.lock().await.update_period(),
            _ => DEFAULT_UPDATE_PERIOD,
        }
    }

    /// Setpoint accuracy for a target (half-width, in its unit).
    pub async fn accuracy(&self, target: Target, value: f64) -> f64 {
        match target {
            Target::Cell(_) => match &self.cells {
                Some(c) => c.lock().await.accuracy(),
                None => 0.0,
            },
            Target::Ntc(_) => match &self.cells {
                Some(c) => c.lock().await.temperature_accuracy(),
                None => 0.0,
            },
            Target::SupplyCurrent | Target::SupplyVoltage => match &self.supply {
                Some(s) => {
                    let g = s.lock().await;
                    let a = &g.dialect().accuracy;
                    let q = if target == Target::SupplyCurrent {
                        &a.current
                    } else {
                        &a.voltage
                    };
                    q.set.map(|spec| spec.uncertainty(value)).unwrap_or(0.0)
                }
                None => 0.0,
            },
            Target::LoadCurrent => match &self.load {
                Some(l) => l
                    .lock()
                    .await
                    .dialect()
                    .accuracy
                    .current
                    .set
                    .map(|spec| spec.uncertainty(value))
                    .unwrap_or(0.0),
                None => 0.0,
            },
        }
    }

    /// Measurement accuracy of an instrument signal (`supply.v`, `load.i`, ...) at a value.
    pub async fn measure_accuracy(&self, signal: &str, value: f64) -> Option<f64> {
        let (inst, quantity) = signal.split_once('.')?;
        let dialect = match inst {
            "supply" => self.supply.as_ref()?.lock().await.dialect().clone(),
            "load" => self.load.as_ref()?.lock().await.dialect().clone(),
            _ => return None,
        };
        let q = match quantity {
            "v" => dialect.accuracy.voltage,
            "i" => dialect.accuracy.current,
            _ => return None,
        };
        Some(q.measure.uncertainty(value))
    }

    /// Set one cell, checked against the envelope first.
    pub async fn set_cell(&self, cell: u32, volts: f64) -> Result<(), String> {
        self.set_target(Target::Cell(cell), volts).await.map(|_| ())
    }
}

/// What a sampler needs of an instrument: its id, a reading, and its error queue.
#[async_trait::async_trait]
trait Sampled: Send {
    fn sampled_id(&self) -> String;
    async fn sample(&mut self) -> Result<Measurement, InstrumentError>;
    async fn errors(&mut self) -> Result<(), InstrumentError>;
}

#[async_trait::async_trait]
impl Sampled for Box<dyn Supply> {
    fn sampled_id(&self) -> String {
        self.id().to_string()
    }
    async fn sample(&mut self) -> Result<Measurement, InstrumentError> {
        self.measure().await
    }
    async fn errors(&mut self) -> Result<(), InstrumentError> {
        self.check_errors().await
    }
}

#[async_trait::async_trait]
impl Sampled for Box<dyn Load> {
    fn sampled_id(&self) -> String {
        self.id().to_string()
    }
    async fn sample(&mut self) -> Result<Measurement, InstrumentError> {
        self.measure().await
    }
    async fn errors(&mut self) -> Result<(), InstrumentError> {
        self.check_errors().await
    }
}

/// Sample an instrument's voltage and current into `names` every `period`, and its error
/// queue every `ERROR_CHECK_EVERY` samples; a failure is reported on `faults` and ends it.
fn spawn_sampler<T: Sampled + 'static>(
    inst: Arc<Mutex<T>>,
    names: [&'static str; 2],
    period: Duration,
    signals: Signals,
    faults: mpsc::UnboundedSender<String>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        for n in 1u32.. {
            tick.tick().await;
            let mut g = inst.lock().await;
            let id = g.sampled_id();
            let r = g.sample().await;
            let at = Instant::now();
            match r {
                Ok(m) => signals.update(
                    at,
                    &[(names[0], m.voltage, "V"), (names[1], m.current, "A")],
                ),
                Err(e) => {
                    let _ = faults.send(format!("lost instrument `{id}`: {e}"));
                    return;
                }
            }
            if n % ERROR_CHECK_EVERY == 0 {
                if let Err(e) = g.errors().await {
                    let _ = faults.send(format!("instrument `{id}` reported an error: {e}"));
                    return;
                }
            }
        }
    })
}

fn encode_request(sr: &StateRequest, value: f64) -> Option<Frame> {
    let data = sr.message.encode(&[(sr.signal.as_str(), value)]).ok()?;
    Frame::new(sr.message.id, sr.message.extended, &data).ok()
}

async fn bounded<F: std::future::Future<Output = Result<(), String>>>(f: F) -> Result<(), String> {
    match timeout(SAFE_STEP_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {} s",
            SAFE_STEP_TIMEOUT.as_secs()
        )),
    }
}

/// The fixture's standby confirmation, bound to the plan's DBC, with the value-table names
/// of the signals it reads.
fn bind_confirm(plan: &LoadedPlan, written: &Condition) -> Result<Confirm, String> {
    let cond = bind_condition(plan, written)
        .map_err(|e| format!("state_request.confirm `{written}`: {e}"))?;
    let labels = cond
        .signals()
        .into_iter()
        .filter_map(|name| match plan.signals.get(name) {
            Some(SignalSource::Can { message, signal }) => {
                let s = plan.dbc.message(message)?.signal(signal)?;
                let names = s
                    .value_table
                    .values()
                    .filter_map(|l| s.label_value(l).map(|v| (v, l.clone())))
                    .collect();
                Some((name.to_string(), names))
            }
            _ => None,
        })
        .collect();
    Ok(Confirm {
        text: written.to_string(),
        cond,
        labels,
    })
}

/// Disarm `supply`'s I/O watchdog (armed as `id` with `delay`) when the safe state was
/// confirmed, and say what became of it.
async fn end_watchdog(
    supply: &Shared<dyn Supply>,
    id: &str,
    delay: Duration,
    safe_state_reached: bool,
) -> WatchdogRecord {
    let left_armed = if safe_state_reached {
        let r = bounded(async {
            match supply.lock().await.disarm_watchdog().await {
                Ok(true) => Ok(()),
                Ok(false) => Err("the instrument has no watchdog to disarm".to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        r.err().map(|e| format!("disarming it failed: {e}"))
    } else {
        Some(
            "the safe state was not confirmed, so it stays armed as a second line of defence"
                .to_string(),
        )
    };
    WatchdogRecord {
        instrument: id.to_string(),
        armed_s: delay.as_secs_f64(),
        disarmed: left_armed.is_none(),
        left_armed,
    }
}

/// A step that is done when `r` is Ok, without an answer confirming it.
fn action(instrument: &str, what: &str, r: Result<(), String>) -> SafeStateAction {
    SafeStateAction {
        instrument: instrument.to_string(),
        action: what.to_string(),
        ok: r.is_ok(),
        confirmed: false,
        error: r.err(),
    }
}

/// A step whose Ok `r` comes from an answer (a read-back, the BMS's own state).
fn confirmed_action(instrument: &str, what: &str, r: Result<(), String>) -> SafeStateAction {
    SafeStateAction {
        confirmed: r.is_ok(),
        ..action(instrument, what, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scpi::{builtin_dialect, Dialect, ScpiError};

    /// The fake's watchdog as the instrument sees it.
    #[derive(Debug)]
    struct WatchdogState {
        armed: bool,
        disarms: u32,
    }

    /// A supply whose watchdog is a flag: armed until a disarm succeeds.
    struct FakeSupply {
        dialect: Dialect,
        watchdog: Arc<std::sync::Mutex<WatchdogState>>,
        disarm_fails: bool,
    }

    #[async_trait::async_trait]
    impl Supply for FakeSupply {
        fn id(&self) -> &str {
            "psu"
        }
        fn dialect(&self) -> &Dialect {
            &self.dialect
        }
        async fn identify(&mut self) -> Result<String, InstrumentError> {
            Ok("EA,PSB,1,1".into())
        }
        async fn set_voltage(&mut self, _: f64) -> Result<(), InstrumentError> {
            Ok(())
        }
        async fn set_current(&mut self, _: f64) -> Result<(), InstrumentError> {
            Ok(())
        }
        async fn set_output(&mut self, _: bool) -> Result<(), InstrumentError> {
            Ok(())
        }
        async fn output(&mut self) -> Result<bool, InstrumentError> {
            Ok(false)
        }
        async fn measure(&mut self) -> Result<Measurement, InstrumentError> {
            Ok(Measurement {
                voltage: 0.0,
                current: 0.0,
            })
        }
        async fn program_protection(&mut self, _: f64, _: f64) -> Result<(), InstrumentError> {
            Ok(())
        }
        async fn check_errors(&mut self) -> Result<(), InstrumentError> {
            Ok(())
        }
        async fn disarm_watchdog(&mut self) -> Result<bool, InstrumentError> {
            let mut w = self.watchdog.lock().unwrap();
            w.disarms += 1;
            if self.disarm_fails {
                return Err(InstrumentError::Scpi {
                    id: "psu".into(),
                    error: ScpiError::Instrument {
                        code: -113,
                        message: "Undefined header".into(),
                        after: "SYST:COMM:WDOG OFF".into(),
                    },
                });
            }
            w.armed = false;
            Ok(true)
        }
    }

    /// After a confirmed safe state the watchdog is disarmed, or the failure is recorded;
    /// without one it is left armed and nothing is sent.
    #[rstest::rstest]
    #[case::disarmed_after_a_confirmed_safe_state(true, false, 1, None)]
    #[case::a_failed_disarm_is_recorded(
        true,
        true,
        1,
        Some("disarming it failed: instrument `psu`: instrument reported error -113")
    )]
    #[case::left_armed_without_a_confirmed_safe_state(
        false,
        false,
        0,
        Some("the safe state was not confirmed")
    )]
    #[tokio::test]
    async fn the_watchdog_is_disarmed_only_after_a_confirmed_safe_state(
        #[case] safe_state_reached: bool,
        #[case] disarm_fails: bool,
        #[case] disarms: u32,
        #[case] left_armed: Option<&str>,
    ) {
        let watchdog = Arc::new(std::sync::Mutex::new(WatchdogState {
            armed: true,
            disarms: 0,
        }));
        let fake = FakeSupply {
            dialect: builtin_dialect("ea-psb").unwrap(),
            watchdog: watchdog.clone(),
            disarm_fails,
        };
        let supply: Shared<dyn Supply> = shared(Box::new(fake) as Box<dyn Supply>);
        let record = end_watchdog(&supply, "psu", SUPPLY_WATCHDOG, safe_state_reached).await;
        assert_eq!(record.instrument, "psu");
        assert_eq!(record.armed_s, 5.0);
        assert_eq!(record.disarmed, left_armed.is_none(), "{record:?}");
        match (left_armed, &record.left_armed) {
            (None, None) => {}
            (Some(start), Some(why)) => assert!(why.starts_with(start), "{why}"),
            (want, got) => panic!("left_armed: want {want:?}, got {got:?}"),
        }
        // The instrument's side: armed unless a disarm succeeded.
        let w = watchdog.lock().unwrap();
        assert_eq!(w.disarms, disarms, "{w:?}");
        assert_eq!(w.armed, left_armed.is_some(), "{w:?}");
    }
}
