//! SCPI transports, client and dialect tables.
//!
//! A [`Transport`] is any byte stream (TCP socket, in-memory pipe, later serial); the
//! [`Client`] frames commands and replies on it and reads the instrument's error queue; a
//! [`Dialect`] says, as data, how one instrument family spells its commands and replies.

mod client;
mod dialect;
mod error;
pub mod reply;
mod transport;

pub use client::{Client, ClientOptions, DEFAULT_ERROR_QUERY, MAX_ERROR_DRAIN, MAX_REPLY_LEN};
pub use dialect::{
    builtin_dialect, builtin_dialects, render, Accuracy, AccuracySpec, BoolFormat, Commands,
    Dialect, MeasureFields, NumberFormat, QuantityAccuracy, Ranges, Replies, Role, Watchdog,
};
pub use error::ScpiError;
pub use transport::{
    connect, connect_address, register_memory, Address, MemoryConnector, MemoryEndpoint, Transport,
};
