//! The connected bench for one run: instruments, the DUT bus, samplers, the state-request
//! keep-alive, fault watchdogs, and the safe-state sequence.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant, MissedTickBehavior};

use super::signals::{spawn_monitor, Signals};
use super::RunError;
use crate::can::{self, Bus, Frame};
use crate::dbc::Message;
use crate::instrument::cellsim::{CellSim, CellSimSet};
use crate::instrument::{self, Driver, InstrumentError, Load, Measurement, Scope, Supply, Switch};
use crate::plan::condition::Op;
use crate::plan::load::bind_condition;
use crate::plan::{Condition, LoadedPlan, SignalSource, Target};
use crate::report::{InstrumentIdentity, SafeStateAction, WatchdogRecord};
use crate::rig::{Envelope, InstrumentConfig, Rig, ShortPath};

mod safe_state;

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
    /// The oscilloscope on the pack current, when the rig has one.
    pub scope: Option<Shared<dyn Scope>>,
    /// The short-circuit switch and the path it closes.
    pub short: Option<(Shared<dyn Switch>, ShortPath)>,
    /// The short-circuit switch's rig entry (to reconnect in the safe state).
    short_entry: Option<InstrumentConfig>,
    /// Opens the short-circuit switch at `max_closed` after a closing, whatever becomes of
    /// the step that closed it (an aborted run included).
    short_timer: std::sync::Mutex<Option<JoinHandle<()>>>,
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
    ) -> (Station, Option<RunError>) {
        let fx = &plan.fixture.value;
        let mut st = Station {
            supply: None,
            load: None,
            cells: None,
            scope: None,
            short: None,
            short_entry: None,
            short_timer: std::sync::Mutex::new(None),
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
    ) -> Result<(), RunError> {
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
        mismatch.map_or(Ok(()), |m| Err(RunError::Identity(m)))
    }

    async fn connect_all(&mut self, rig: &Rig, plan: &LoadedPlan) -> Result<(), RunError> {
        // Each bus is opened once and shared: an adapter (SLCAN) can be opened only once.
        let mut buses: BTreeMap<String, Arc<dyn Bus>> = BTreeMap::new();
        let mut open_bus = |b: &crate::rig::BusConfig| -> Result<Arc<dyn Bus>, RunError> {
            if let Some(bus) = buses.get(&b.id) {
                return Ok(bus.clone());
            }
            let bus: Arc<dyn Bus> = Arc::from(
                can::open(&b.endpoint())
                    .map_err(|e| RunError::bus(format!("CAN bus `{}`: {e}", b.id)))?,
            );
            buses.insert(b.id.clone(), bus.clone());
            Ok(bus)
        };
        // Where the rig wires a Modbus link to the BMS, the map's signals are read there
        // and not from the bus.
        let over_modbus = self.connect_modbus(rig, plan).await?;
        if let Some(b) = rig.dut_bus() {
            let bus = open_bus(b)?;
            let dbc = Arc::new(plan.dbc.clone());
            let mut on_bus = plan.signals.clone();
            on_bus.retain(|name, _| !over_modbus.contains(name));
            let monitor = spawn_monitor(bus.as_ref(), dbc, &on_bus, self.signals.clone());
            if let Some(old) = self
                .monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .replace(monitor)
            {
                old.abort();
            }
            if let Some(sr) = &plan.fixture.value.state_request {
                let missing = |what: &str| RunError::setup(format!("{what} missing from DBC"));
                let m = plan
                    .dbc
                    .message(&sr.message)
                    .ok_or_else(|| missing("state request message"))?;
                let s = m
                    .signal(&sr.signal)
                    .ok_or_else(|| missing("state request signal"))?;
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
                        .ok_or_else(|| RunError::setup("state request run value missing"))?,
                    standby: s
                        .label_value(&sr.standby)
                        .ok_or_else(|| RunError::setup("state request standby value missing"))?,
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
                open_bus(b).map_err(|e| e.to_string())
            };
            let connected = instrument::connect(inst, on_bus)
                .await
                .map_err(RunError::InstrumentText)?;
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
                Driver::Scope(c) => self.scope = Some(shared(c)),
                Driver::Short(mut s, path) => {
                    // Whatever state it was left in (a front panel, a guard that could not
                    // reach it), the run starts with the path open.
                    s.open().await.map_err(|e| {
                        RunError::setup(format!(
                            "the short-circuit switch could not be opened when the run \
                             connected it: {e}"
                        ))
                    })?;
                    self.short = Some((shared(s), path));
                    self.short_entry = Some(inst.clone());
                }
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

    /// Connect the rig's Modbus link to the BMS and start reading the fixture's register
    /// map; the names read over Modbus.
    async fn connect_modbus(
        &mut self,
        rig: &Rig,
        plan: &LoadedPlan,
    ) -> Result<Vec<String>, RunError> {
        let Some(link) = rig.dut_modbus() else {
            return Ok(Vec::new());
        };
        let (Some(map), Some(declared)) = (
            &plan.modbus_map,
            plan.fixture
                .value
                .inverter
                .as_ref()
                .and_then(|i| i.modbus.as_ref()),
        ) else {
            return Err(RunError::setup(format!(
                "the rig's Modbus link `{}` is the DUT's (`dut: true`), but the DUT fixture \
                 declares no `inverter.modbus` register map to read there",
                link.id
            )));
        };
        let unit = link.unit.unwrap_or(map.unit);
        let client = crate::modbus::Client::connect(&link.address, unit, link.timeout.duration())
            .await
            .map_err(|e| RunError::setup(format!("Modbus link `{}`: {e}", link.id)))?;
        tracing::info!(
            "inverter announcements read over Modbus link `{}` ({}), every {} s",
            link.id,
            link.address,
            declared.poll.0
        );
        self.spawn(super::signals::spawn_modbus_poller(
            client,
            Arc::new(map.clone()),
            declared.poll.duration(),
            link.id.clone(),
            self.signals.clone(),
        ));
        Ok(map.registers.keys().cloned().collect())
    }

    fn spawn(&self, h: JoinHandle<()>) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(h);
    }

    /// Program instrument protection (OVP/OCP) to the envelope.
    pub async fn program_protection(&self) -> Result<(), RunError> {
        if let Some(s) = &self.supply {
            let mut s = s.lock().await;
            s.program_protection(
                self.envelope.max_pack_voltage.0,
                self.envelope.max_charge_current.0,
            )
            .await
            .map_err(|e| RunError::from(e).context("programming supply protection"))?;
            // Where the model has an I/O watchdog, arm it: the samplers' queries feed it while
            // the run lives, and the output goes off by itself if the host falls silent.
            let armed = s
                .arm_watchdog(SUPPLY_WATCHDOG)
                .await
                .map_err(|e| RunError::from(e).context("arming the supply's watchdog"))?;
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

    /// Start samplers (of the channel currents of `cell_currents`, too), the state-request
    /// keep-alive and the dead-bus watchdog. Faults are reported on the returned channel.
    pub fn start_background(
        &self,
        sample_period: Duration,
        cell_currents: &[u32],
    ) -> mpsc::UnboundedReceiver<RunError> {
        let (tx, rx) = mpsc::unbounded_channel();
        if !cell_currents.is_empty() {
            match &self.cells {
                Some(c) => self.spawn(spawn_cell_current_sampler(
                    c.clone(),
                    cell_currents.to_vec(),
                    sample_period,
                    self.signals.clone(),
                    tx.clone(),
                )),
                None => {
                    let _ = tx.send(RunError::setup(
                        "the plan reads cell-simulator channel currents, but the rig has no cell simulator",
                    ));
                }
            }
        }
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
                    let _ = tx2.send(RunError::bus("cannot encode the state request"));
                    return;
                };
                let mut tick = tokio::time::interval(cycle);
                loop {
                    tick.tick().await;
                    if let Err(e) = bus.send(frame.clone()).await {
                        let _ = tx2.send(RunError::bus(format!("DUT bus: {e}")));
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
                        let _ = tx.send(RunError::bus(format!(
                            "no frame from the DUT on its CAN bus for {:.1} s",
                            last.elapsed().as_secs_f64()
                        )));
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

    /// Set any stimulus target, checked against the envelope first; recorded in the trace.
    /// Returns when the command was issued and when the instrument had accepted it.
    pub async fn set_target(
        &self,
        target: Target,
        value: f64,
    ) -> Result<(Instant, Instant), RunError> {
        target.check_envelope(&self.envelope, value)?;
        let issued = Instant::now();
        match target {
            Target::Cell(n) => {
                let c = self.require_cells()?;
                c.lock().await.set_cell_voltage(n, value).await?;
            }
            Target::Ntc(n) => {
                let c = self.require_cells()?;
                c.lock().await.set_temperature(n, value).await?;
            }
            Target::SupplyCurrent | Target::SupplyVoltage => {
                let mut g = self.require_supply()?.lock().await;
                if target == Target::SupplyCurrent {
                    g.set_current(value).await?;
                } else {
                    g.set_voltage(value).await?;
                }
            }
            Target::LoadCurrent => {
                self.require_load()?.lock().await.set_current(value).await?;
            }
            Target::Short => {
                return Err(RunError::setup(
                    "the short-circuit switch is closed by a trip's `short` stimulus only",
                ))
            }
        }
        let unit = target.dimension().unit();
        self.signals
            .update(issued, &[(&target.channel(), value, unit)]);
        Ok((issued, Instant::now()))
    }

    /// Send one state request by its value-table name.
    pub async fn send_state_request(&self, label: &str) -> Result<(), RunError> {
        let (bus, sr) = match (&self.dut_bus, &self.state_request) {
            (Some(b), Some(sr)) => (b, sr),
            _ => return Err(RunError::setup("the DUT has no state request")),
        };
        let value = sr
            .labels
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| *v)
            .ok_or_else(|| RunError::setup(format!("`{label}` is not a state request")))?;
        let f = encode_request(sr, value)
            .ok_or_else(|| RunError::bus("cannot encode the state request"))?;
        bus.send(f).await.map_err(RunError::bus)?;
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
            Target::Short => 0.0,
        }
    }

    /// Measurement accuracy of an instrument signal (`supply.v`, `load.i`, ...) at a value.
    pub async fn measure_accuracy(&self, signal: &str, value: f64) -> Option<f64> {
        if crate::plan::load::cell_current_index(signal).is_some() {
            return Some(self.cells.as_ref()?.lock().await.current_accuracy());
        }
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
    pub async fn set_cell(&self, cell: u32, volts: f64) -> Result<(), RunError> {
        self.set_target(Target::Cell(cell), volts).await.map(|_| ())
    }

    /// The supply, or an error naming what the rig lacks.
    pub fn require_supply(&self) -> Result<&Shared<dyn Supply>, RunError> {
        self.supply
            .as_ref()
            .ok_or_else(|| RunError::setup("the rig has no supply"))
    }

    /// The load, or an error naming what the rig lacks.
    pub fn require_load(&self) -> Result<&Shared<dyn Load>, RunError> {
        self.load
            .as_ref()
            .ok_or_else(|| RunError::setup("the rig has no load"))
    }

    /// The short-circuit switch and its path, or an error naming what the rig lacks.
    pub fn require_short(&self) -> Result<&(Shared<dyn Switch>, ShortPath), RunError> {
        self.short
            .as_ref()
            .ok_or_else(|| RunError::setup("the rig has no short-circuit switch (`role: short`)"))
    }

    /// Close the short-circuit switch: its prospective current at the envelope's highest
    /// pack voltage is checked against `max_short_current` first (nothing is sent when it
    /// is outside), a timer is started that opens it again `max_closed` after the command
    /// was issued whatever becomes of the caller, and the closing is traced as
    /// `short.closed` = 1. Returns when the command was issued.
    pub async fn close_short(&self) -> Result<Instant, RunError> {
        let (switch, path) = self.require_short()?;
        let prospective = path.prospective_current(self.envelope.max_pack_voltage.0);
        Target::Short.check_envelope(&self.envelope, prospective)?;
        let issued = Instant::now();
        let timer = {
            let (switch, signals) = (switch.clone(), self.signals.clone());
            let until = issued + path.max_closed.duration();
            tokio::spawn(async move {
                tokio::time::sleep_until(until).await;
                match timeout(SAFE_STEP_TIMEOUT, open_switch(&switch, &signals)).await {
                    Ok(Ok(())) => {
                        tracing::warn!(
                            "the short-circuit switch was opened by its max_closed timer"
                        );
                    }
                    Ok(Err(e)) => tracing::error!(
                        "the short-circuit switch's max_closed timer could not open it: {e}"
                    ),
                    Err(_) => tracing::error!(
                        "the short-circuit switch's max_closed timer got no confirmation"
                    ),
                }
            })
        };
        if let Some(old) = self
            .short_timer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(timer)
        {
            old.abort();
        }
        let closed = switch.lock().await.close().await;
        // Traced before the result is looked at: a failed close may still have closed it.
        self.signals
            .update(issued, &[(&Target::Short.channel(), 1.0, "")]);
        closed?;
        Ok(issued)
    }

    /// Open the short-circuit switch (confirmed by read-back), traced as `short.closed` = 0;
    /// once confirmed, the `max_closed` timer is no longer needed.
    pub async fn open_short(&self) -> Result<(), RunError> {
        let (switch, _) = self.require_short()?;
        open_switch(switch, &self.signals).await?;
        if let Some(t) = self
            .short_timer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
        Ok(())
    }

    /// The cell simulator, or an error naming what the rig lacks.
    pub fn require_cells(&self) -> Result<&Shared<dyn CellSim>, RunError> {
        self.cells
            .as_ref()
            .ok_or_else(|| RunError::setup("the rig has no cell simulator"))
    }
}

/// Open the short-circuit switch (confirmed by read-back) and trace `short.closed` = 0.
async fn open_switch(
    switch: &Shared<dyn Switch>,
    signals: &Signals,
) -> Result<(), InstrumentError> {
    switch.lock().await.open().await?;
    signals.update(Instant::now(), &[(&Target::Short.channel(), 0.0, "")]);
    Ok(())
}

/// What a sampler needs of an instrument: its id, a reading, and its error queue.
#[async_trait::async_trait]
trait Sampled: Send {
    fn sampled_id(&self) -> String;
    async fn sample(&mut self) -> Result<Measurement, InstrumentError>;
    async fn errors(&mut self) -> Result<(), InstrumentError>;
}

/// Supplies and loads are sampled alike.
macro_rules! sampled {
    ($($t:ty),*) => {$(
        #[async_trait::async_trait]
        impl Sampled for Box<$t> {
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
    )*};
}

sampled!(dyn Supply, dyn Load);

/// Sample an instrument's voltage and current into `names` every `period`, and its error
/// queue every `ERROR_CHECK_EVERY` samples; a failure is reported on `faults` and ends it.
fn spawn_sampler<T: Sampled + 'static>(
    inst: Arc<Mutex<T>>,
    names: [&'static str; 2],
    period: Duration,
    signals: Signals,
    faults: mpsc::UnboundedSender<RunError>,
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
                    let _ =
                        faults.send(RunError::from(e).context(format!("lost instrument `{id}`")));
                    return;
                }
            }
            if n % ERROR_CHECK_EVERY == 0 {
                if let Err(e) = g.errors().await {
                    let _ = faults.send(
                        RunError::from(e).context(format!("instrument `{id}` reported an error")),
                    );
                    return;
                }
            }
        }
    })
}

/// Read the channel current of each of `cells` every `period` into `cells.cell[N].i`; a
/// simulator that cannot read it back (or fails) is reported on `faults` and ends it.
fn spawn_cell_current_sampler(
    cellsim: Shared<dyn CellSim>,
    cells: Vec<u32>,
    period: Duration,
    signals: Signals,
    faults: mpsc::UnboundedSender<RunError>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let names: Vec<String> = cells
            .iter()
            .map(|n| crate::plan::load::cell_current_signal(*n))
            .collect();
        loop {
            tick.tick().await;
            let mut g = cellsim.lock().await;
            for (n, name) in cells.iter().zip(&names) {
                match g.measure_cell_current(*n).await {
                    Ok(i) => signals.update(Instant::now(), &[(name.as_str(), i, "A")]),
                    Err(e) => {
                        let _ = faults.send(RunError::from(e).context(format!("reading `{name}`")));
                        return;
                    }
                }
            }
        }
    })
}

fn encode_request(sr: &StateRequest, value: f64) -> Option<Frame> {
    let data = sr.message.encode(&[(sr.signal.as_str(), value)]).ok()?;
    Frame::new(sr.message.id, sr.message.extended, &data).ok()
}

/// The fixture's standby confirmation, bound to the plan's DBC, with the value-table names
/// of the signals it reads.
fn bind_confirm(plan: &LoadedPlan, written: &Condition) -> Result<Confirm, RunError> {
    let cond = bind_condition(plan, written)
        .map_err(|e| RunError::setup(format!("state_request.confirm `{written}`: {e}")))?;
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

#[cfg(test)]
mod tests {
    use super::safe_state::end_watchdog;
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
