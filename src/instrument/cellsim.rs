//! Cell simulators. The CAN-backed one maps logical setpoints (cell n voltage, sensor n
//! temperature) onto DBC messages, as set in the rig's `mapping:`.

use std::time::Duration;

use thiserror::Error;

use crate::can::{Bus, CanError, Frame};
use crate::dbc::{Dbc, DbcError, Message};
use crate::rig::CellSimMapping;

/// Errors from a cell simulator.
#[derive(Debug, Error)]
pub enum CellSimError {
    /// The mapping does not fit the DBC.
    #[error("cell simulator `{id}`: {reason}")]
    Mapping {
        /// Instrument id.
        id: String,
        /// What does not fit.
        reason: String,
    },
    /// The setpoint could not be encoded.
    #[error("cell simulator `{id}`: cannot encode setpoint: {source}")]
    Encode {
        /// Instrument id.
        id: String,
        /// Codec error.
        source: Box<DbcError>,
    },
    /// The bus refused the frame.
    #[error("cell simulator `{id}`: {source}")]
    Bus {
        /// Instrument id.
        id: String,
        /// Bus error.
        source: CanError,
    },
}

/// A cell simulator as the runner sees it.
#[async_trait::async_trait]
pub trait CellSim: Send {
    /// Instrument id.
    fn id(&self) -> &str;
    /// Set one cell (1-based) to a voltage.
    async fn set_cell_voltage(&mut self, cell: u32, volts: f64) -> Result<(), CellSimError>;
    /// Set one temperature sensor (1-based) to a temperature in °C.
    async fn set_temperature(&mut self, sensor: u32, celsius: f64) -> Result<(), CellSimError>;
    /// Voltage setpoint accuracy in volts (half-width), for the uncertainty budget.
    fn accuracy(&self) -> f64;
    /// Temperature setpoint accuracy in °C (half-width).
    fn temperature_accuracy(&self) -> f64;
    /// How often a ramp should update its setpoint.
    fn update_period(&self) -> Duration;
}

/// One "index + value" message of a CAN cell simulator.
#[derive(Debug, Clone)]
struct Setter {
    message: Message,
    index_signal: String,
    value_signal: String,
}

impl Setter {
    fn new(
        id: &str,
        dbc: &Dbc,
        message: &str,
        index: &str,
        value: &str,
    ) -> Result<Self, CellSimError> {
        let err = |reason: String| CellSimError::Mapping {
            id: id.to_string(),
            reason,
        };
        let m = dbc
            .message(message)
            .ok_or_else(|| err(format!("message `{message}` is not in the DBC")))?;
        for s in [index, value] {
            if m.signal(s).is_none() {
                return Err(err(format!("signal `{s}` is not in message `{message}`")));
            }
        }
        Ok(Self {
            message: m.clone(),
            index_signal: index.to_string(),
            value_signal: value.to_string(),
        })
    }

    fn frame(&self, id: &str, index: u32, value: f64) -> Result<Frame, CellSimError> {
        let data = self
            .message
            .encode(&[
                (self.index_signal.as_str(), index as f64),
                (self.value_signal.as_str(), value),
            ])
            .map_err(|source| CellSimError::Encode {
                id: id.to_string(),
                source: Box::new(source),
            })?;
        Frame::new(self.message.id, self.message.extended, &data).map_err(|source| {
            CellSimError::Bus {
                id: id.to_string(),
                source,
            }
        })
    }
}

/// A cell simulator driven by DBC-encoded CAN frames.
pub struct CanCellSim {
    id: String,
    bus: Box<dyn Bus>,
    voltage: Setter,
    temperature: Option<Setter>,
    accuracy: f64,
    temperature_accuracy: f64,
    update_period: Duration,
}

impl CanCellSim {
    /// Build from a bus, a DBC and the rig's mapping; checks that they fit.
    pub fn new(
        id: &str,
        bus: Box<dyn Bus>,
        dbc: &Dbc,
        mapping: &CellSimMapping,
    ) -> Result<Self, CellSimError> {
        let voltage = Setter::new(
            id,
            dbc,
            &mapping.voltage_message,
            &mapping.index_signal,
            &mapping.voltage_signal,
        )?;
        let temperature = match &mapping.temperature {
            Some(t) => Some(Setter::new(
                id,
                dbc,
                &t.message,
                &t.index_signal,
                &t.value_signal,
            )?),
            None => None,
        };
        Ok(Self {
            id: id.to_string(),
            bus,
            voltage,
            temperature,
            accuracy: mapping.accuracy.0,
            temperature_accuracy: mapping
                .temperature
                .as_ref()
                .map(|t| t.accuracy.0)
                .unwrap_or(0.0),
            update_period: mapping.update_period.duration(),
        })
    }

    async fn send(&self, frame: Frame) -> Result<(), CellSimError> {
        self.bus
            .send(frame)
            .await
            .map_err(|source| CellSimError::Bus {
                id: self.id.clone(),
                source,
            })
    }
}

#[async_trait::async_trait]
impl CellSim for CanCellSim {
    fn id(&self) -> &str {
        &self.id
    }

    async fn set_cell_voltage(&mut self, cell: u32, volts: f64) -> Result<(), CellSimError> {
        let f = self.voltage.frame(&self.id, cell, volts)?;
        self.send(f).await
    }

    async fn set_temperature(&mut self, sensor: u32, celsius: f64) -> Result<(), CellSimError> {
        let t = self
            .temperature
            .as_ref()
            .ok_or_else(|| CellSimError::Mapping {
                id: self.id.clone(),
                reason: "the rig's mapping has no `temperature:` message".into(),
            })?;
        let f = t.frame(&self.id, sensor, celsius)?;
        self.send(f).await
    }

    fn accuracy(&self) -> f64 {
        self.accuracy
    }

    fn temperature_accuracy(&self) -> f64 {
        self.temperature_accuracy
    }

    fn update_period(&self) -> Duration {
        self.update_period
    }
}
