//! The error type of the instrument layer.

use crate::exit::{Failure, EXIT_ABORT, EXIT_FAILED};
use crate::scpi::ScpiError;

/// An instrument operation failed; every variant names the instrument.
#[derive(Debug, thiserror::Error)]
pub enum InstrumentError {
    /// The SCPI exchange failed (connection, timeout, reply, or the instrument's own error).
    #[error("instrument `{id}`: {error}")]
    Scpi {
        /// Instrument id from the rig file.
        id: String,
        /// What went wrong on the wire.
        error: ScpiError,
    },
    /// The dialect has no command for this operation.
    #[error(
        "instrument `{id}`: dialect `{dialect}` has no `commands.{command}`; add it to the \
         dialect file or do not use this operation with this instrument"
    )]
    Unsupported {
        /// Instrument id from the rig file.
        id: String,
        /// Dialect id.
        dialect: String,
        /// The missing command template.
        command: &'static str,
    },
    /// A setting was NaN or infinite; nothing was sent.
    #[error("instrument `{id}`: {what} = {value} is not a finite number; nothing was sent")]
    NotFinite {
        /// Instrument id from the rig file.
        id: String,
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// A setting is outside the range of the instrument's channel; nothing was sent.
    #[error(
        "instrument `{id}`: {what} {value} is outside channel {channel}'s range 0..={max} of \
         dialect `{dialect}`; nothing was sent"
    )]
    OutOfRange {
        /// Instrument id from the rig file.
        id: String,
        /// Dialect id.
        dialect: String,
        /// The channel.
        channel: u32,
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: f64,
        /// The channel's highest value.
        max: f64,
    },
    /// The dialect is for another kind of instrument.
    #[error(
        "instrument `{id}`: dialect `{dialect}` is for a {actual}, but it is used as a \
         {expected}; give this instrument a {expected} dialect in the rig file"
    )]
    WrongRole {
        /// Instrument id from the rig file.
        id: String,
        /// Dialect id.
        dialect: String,
        /// The dialect's role.
        actual: crate::scpi::Role,
        /// The role it was used in.
        expected: crate::scpi::Role,
    },
    /// The address names a channel the dialect does not declare.
    #[error(
        "instrument `{id}`: dialect `{dialect}` has no channel {channel} (it has {channels:?}); \
         fix `channel=` in the address or the dialect's `channels:`"
    )]
    NoSuchChannel {
        /// Instrument id from the rig file.
        id: String,
        /// Dialect id.
        dialect: String,
        /// The channel asked for.
        channel: u32,
        /// The channels the dialect declares.
        channels: Vec<u32>,
    },
    /// `*IDN?` names a different maker or model than the dialect.
    #[error(
        "instrument `{id}`: answers `*IDN?` with {idn:?}, but dialect `{dialect}` is for \
         {maker} {model}; check the address and the dialect in the rig file"
    )]
    WrongIdentity {
        /// Instrument id from the rig file.
        id: String,
        /// Dialect id.
        dialect: String,
        /// Maker the dialect expects.
        maker: String,
        /// Model the dialect expects.
        model: String,
        /// What the instrument said.
        idn: String,
    },
    /// A scope setting outside the dialect's ranges (nothing was sent), or a record that
    /// cannot be read (its preamble or data block).
    #[error("instrument `{id}`: {message}")]
    Capture {
        /// Instrument id from the rig file.
        id: String,
        /// What is wrong, with the value and the range or the reply.
        message: String,
    },
    /// A switch channel the dialect does not have (nothing was sent), a reply that is
    /// neither closed nor open, or a read-back that does not confirm the command.
    #[error("instrument `{id}`: {message}")]
    Switch {
        /// Instrument id from the rig file.
        id: String,
        /// What is wrong, with the channel and the reply.
        message: String,
    },
}

impl InstrumentError {
    /// The SCPI error underneath, if any.
    pub fn scpi(&self) -> Option<&ScpiError> {
        match self {
            InstrumentError::Scpi { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The instrument id this error is about.
    pub fn instrument_id(&self) -> &str {
        match self {
            InstrumentError::Scpi { id, .. }
            | InstrumentError::Unsupported { id, .. }
            | InstrumentError::NotFinite { id, .. }
            | InstrumentError::OutOfRange { id, .. }
            | InstrumentError::WrongRole { id, .. }
            | InstrumentError::NoSuchChannel { id, .. }
            | InstrumentError::WrongIdentity { id, .. }
            | InstrumentError::Capture { id, .. }
            | InstrumentError::Switch { id, .. } => id,
        }
    }
}

/// An instrument error: `error: {e}`, exit code 1 when the instrument itself reported it, 2
/// when the command could not get through (connection, timeout, reply, unsupported).
impl From<InstrumentError> for Failure {
    fn from(e: InstrumentError) -> Self {
        let code = exit_for(&e);
        Failure {
            message: format!("error: {e}"),
            code,
        }
    }
}

/// The exit code for an instrument error: 1 when the instrument itself reported it, 2 when
/// the command could not get through (connection, timeout, reply, unsupported).
pub fn exit_for(error: &InstrumentError) -> i32 {
    match error.scpi() {
        Some(ScpiError::Instrument { .. }) => EXIT_FAILED,
        _ => EXIT_ABORT,
    }
}
