//! SCPI transports, client and dialect tables.
//!
//! A [`Transport`] is any byte stream (TCP socket, serial port, in-memory pipe); the
//! [`Client`] frames commands and replies on it and reads the instrument's error queue; a
//! [`Dialect`] says, as data, how one instrument family spells its commands and replies.

mod client;
mod dialect;
mod error;
pub mod guard;
pub mod ping;
pub mod reply;
mod serial;
mod transport;
pub mod usbtmc;
pub mod waveform;

pub use client::{Client, ClientOptions, DEFAULT_ERROR_QUERY, MAX_ERROR_DRAIN, MAX_REPLY_LEN};
pub use dialect::scope::{
    builtin_scope_dialect, builtin_scope_dialects, ScalingFamily, ScopeDialect, ScopeRangeError,
};
pub use dialect::switch::{
    builtin_switch_dialect, builtin_switch_dialect_ids, SwitchChannelError, SwitchDialect,
};
pub use dialect::{
    builtin_dialect, builtin_dialects, identity_matches, is_query, render, resolve_dialect,
    Accuracy, AccuracySpec, BoolFormat, Channel, Commands, Dialect, MeasureFields, NumberFormat,
    OcpKind, Protection, QuantityAccuracy, RangedSteps, Ranges, Replies, Role, SerialLine,
    Template, Watchdog,
};
pub use error::ScpiError;
pub use serial::is_transient;
pub use transport::{
    connect, connect_address, register_memory, split_channel, Address, FlowControl,
    MemoryConnector, MemoryEndpoint, Parity, SerialSettings, Transport, DEFAULT_BAUD,
};
