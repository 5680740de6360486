//! The rig's short-circuit switch: one relay channel of a switch unit that drives the coil
//! of a contactor across the pack terminals (`role: short`).
//!
//! The channel is checked against the dialect's channels when the switch is connected, so
//! a wrong channel is refused before anything is sent. Every close and open is confirmed
//! by reading the channel back; a reply that says neither closed nor open is an error that
//! quotes it.

use std::time::Duration;

use crate::instrument::identified;
use crate::instrument::InstrumentError;
use crate::scpi::{Client, SwitchDialect, Transport};

/// A relay channel as the runner drives it.
#[async_trait::async_trait]
pub trait Switch: Send {
    /// The instrument id from the rig file.
    fn id(&self) -> &str;
    /// The channel it switches.
    fn channel(&self) -> u32;
    /// Close the channel and confirm it by read-back.
    async fn close(&mut self) -> Result<(), InstrumentError>;
    /// Open the channel and confirm it by read-back.
    async fn open(&mut self) -> Result<(), InstrumentError>;
    /// Whether the channel is closed.
    async fn closed(&mut self) -> Result<bool, InstrumentError>;
}

/// A SCPI switch unit's channel.
pub struct ScpiSwitch {
    id: String,
    dialect: SwitchDialect,
    client: Client,
    channel: u32,
    identity: String,
}

impl ScpiSwitch {
    /// Connect to `address`, check the channel and `*IDN?` against the dialect and send
    /// its `on_connect`.
    pub async fn connect(
        id: &str,
        address: &str,
        dialect: SwitchDialect,
        channel: u32,
        timeout: Duration,
    ) -> Result<Self, InstrumentError> {
        Self::check_channel(id, &dialect, channel)?;
        let (client, identity) = identified::connect(id, address, &dialect, timeout).await?;
        Ok(Self::with(id, dialect, client, channel, identity))
    }

    /// Use an open transport (an in-memory pipe) as [`ScpiSwitch::connect`] does.
    pub async fn open_on(
        id: &str,
        transport: Box<dyn Transport>,
        dialect: SwitchDialect,
        channel: u32,
        timeout: Duration,
    ) -> Result<Self, InstrumentError> {
        Self::check_channel(id, &dialect, channel)?;
        let (client, identity) = identified::open(id, transport, &dialect, timeout).await?;
        Ok(Self::with(id, dialect, client, channel, identity))
    }

    fn with(
        id: &str,
        dialect: SwitchDialect,
        client: Client,
        channel: u32,
        identity: String,
    ) -> Self {
        ScpiSwitch {
            id: id.to_string(),
            dialect,
            client,
            channel,
            identity,
        }
    }

    fn check_channel(
        id: &str,
        dialect: &SwitchDialect,
        channel: u32,
    ) -> Result<(), InstrumentError> {
        dialect
            .check_channel(channel)
            .map_err(|e| InstrumentError::Switch {
                id: id.to_string(),
                message: e.to_string(),
            })
    }

    /// What the unit answered to `*IDN?`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn scpi(&self, error: crate::scpi::ScpiError) -> InstrumentError {
        InstrumentError::Scpi {
            id: self.id.clone(),
            error,
        }
    }

    /// Send `template` for the channel (its errors read back), then confirm `want`.
    async fn switch(&mut self, template: &str, want: bool) -> Result<(), InstrumentError> {
        let cmd = self.dialect.render(template, self.channel);
        self.client
            .write_checked(&cmd)
            .await
            .map_err(|e| self.scpi(e))?;
        if self.closed().await? != want {
            return Err(InstrumentError::Switch {
                id: self.id.clone(),
                message: format!(
                    "channel {} still reads {} after `{cmd}`",
                    self.channel,
                    if want { "open" } else { "closed" }
                ),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Switch for ScpiSwitch {
    fn id(&self) -> &str {
        &self.id
    }

    fn channel(&self) -> u32 {
        self.channel
    }

    async fn close(&mut self) -> Result<(), InstrumentError> {
        let t = self.dialect.commands.close.clone();
        self.switch(&t, true).await
    }

    async fn open(&mut self) -> Result<(), InstrumentError> {
        let t = self.dialect.commands.open.clone();
        self.switch(&t, false).await
    }

    async fn closed(&mut self) -> Result<bool, InstrumentError> {
        let q = self
            .dialect
            .render(&self.dialect.commands.closed, self.channel);
        let reply = self.client.query(&q).await.map_err(|e| self.scpi(e))?;
        self.dialect
            .parse_closed(&reply)
            .ok_or_else(|| InstrumentError::Switch {
                id: self.id.clone(),
                message: format!(
                    "`{q}` answered {:?}, neither {:?} (closed) nor {:?} (open)",
                    reply.trim(),
                    self.dialect.replies.closed,
                    self.dialect.replies.open
                ),
            })
    }
}
