//! The electrical plant of the simulated bench: cells, FETs, supply and load.
//!
//! One `Plant` is shared by the simulated instruments (SCPI servers mutate the supply and
//! load), the cell simulator (sets cell voltages) and the BMS firmware host (reads cells,
//! drives FETs). Current flows from the supply only through a closed charge FET, and into
//! the load only through a closed discharge FET.

use std::sync::{Arc, Mutex, MutexGuard};

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

/// Everything the plant knows at one instant.
#[derive(Debug, Clone)]
pub struct PlantState {
    /// Cell voltages in volts, as forced by the cell simulator.
    pub cells: Vec<f64>,
    /// NTC temperatures in °C, as forced by the cell simulator.
    pub temps: Vec<f64>,
    /// Charge FET closed (conducting).
    pub chg_fet: bool,
    /// Discharge FET closed (conducting).
    pub dsg_fet: bool,
    /// The DC supply.
    pub supply: SupplyState,
    /// The electronic load.
    pub load: LoadState,
    /// Series resistance between supply/load terminals and the cell stack, in ohms.
    pub path_resistance: f64,
}

impl PlantState {
    /// Sum of the cell voltages.
    pub fn pack_voltage(&self) -> f64 {
        self.cells.iter().sum()
    }

    /// Current delivered by the supply into the pack (A, >= 0).
    pub fn supply_current(&self) -> f64 {
        if !self.supply.output || !self.chg_fet {
            return 0.0;
        }
        let headroom = self.supply.voltage_set - self.pack_voltage();
        if headroom <= 0.0 {
            return 0.0;
        }
        (headroom / self.path_resistance).min(self.supply.current_set)
    }

    /// Voltage at the supply terminals.
    pub fn supply_voltage(&self) -> f64 {
        if !self.supply.output {
            return 0.0;
        }
        if self.chg_fet {
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
        if self.load.input && self.dsg_fet {
            self.load.current_set
        } else {
            0.0
        }
    }

    /// Voltage at the load terminals.
    pub fn load_voltage(&self) -> f64 {
        if self.dsg_fet {
            (self.pack_voltage() - self.load_current() * self.path_resistance).max(0.0)
        } else {
            0.0
        }
    }

    /// Net pack current, positive when charging.
    pub fn pack_current(&self) -> f64 {
        self.supply_current() - self.load_current()
    }
}

/// The shared plant.
#[derive(Debug, Clone)]
pub struct Plant {
    inner: Arc<Mutex<PlantState>>,
}

impl Plant {
    /// A plant with `cells` cells at `cell_v` volts and `ntcs` sensors at `temp_c` °C.
    pub fn new(cells: usize, cell_v: f64, ntcs: usize, temp_c: f64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(PlantState {
                cells: vec![cell_v; cells],
                temps: vec![temp_c; ntcs],
                chg_fet: false,
                dsg_fet: false,
                supply: SupplyState::default(),
                load: LoadState::default(),
                path_resistance: 0.05,
            })),
        }
    }

    /// Lock the plant state for reading or writing.
    pub fn lock(&self) -> MutexGuard<'_, PlantState> {
        // A poisoned plant lock means a simulator task panicked; the state is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the state at this instant.
    pub fn snapshot(&self) -> PlantState {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supply_current_flows_only_through_a_closed_charge_fet() {
        let plant = Plant::new(16, 3.3, 4, 25.0);
        {
            let mut s = plant.lock();
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
}
