//! A cell simulator driven over SCPI (Bloomy ABS and alike): one channel per cell, with
//! output switching and fault injection per cell.
//!
//! The inherent methods speak the unit's channels. As a [`CellSim`] (what a run drives) it
//! speaks the pack's cells: cell `cell_offset + n` is channel `n`, so that a pack is split
//! over several units (`cell_offset` in the rig file; see [`super::cellsim::CellSimSet`]).
//! The first voltage set on a cell also switches that cell's output on, so that a plan's
//! `cells:` setpoints reach the BMS without a separate step; [`ScpiCellSim::set_output`]
//! switches it explicitly.

use std::collections::BTreeSet;
use std::time::Duration;

use super::cellsim::{CellSim, CellSimError};
use super::scpi::Core;
use super::{InstrumentError, Measurement};
use crate::scpi::{Client, Dialect, Role, Transport};

/// Setpoint update period of a ramp unless set otherwise.
pub const DEFAULT_UPDATE_PERIOD: Duration = Duration::from_millis(100);

/// A fault injected into one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellFault {
    /// No fault: the cell follows its setpoint.
    None,
    /// The cell is disconnected (broken sense wire).
    Open,
    /// The cell is shorted.
    Short,
    /// The cell's polarity is reversed.
    Polarity,
}

/// A cell simulator driven over SCPI.
pub struct ScpiCellSim {
    core: Core,
    enabled: BTreeSet<u32>,
    update_period: Duration,
    /// Pack cells before channel 1.
    offset: u32,
}

impl std::fmt::Debug for ScpiCellSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScpiCellSim")
            .field("id", &self.core.id)
            .field("dialect", &self.core.dialect.id)
            .finish()
    }
}

impl ScpiCellSim {
    /// Connect to `address` (e.g. `tcp://10.0.0.7:5025`) and send the dialect's connect sequence.
    pub async fn connect(
        id: &str,
        address: &str,
        dialect: Dialect,
        timeout: Duration,
    ) -> Result<Self, InstrumentError> {
        Ok(Self::from_core(
            Core::connect(id, address, dialect, timeout, Role::CellSim).await?,
        ))
    }

    /// Use an open transport (e.g. an in-memory pipe) and send the dialect's connect sequence.
    pub async fn open(
        id: &str,
        transport: Box<dyn Transport>,
        dialect: Dialect,
        timeout: Duration,
    ) -> Result<Self, InstrumentError> {
        Ok(Self::from_core(
            Core::open(id, transport, dialect, timeout, Role::CellSim).await?,
        ))
    }

    fn from_core(core: Core) -> Self {
        Self {
            core,
            enabled: BTreeSet::new(),
            update_period: DEFAULT_UPDATE_PERIOD,
            offset: 0,
        }
    }

    /// Place the unit in a pack split over several: channel n drives cell `offset + n`.
    pub fn with_cell_offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }

    /// The channel that drives pack cell `cell`, if this unit has it.
    fn channel_of(&self, cell: u32) -> Option<u32> {
        cell.checked_sub(self.offset)
            .filter(|ch| self.core.dialect.channel_ranges(*ch).is_some())
    }

    /// Ramp setpoints every `period` instead of every 100 ms.
    pub fn with_update_period(mut self, period: Duration) -> Self {
        self.update_period = period;
        self
    }

    /// The cells (channels) this simulator has.
    pub fn cells(&self) -> Vec<u32> {
        self.core.dialect.channel_numbers()
    }

    /// The dialect it speaks.
    pub fn dialect(&self) -> &Dialect {
        &self.core.dialect
    }

    /// The instrument's `*IDN?` reply.
    pub async fn identify(&mut self) -> Result<String, InstrumentError> {
        self.core.identify().await
    }

    /// Check that `*IDN?` names the dialect's maker and model; returns the reply.
    pub async fn verify_identity(&mut self) -> Result<String, InstrumentError> {
        self.core.verify_identity().await
    }

    fn check_cell(&self, cell: u32) -> Result<(), InstrumentError> {
        if self.core.dialect.channel_ranges(cell).is_some() {
            Ok(())
        } else {
            Err(InstrumentError::NoSuchChannel {
                id: self.core.id.clone(),
                dialect: self.core.dialect.id.clone(),
                channel: cell,
                channels: self.cells(),
            })
        }
    }

    /// Program one cell's voltage (V) without touching its output.
    pub async fn set_voltage(&mut self, cell: u32, volts: f64) -> Result<(), InstrumentError> {
        self.check_cell(cell)?;
        self.core
            .set_on(cell, "set_voltage", |d| &d.commands.set_voltage, volts)
            .await
    }

    /// Limit the current one cell may source and sink (A).
    pub async fn set_current_limits(
        &mut self,
        cell: u32,
        source: f64,
        sink: f64,
    ) -> Result<(), InstrumentError> {
        self.check_cell(cell)?;
        self.core
            .set_on(
                cell,
                "set_source_limit",
                |d| &d.commands.set_source_limit,
                source,
            )
            .await?;
        self.core
            .set_on(cell, "set_sink_limit", |d| &d.commands.set_sink_limit, sink)
            .await
    }

    /// Switch one cell's output on or off.
    pub async fn set_output(&mut self, cell: u32, on: bool) -> Result<(), InstrumentError> {
        self.check_cell(cell)?;
        self.core.set_enabled_on(cell, on).await?;
        if on {
            self.enabled.insert(cell);
        } else {
            self.enabled.remove(&cell);
        }
        Ok(())
    }

    /// Whether one cell's output is on.
    pub async fn output(&mut self, cell: u32) -> Result<bool, InstrumentError> {
        self.check_cell(cell)?;
        self.core.enabled_on(cell).await
    }

    /// Read one cell's voltage and current (0 A where the dialect cannot measure current).
    pub async fn measure(&mut self, cell: u32) -> Result<Measurement, InstrumentError> {
        self.check_cell(cell)?;
        let voltage = self
            .core
            .measure_one(
                cell,
                "measure_voltage",
                |d| &d.commands.measure_voltage,
                "V",
            )
            .await?;
        let current = if self.core.dialect.commands.measure_current.is_some() {
            self.core
                .measure_one(
                    cell,
                    "measure_current",
                    |d| &d.commands.measure_current,
                    "A",
                )
                .await?
        } else {
            0.0
        };
        Ok(Measurement { voltage, current })
    }

    /// Inject a fault into one cell, or remove it with [`CellFault::None`].
    pub async fn set_fault(&mut self, cell: u32, fault: CellFault) -> Result<(), InstrumentError> {
        self.check_cell(cell)?;
        match fault {
            CellFault::None => {
                self.core
                    .command_on(cell, "fault_none", |d| &d.commands.fault_none)
                    .await
            }
            CellFault::Open => {
                self.core
                    .command_on(cell, "fault_open", |d| &d.commands.fault_open)
                    .await
            }
            CellFault::Short => {
                self.core
                    .command_on(cell, "fault_short", |d| &d.commands.fault_short)
                    .await
            }
            CellFault::Polarity => {
                self.core
                    .command_on(cell, "fault_polarity", |d| &d.commands.fault_polarity)
                    .await
            }
        }
    }

    /// Read the instrument's error queue; the first error found is returned.
    pub async fn check_errors(&mut self) -> Result<(), InstrumentError> {
        self.core.check_errors().await
    }

    /// The SCPI client, for raw commands (e.g. `hilrig instruments scpi`).
    pub fn client(&mut self) -> &mut Client {
        &mut self.core.client
    }

    fn cell_error(&self, error: InstrumentError) -> CellSimError {
        let reason = match error {
            InstrumentError::Scpi { error, .. } => error.to_string(),
            other => other.to_string(),
        };
        CellSimError::Mapping {
            id: self.core.id.clone(),
            reason,
        }
    }
}

#[async_trait::async_trait]
impl CellSim for ScpiCellSim {
    fn id(&self) -> &str {
        &self.core.id
    }

    async fn set_cell_voltage(&mut self, cell: u32, volts: f64) -> Result<(), CellSimError> {
        let Some(ch) = self.channel_of(cell) else {
            return Err(CellSimError::Mapping {
                id: self.core.id.clone(),
                reason: format!(
                    "cell {cell} is not on this unit (channels {:?} drive cells {} to {})",
                    self.cells(),
                    self.offset + 1,
                    self.offset + self.cells().last().copied().unwrap_or(0)
                ),
            });
        };
        if let Err(e) = self.set_voltage(ch, volts).await {
            return Err(self.cell_error(e));
        }
        if !self.enabled.contains(&ch) {
            if let Err(e) = self.set_output(ch, true).await {
                return Err(self.cell_error(e));
            }
        }
        Ok(())
    }

    fn covers(&self, cell: u32) -> bool {
        self.channel_of(cell).is_some()
    }

    fn simulates_temperatures(&self) -> bool {
        false
    }

    fn over_can(&self) -> bool {
        false
    }

    async fn set_temperature(&mut self, sensor: u32, celsius: f64) -> Result<(), CellSimError> {
        let _ = celsius;
        Err(CellSimError::Mapping {
            id: self.core.id.clone(),
            reason: format!(
                "dialect `{}` simulates cells only, not temperature sensor {sensor}; emulate the \
                 NTCs with another instrument",
                self.core.dialect.id
            ),
        })
    }

    fn accuracy(&self) -> f64 {
        let d = &self.core.dialect;
        let spec = d.accuracy.voltage.set.unwrap_or(d.accuracy.voltage.measure);
        spec.uncertainty(d.ranges.max_voltage)
    }

    fn temperature_accuracy(&self) -> f64 {
        0.0
    }

    async fn measure_cell_current(&mut self, cell: u32) -> Result<f64, CellSimError> {
        let fail = |id: &str, reason: String| CellSimError::Readback {
            id: id.to_string(),
            cell,
            reason,
        };
        let Some(ch) = self.channel_of(cell) else {
            return Err(fail(&self.core.id, "the cell is not on this unit".into()));
        };
        if self.core.dialect.commands.measure_current.is_none() {
            return Err(fail(
                &self.core.id,
                format!(
                    "dialect `{}` has no `measure_current` command",
                    self.core.dialect.id
                ),
            ));
        }
        match self
            .core
            .measure_one(ch, "measure_current", |d| &d.commands.measure_current, "A")
            .await
        {
            Ok(i) => Ok(i),
            Err(e) => Err(self.cell_error(e)),
        }
    }

    fn current_accuracy(&self) -> f64 {
        let d = &self.core.dialect;
        if d.commands.measure_current.is_none() {
            return 0.0;
        }
        d.accuracy.current.measure.uncertainty(0.1)
    }

    fn update_period(&self) -> Duration {
        self.update_period
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::test_support::{scripted_pipe, sent_commands};
    use crate::scpi::builtin_dialect;

    /// A scripted cell simulator: `OUTPn?` answers 1, `MEASn:VOLT?` 3.3, errors none.
    fn fake() -> (Box<dyn Transport>, tokio::task::JoinHandle<Vec<String>>) {
        scripted_pipe(|line| {
            match line {
                "SYST:ERR?" => Some("0,\"No error\""),
                l if l.starts_with("OUTP") && l.ends_with('?') => Some("1"),
                l if l.ends_with(":VOLT?") => Some("3.300000E+00"),
                l if l.ends_with(":CURR?") => Some("-1.000000E-03"),
                _ => None,
            }
            .map(str::to_string)
        })
    }

    const T: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn the_first_setpoint_switches_the_cell_on() {
        let (transport, task) = fake();
        let dialect = builtin_dialect("bloomy-abs").unwrap();
        let mut cells = ScpiCellSim::open("cells", transport, dialect, T)
            .await
            .unwrap();
        cells.set_cell_voltage(5, 3.65).await.unwrap();
        cells.set_cell_voltage(5, 3.7).await.unwrap();
        cells.set_fault(5, CellFault::Open).await.unwrap();
        assert!(cells.output(5).await.unwrap());
        let m = cells.measure(5).await.unwrap();
        assert_eq!((m.voltage, m.current), (3.3, -0.001));
        drop(cells);
        let sent = sent_commands(task).await;
        assert_eq!(
            sent,
            [
                "*CLS",
                "SOUR5:VOLT 3.65",
                "OUTP5 ON",
                "SOUR5:VOLT 3.7",
                "OUTP5:FAUL OPEN",
                "OUTP5?",
                "MEAS5:VOLT?",
                "MEAS5:CURR?"
            ]
        );
    }

    #[tokio::test]
    async fn a_cell_beyond_the_simulator_is_refused_before_sending() {
        let (transport, task) = fake();
        let dialect = builtin_dialect("bloomy-abs").unwrap();
        let mut cells = ScpiCellSim::open("cells", transport, dialect, T)
            .await
            .unwrap();
        let error = cells.set_cell_voltage(9, 3.3).await.unwrap_err();
        assert!(
            error.to_string().contains("cell 9 is not on this unit")
                && error.to_string().contains("drive cells 1 to 8"),
            "{error}"
        );
        let error = cells.set_temperature(1, 25.0).await.unwrap_err();
        assert!(error.to_string().contains("cells only"), "{error}");
        drop(cells);
        assert!(!task.await.unwrap().iter().any(|l| l.contains("SOUR9")));
    }

    /// With `cell_offset: 8`, pack cell 9 is channel 1 and cell 8 is not on the unit.
    #[tokio::test]
    async fn a_unit_with_an_offset_drives_its_own_cells() {
        let (transport, task) = fake();
        let dialect = builtin_dialect("bloomy-abs").unwrap();
        let mut cells = ScpiCellSim::open("cells-b", transport, dialect, T)
            .await
            .unwrap()
            .with_cell_offset(8);
        assert!(cells.covers(9) && cells.covers(16));
        assert!(!cells.covers(8) && !cells.covers(17));
        cells.set_cell_voltage(9, 3.3).await.unwrap();
        let error = cells.set_cell_voltage(8, 3.3).await.unwrap_err();
        assert!(error.to_string().contains("drive cells 9 to 16"), "{error}");
        drop(cells);
        let seen = task.await.unwrap();
        assert!(
            seen.iter().any(|l| l.starts_with("SOUR1:VOLT 3.3")),
            "{seen:?}"
        );
        assert!(!seen
            .iter()
            .any(|l| l.starts_with("SOUR9") || l.starts_with("SOUR8")));
    }

    #[tokio::test]
    async fn a_supply_dialect_is_not_a_cell_simulator() {
        let (transport, _task) = fake();
        let error = ScpiCellSim::open("cells", transport, builtin_dialect("ea-psb").unwrap(), T)
            .await
            .unwrap_err();
        assert!(
            matches!(error, InstrumentError::WrongRole { .. }),
            "{error}"
        );
    }
}
