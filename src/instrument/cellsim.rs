//! Cell simulators. The CAN-backed one maps logical setpoints (cell n voltage, sensor n
//! temperature) onto DBC messages, as set in the rig's `mapping:`: one frame per setpoint
//! (index + value signals), or multiplexed groups of channels (`voltage_signal:
//! Cell{n:02}_Voltage`), as a debug-AFE injection uses.

use std::collections::BTreeMap;
use std::time::Duration;

use thiserror::Error;

use crate::can::{Bus, CanError, Frame};
use crate::dbc::{Dbc, DbcError, Message, Multiplex};
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
    /// A channel's current could not be read back.
    #[error("cell simulator `{id}`: cannot read the current of cell {cell}: {reason}")]
    Readback {
        /// Instrument id.
        id: String,
        /// The 1-based cell.
        cell: u32,
        /// Why.
        reason: String,
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
    /// Let go of one cell (1-based): the pack's own cell is seen again. A unit that cannot
    /// says so.
    async fn release_cell(&mut self, cell: u32) -> Result<(), CellSimError> {
        Err(CellSimError::Mapping {
            id: self.id().to_string(),
            reason: format!("cannot let go of cell {cell}: this unit has no release"),
        })
    }
    /// Voltage setpoint accuracy in volts (half-width), for the uncertainty budget.
    fn accuracy(&self) -> f64;
    /// Temperature setpoint accuracy in °C (half-width).
    fn temperature_accuracy(&self) -> f64;
    /// How often a ramp should update its setpoint.
    fn update_period(&self) -> Duration;
    /// Whether this simulator drives pack cell `cell` (1-based).
    fn covers(&self, cell: u32) -> bool {
        let _ = cell;
        true
    }
    /// Whether it emulates temperature sensors.
    fn simulates_temperatures(&self) -> bool {
        true
    }
    /// Read back the current of the channel driving cell `cell` (1-based), in amperes,
    /// positive when the channel sources (the pack discharging, a balancing resistor
    /// drawing from it). A simulator that cannot measure it says so.
    async fn measure_cell_current(&mut self, cell: u32) -> Result<f64, CellSimError> {
        Err(CellSimError::Readback {
            id: self.id().to_string(),
            cell,
            reason: "this cell simulator has no current read-back (a CAN mapping needs \
                     `current:`, a SCPI dialect `measure_current`)"
                .into(),
        })
    }
    /// Current read-back accuracy in amperes (half-width); 0 when it cannot read back.
    fn current_accuracy(&self) -> f64 {
        0.0
    }
    /// Whether its setpoints go out as CAN frames nobody acknowledges (so that a setpoint
    /// sent counts as done only while the DUT's bus is alive); a SCPI unit answers itself.
    fn over_can(&self) -> bool {
        true
    }
}

/// Several cell simulators as one: a pack split over units (each cell to the unit that
/// covers it, temperatures to the first that emulates them). Accuracy and update period are
/// the worst of the units'.
pub struct CellSimSet {
    id: String,
    units: Vec<Box<dyn CellSim>>,
}

impl CellSimSet {
    /// Combine `units` (at least one); the set's id joins theirs with `+`.
    pub fn new(units: Vec<Box<dyn CellSim>>) -> Self {
        let id = units
            .iter()
            .map(|u| u.id().to_string())
            .collect::<Vec<_>>()
            .join("+");
        Self { id, units }
    }

    fn unsupported(&self, what: String) -> CellSimError {
        CellSimError::Mapping {
            id: self.id.clone(),
            reason: what,
        }
    }
}

#[async_trait::async_trait]
impl CellSim for CellSimSet {
    fn id(&self) -> &str {
        &self.id
    }

    async fn set_cell_voltage(&mut self, cell: u32, volts: f64) -> Result<(), CellSimError> {
        match self.units.iter_mut().find(|u| u.covers(cell)) {
            Some(u) => u.set_cell_voltage(cell, volts).await,
            None => Err(self.unsupported(format!("no unit drives cell {cell}"))),
        }
    }

    async fn release_cell(&mut self, cell: u32) -> Result<(), CellSimError> {
        match self.units.iter_mut().find(|u| u.covers(cell)) {
            Some(u) => u.release_cell(cell).await,
            None => Err(self.unsupported(format!("no unit drives cell {cell}"))),
        }
    }

    async fn set_temperature(&mut self, sensor: u32, celsius: f64) -> Result<(), CellSimError> {
        match self.units.iter_mut().find(|u| u.simulates_temperatures()) {
            Some(u) => u.set_temperature(sensor, celsius).await,
            None => Err(self.unsupported(format!(
                "no unit emulates temperature sensor {sensor}; add one that emulates NTCs"
            ))),
        }
    }

    fn accuracy(&self) -> f64 {
        self.units.iter().map(|u| u.accuracy()).fold(0.0, f64::max)
    }

    fn temperature_accuracy(&self) -> f64 {
        self.units
            .iter()
            .filter(|u| u.simulates_temperatures())
            .map(|u| u.temperature_accuracy())
            .fold(0.0, f64::max)
    }

    fn update_period(&self) -> Duration {
        self.units
            .iter()
            .map(|u| u.update_period())
            .max()
            .unwrap_or_default()
    }

    fn covers(&self, cell: u32) -> bool {
        self.units.iter().any(|u| u.covers(cell))
    }

    async fn measure_cell_current(&mut self, cell: u32) -> Result<f64, CellSimError> {
        match self.units.iter_mut().find(|u| u.covers(cell)) {
            Some(u) => u.measure_cell_current(cell).await,
            None => Err(self.unsupported(format!("no unit drives cell {cell}"))),
        }
    }

    fn current_accuracy(&self) -> f64 {
        self.units
            .iter()
            .map(|u| u.current_accuracy())
            .fold(0.0, f64::max)
    }

    fn simulates_temperatures(&self) -> bool {
        self.units.iter().any(|u| u.simulates_temperatures())
    }

    fn over_can(&self) -> bool {
        self.units.iter().any(|u| u.over_can())
    }
}

/// How one kind of setpoint (cell voltage, temperature) maps onto a DBC message.
///
/// Either one frame per setpoint with an index signal and a value signal, or, when the value
/// signal's name holds `{n}` (1-based channel number, `{n:02}` zero-padded), one signal per
/// channel in a message multiplexed by the index signal. A frame then carries a whole group;
/// the other channels of the group keep their last setpoints (a channel never set takes the
/// value being set the first time its group is sent, and keeps it).
#[derive(Debug, Clone)]
struct Setter {
    message: Message,
    index_signal: String,
    value_signal: String,
    /// Per-channel signals: channel -> (signal name, multiplexor raw value).
    channels: BTreeMap<u32, (String, u64)>,
    /// Last setpoint of each channel (grouped messages only).
    last: BTreeMap<u32, f64>,
}

/// A `{n}` / `{n:0W}` placeholder in a signal name: prefix, zero-padding width, suffix.
fn placeholder(template: &str) -> Option<(&str, usize, &str)> {
    let open = template.find("{n")?;
    let close = open + template.get(open..)?.find('}')?;
    let spec = template.get(open + 2..close)?;
    let width = match spec {
        "" => 0,
        w => w.strip_prefix(":0")?.parse().ok()?,
    };
    Some((template.get(..open)?, width, template.get(close + 1..)?))
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
        if m.signal(index).is_none() {
            return Err(err(format!(
                "signal `{index}` is not in message `{message}`"
            )));
        }
        let mut channels = BTreeMap::new();
        if let Some((prefix, width, suffix)) = placeholder(value) {
            if m.multiplexor().map(|s| s.name.as_str()) != Some(index) {
                return Err(err(format!(
                    "`{value}` names one signal per channel, so `{index}` must be the \
                     multiplexor (M) of message `{message}`"
                )));
            }
            for s in &m.signals {
                let Some(digits) = s
                    .name
                    .strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix(suffix))
                else {
                    continue;
                };
                let Ok(n) = digits.parse::<u32>() else {
                    continue;
                };
                if !digits.bytes().all(|b| b.is_ascii_digit()) || format!("{n:0width$}") != digits {
                    continue;
                }
                let Multiplex::Multiplexed(mux) = s.multiplex else {
                    return Err(err(format!(
                        "signal `{}` of message `{message}` is not multiplexed by `{index}`",
                        s.name
                    )));
                };
                channels.insert(n, (s.name.clone(), mux));
            }
            if channels.is_empty() {
                return Err(err(format!(
                    "no signal of message `{message}` matches `{value}` (e.g. `{prefix}{:0width$}{suffix}`)",
                    1
                )));
            }
        } else if m.signal(value).is_none() {
            return Err(err(format!(
                "signal `{value}` is not in message `{message}`"
            )));
        }
        Ok(Self {
            message: m.clone(),
            index_signal: index.to_string(),
            value_signal: value.to_string(),
            channels,
            last: BTreeMap::new(),
        })
    }

    fn frame(&mut self, id: &str, index: u32, value: f64) -> Result<Frame, CellSimError> {
        let encoded = if self.channels.is_empty() {
            self.message.encode(&[
                (self.index_signal.as_str(), index as f64),
                (self.value_signal.as_str(), value),
            ])
        } else {
            let Some((_, mux)) = self.channels.get(&index) else {
                return Err(CellSimError::Mapping {
                    id: id.to_string(),
                    reason: format!(
                        "channel {index} has no signal `{}` in message `{}` (channels {}..={})",
                        self.value_signal,
                        self.message.name,
                        self.channels.keys().next().copied().unwrap_or(0),
                        self.channels.keys().last().copied().unwrap_or(0)
                    ),
                });
            };
            let mux = *mux;
            self.last.insert(index, value);
            let mux_physical = self
                .message
                .signal(&self.index_signal)
                .map_or(mux as f64, |s| mux as f64 * s.factor + s.offset);
            let mut values: Vec<(&str, f64)> = vec![(self.index_signal.as_str(), mux_physical)];
            for (n, (signal, m)) in &self.channels {
                if *m == mux {
                    let v = *self.last.entry(*n).or_insert(value);
                    values.push((signal.as_str(), v));
                }
            }
            self.message.encode(&values)
        };
        let data = encoded.map_err(|source| CellSimError::Encode {
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
    current: Option<CurrentReadback>,
    accuracy: f64,
    temperature_accuracy: f64,
    update_period: Duration,
}

/// The request and reply messages of a CAN cell simulator's current read-back.
struct CurrentReadback {
    request: Message,
    reply: Message,
    index_signal: String,
    value_signal: String,
    accuracy: f64,
    timeout: Duration,
}

impl CurrentReadback {
    fn new(id: &str, dbc: &Dbc, m: &crate::rig::CurrentMapping) -> Result<Self, CellSimError> {
        let mapping = |reason: String| CellSimError::Mapping {
            id: id.to_string(),
            reason,
        };
        let message = |name: &str| {
            dbc.message(name).cloned().ok_or_else(|| {
                mapping(format!("current read-back: no message `{name}` in the DBC"))
            })
        };
        let request = message(&m.request)?;
        let reply = message(&m.reply)?;
        for (msg, signal) in [
            (&request, &m.index_signal),
            (&reply, &m.index_signal),
            (&reply, &m.value_signal),
        ] {
            if !msg.signals.iter().any(|s| &s.name == signal) {
                return Err(mapping(format!(
                    "current read-back: message `{}` has no signal `{signal}`",
                    msg.name
                )));
            }
        }
        Ok(Self {
            request,
            reply,
            index_signal: m.index_signal.clone(),
            value_signal: m.value_signal.clone(),
            accuracy: m.accuracy.0,
            timeout: m
                .timeout
                .map_or(Duration::from_millis(200), |t| t.duration()),
        })
    }
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
        let current = match &mapping.current {
            Some(c) => Some(CurrentReadback::new(id, dbc, c)?),
            None => None,
        };
        Ok(Self {
            id: id.to_string(),
            bus,
            voltage,
            temperature,
            current,
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

    /// A setpoint of 0 V: the CAN cell simulator's channel disconnects (the convention of
    /// the project's `CellSim_SetCell`, which the simulated bench follows).
    async fn release_cell(&mut self, cell: u32) -> Result<(), CellSimError> {
        let f = self.voltage.frame(&self.id, cell, 0.0)?;
        self.send(f).await
    }

    async fn set_temperature(&mut self, sensor: u32, celsius: f64) -> Result<(), CellSimError> {
        let t = self
            .temperature
            .as_mut()
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

    fn current_accuracy(&self) -> f64 {
        self.current.as_ref().map_or(0.0, |c| c.accuracy)
    }

    async fn measure_cell_current(&mut self, cell: u32) -> Result<f64, CellSimError> {
        let fail = |reason: String| CellSimError::Readback {
            id: self.id.clone(),
            cell,
            reason,
        };
        let Some(c) = &self.current else {
            return Err(fail(
                "the rig's mapping has no `current:` read-back (request and reply messages)".into(),
            ));
        };
        let data = c
            .request
            .encode(&[(c.index_signal.as_str(), cell as f64)])
            .map_err(|e| fail(format!("cannot encode `{}`: {e}", c.request.name)))?;
        let frame = Frame::new(c.request.id, c.request.extended, &data)
            .map_err(|e| fail(format!("`{}`: {e}", c.request.name)))?;
        // Listen before asking, so that a fast reply is not missed.
        let mut rx = self.bus.subscribe();
        self.send(frame).await?;
        let reply = async {
            loop {
                match rx.recv().await {
                    Ok(r) if r.frame.is_data(c.reply.id, c.reply.extended) => {
                        let Ok(values) = c.reply.decode(&r.frame.data) else {
                            continue;
                        };
                        let get = |n: &str| values.iter().find(|d| d.name == n).map(|d| d.physical);
                        if get(&c.index_signal) == Some(cell as f64) {
                            if let Some(v) = get(&c.value_signal) {
                                return Ok(v);
                            }
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err("the bus closed before the reply".to_string())
                    }
                }
            }
        };
        match tokio::time::timeout(c.timeout, reply).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(reason)) => Err(fail(reason)),
            Err(_) => Err(fail(format!(
                "no `{}` reply within {} ms",
                c.reply.name,
                c.timeout.as_millis()
            ))),
        }
    }
}
