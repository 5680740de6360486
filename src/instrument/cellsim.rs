//! Cell simulators. The CAN-backed one maps logical setpoints (cell n voltage) onto a DBC
//! message, as set in the rig's `mapping:`.

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
    /// Setpoint accuracy in volts (half-width), for the uncertainty budget.
    fn accuracy(&self) -> f64;
    /// How often a ramp should update its setpoint.
    fn update_period(&self) -> Duration;
}

/// A cell simulator driven by DBC-encoded CAN frames.
pub struct CanCellSim {
    id: String,
    bus: Box<dyn Bus>,
    message: Message,
    index_signal: String,
    voltage_signal: String,
    accuracy: f64,
    update_period: Duration,
}

impl CanCellSim {
    /// Build from a bus, a DBC and the mapping's names; checks they fit.
    pub fn new(
        id: &str,
        bus: Box<dyn Bus>,
        dbc: &Dbc,
        mapping: &CellSimMapping,
    ) -> Result<Self, CellSimError> {
        let err = |reason: String| CellSimError::Mapping {
            id: id.to_string(),
            reason,
        };
        let message = &mapping.voltage_message;
        let m = dbc
            .message(message)
            .ok_or_else(|| err(format!("message `{message}` is not in the DBC")))?;
        for s in [&mapping.index_signal, &mapping.voltage_signal] {
            if m.signal(s).is_none() {
                return Err(err(format!("signal `{s}` is not in message `{message}`")));
            }
        }
        Ok(Self {
            id: id.to_string(),
            bus,
            message: m.clone(),
            index_signal: mapping.index_signal.clone(),
            voltage_signal: mapping.voltage_signal.clone(),
            accuracy: mapping.accuracy.0,
            update_period: mapping.update_period.duration(),
        })
    }
}

#[async_trait::async_trait]
impl CellSim for CanCellSim {
    fn id(&self) -> &str {
        &self.id
    }

    async fn set_cell_voltage(&mut self, cell: u32, volts: f64) -> Result<(), CellSimError> {
        let data = self
            .message
            .encode(&[
                (self.index_signal.as_str(), cell as f64),
                (self.voltage_signal.as_str(), volts),
            ])
            .map_err(|source| CellSimError::Encode {
                id: self.id.clone(),
                source: Box::new(source),
            })?;
        let frame =
            Frame::new(self.message.id, self.message.extended, &data).map_err(|source| {
                CellSimError::Bus {
                    id: self.id.clone(),
                    source,
                }
            })?;
        self.bus
            .send(frame)
            .await
            .map_err(|source| CellSimError::Bus {
                id: self.id.clone(),
                source,
            })
    }

    fn accuracy(&self) -> f64 {
        self.accuracy
    }

    fn update_period(&self) -> Duration {
        self.update_period
    }
}
