//! Supplies and loads driven over SCPI, with everything model-specific taken from a dialect.
//!
//! An address may name a channel of a multi-channel model: `tcp://10.0.0.5:5025?channel=2`
//! (channel 1 otherwise); the dialect's ranges and accuracy are then that channel's.

use std::time::Duration;

use super::{InstrumentError, Load, Measurement, Supply};
use crate::scpi::reply::{parse_bool, parse_reading, split_fields, unquote};
use crate::scpi::{is_query, Client, Dialect, OcpKind, Role, ScpiError, Template, Transport};

/// A template accessor: the dialect field a command comes from.
pub(super) type Field = fn(&Dialect) -> &Option<Template>;

/// What SCPI supplies, loads and cell simulators share: id, dialect, client and channel.
pub(super) struct Core {
    pub(super) id: String,
    /// The dialect as loaded, with every channel.
    base: Dialect,
    /// The dialect narrowed to `channel`.
    pub(super) dialect: Dialect,
    pub(super) client: Client,
    pub(super) channel: u32,
    /// The `*IDN?` answer checked against the dialect at connect (empty for an open transport).
    pub(super) idn: String,
}

impl Core {
    /// Connect to `address` (the dialect's port and baud rate fill in missing ones; a
    /// `?channel=N` option selects the channel). The instrument must first answer `*IDN?`
    /// with the dialect's maker and model: nothing else is sent to a wrong instrument.
    pub(super) async fn connect(
        id: &str,
        address: &str,
        dialect: Dialect,
        timeout: Duration,
        role: Role,
    ) -> Result<Self, InstrumentError> {
        Ok(
            Self::connect_mode(id, address, dialect, timeout, role, ConnectMode::Settings)
                .await?
                .0,
        )
    }

    /// As [`Core::connect`], with the connect sequence as `mode` says; the errors the
    /// sequence reported where `mode` lets them pass.
    pub(super) async fn connect_mode(
        id: &str,
        address: &str,
        dialect: Dialect,
        timeout: Duration,
        role: Role,
        mode: ConnectMode,
    ) -> Result<(Self, Vec<InstrumentError>), InstrumentError> {
        check_role(id, &dialect, role)?;
        let (client, channel) = Client::connect_for(address, &dialect, timeout)
            .await
            .map_err(|error| InstrumentError::Scpi {
                id: id.to_string(),
                error,
            })?;
        let mut core = Self::start(id, client, dialect, role)?;
        if let Some(channel) = channel {
            core.select_channel(channel)?;
        }
        core.idn = core.verify_identity().await?;
        let passed = core.send_on_connect(mode).await?;
        Ok((core, passed))
    }

    /// Take over an open transport and send the dialect's connect sequence.
    pub(super) async fn open(
        id: &str,
        transport: Box<dyn Transport>,
        dialect: Dialect,
        timeout: Duration,
        role: Role,
    ) -> Result<Self, InstrumentError> {
        Ok(
            Self::open_mode(id, transport, dialect, timeout, role, ConnectMode::Settings)
                .await?
                .0,
        )
    }

    /// As [`Core::open`], with the connect sequence as `mode` says.
    pub(super) async fn open_mode(
        id: &str,
        transport: Box<dyn Transport>,
        dialect: Dialect,
        timeout: Duration,
        role: Role,
        mode: ConnectMode,
    ) -> Result<(Self, Vec<InstrumentError>), InstrumentError> {
        check_role(id, &dialect, role)?;
        let client = Client::new(transport, dialect.client_options(timeout))
            .with_error_query(&dialect.error_query);
        let mut core = Self::start(id, client, dialect, role)?;
        let passed = core.send_on_connect(mode).await?;
        Ok((core, passed))
    }

    fn start(
        id: &str,
        client: Client,
        dialect: Dialect,
        role: Role,
    ) -> Result<Self, InstrumentError> {
        let first = dialect.channel_numbers().first().copied().unwrap_or(1);
        let mut core = Core {
            id: id.to_string(),
            base: dialect.clone(),
            dialect,
            client,
            channel: 1,
            idn: String::new(),
        };
        // Supplies and loads drive one channel and take its ranges; a cell simulator
        // addresses every cell and keeps the whole dialect.
        if role != Role::CellSim {
            core.select_channel(first)?;
        }
        Ok(core)
    }

    /// Send the dialect's connect sequence as `mode` says; the errors let pass.
    async fn send_on_connect(
        &mut self,
        mode: ConnectMode,
    ) -> Result<Vec<InstrumentError>, InstrumentError> {
        let mut passed = Vec::new();
        if mode == ConnectMode::ReadOnly {
            return Ok(passed);
        }
        for command in self.dialect.on_connect.clone() {
            let command = crate::scpi::render(&command, None, self.channel);
            if let Err(e) = self.client.write_checked(&command).await {
                let e = self.err(e);
                // A lost connection ends it in every mode; an instrument's own error
                // does not stop a switch-off.
                let instrument_error = matches!(e.scpi(), Some(ScpiError::Instrument { .. }));
                if mode == ConnectMode::SwitchOff && instrument_error {
                    passed.push(e);
                } else {
                    return Err(e);
                }
            }
        }
        Ok(passed)
    }

    /// Drive `channel` from now on; ranges and accuracy become that channel's.
    pub(super) fn select_channel(&mut self, channel: u32) -> Result<(), InstrumentError> {
        let narrowed =
            self.base
                .for_channel(channel)
                .ok_or_else(|| InstrumentError::NoSuchChannel {
                    id: self.id.clone(),
                    dialect: self.dialect.id.clone(),
                    channel,
                    channels: self.base.channel_numbers(),
                })?;
        self.dialect = narrowed;
        self.channel = channel;
        Ok(())
    }

    pub(super) fn err(&self, error: ScpiError) -> InstrumentError {
        InstrumentError::Scpi {
            id: self.id.clone(),
            error,
        }
    }

    /// The template `name`, or `Unsupported` when the dialect lacks it.
    pub(super) fn template(
        &self,
        name: &'static str,
        field: Field,
    ) -> Result<Template, InstrumentError> {
        field(&self.dialect)
            .clone()
            .ok_or_else(|| self.unsupported(name))
    }

    pub(super) fn unsupported(&self, name: &'static str) -> InstrumentError {
        InstrumentError::Unsupported {
            id: self.id.clone(),
            dialect: self.dialect.id.clone(),
            command: name,
        }
    }

    /// Send a setting on `channel` and check the error queue.
    pub(super) async fn set_on(
        &mut self,
        channel: u32,
        name: &'static str,
        field: Field,
        value: f64,
    ) -> Result<(), InstrumentError> {
        if !value.is_finite() {
            return Err(InstrumentError::NotFinite {
                id: self.id.clone(),
                what: name,
                value,
            });
        }
        let commands = self.template(name, field)?.render(Some(value), channel);
        self.client
            .write_sequence_checked(&commands)
            .await
            .map_err(|e| self.err(e))
    }

    /// Refuse `value` for `what` unless it is within `0..=max` of this channel.
    pub(super) fn check_range(
        &self,
        what: &'static str,
        value: f64,
        max: f64,
    ) -> Result<(), InstrumentError> {
        if !value.is_finite() {
            return Err(InstrumentError::NotFinite {
                id: self.id.clone(),
                what,
                value,
            });
        }
        // Slack for a limit written with rounding (`30 V` vs 30.000000001).
        if value < 0.0 || value > max * (1.0 + 1e-9) {
            return Err(InstrumentError::OutOfRange {
                id: self.id.clone(),
                dialect: self.dialect.id.clone(),
                channel: self.channel,
                what,
                value,
                max,
            });
        }
        Ok(())
    }

    /// Send a setting on this instrument's channel one command at a time, checking the error
    /// queue after each, so that a later step (arming a protection) never follows a
    /// refused one (its level).
    pub(super) async fn set_stepwise(
        &mut self,
        name: &'static str,
        field: Field,
        value: f64,
    ) -> Result<(), InstrumentError> {
        if !value.is_finite() {
            return Err(InstrumentError::NotFinite {
                id: self.id.clone(),
                what: name,
                value,
            });
        }
        let commands = self
            .template(name, field)?
            .render(Some(value), self.channel);
        for command in commands {
            self.client
                .write_checked(&command)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Send a setting on this instrument's channel and check the error queue.
    pub(super) async fn set(
        &mut self,
        name: &'static str,
        field: Field,
        value: f64,
    ) -> Result<(), InstrumentError> {
        self.set_on(self.channel, name, field, value).await
    }

    /// Send a command without a value on `channel` and check the error queue.
    pub(super) async fn command_on(
        &mut self,
        channel: u32,
        name: &'static str,
        field: Field,
    ) -> Result<(), InstrumentError> {
        let commands = self.template(name, field)?.render(None, channel);
        self.client
            .write_sequence_checked(&commands)
            .await
            .map_err(|e| self.err(e))
    }

    /// Send a command without a value and check the error queue.
    pub(super) async fn command(
        &mut self,
        name: &'static str,
        field: Field,
    ) -> Result<(), InstrumentError> {
        self.command_on(self.channel, name, field).await
    }

    /// Run a query template on `channel`: the non-query commands are written, the replies
    /// to the queries returned with the query that produced each.
    pub(super) async fn query_on(
        &mut self,
        channel: u32,
        name: &'static str,
        field: Field,
    ) -> Result<Vec<(String, String)>, InstrumentError> {
        let commands = self.template(name, field)?.render(None, channel);
        let mut replies = Vec::new();
        for command in commands {
            if is_query(&command) {
                let reply = self.query(&command).await?;
                replies.push((command, reply));
            } else {
                self.client.write(&command).await.map_err(|e| self.err(e))?;
            }
        }
        Ok(replies)
    }

    /// Every boolean a query template answers on `channel`.
    pub(super) async fn booleans_on(
        &mut self,
        channel: u32,
        name: &'static str,
        field: Field,
    ) -> Result<Vec<bool>, InstrumentError> {
        let mut values = Vec::new();
        for (command, reply) in self.query_on(channel, name, field).await? {
            let value = parse_bool(&reply)
                .map_err(|reason| self.err(ScpiError::bad_reply(&command, &reply, reason)))?;
            values.push(value);
        }
        Ok(values)
    }

    pub(super) async fn check_errors(&mut self) -> Result<(), InstrumentError> {
        self.client.drain_errors().await.map_err(|e| self.err(e))
    }

    pub(super) async fn query(&mut self, command: &str) -> Result<String, InstrumentError> {
        self.client.query(command).await.map_err(|e| self.err(e))
    }

    pub(super) async fn identify(&mut self) -> Result<String, InstrumentError> {
        Ok(self.query("*IDN?").await?.trim().to_string())
    }

    pub(super) async fn verify_identity(&mut self) -> Result<String, InstrumentError> {
        let idn = self.identify().await?;
        if self.dialect.matches_identity(&idn) {
            Ok(idn)
        } else {
            Err(InstrumentError::WrongIdentity {
                id: self.id.clone(),
                dialect: self.dialect.id.clone(),
                maker: self.dialect.maker_text(),
                model: self.dialect.model_text(),
                idn,
            })
        }
    }

    /// Output (input) state on `channel`: on only when every query says on.
    pub(super) async fn enabled_on(&mut self, channel: u32) -> Result<bool, InstrumentError> {
        let values = self
            .booleans_on(channel, "output_query", |d| &d.commands.output_query)
            .await?;
        Ok(values.iter().all(|&v| v))
    }

    pub(super) async fn enabled(&mut self) -> Result<bool, InstrumentError> {
        self.enabled_on(self.channel).await
    }

    pub(super) async fn set_enabled_on(
        &mut self,
        channel: u32,
        on: bool,
    ) -> Result<(), InstrumentError> {
        if on {
            self.command_on(channel, "output_on", |d| &d.commands.output_on)
                .await
        } else {
            self.command_on(channel, "output_off", |d| &d.commands.output_off)
                .await
        }
    }

    pub(super) async fn set_enabled(&mut self, on: bool) -> Result<(), InstrumentError> {
        self.set_enabled_on(self.channel, on).await
    }

    /// Whether a protection has tripped on `channel` (any query saying so).
    pub(super) async fn tripped_on(&mut self, channel: u32) -> Result<bool, InstrumentError> {
        let values = self
            .booleans_on(channel, "protection_query", |d| {
                &d.commands.protection_query
            })
            .await?;
        Ok(values.iter().any(|&v| v))
    }

    pub(super) async fn measure_on(
        &mut self,
        channel: u32,
    ) -> Result<Measurement, InstrumentError> {
        if let (Some(_), Some(fields)) = (
            self.dialect.commands.measure_all.as_ref(),
            self.dialect.replies.measure_all,
        ) {
            let replies = self
                .query_on(channel, "measure_all", |d| &d.commands.measure_all)
                .await?;
            let Some((command, reply)) = replies.into_iter().last() else {
                return Err(self.unsupported("measure_all"));
            };
            let body = unquote(reply.trim());
            let parts = split_fields(&body);
            let field = |index: usize, unit: &str| -> Result<f64, String> {
                let text = parts.get(index).ok_or_else(|| {
                    format!("expected at least {} comma-separated fields", index + 1)
                })?;
                parse_reading(text, Some(unit)).map(|q| q.value)
            };
            let measured =
                field(fields.voltage, "V").and_then(|v| Ok((v, field(fields.current, "A")?)));
            return match measured {
                Ok((voltage, current)) => Ok(Measurement { voltage, current }),
                Err(reason) => Err(self.err(ScpiError::bad_reply(&command, &reply, reason))),
            };
        }
        let voltage = self
            .measure_one(
                channel,
                "measure_voltage",
                |d| &d.commands.measure_voltage,
                "V",
            )
            .await?;
        let current = self
            .measure_one(
                channel,
                "measure_current",
                |d| &d.commands.measure_current,
                "A",
            )
            .await?;
        Ok(Measurement { voltage, current })
    }

    pub(super) async fn measure(&mut self) -> Result<Measurement, InstrumentError> {
        self.measure_on(self.channel).await
    }

    pub(super) async fn measure_one(
        &mut self,
        channel: u32,
        name: &'static str,
        field: Field,
        unit: &str,
    ) -> Result<f64, InstrumentError> {
        let replies = self.query_on(channel, name, field).await?;
        let Some((command, reply)) = replies.into_iter().last() else {
            return Err(self.unsupported(name));
        };
        parse_reading(&reply, Some(unit))
            .map(|q| q.value)
            .map_err(|reason| self.err(ScpiError::bad_reply(&command, &reply, reason)))
    }
}

/// The OVP and OCP levels to program on a channel for an envelope's limits: the tighter
/// of the envelope and the channel's protection ceiling, rounded down to its resolution.
pub fn protection_levels(channel: &Dialect, ovp_volts: f64, ocp_amps: f64) -> (f64, f64) {
    let r = &channel.ranges;
    let down = |value: f64, resolution: Option<f64>| match resolution {
        Some(step) if step > 0.0 => ((value / step) + 1e-9).floor() * step,
        _ => value,
    };
    (
        down(ovp_volts.min(r.ovp_ceiling()), r.voltage_resolution),
        down(ocp_amps.min(r.ocp_ceiling()), r.current_resolution),
    )
}

/// What a connection is for, which decides the connect sequence (`on_connect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectMode {
    /// Settings follow: the whole sequence, any error it reports refuses the connection.
    Settings,
    /// Only queries follow: nothing but `*IDN?` is sent at connect (no `*CLS`, no mode
    /// change), so the error queue and the instrument's mode stay as they were.
    ReadOnly,
    /// A switch-off follows: the whole sequence, and an error it reports (say, to the
    /// remote lock) is kept for the caller instead of stopping the switch-off.
    SwitchOff,
}

fn check_role(id: &str, dialect: &Dialect, expected: Role) -> Result<(), InstrumentError> {
    if dialect.role == expected {
        Ok(())
    } else {
        Err(InstrumentError::WrongRole {
            id: id.to_string(),
            dialect: dialect.id.clone(),
            actual: dialect.role,
            expected,
        })
    }
}

/// What a supply and a load driven over SCPI have alike: the type over a [`Core`], its
/// `Debug`, the ways to connect, the channel, the identity, protection trips and the client.
macro_rules! scpi_instrument {
    ($ty:ident, $role:expr, $what:literal) => {
        #[doc = concat!($what, " driven over SCPI.")]
        pub struct $ty {
            core: Core,
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("id", &self.core.id)
                    .field("dialect", &self.core.dialect.id)
                    .field("channel", &self.core.channel)
                    .finish()
            }
        }

        impl $ty {
            /// Connect to `address` (e.g. `tcp://10.0.0.5:5025`,
            /// `serial:///dev/ttyUSB0?baud=9600`, with `?channel=N` for a channel other than
            /// the first) and send the dialect's connect sequence.
            pub async fn connect(
                id: &str,
                address: &str,
                dialect: Dialect,
                timeout: Duration,
            ) -> Result<Self, InstrumentError> {
                Ok(Self {
                    core: Core::connect(id, address, dialect, timeout, $role).await?,
                })
            }

            /// Use an open transport (e.g. an in-memory pipe) and send the dialect's connect
            /// sequence.
            pub async fn open(
                id: &str,
                transport: Box<dyn Transport>,
                dialect: Dialect,
                timeout: Duration,
            ) -> Result<Self, InstrumentError> {
                Ok(Self {
                    core: Core::open(id, transport, dialect, timeout, $role).await?,
                })
            }

            /// Connect for `mode` (see [`ConnectMode`]); the connect-sequence errors let pass.
            pub async fn connect_with(
                id: &str,
                address: &str,
                dialect: Dialect,
                timeout: Duration,
                mode: ConnectMode,
            ) -> Result<(Self, Vec<InstrumentError>), InstrumentError> {
                let (core, passed) =
                    Core::connect_mode(id, address, dialect, timeout, $role, mode).await?;
                Ok((Self { core }, passed))
            }

            /// Use an open transport for `mode` (see [`ConnectMode`]).
            pub async fn open_with(
                id: &str,
                transport: Box<dyn Transport>,
                dialect: Dialect,
                timeout: Duration,
                mode: ConnectMode,
            ) -> Result<(Self, Vec<InstrumentError>), InstrumentError> {
                let (core, passed) =
                    Core::open_mode(id, transport, dialect, timeout, $role, mode).await?;
                Ok((Self { core }, passed))
            }

            /// After a [`ConnectMode::ReadOnly`] connection (identity only) and the caller's
            /// own checks of the unit, send the connect sequence for `mode`; the errors let
            /// pass.
            pub async fn begin(
                &mut self,
                mode: ConnectMode,
            ) -> Result<Vec<InstrumentError>, InstrumentError> {
                self.core.send_on_connect(mode).await
            }

            /// Drive channel `channel` (the `{ch}` in templates); its ranges and accuracy
            /// apply.
            pub fn with_channel(mut self, channel: u32) -> Result<Self, InstrumentError> {
                self.core.select_channel(channel)?;
                Ok(self)
            }

            /// The channel this instrument drives.
            pub fn channel(&self) -> u32 {
                self.core.channel
            }

            /// Check that `*IDN?` names the dialect's maker and model; returns the reply.
            pub async fn verify_identity(&mut self) -> Result<String, InstrumentError> {
                self.core.verify_identity().await
            }

            /// The `*IDN?` answer checked at connect (empty when opened on a transport).
            pub fn identity(&self) -> &str {
                &self.core.idn
            }

            /// Clear a latched protection trip (OVP, OCP or watchdog).
            pub async fn clear_protection(&mut self) -> Result<(), InstrumentError> {
                self.core
                    .command("clear_protection", |d| &d.commands.clear_protection)
                    .await
            }

            /// Whether a protection (over-voltage, over-current) has tripped.
            pub async fn tripped(&mut self) -> Result<bool, InstrumentError> {
                self.core.tripped_on(self.core.channel).await
            }

            /// The SCPI client, for raw commands (e.g. `hilrig instruments scpi`).
            pub fn client(&mut self) -> &mut Client {
                &mut self.core.client
            }
        }
    };
}

/// The trait impl of a supply or load over SCPI: what both do alike through [`Core`]
/// (identity, errors, current setting, measurement), then the items given.
macro_rules! scpi_instrument_impl {
    ($trait:ident for $ty:ident { $($rest:tt)* }) => {
        #[async_trait::async_trait]
        impl $trait for $ty {
            fn id(&self) -> &str {
                &self.core.id
            }

            fn dialect(&self) -> &Dialect {
                &self.core.dialect
            }

            async fn identify(&mut self) -> Result<String, InstrumentError> {
                self.core.identify().await
            }

            async fn check_errors(&mut self) -> Result<(), InstrumentError> {
                self.core.check_errors().await
            }

            async fn set_current(&mut self, a: f64) -> Result<(), InstrumentError> {
                let max = self.core.dialect.ranges.max_current;
                self.core.check_range("set_current", a, max)?;
                self.core
                    .set("set_current", |d| &d.commands.set_current, a)
                    .await
            }

            async fn measure(&mut self) -> Result<Measurement, InstrumentError> {
                self.core.measure().await
            }

            $($rest)*
        }
    };
}

scpi_instrument!(ScpiSupply, Role::Supply, "A DC supply");

impl ScpiSupply {
    /// Send the I/O watchdog's commands, each checked: arm it with the delay for `arm`,
    /// or disarm it (`None`). Ok(false) when the model has none (nothing is sent).
    async fn watchdog_commands(&mut self, arm: Option<Duration>) -> Result<bool, InstrumentError> {
        let Some(watchdog) = &self.core.dialect.watchdog else {
            return Ok(false);
        };
        let channel = self.core.channel;
        let commands: Vec<String> = match arm {
            Some(timeout) => {
                let delay = watchdog.delay_for(timeout).as_secs_f64();
                watchdog
                    .arm
                    .iter()
                    .map(|c| crate::scpi::render(c, Some(delay), channel))
                    .collect()
            }
            None => watchdog
                .disarm
                .iter()
                .map(|c| crate::scpi::render(c, None, channel))
                .collect(),
        };
        self.core
            .client
            .write_sequence_checked(&commands)
            .await
            .map_err(|e| self.core.err(e))?;
        Ok(true)
    }
}

scpi_instrument_impl!(Supply for ScpiSupply {
    async fn set_voltage(&mut self, v: f64) -> Result<(), InstrumentError> {
        let max = self.core.dialect.ranges.max_voltage;
        self.core.check_range("set_voltage", v, max)?;
        self.core
            .set("set_voltage", |d| &d.commands.set_voltage, v)
            .await
    }

    async fn set_output(&mut self, on: bool) -> Result<(), InstrumentError> {
        self.core.set_enabled(on).await
    }

    async fn output(&mut self) -> Result<bool, InstrumentError> {
        self.core.enabled().await
    }

    /// OVP to `ovp_volts`; OCP to `ocp_amps` where the model has a trip level, each
    /// limited to what the channel accepts (the tighter of the two: an envelope beyond the
    /// channel is protected by the channel's own ceiling, since the channel cannot go
    /// further). Each step is checked before the next, so a protection is never armed
    /// after its level was refused. Where OCP trips at the current setting
    /// (`protection.ocp: at_current_limit`) it is left off, and the current setting is the
    /// bound.
    async fn program_protection(
        &mut self,
        ovp_volts: f64,
        ocp_amps: f64,
    ) -> Result<(), InstrumentError> {
        let (ovp_volts, ocp_amps) = protection_levels(&self.core.dialect, ovp_volts, ocp_amps);
        self.core
            .set_stepwise("set_ovp", |d| &d.commands.set_ovp, ovp_volts)
            .await?;
        match self.core.dialect.protection.ocp {
            OcpKind::Level => {
                self.core
                    .set_stepwise("set_ocp", |d| &d.commands.set_ocp, ocp_amps)
                    .await
            }
            OcpKind::AtCurrentLimit | OcpKind::None => {
                if !ocp_amps.is_finite() {
                    return Err(InstrumentError::NotFinite {
                        id: self.core.id.clone(),
                        what: "set_ocp",
                        value: ocp_amps,
                    });
                }
                Ok(())
            }
        }
    }

    async fn arm_watchdog(&mut self, timeout: Duration) -> Result<bool, InstrumentError> {
        self.watchdog_commands(Some(timeout)).await
    }

    async fn disarm_watchdog(&mut self) -> Result<bool, InstrumentError> {
        self.watchdog_commands(None).await
    }
});

scpi_instrument!(ScpiLoad, Role::Load, "An electronic load");

impl ScpiLoad {
    /// Program the load's over-current protection (A), where the model has one.
    pub async fn program_protection(&mut self, ocp_amps: f64) -> Result<(), InstrumentError> {
        let (_, ocp_amps) = protection_levels(&self.core.dialect, f64::INFINITY, ocp_amps);
        self.core
            .set_stepwise("set_ocp", |d| &d.commands.set_ocp, ocp_amps)
            .await
    }
}

scpi_instrument_impl!(Load for ScpiLoad {
    async fn set_input(&mut self, on: bool) -> Result<(), InstrumentError> {
        self.core.set_enabled(on).await
    }

    async fn input(&mut self) -> Result<bool, InstrumentError> {
        self.core.enabled().await
    }
});

#[cfg(test)]
mod tests;
