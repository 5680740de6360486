//! Opening a SCPI instrument whose dialect has its own shape (a scope, a switch unit): the
//! address resolved with the dialect's default port, `*IDN?` checked against its makers and
//! models, its `on_connect` sequence sent with the error queue read after each command.

use std::time::Duration;

use crate::instrument::InstrumentError;
use crate::scpi::{Client, ClientOptions, Transport};

/// What a dialect says about reaching and recognising its instrument.
pub trait Identity {
    /// The dialect id.
    fn dialect_id(&self) -> &str;
    /// Raw-socket TCP port used when an address gives none.
    fn default_port(&self) -> u16;
    /// Message terminator.
    fn terminator(&self) -> &str;
    /// Query that reads one error-queue entry.
    fn error_query(&self) -> &str;
    /// Commands sent (and error-checked) right after connecting.
    fn on_connect(&self) -> &[String];
    /// Makers, for messages.
    fn makers(&self) -> &[String];
    /// Models, for messages.
    fn models(&self) -> &[String];
    /// Whether an `*IDN?` reply names one of its makers and models.
    fn matches(&self, idn: &str) -> bool {
        crate::scpi::identity_matches(self.makers(), self.models(), idn)
    }
}

/// Connect to `address` as [`open`] does.
pub async fn connect(
    id: &str,
    address: &str,
    dialect: &impl Identity,
    timeout: Duration,
) -> Result<(Client, String), InstrumentError> {
    let scpi = |error| InstrumentError::Scpi {
        id: id.to_string(),
        error,
    };
    let address =
        crate::scpi::Address::parse(address, Some(dialect.default_port())).map_err(scpi)?;
    let transport = crate::scpi::connect_address(&address, timeout)
        .await
        .map_err(scpi)?;
    open(id, transport, dialect, timeout).await
}

/// Take over an open transport: check `*IDN?` against the dialect and send its
/// `on_connect`; returns the client and the identity (trimmed).
pub async fn open(
    id: &str,
    transport: Box<dyn Transport>,
    dialect: &impl Identity,
    timeout: Duration,
) -> Result<(Client, String), InstrumentError> {
    let scpi = |error| InstrumentError::Scpi {
        id: id.to_string(),
        error,
    };
    let options = ClientOptions {
        timeout,
        terminator: dialect.terminator().to_string(),
        inter_command_delay: Duration::ZERO,
    };
    let mut client = Client::new(transport, options).with_error_query(dialect.error_query());
    let idn = client.query("*IDN?").await.map_err(scpi)?;
    if !dialect.matches(&idn) {
        return Err(InstrumentError::WrongIdentity {
            id: id.to_string(),
            dialect: dialect.dialect_id().to_string(),
            maker: dialect.makers().join(" or "),
            model: dialect.models().join(" or "),
            idn: idn.trim().to_string(),
        });
    }
    client
        .write_sequence_checked(dialect.on_connect())
        .await
        .map_err(scpi)?;
    Ok((client, idn.trim().to_string()))
}

macro_rules! identity_of {
    ($t:ty) => {
        impl Identity for $t {
            fn dialect_id(&self) -> &str {
                &self.id
            }
            fn default_port(&self) -> u16 {
                self.default_port
            }
            fn terminator(&self) -> &str {
                &self.terminator
            }
            fn error_query(&self) -> &str {
                &self.error_query
            }
            fn on_connect(&self) -> &[String] {
                &self.on_connect
            }
            fn makers(&self) -> &[String] {
                &self.maker
            }
            fn models(&self) -> &[String] {
                &self.model
            }
        }
    };
}

identity_of!(crate::scpi::ScopeDialect);
identity_of!(crate::scpi::SwitchDialect);
