//! CAN frames and the bus abstraction every backend (virtual, socketcan, SLCAN) sits behind.
//!
//! A bus is a handle that sends frames and hands out receivers of timestamped frames.
//! Backends pump frames on their own tasks, so the runner never blocks on one bus.

pub mod log;
pub mod virtual_bus;

use std::future::Future;
use std::pin::Pin;

use thiserror::Error;
use tokio::sync::broadcast;
use tokio::time::Instant;

pub use virtual_bus::VirtualBus;

/// Errors from CAN backends.
#[derive(Debug, Error)]
pub enum CanError {
    /// The bus endpoint in the rig file could not be understood.
    #[error("bad CAN endpoint `{0}`: expected `virtual:NAME`")]
    BadEndpoint(String),
    /// No virtual bus of this name exists in this process.
    #[error("no virtual CAN bus named `{0}` is running (is the simulated bench started?)")]
    NoSuchBus(String),
    /// The frame could not be built (bad id or too much data).
    #[error("invalid CAN frame: {0}")]
    InvalidFrame(String),
    /// The bus was closed while sending.
    #[error("CAN bus `{0}` is closed")]
    Closed(String),
}

/// One classic CAN or CAN FD data frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Identifier (11 or 29 bit).
    pub id: u32,
    /// True for a 29-bit identifier.
    pub extended: bool,
    /// Payload (0..=8 bytes classic, up to 64 for FD).
    pub data: Vec<u8>,
}

impl Frame {
    /// A classic data frame, checked for id range and length.
    pub fn new(id: u32, extended: bool, data: &[u8]) -> Result<Self, CanError> {
        let max_id = if extended { 0x1FFF_FFFF } else { 0x7FF };
        if id > max_id {
            return Err(CanError::InvalidFrame(format!(
                "id {id:#x} exceeds {max_id:#x}"
            )));
        }
        if data.len() > 64 {
            return Err(CanError::InvalidFrame(format!("{} data bytes", data.len())));
        }
        Ok(Self {
            id,
            extended,
            data: data.to_vec(),
        })
    }
}

/// A frame with the moment the backend received it (the run's monotonic clock).
#[derive(Debug, Clone)]
pub struct Received {
    /// The frame.
    pub frame: Frame,
    /// Receive timestamp.
    pub at: Instant,
}

/// A boxed future returned by bus methods.
pub type BusFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A CAN bus as the runner sees it, whatever the backend.
pub trait Bus: Send + Sync {
    /// The endpoint this bus was opened from.
    fn name(&self) -> &str;
    /// Queue one frame for transmission.
    fn send(&self, frame: Frame) -> BusFuture<'_, Result<(), CanError>>;
    /// A new receiver of every frame seen on the bus from now on.
    fn subscribe(&self) -> broadcast::Receiver<Received>;
}

/// Open a bus from a rig endpoint such as `virtual:sim0`.
pub fn open(endpoint: &str) -> Result<Box<dyn Bus>, CanError> {
    match endpoint.split_once(':') {
        Some(("virtual", name)) if !name.is_empty() => Ok(Box::new(VirtualBus::open(name)?)),
        _ => Err(CanError::BadEndpoint(endpoint.to_string())),
    }
}
