//! CAN frames and the bus abstraction every backend (virtual, socketcan, SLCAN) sits behind.
//!
//! A bus is a handle that sends frames and hands out receivers of timestamped frames.
//! Backends pump frames on their own tasks or threads, so the runner never blocks on one
//! bus. Each backend also keeps the controller's error state ([`BusState`]), decoded from
//! socketcan error frames or SLCAN status replies.
//!
//! Endpoints (as written in a rig file's bus, or given to `hilrig can dump --bus`):
//!
//! ```text
//! virtual:NAME                                   in-process bus of the simulated bench
//! socketcan:can0                                 Linux SocketCAN interface
//! slcan:/dev/ttyACM0?bitrate=500000              SLCAN adapter on a serial port; options:
//!     &variant=lawicel|canable  &timestamps=0|1  &baud=115200  &listen_only=0|1
//!     &brs=0|1  &status_poll_ms=N  &timeout_ms=N
//! ```

pub mod decode;
pub mod log;
pub mod slcan;
pub mod socketcan;
pub mod tools;
pub mod virtual_bus;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};

use thiserror::Error;
use tokio::sync::broadcast;
use tokio::time::Instant;

pub use virtual_bus::VirtualBus;

/// Errors from CAN backends.
#[derive(Debug, Error)]
pub enum CanError {
    /// The bus endpoint in the rig file could not be understood.
    #[error(
        "bad CAN endpoint `{0}`: expected `virtual:NAME`, `socketcan:IFACE` or \
         `slcan:PORT?bitrate=N`"
    )]
    BadEndpoint(String),
    /// An endpoint option is missing or has a value the backend cannot use.
    #[error("CAN endpoint `{endpoint}`: {reason}")]
    BadOption {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// The backend is not available on this system.
    #[error("CAN bus `{bus}`: {reason}")]
    Unavailable {
        /// The endpoint or interface.
        bus: String,
        /// Why it cannot be used here and what to do.
        reason: String,
    },
    /// Opening or talking to the bus failed at the operating-system level.
    #[error("CAN bus `{bus}`: {context}: {source}")]
    Io {
        /// The endpoint or interface.
        bus: String,
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The adapter answered a command with an error or not at all.
    #[error("CAN bus `{bus}`: {reason}")]
    Adapter {
        /// The endpoint or port.
        bus: String,
        /// Which command failed and what to check.
        reason: String,
    },
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

/// Payload length of each CAN FD data length code (0-15); classic frames use codes 0-8.
pub const FD_LENGTHS: [usize; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64];

/// What a frame is besides its id and payload (SocketCAN's flags, candump's and SLCAN's syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum FrameKind {
    /// Classic CAN data frame, 0-8 bytes.
    #[default]
    Classic,
    /// CAN FD data frame: 0-8, 12, 16, 20, 24, 32, 48 or 64 bytes.
    Fd {
        /// Bit-rate switch: the data phase went at the data bit rate.
        brs: bool,
        /// Error state indicator: the sender was error-passive.
        esi: bool,
    },
    /// Remote transmission request (classic CAN only); `data` holds the requested length as
    /// zero bytes.
    Remote,
    /// Error frame (SocketCAN `CAN_ERR_FLAG`): `id` holds the error class bits, `data` the
    /// details. Never sent; backends turn received ones into a [`BusState`].
    Error,
}

impl FrameKind {
    /// True for classic and CAN FD data frames: the frames a DBC decodes.
    pub fn carries_data(self) -> bool {
        matches!(self, Self::Classic | Self::Fd { .. })
    }

    /// True for CAN FD frames.
    pub fn is_fd(self) -> bool {
        matches!(self, Self::Fd { .. })
    }

    /// Lowercase name: `classic`, `fd`, `remote` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Fd { .. } => "fd",
            Self::Remote => "remote",
            Self::Error => "error",
        }
    }
}

/// One CAN frame: a classic or CAN FD data frame, a remote request or an error frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Identifier (11 or 29 bit).
    pub id: u32,
    /// True for a 29-bit identifier.
    pub extended: bool,
    /// Payload (0..=8 bytes classic, up to 64 for FD).
    pub data: Vec<u8>,
    /// Classic, CAN FD, remote or error frame.
    pub kind: FrameKind,
}

impl Frame {
    /// A data frame, checked for id range and length: classic up to 8 bytes, CAN FD (no
    /// bit-rate switch) for the longer FD lengths.
    pub fn new(id: u32, extended: bool, data: &[u8]) -> Result<Self, CanError> {
        let kind = if data.len() <= 8 {
            FrameKind::Classic
        } else {
            FrameKind::Fd {
                brs: false,
                esi: false,
            }
        };
        Self::with_kind(id, extended, data.to_vec(), kind)
    }

    /// A frame of the given kind, checked as [`Frame::check`] does.
    pub fn with_kind(
        id: u32,
        extended: bool,
        data: Vec<u8>,
        kind: FrameKind,
    ) -> Result<Self, CanError> {
        let frame = Self {
            id,
            extended,
            data,
            kind,
        };
        frame.check()?;
        Ok(frame)
    }

    /// True for a data frame (classic or CAN FD) with this id: one a DBC message decodes.
    pub fn is_data(&self, id: u32, extended: bool) -> bool {
        self.id == id && self.extended == extended && self.kind.carries_data()
    }

    /// Check the id range and the lengths the kind allows (a remote frame's `data` is its
    /// requested length in zero bytes, at most 8).
    pub fn check(&self) -> Result<(), CanError> {
        let max_id = if self.extended || self.kind == FrameKind::Error {
            0x1FFF_FFFF
        } else {
            0x7FF
        };
        if self.id > max_id {
            return Err(CanError::InvalidFrame(format!(
                "id {:#x} exceeds {max_id:#x}",
                self.id
            )));
        }
        let len = self.data.len();
        match self.kind {
            FrameKind::Fd { .. } if !FD_LENGTHS.contains(&len) => {
                Err(CanError::InvalidFrame(format!(
                    "{len} data bytes: a CAN FD frame carries 0-8, 12, 16, 20, 24, 32, 48 or 64"
                )))
            }
            FrameKind::Classic | FrameKind::Remote | FrameKind::Error if len > 8 => {
                Err(CanError::InvalidFrame(format!(
                    "{len} data bytes: a classic frame carries at most 8"
                )))
            }
            FrameKind::Remote if self.data.iter().any(|&b| b != 0) => Err(CanError::InvalidFrame(
                "a remote frame carries no data (only a requested length)".into(),
            )),
            _ => Ok(()),
        }
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

/// Error state of a CAN controller (ISO 11898-1 fault confinement), as the backend last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum BusState {
    /// Error counters below 96: the node takes part in the bus normally.
    #[default]
    ErrorActive,
    /// An error counter reached the warning level (96).
    ErrorWarning,
    /// An error counter reached 128: the node may only send passive error flags.
    ErrorPassive,
    /// The transmit error counter passed 255: the node has left the bus.
    BusOff,
}

/// Error-frame class bits (`CAN_ERR_*` of `linux/can/error.h`), as in the error frame's id.
pub mod err_class {
    /// Controller problems; details in data byte 1.
    pub const CONTROLLER: u32 = 0x0000_0004;
    /// The controller went bus-off.
    pub const BUS_OFF: u32 = 0x0000_0040;
    /// The controller was restarted after bus-off.
    pub const RESTARTED: u32 = 0x0000_0100;
    /// Data bytes 6 and 7 carry the transmit and receive error counters.
    pub const COUNTERS: u32 = 0x0000_0200;
}

/// Controller-problem bits (`CAN_ERR_CRTL_*`) in data byte 1 of an error frame.
mod ctrl {
    pub const RX_WARNING: u8 = 0x04;
    pub const TX_WARNING: u8 = 0x08;
    pub const RX_PASSIVE: u8 = 0x10;
    pub const TX_PASSIVE: u8 = 0x20;
    pub const ACTIVE: u8 = 0x40;
}

impl BusState {
    /// Short lowercase name: `error-active`, `error-warning`, `error-passive`, `bus-off`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ErrorActive => "error-active",
            Self::ErrorWarning => "error-warning",
            Self::ErrorPassive => "error-passive",
            Self::BusOff => "bus-off",
        }
    }

    /// The state a SocketCAN error frame reports (class bits from the id, details in `data`).
    ///
    /// `None` when the frame says nothing about the controller state (a lost arbitration,
    /// a protocol violation, a missing ACK, ...).
    pub fn from_error_frame(class: u32, data: &[u8]) -> Option<BusState> {
        if class & err_class::BUS_OFF != 0 {
            return Some(Self::BusOff);
        }
        if class & err_class::CONTROLLER != 0 {
            let bits = data.get(1).copied().unwrap_or(0);
            if bits & (ctrl::RX_PASSIVE | ctrl::TX_PASSIVE) != 0 {
                return Some(Self::ErrorPassive);
            }
            if bits & (ctrl::RX_WARNING | ctrl::TX_WARNING) != 0 {
                return Some(Self::ErrorWarning);
            }
            if bits & ctrl::ACTIVE != 0 {
                return Some(Self::ErrorActive);
            }
        }
        if class & err_class::RESTARTED != 0 {
            return Some(Self::ErrorActive);
        }
        if class & err_class::COUNTERS != 0 {
            if let (Some(&tx), Some(&rx)) = (data.get(6), data.get(7)) {
                return Some(Self::from_counters(u16::from(tx), u16::from(rx)));
            }
        }
        None
    }

    /// The state that transmit and receive error counters imply.
    pub fn from_counters(tx: u16, rx: u16) -> BusState {
        let worst = tx.max(rx);
        if tx > 255 {
            Self::BusOff
        } else if worst >= 128 {
            Self::ErrorPassive
        } else if worst >= 96 {
            Self::ErrorWarning
        } else {
            Self::ErrorActive
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::ErrorActive => 0,
            Self::ErrorWarning => 1,
            Self::ErrorPassive => 2,
            Self::BusOff => 3,
        }
    }

    fn from_u8(v: u8) -> BusState {
        match v {
            1 => Self::ErrorWarning,
            2 => Self::ErrorPassive,
            3 => Self::BusOff,
            _ => Self::ErrorActive,
        }
    }
}

impl fmt::Display for BusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bus state shared between a backend's receive side and its handle.
#[derive(Debug, Default)]
pub struct StateCell(AtomicU8);

impl StateCell {
    /// The last state stored.
    pub fn get(&self) -> BusState {
        BusState::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Store a new state; returns the previous one.
    pub fn set(&self, state: BusState) -> BusState {
        BusState::from_u8(self.0.swap(state.to_u8(), Ordering::Relaxed))
    }
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
    /// The controller's error state as last reported (error-active when the backend cannot tell).
    fn state(&self) -> BusState {
        BusState::ErrorActive
    }
}

/// A shared bus is a bus: one opened port can serve the runner and a cell simulator alike
/// (SLCAN serial ports can be opened only once).
impl<B: Bus + ?Sized> Bus for std::sync::Arc<B> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn send(&self, frame: Frame) -> BusFuture<'_, Result<(), CanError>> {
        (**self).send(frame)
    }

    fn subscribe(&self) -> broadcast::Receiver<Received> {
        (**self).subscribe()
    }

    fn state(&self) -> BusState {
        (**self).state()
    }
}

/// Open a bus from an endpoint such as `virtual:sim0`, `socketcan:can0` or
/// `slcan:/dev/ttyACM0?bitrate=500000` (see the module documentation for the options).
///
/// The socketcan backend must be opened inside a tokio runtime; the SLCAN backend runs its
/// serial I/O on threads of its own.
pub fn open(endpoint: &str) -> Result<Box<dyn Bus>, CanError> {
    match endpoint.split_once(':') {
        Some(("virtual", name)) if !name.is_empty() => Ok(Box::new(VirtualBus::open(name)?)),
        Some(("socketcan", iface)) if !iface.is_empty() => {
            Ok(Box::new(socketcan::SocketCanBus::open(iface)?))
        }
        Some(("slcan", rest)) if !rest.is_empty() => {
            let config = slcan::SlcanConfig::parse(endpoint)?;
            Ok(Box::new(slcan::SlcanBus::open(config)?))
        }
        _ => Err(CanError::BadEndpoint(endpoint.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::bus_off(err_class::BUS_OFF, &[0; 8], Some(BusState::BusOff))]
    #[case::rx_passive(err_class::CONTROLLER, &[0, 0x10, 0, 0, 0, 0, 0, 0], Some(BusState::ErrorPassive))]
    #[case::tx_passive(err_class::CONTROLLER, &[0, 0x20, 0, 0, 0, 0, 0, 0], Some(BusState::ErrorPassive))]
    #[case::tx_warning(err_class::CONTROLLER, &[0, 0x08, 0, 0, 0, 0, 0, 0], Some(BusState::ErrorWarning))]
    #[case::back_to_active(err_class::CONTROLLER, &[0, 0x40, 0, 0, 0, 0, 0, 0], Some(BusState::ErrorActive))]
    #[case::restarted(err_class::RESTARTED, &[0; 8], Some(BusState::ErrorActive))]
    #[case::counters_passive(err_class::COUNTERS, &[0, 0, 0, 0, 0, 0, 130, 4], Some(BusState::ErrorPassive))]
    #[case::counters_warning(err_class::COUNTERS, &[0, 0, 0, 0, 0, 0, 3, 100], Some(BusState::ErrorWarning))]
    #[case::lost_arbitration(0x2, &[0; 8], None)]
    #[case::no_ack(0x20, &[0; 8], None)]
    #[case::short_controller_frame(err_class::CONTROLLER, &[], None)]
    #[case::bus_off_wins(err_class::BUS_OFF | err_class::CONTROLLER, &[0, 0x40], Some(BusState::BusOff))]
    fn error_frames_to_state(
        #[case] class: u32,
        #[case] data: &[u8],
        #[case] want: Option<BusState>,
    ) {
        assert_eq!(BusState::from_error_frame(class, data), want);
    }

    #[test]
    fn state_cell_round_trips_every_state() {
        let cell = StateCell::default();
        assert_eq!(cell.get(), BusState::ErrorActive);
        for s in [
            BusState::ErrorWarning,
            BusState::ErrorPassive,
            BusState::BusOff,
            BusState::ErrorActive,
        ] {
            cell.set(s);
            assert_eq!(cell.get(), s);
        }
        assert_eq!(BusState::BusOff.to_string(), "bus-off");
    }

    #[rstest]
    #[case("")]
    #[case("virtual:")]
    #[case("can0")]
    #[case("pcan:usb1")]
    #[case("slcan:")]
    #[case("socketcan:")]
    fn bad_endpoints_are_errors(#[case] endpoint: &str) {
        let err = open(endpoint).err().unwrap();
        assert!(matches!(err, CanError::BadEndpoint(_)), "{err}");
    }

    #[test]
    fn slcan_endpoint_without_bitrate_says_so() {
        let err = open("slcan:/dev/ttyACM9").err().unwrap();
        assert!(err.to_string().contains("bitrate"), "{err}");
    }

    #[tokio::test]
    async fn a_shared_bus_forwards_everything() {
        let shared: std::sync::Arc<dyn Bus> = std::sync::Arc::new(VirtualBus::create("shared-1"));
        let boxed: Box<dyn Bus> = Box::new(std::sync::Arc::clone(&shared));
        let mut rx = shared.subscribe();
        boxed
            .send(Frame::new(0x10, false, &[1]).unwrap())
            .await
            .unwrap();
        assert_eq!(rx.recv().await.unwrap().frame.id, 0x10);
        assert_eq!(
            (boxed.name(), boxed.state()),
            ("shared-1", BusState::ErrorActive)
        );
    }

    #[test]
    fn virtual_bus_reports_error_active() {
        let bus = VirtualBus::create("state-default");
        assert_eq!(Bus::state(&bus), BusState::ErrorActive);
    }
}
