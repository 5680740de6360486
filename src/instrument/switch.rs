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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::test_support::scripted_pipe;
    use rstest::rstest;

    const IDN: &str = "Keysight Technologies,DAQ970A,MY58001234,A.03.01-01.00-03.01-00.02-01-00";

    fn daq() -> SwitchDialect {
        crate::scpi::builtin_switch_dialect("keysight-daq970a").unwrap()
    }

    /// A unit whose channel reads back `closed_reply` after a close and `open_reply` after an
    /// open; returns the result of closing then opening, and the lines it received.
    async fn close_then_open(
        closed_reply: &'static str,
        open_reply: &'static str,
    ) -> (Result<(), InstrumentError>, Vec<String>) {
        let mut state = "0";
        let (t, task) = scripted_pipe(move |line| match line {
            "*IDN?" => Some(IDN.into()),
            "SYST:ERR?" => Some("+0,\"No error\"".into()),
            "ROUT:CLOS (@101)" => {
                state = closed_reply;
                None
            }
            "ROUT:OPEN (@101)" => {
                state = open_reply;
                None
            }
            "ROUT:CLOS? (@101)" => Some(state.into()),
            _ => None,
        });
        let mut sw = ScpiSwitch::open_on("short", t, daq(), 101, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(sw.identity(), IDN);
        let r = match sw.close().await {
            Ok(()) => sw.open().await,
            Err(e) => Err(e),
        };
        drop(sw);
        (
            r,
            crate::instrument::test_support::sent_commands(task).await,
        )
    }

    #[tokio::test]
    async fn close_and_open_are_confirmed_by_read_back() {
        let (r, sent) = close_then_open("1", "0").await;
        r.unwrap();
        assert_eq!(
            sent,
            [
                "*IDN?",
                "*CLS",
                "ROUT:CLOS (@101)",
                "ROUT:CLOS? (@101)",
                "ROUT:OPEN (@101)",
                "ROUT:CLOS? (@101)"
            ]
        );
    }

    #[rstest]
    #[case::close_not_taken("0", "0", "still reads open after `ROUT:CLOS (@101)`")]
    #[case::open_not_taken("1", "1", "still reads closed after `ROUT:OPEN (@101)`")]
    #[case::unknown_reply("CLOSED", "0", "answered \"CLOSED\", neither")]
    #[tokio::test]
    async fn a_read_back_that_does_not_confirm_is_an_error(
        #[case] closed: &'static str,
        #[case] open: &'static str,
        #[case] says: &str,
    ) {
        let (r, _) = close_then_open(closed, open).await;
        let e = r.unwrap_err().to_string();
        assert!(e.contains(says) && e.contains("`short`"), "{e}");
    }

    #[tokio::test]
    async fn a_channel_the_dialect_lacks_is_refused_before_anything_is_sent() {
        let (t, task) = scripted_pipe(|_| Some(IDN.into()));
        let e = ScpiSwitch::open_on("short", t, daq(), 121, Duration::from_secs(1))
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.contains("channel 121") && e.contains("nothing was sent"),
            "{e}"
        );
        assert!(task.await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn another_instrument_is_refused_by_its_identity() {
        let (t, _task) =
            scripted_pipe(|l| (l == "*IDN?").then(|| "RIGOL TECHNOLOGIES,DL3021,X,1".into()));
        let e = ScpiSwitch::open_on("short", t, daq(), 101, Duration::from_secs(1))
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.contains("DL3021") && e.contains("keysight-daq970a"),
            "{e}"
        );
    }
}
