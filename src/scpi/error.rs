//! The error type of the SCPI layer.

use std::time::Duration;

/// Everything that can go wrong talking SCPI to an instrument.
#[derive(Debug, thiserror::Error)]
pub enum ScpiError {
    /// The address could not be understood or names a transport this build does not have.
    #[error("bad instrument address `{address}`: {reason}")]
    BadAddress {
        /// The address as written.
        address: String,
        /// What is wrong with it, and what is accepted.
        reason: String,
    },
    /// Opening the connection failed.
    #[error(
        "cannot connect to `{address}`: {error}; check that the instrument is powered, on the \
         network, and that host and port in the rig file are right"
    )]
    Connect {
        /// The address that was tried.
        address: String,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// Opening the connection took longer than the timeout.
    #[error(
        "no connection to `{address}` within {timeout:?}; check that the instrument is powered \
         and reachable (ping it) and that the port is its raw-socket SCPI port"
    )]
    ConnectTimeout {
        /// The address that was tried.
        address: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// A USBTMC device could not be opened or its USB link failed.
    #[error("cannot reach `{address}` over USB: {reason}")]
    Usb {
        /// The address that was tried.
        address: String,
        /// The USB layer's error, with the devices attached when none matched.
        reason: String,
    },
    /// A command contained characters that would split it into several messages.
    #[error("command `{command}` contains a line break; send one command per call")]
    InvalidCommand {
        /// The offending command (escaped).
        command: String,
    },
    /// The instrument did not answer, or did not accept the bytes, within the timeout.
    #[error(
        "no reply to `{command}` within {timeout:?}; the instrument may be busy, switched off, \
         or expecting a different terminator (a query that the instrument rejects also gets no \
         reply: check its error queue)"
    )]
    Timeout {
        /// The command or query that was waiting.
        command: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection was closed by the instrument or the network.
    #[error(
        "connection closed by the instrument during `{command}`; check the instrument and its \
         network link, then reconnect"
    )]
    Disconnected {
        /// The command or query in progress.
        command: String,
    },
    /// Another I/O error on the connection.
    #[error("I/O error during `{command}`: {error}")]
    Io {
        /// The command or query in progress.
        command: String,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The instrument answered something that could not be understood.
    #[error("unexpected reply to `{command}`: {reason} (reply: {reply:?}); check that the dialect matches the instrument")]
    BadReply {
        /// The query that was answered.
        command: String,
        /// The reply, possibly shortened.
        reply: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The instrument's error queue held an error after a command.
    #[error(
        "instrument reported error {code},\"{message}\" after `{after}`; see the error list in \
         the instrument's programming guide"
    )]
    Instrument {
        /// The SCPI error code (negative: standard, positive: device-specific).
        code: i32,
        /// The instrument's own error text.
        message: String,
        /// The command sent before the error check.
        after: String,
    },
    /// A dialect file could not be read.
    #[error("dialect {origin}: {message}")]
    Dialect {
        /// Where the dialect came from (file path or `builtin:<id>`).
        origin: String,
        /// What is wrong, with line and column where known.
        message: String,
    },
}

impl ScpiError {
    /// A `BadReply` for `command`, keeping at most the first 200 characters of the reply.
    pub fn bad_reply(command: &str, reply: &str, reason: impl Into<String>) -> Self {
        const KEEP: usize = 200;
        let reply = if reply.chars().count() > KEEP {
            let mut short: String = reply.chars().take(KEEP).collect();
            short.push_str("...");
            short
        } else {
            reply.to_string()
        };
        ScpiError::BadReply {
            command: command.to_string(),
            reply,
            reason: reason.into(),
        }
    }
}
