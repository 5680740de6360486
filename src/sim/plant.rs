//! The electrical and thermal plant of the simulated bench: cells, NTCs, FETs, supply,
//! load and a thermal chamber.
//!
//! One `Plant` is shared by the simulated instruments (SCPI servers mutate the supply and
//! load), the cell simulator (overrides cell voltages and NTC temperatures), the BMS
//! firmware host (reads what its front end would measure, drives the FETs) and the plant
//! tick task ([`spawn_ticker`]), which advances state of charge and temperatures at a fixed
//! step on tokio's clock (so it also runs under a paused, virtual clock).
//!
//! Electrical model. Each cell is a rest voltage OCV(SOC) in series with an internal
//! resistance. A cell-simulator channel that is overriding a cell replaces it by an ideal
//! voltage source (the real cell is disconnected: no current through it, no heating, no
//! change of charge). Current flows from the supply only through a closed charge FET, and
//! into the load only through a closed discharge FET. The supply is a CV/CC source behind
//! the path resistance; the load sinks a constant current.
//!
//! Short circuit. The rig's short-circuit switch ([`ShortState`], driven by the simulated
//! switch unit) closes a resistor across the pack terminals at the load side, after the
//! path resistance. Like the load's, its current flows only while the discharge FET conducts
//! and the front end ([`super::afe`]) has not latched a trip: the stack's emf divided by the
//! sum of the short's, the path's and the stack's resistances, never negative. That formula
//! neglects the supply's and the load's currents through the shared resistances (the
//! short's current is far larger). The pack current is net of it, so the cells discharge by
//! it, the pack voltage sags, and the captured current and the front end's comparator see
//! it. The load terminals' voltage counts both the load's and the short's current through
//! the path resistance.
//!
//! Thermal model. Each cell is one lumped heat capacity with a thermal resistance to the
//! air around it, heated by I²R. The air is the room ambient, or the chamber air when a
//! chamber setpoint is given (the chamber ramps its air toward the setpoint at a limited
//! rate). Each NTC sits on one cell and follows it with a first-order lag. Entropic heat
//! and cell-to-cell conduction are not modelled.
//!
//! Balancing. The BMS's balancing switches ([`PlantState::set_balancing`]) connect a cell's
//! bleed resistor, modelled as a constant current (`bleed_current_a`, the image's declared
//! current) drawn from that cell alone: a modelled cell loses charge through it (so a high
//! cell's state of charge, and with it the spread, falls over simulated time); a cell a
//! cell-simulator channel overrides draws it from the channel, which reports it
//! ([`PlantState::channel_current`]).
//!
//! Overrides. An override stays until it is released (a cell-simulator channel keeps its
//! output until told otherwise); releasing a channel gives the cell (or NTC) back to the
//! model. See [`super::bms_host::spawn_cell_simulator`] for the CAN commands.
//!
//! The fields `cells` and `temps` are what the BMS's analogue front end sees (override or
//! model, before the front end's own quantisation). They are derived from the rest of the
//! state and brought up to date whenever a lock on the plant is released, and in every
//! [`Plant::snapshot`]; inside one lock after a change, use [`PlantState::cell_voltage`]
//! and [`PlantState::ntc_temperature`].

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::cell::{CellModel, CellParams, Chemistry};

/// Settings and output state of the simulated DC supply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SupplyState {
    /// Voltage setpoint in volts.
    pub voltage_set: f64,
    /// Current limit in amperes.
    pub current_set: f64,
    /// Output enabled.
    pub output: bool,
    /// Over-voltage protection level in volts (None: not programmed).
    pub ovp: Option<f64>,
    /// Over-current protection level in amperes (None: not programmed).
    pub ocp: Option<f64>,
    /// The protection has tripped and the output was switched off.
    pub protection_tripped: bool,
}

/// Settings and input state of the simulated electronic load (constant-current mode).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadState {
    /// Sink current setpoint in amperes.
    pub current_set: f64,
    /// Input enabled.
    pub input: bool,
}

/// The rig's short-circuit path: a resistor across the pack terminals at the load side,
/// switched by the short-circuit switch's relay channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ShortState {
    /// The switch's channel is closed (the path is connected).
    pub closed: bool,
    /// Resistance of the closed path outside the pack terminals (contactor, resistor,
    /// leads), in ohms.
    pub resistance_ohm: f64,
}

impl Default for ShortState {
    fn default() -> Self {
        Self {
            closed: false,
            // The built-in rig's path: 250 mΩ.
            resistance_ohm: 0.25,
        }
    }
}

/// The thermal chamber around the pack.
#[derive(Debug, Clone, PartialEq)]
pub struct ChamberState {
    /// Temperature setpoint in °C (None: the chamber is off and the air is at room ambient).
    pub setpoint: Option<f64>,
    /// Air temperature in °C.
    pub air: f64,
    /// Fastest air temperature change in kelvin per second.
    pub ramp_k_per_s: f64,
}

/// How a simulated pack is built and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct PackConfig {
    /// Cell chemistry.
    pub chemistry: Chemistry,
    /// Cells in series.
    pub cells: usize,
    /// NTC sensors, spread evenly along the string.
    pub ntcs: usize,
    /// Parameters of every cell.
    pub cell: CellParams,
    /// Initial state of charge (fraction) of every cell.
    pub soc: f64,
    /// Room ambient in °C (also the initial temperature of cells, NTCs and chamber air).
    pub ambient: f64,
    /// Time constant of an NTC following its cell, in seconds.
    pub ntc_time_constant_s: f64,
    /// Series resistance between the supply/load terminals and the cell stack, in ohms.
    pub path_resistance: f64,
    /// Fastest chamber air temperature change in kelvin per second.
    pub chamber_ramp_k_per_s: f64,
}

impl PackConfig {
    /// The pack a simulated rig describes (chemistry, state of charge, ambient) with `cells`
    /// typical cells; typical LFP cells at half charge and 25 °C for a rig without one.
    pub fn of_rig(rig: &crate::rig::Rig, cells: usize) -> Self {
        let Some(sim) = &rig.simulation else {
            return Self::typical(Chemistry::Lfp, cells);
        };
        let mut pack = Self::typical(sim.chemistry.into(), cells);
        pack.soc = sim.soc.0 / 100.0;
        pack.ambient = sim.ambient.0;
        pack
    }

    /// A pack of `cells` typical cells of a chemistry at half charge, 25 °C, four NTCs.
    pub fn typical(chemistry: Chemistry, cells: usize) -> Self {
        Self {
            chemistry,
            cells,
            ntcs: 4,
            cell: chemistry.typical_cell(),
            soc: 0.5,
            ambient: 25.0,
            ntc_time_constant_s: 20.0,
            path_resistance: 0.05,
            // 3 K/min, a common climate-chamber ramp rate.
            chamber_ramp_k_per_s: 0.05,
        }
    }
}

/// Everything the plant knows at one instant.
#[derive(Debug, Clone)]
pub struct PlantState {
    /// Cell voltages in volts as the BMS front end sees them (override or model); derived.
    pub cells: Vec<f64>,
    /// NTC temperatures in °C as the BMS front end sees them (override or model); derived.
    pub temps: Vec<f64>,
    /// Charge FET closed (conducting).
    pub chg_fet: bool,
    /// Discharge FET closed (conducting).
    pub dsg_fet: bool,
    /// The DC supply.
    pub supply: SupplyState,
    /// The electronic load.
    pub load: LoadState,
    /// The short-circuit path (open unless the rig's switch closes it).
    pub short: ShortState,
    /// Series resistance between supply/load terminals and the cell stack, in ohms.
    pub path_resistance: f64,
    /// Cell chemistry.
    pub chemistry: Chemistry,
    /// Parameters of every cell.
    pub cell_params: CellParams,
    /// The modelled cells (state of charge and temperature).
    pub cell_models: Vec<CellModel>,
    /// Cell-simulator voltage per cell (Some: the channel overrides the cell).
    pub cell_override: Vec<Option<f64>>,
    /// Modelled NTC temperatures in °C.
    pub ntc_models: Vec<f64>,
    /// Cell-simulator temperature per NTC (Some: the channel overrides the sensor).
    pub ntc_override: Vec<Option<f64>>,
    /// The 0-based cell each NTC sits on.
    pub ntc_cell: Vec<usize>,
    /// Time constant of an NTC following its cell, in seconds.
    pub ntc_time_constant_s: f64,
    /// Room ambient in °C.
    pub room_ambient: f64,
    /// The thermal chamber.
    pub chamber: ChamberState,
    /// The BMS front end's hardware short-circuit protection ([`super::afe`]).
    pub afe: super::afe::AfeState,
    /// Balancing switches driven by the BMS, one bit per cell (bit 0 is cell 1).
    pub balancing: u32,
    /// Current through one balancing resistor while its switch is driven, in amperes.
    pub bleed_current_a: f64,
}

impl PlantState {
    fn from_config(cfg: &PackConfig) -> Self {
        let ntc_cell = (0..cfg.ntcs)
            .map(|k| ((2 * k + 1) * cfg.cells / (2 * cfg.ntcs.max(1))).min(cfg.cells.max(1) - 1))
            .collect();
        let mut s = Self {
            cells: Vec::new(),
            temps: Vec::new(),
            chg_fet: false,
            dsg_fet: false,
            supply: SupplyState::default(),
            load: LoadState::default(),
            short: ShortState::default(),
            path_resistance: cfg.path_resistance,
            chemistry: cfg.chemistry,
            cell_params: cfg.cell,
            cell_models: vec![
                CellModel {
                    soc: cfg.soc,
                    temperature: cfg.ambient,
                };
                cfg.cells
            ],
            cell_override: vec![None; cfg.cells],
            ntc_models: vec![cfg.ambient; cfg.ntcs],
            ntc_override: vec![None; cfg.ntcs],
            ntc_cell,
            ntc_time_constant_s: cfg.ntc_time_constant_s,
            room_ambient: cfg.ambient,
            chamber: ChamberState {
                setpoint: None,
                air: cfg.ambient,
                ramp_k_per_s: cfg.chamber_ramp_k_per_s,
            },
            afe: Default::default(),
            balancing: 0,
            bleed_current_a: 0.0,
        };
        s.refresh();
        s
    }

    /// Bring the derived `cells` and `temps` up to date.
    pub fn refresh(&mut self) {
        let i = self.pack_current();
        let cells: Vec<f64> = (0..self.cell_models.len())
            .map(|k| self.cell_voltage_at(k, i))
            .collect();
        let temps: Vec<f64> = (0..self.ntc_models.len())
            .map(|k| self.ntc_temperature(k).unwrap_or(f64::NAN))
            .collect();
        self.cells = cells;
        self.temps = temps;
    }

    fn cell_voltage_at(&self, k: usize, current: f64) -> f64 {
        match (self.cell_override.get(k), self.cell_models.get(k)) {
            (Some(Some(v)), _) => *v,
            (_, Some(m)) => m.terminal_voltage(
                self.chemistry,
                &self.cell_params,
                current - self.bleed_current(k),
            ),
            _ => f64::NAN,
        }
    }

    /// Drive the BMS's balancing switches (bit 0 is cell 1; bits past the last cell are
    /// ignored).
    pub fn set_balancing(&mut self, mask: u32) {
        let n = self.cell_models.len().min(32);
        self.balancing = if n >= 32 {
            mask
        } else {
            mask & ((1u32 << n) - 1)
        };
    }

    /// Current drawn from cell `k` (0-based) by its balancing resistor now, in amperes.
    pub fn bleed_current(&self, k: usize) -> f64 {
        if k < 32 && self.balancing & (1 << k) != 0 {
            self.bleed_current_a
        } else {
            0.0
        }
    }

    /// Current a cell-simulator channel overriding cell `k` (0-based) delivers, positive
    /// when it sources (the pack discharging, or the cell's balancing resistor drawing);
    /// 0 when the channel does not override the cell; None when there is no such cell.
    pub fn channel_current(&self, k: usize) -> Option<f64> {
        match self.cell_override.get(k)? {
            Some(_) => Some(self.bleed_current(k) - self.pack_current()),
            None => Some(0.0),
        }
    }

    /// Voltage of cell `k` (0-based) at its terminals now (override or model), if it exists.
    pub fn cell_voltage(&self, k: usize) -> Option<f64> {
        (k < self.cell_models.len()).then(|| self.cell_voltage_at(k, self.pack_current()))
    }

    /// Temperature of NTC `k` (0-based) now (override or model), if it exists.
    pub fn ntc_temperature(&self, k: usize) -> Option<f64> {
        match (self.ntc_override.get(k), self.ntc_models.get(k)) {
            (Some(Some(t)), _) => Some(*t),
            (_, Some(t)) => Some(*t),
            _ => None,
        }
    }

    /// Override cell `k` (0-based) with a cell-simulator voltage, or release it (None).
    /// Returns false when there is no such cell.
    pub fn set_cell_override(&mut self, k: usize, volts: Option<f64>) -> bool {
        match self.cell_override.get_mut(k) {
            Some(slot) => {
                *slot = volts;
                true
            }
            None => false,
        }
    }

    /// Override NTC `k` (0-based) with a cell-simulator temperature, or release it (None).
    /// Returns false when there is no such sensor.
    pub fn set_ntc_override(&mut self, k: usize, celsius: Option<f64>) -> bool {
        match self.ntc_override.get_mut(k) {
            Some(slot) => {
                *slot = celsius;
                true
            }
            None => false,
        }
    }

    /// The air temperature around the cells in °C.
    pub fn ambient(&self) -> f64 {
        self.chamber.air
    }

    /// The stack's source voltage (rest voltages plus overriding channels) and the summed
    /// internal resistance of the modelled cells.
    fn stack(&self) -> (f64, f64) {
        let mut emf = 0.0;
        let mut r = 0.0;
        for (k, m) in self.cell_models.iter().enumerate() {
            match self.cell_override.get(k).copied().flatten() {
                Some(v) => emf += v,
                None => {
                    emf += self.chemistry.ocv(m.soc);
                    r += self.cell_params.resistance_ohm;
                }
            }
        }
        (emf, r)
    }

    /// Voltage at the stack terminals (sum of the cell terminal voltages).
    pub fn pack_voltage(&self) -> f64 {
        let (emf, r) = self.stack();
        emf + self.pack_current() * r
    }

    /// Current delivered by the supply into the pack (A, >= 0).
    pub fn supply_current(&self) -> f64 {
        if !self.supply.output || !self.chg_fet || self.afe.latched() {
            return 0.0;
        }
        let (emf, r) = self.stack();
        let total = self.path_resistance + r;
        if total <= 0.0 {
            // No resistance at all: the supply runs current-limited whenever it is above the stack.
            return if self.supply.voltage_set > emf {
                self.supply.current_set.max(0.0)
            } else {
                0.0
            };
        }
        // The load's and the short's currents (if any) also flow through the stack's
        // resistance.
        let i = (self.supply.voltage_set - emf + (self.load_current() + self.short_current()) * r)
            / total;
        i.clamp(0.0, self.supply.current_set.max(0.0))
    }

    /// Voltage at the supply terminals.
    pub fn supply_voltage(&self) -> f64 {
        if !self.supply.output {
            return 0.0;
        }
        if self.chg_fet && !self.afe.latched() {
            let i = self.supply_current();
            if i < self.supply.current_set {
                // Constant-voltage mode.
                self.supply.voltage_set
            } else {
                // Constant-current mode: the terminal voltage is set by the pack.
                self.pack_voltage() + i * self.path_resistance
            }
        } else {
            self.supply.voltage_set
        }
    }

    /// Current sunk by the load from the pack (A, >= 0).
    pub fn load_current(&self) -> f64 {
        if self.load.input && self.dsg_fet && !self.afe.latched() {
            self.load.current_set.max(0.0)
        } else {
            0.0
        }
    }

    /// Current through the closed short-circuit path (A, >= 0): only while the discharge
    /// FET conducts and the front end has not latched; the supply's and the load's
    /// currents through the shared resistances are neglected.
    pub fn short_current(&self) -> f64 {
        if !self.short.closed || !self.dsg_fet || self.afe.latched() {
            return 0.0;
        }
        let (emf, r) = self.stack();
        let total = self.short.resistance_ohm + self.path_resistance + r;
        if total <= 0.0 || !total.is_finite() {
            return 0.0;
        }
        (emf / total).max(0.0)
    }

    /// Whether the front end's "load removal" holds: the load input is off or set at or
    /// below `threshold_a`, and the short-circuit path is open.
    pub fn load_removed(&self, threshold_a: f64) -> bool {
        !self.short.closed && (!self.load.input || self.load.current_set <= threshold_a)
    }

    /// Voltage at the load terminals (where the short-circuit path also connects).
    pub fn load_voltage(&self) -> f64 {
        if self.dsg_fet && !self.afe.latched() {
            let out = self.load_current() + self.short_current();
            (self.pack_voltage() - out * self.path_resistance).max(0.0)
        } else {
            0.0
        }
    }

    /// Net pack current, positive when charging (supply in, load and short out).
    pub fn pack_current(&self) -> f64 {
        self.supply_current() - self.load_current() - self.short_current()
    }

    /// Advance state of charge, cell, NTC and chamber temperatures by `dt` seconds.
    pub fn advance(&mut self, dt: f64) {
        if dt.is_nan() || dt <= 0.0 {
            return;
        }
        if let Some(target) = self.chamber.setpoint {
            let step = self.chamber.ramp_k_per_s.max(0.0) * dt;
            let diff = target - self.chamber.air;
            self.chamber.air += diff.clamp(-step, step);
        } else {
            let step = self.chamber.ramp_k_per_s.max(0.0) * dt;
            let diff = self.room_ambient - self.chamber.air;
            self.chamber.air += diff.clamp(-step, step);
        }
        let i = self.pack_current();
        let ambient = self.ambient();
        let params = self.cell_params;
        for (k, m) in self.cell_models.iter_mut().enumerate() {
            // An overriding channel disconnects the cell: no current through it.
            let through = if self.cell_override.get(k).copied().flatten().is_some() {
                0.0
            } else if k < 32 && self.balancing & (1 << k) != 0 {
                i - self.bleed_current_a
            } else {
                i
            };
            m.advance(&params, through, ambient, dt);
        }
        let alpha = if self.ntc_time_constant_s > 0.0 {
            1.0 - (-dt / self.ntc_time_constant_s).exp()
        } else {
            1.0
        };
        for (k, t) in self.ntc_models.iter_mut().enumerate() {
            let cell_t = self
                .ntc_cell
                .get(k)
                .and_then(|c| self.cell_models.get(*c))
                .map(|m| m.temperature)
                .unwrap_or(ambient);
            *t += (cell_t - *t) * alpha;
        }
    }
}

/// Called with the state and the moment, every time a lock on the plant is released.
pub type Observer = Box<dyn FnMut(&PlantState, Instant) + Send>;

struct Inner {
    state: PlantState,
    observers: Vec<Observer>,
}

/// The shared plant.
#[derive(Clone)]
pub struct Plant {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Plant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plant")
            .field("state", &self.snapshot())
            .finish()
    }
}

/// Exclusive access to the plant state; on release the derived values are brought up to
/// date and the observers run.
pub struct PlantGuard<'a> {
    guard: MutexGuard<'a, Inner>,
}

impl Deref for PlantGuard<'_> {
    type Target = PlantState;

    fn deref(&self) -> &PlantState {
        &self.guard.state
    }
}

impl DerefMut for PlantGuard<'_> {
    fn deref_mut(&mut self) -> &mut PlantState {
        &mut self.guard.state
    }
}

impl Drop for PlantGuard<'_> {
    fn drop(&mut self) {
        let Inner { state, observers } = &mut *self.guard;
        // One instant for the change: the front end and the observers (the capture record
        // among them) must see it at the same time, also on a running clock.
        let now = Instant::now();
        if let Some(scd) = state.afe.scd {
            let discharge = -state.pack_current();
            let removed = state.load_removed(scd.trip_a);
            state.afe.observe(discharge, removed, now);
        }
        state.refresh();
        if !observers.is_empty() {
            for o in observers.iter_mut() {
                o(state, now);
            }
        }
    }
}

impl Plant {
    /// An LFP pack of `cells` typical cells resting at `cell_v` volts, with `ntcs` sensors,
    /// everything at `temp_c` °C.
    pub fn new(cells: usize, cell_v: f64, ntcs: usize, temp_c: f64) -> Self {
        let mut cfg = PackConfig::typical(Chemistry::Lfp, cells);
        cfg.soc = Chemistry::Lfp.soc_at(cell_v);
        cfg.ntcs = ntcs;
        cfg.ambient = temp_c;
        Self::with_pack(&cfg)
    }

    /// A plant for a pack configuration.
    pub fn with_pack(cfg: &PackConfig) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                state: PlantState::from_config(cfg),
                observers: Vec::new(),
            })),
        }
    }

    /// Lock the plant state for reading or writing.
    pub fn lock(&self) -> PlantGuard<'_> {
        // A poisoned plant lock means a simulator task panicked; the state is still usable.
        PlantGuard {
            guard: self.inner.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// A copy of the state at this instant.
    pub fn snapshot(&self) -> PlantState {
        let mut g = self.lock();
        g.refresh();
        g.clone()
    }

    /// Call `observer` every time a lock on the plant is released (after the derived
    /// values are brought up to date). It runs under the plant lock: it must not lock the
    /// plant itself.
    pub fn observe(&self, observer: Observer) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observers
            .push(observer);
    }

    /// Set the thermal chamber's setpoint (None switches it off: the air returns to room ambient).
    pub fn set_chamber(&self, setpoint: Option<f64>) {
        self.lock().chamber.setpoint = setpoint;
    }

    /// Advance the plant by `dt`.
    pub fn advance(&self, dt: Duration) {
        self.lock().advance(dt.as_secs_f64());
    }
}

/// The plant tick used by the simulated bench.
pub const DEFAULT_TICK: Duration = Duration::from_millis(100);

/// Advance the plant every `step` of tokio time until the task is aborted. Each tick
/// integrates the time really elapsed since the previous one (in pieces of at most
/// `step`), so a late tick under load loses no simulated time; under a paused clock every
/// tick is exactly `step`.
pub fn spawn_ticker(plant: Plant, step: Duration) -> JoinHandle<()> {
    let step = step.max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(step);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last = tick.tick().await;
        loop {
            let now = tick.tick().await;
            let mut left = now.saturating_duration_since(last);
            last = now;
            let mut g = plant.lock();
            while !left.is_zero() {
                let dt = left.min(step);
                g.advance(dt.as_secs_f64());
                left -= dt;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supply_current_flows_only_through_a_closed_charge_fet() {
        let plant = Plant::new(16, 3.3, 4, 25.0);
        {
            let mut s = plant.lock();
            for k in 0..16 {
                s.set_cell_override(k, Some(3.3));
            }
            s.supply = SupplyState {
                voltage_set: 58.4,
                current_set: 10.0,
                output: true,
                ..Default::default()
            };
        }
        assert_eq!(plant.snapshot().supply_current(), 0.0);
        plant.lock().chg_fet = true;
        assert_eq!(plant.snapshot().supply_current(), 10.0);
        plant.lock().supply.output = false;
        assert_eq!(plant.snapshot().supply_current(), 0.0);
    }

    #[test]
    fn load_sinks_only_through_a_closed_discharge_fet() {
        let plant = Plant::new(16, 3.3, 4, 25.0);
        plant.lock().load = LoadState {
            current_set: 5.0,
            input: true,
        };
        assert_eq!(plant.snapshot().load_current(), 0.0);
        plant.lock().dsg_fet = true;
        assert_eq!(plant.snapshot().load_current(), 5.0);
        assert!((plant.snapshot().pack_current() + 5.0).abs() < 1e-12);
    }

    #[test]
    fn model_cells_rest_at_their_ocv_and_sag_under_load() {
        let plant = Plant::new(16, 3.3, 4, 25.0);
        let s = plant.snapshot();
        assert!(
            s.cells.iter().all(|v| (v - 3.3).abs() < 1e-9),
            "{:?}",
            s.cells
        );
        {
            let mut g = plant.lock();
            g.dsg_fet = true;
            g.load = LoadState {
                current_set: 100.0,
                input: true,
            };
        }
        // 100 A through 0.5 mΩ: 50 mV below rest, visible as soon as the lock is released.
        let s = plant.snapshot();
        assert!((s.cells[0] - 3.25).abs() < 1e-9, "{}", s.cells[0]);
        assert!((s.pack_voltage() - 52.0).abs() < 1e-9);
        assert!((s.load_voltage() - (52.0 - 100.0 * 0.05)).abs() < 1e-9);
    }

    #[test]
    fn a_cv_supply_tapers_as_the_model_pack_fills() {
        let mut cfg = PackConfig::typical(Chemistry::Lfp, 16);
        cfg.cell.capacity_ah = 1.0;
        cfg.soc = 0.9;
        let plant = Plant::with_pack(&cfg);
        {
            let mut g = plant.lock();
            g.chg_fet = true;
            g.supply = SupplyState {
                voltage_set: 16.0 * 3.45,
                current_set: 10.0,
                output: true,
                ..Default::default()
            };
        }
        assert_eq!(plant.snapshot().supply_current(), 10.0);
        for _ in 0..20_000 {
            plant.advance(Duration::from_millis(100));
        }
        let s = plant.snapshot();
        assert!(s.supply_current() < 1.0, "{}", s.supply_current());
        assert!(s.cell_models[0].soc > 0.99 && s.cell_models[0].soc < 1.01);
        assert!((s.supply_voltage() - 16.0 * 3.45).abs() < 1e-9);
    }

    #[test]
    fn overrides_replace_the_cell_until_released() {
        let plant = Plant::new(4, 3.3, 2, 25.0);
        {
            let mut g = plant.lock();
            assert!(g.set_cell_override(2, Some(3.7)));
            assert!(!g.set_cell_override(9, Some(3.7)));
            assert!(g.set_ntc_override(1, Some(60.0)));
        }
        let s = plant.snapshot();
        assert_eq!(s.cells[2], 3.7);
        assert_eq!(s.temps, vec![25.0, 60.0]);
        {
            let mut g = plant.lock();
            g.set_cell_override(2, None);
            g.set_ntc_override(1, None);
        }
        let s = plant.snapshot();
        assert!((s.cells[2] - 3.3).abs() < 1e-9);
        assert_eq!(s.temps, vec![25.0, 25.0]);
    }

    #[test]
    fn an_overridden_cell_carries_no_current_through_its_model() {
        let plant = Plant::new(2, 3.3, 1, 25.0);
        {
            let mut g = plant.lock();
            g.set_cell_override(0, Some(3.3));
            g.chg_fet = true;
            g.supply = SupplyState {
                voltage_set: 8.0,
                current_set: 50.0,
                output: true,
                ..Default::default()
            };
        }
        for _ in 0..100 {
            plant.advance(Duration::from_secs(1));
        }
        let s = plant.snapshot();
        assert_eq!(s.cell_models[0].soc, 0.5);
        assert!(s.cell_models[1].soc > 0.5);
        assert!(s.cell_models[1].temperature > s.cell_models[0].temperature);
    }

    #[test]
    fn the_chamber_ramps_the_air_and_the_ntcs_follow() {
        let plant = Plant::new(16, 3.3, 4, 25.0);
        plant.set_chamber(Some(45.0));
        plant.advance(Duration::from_secs(60));
        // 3 K/min.
        assert!((plant.snapshot().ambient() - 28.0).abs() < 1e-9);
        for _ in 0..(6 * 3600) {
            plant.advance(Duration::from_secs(1));
        }
        let s = plant.snapshot();
        assert_eq!(s.ambient(), 45.0);
        assert!(
            s.temps.iter().all(|t| (t - 45.0).abs() < 0.5),
            "{:?}",
            s.temps
        );
        plant.set_chamber(None);
        plant.advance(Duration::from_secs(60));
        assert!((plant.snapshot().ambient() - 42.0).abs() < 1e-9);
    }

    #[test]
    fn observers_see_every_change() {
        let plant = Plant::new(2, 3.3, 1, 25.0);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        plant.observe(Box::new(move |s, _| {
            s2.lock().unwrap().push(s.cells[1]);
        }));
        plant.lock().set_cell_override(1, Some(3.6));
        assert_eq!(seen.lock().unwrap().last(), Some(&3.6));
    }

    #[test]
    fn a_bleeding_cell_loses_charge_and_a_channel_reports_the_bleed() {
        let mut cfg = PackConfig::typical(Chemistry::Lfp, 4);
        cfg.cell.capacity_ah = 1.0;
        let plant = Plant::with_pack(&cfg);
        {
            let mut g = plant.lock();
            g.bleed_current_a = 0.1;
            // Cell 2 bleeds; bit 5 is past the last cell and ignored.
            g.set_balancing(0b10_0010);
            g.set_cell_override(3, Some(3.3));
        }
        assert_eq!(plant.snapshot().balancing, 0b10);
        // 0.1 A for 360 s from a 1 Ah cell is 1 % of charge.
        for _ in 0..3600 {
            plant.advance(Duration::from_millis(100));
        }
        let s = plant.snapshot();
        assert!(
            (s.cell_models[1].soc - 0.49).abs() < 1e-9,
            "{}",
            s.cell_models[1].soc
        );
        assert_eq!(s.cell_models[0].soc, 0.5);
        // The overriding channel of a cell that does not bleed delivers nothing at rest.
        assert_eq!(s.channel_current(3), Some(0.0));
        assert_eq!(
            s.channel_current(1),
            Some(0.0),
            "not overridden: no channel"
        );
        assert_eq!(s.channel_current(9), None);
        plant.lock().set_balancing(0b1000);
        assert!((plant.snapshot().channel_current(3).unwrap() - 0.1).abs() < 1e-12);
        // Charging at 2 A: the channel sinks the charge current and sources the bleed.
        {
            let mut g = plant.lock();
            for k in 0..4 {
                g.set_cell_override(k, Some(3.3));
            }
            g.chg_fet = true;
            g.supply = SupplyState {
                voltage_set: 20.0,
                current_set: 2.0,
                output: true,
                ..Default::default()
            };
        }
        let s = plant.snapshot();
        assert!((s.channel_current(3).unwrap() - (0.1 - 2.0)).abs() < 1e-12);
        assert!((s.channel_current(0).unwrap() + 2.0).abs() < 1e-12);
    }

    #[rstest::rstest]
    #[case::closed_through_the_discharge_fet(true, true, true)]
    #[case::open(false, true, false)]
    #[case::discharge_fet_open(true, false, false)]
    fn a_closed_short_draws_from_the_pack_at_the_load_side(
        #[case] closed: bool,
        #[case] dsg_fet: bool,
        #[case] flows: bool,
    ) {
        let plant = Plant::new(16, 3.3, 4, 25.0);
        {
            let mut g = plant.lock();
            g.dsg_fet = dsg_fet;
            g.short = ShortState {
                closed,
                resistance_ohm: 0.25,
            };
        }
        let s = plant.snapshot();
        // 52.8 V over 250 mΩ + 50 mΩ path + 16 × 0.5 mΩ cells.
        let expected = if flows { 52.8 / 0.308 } else { 0.0 };
        assert!(
            (s.short_current() - expected).abs() < 1e-9,
            "{}",
            s.short_current()
        );
        assert!((s.pack_current() + expected).abs() < 1e-9);
        assert!((s.pack_voltage() - (52.8 - expected * 0.008)).abs() < 1e-9);
        if flows {
            assert!((s.load_voltage() - expected * 0.25).abs() < 1e-9);
            assert!(!s.load_removed(80.0), "a closed short is no load removal");
        }
        plant.advance(Duration::from_secs(10));
        let soc = plant.snapshot().cell_models[0].soc;
        assert_eq!(soc < s.cell_models[0].soc, flows, "{soc}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_ticker_advances_on_a_paused_clock() {
        let mut cfg = PackConfig::typical(Chemistry::Nmc, 4);
        cfg.ntcs = 1;
        let plant = Plant::with_pack(&cfg);
        {
            let mut g = plant.lock();
            g.dsg_fet = true;
            g.load = LoadState {
                current_set: 50.0,
                input: true,
            };
        }
        let task = spawn_ticker(plant.clone(), DEFAULT_TICK);
        // A quarter of an hour at 1 C takes a 50 Ah cell from 50 % to 25 %.
        tokio::time::sleep(Duration::from_secs(900)).await;
        task.abort();
        let soc = plant.snapshot().cell_models[0].soc;
        assert!((soc - 0.25).abs() < 0.001, "{soc}");
    }
}
