//! SLCAN (Lawicel ASCII protocol) adapters on a serial port: CANable slcan firmware,
//! USBtin, CANUSB and the many adapters that speak the same text lines.
//!
//! Two layers:
//! - a pure text codec ([`decode_line`], [`encode_frame`], [`bitrate_command`]) for one
//!   line without its CR terminator, usable by fakes and tests;
//! - [`SlcanBus`], which opens the adapter (`C`, `Sn`, optional `Z1`, `O` or `L`), reads lines
//!   on a blocking thread and pumps frames into a broadcast channel like the virtual bus,
//!   and writes frames from a second thread, so `send` never blocks the runtime.
//!
//! Transmit acknowledgements differ between firmwares: Lawicel/CANUSB answer `z`/`Z` after
//! each frame, the original CANable firmware answers nothing. Nothing here waits for an
//! acknowledgement; they are only counted ([`SlcanStats`]).
//!
//! With `timestamps=1` the adapter appends a millisecond counter (wrapping at 60000) to each
//! frame; [`AdapterClock`] maps it onto the host's monotonic clock, so frames read in one
//! burst keep their spacing on the wire. Without it, frames carry the host time at which
//! their bytes were read.
//!
//! Every received frame is passed on with its kind ([`FrameKind`]): classic (`t`/`T`), remote
//! (`r`/`R`, also counted) or CAN FD (`d`/`D`, `b`/`B` with bit-rate switch). A frame is sent
//! as its kind says; a CAN FD frame gets the bit-rate switch when it asks for one or the
//! endpoint says `brs=1`. SLCAN has no error state indicator: an FD frame's ESI flag is not
//! sent, and received FD frames have it clear. Error frames cannot be sent.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use super::{
    Bus, BusFuture, BusState, CanError, Frame, FrameKind, Received, StateCell, FD_LENGTHS,
};

const CAPACITY: usize = 4096;

/// Longest line an adapter can send: `T` + 8 id digits + DLC + 64 bytes + timestamp.
const MAX_LINE: usize = 1 + 8 + 1 + 128 + 4;

/// The adapter timestamp counter wraps at this many milliseconds.
pub const TIMESTAMP_WRAP_MS: u16 = 60_000;

/// Bell: the adapter's error reply.
const BEL: u8 = 0x07;

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// Which firmware family the adapter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlcanVariant {
    /// Lawicel CANUSB and compatibles: acknowledge each transmitted frame with `z`/`Z` and
    /// answer `F` with status flags.
    Lawicel,
    /// CANable slcan firmware: no transmit acknowledgement.
    Canable,
}

/// Everything an `slcan:` endpoint sets.
#[derive(Debug, Clone, PartialEq)]
pub struct SlcanConfig {
    /// Serial port path (`/dev/ttyACM0`, `COM3`).
    pub port: String,
    /// CAN bit rate in bit/s (one of the `S0`..`S8` rates).
    pub bitrate: u32,
    /// Firmware family.
    pub variant: SlcanVariant,
    /// Ask the adapter for millisecond timestamps (`Z1`).
    pub timestamps: bool,
    /// Serial baud rate (ignored by USB CDC adapters).
    pub baud: u32,
    /// Open listen-only (`L`) instead of normal (`O`).
    pub listen_only: bool,
    /// Send CAN FD frames with bit-rate switch (`b`/`B`).
    pub brs: bool,
    /// Poll the status flags (`F`) this often; `None` to never poll.
    pub status_poll: Option<Duration>,
    /// How long to wait for the adapter's reply to each command while opening.
    pub reply_timeout: Duration,
}

/// Bit rates of the `S0`..`S8` commands.
const BITRATES: [(u32, &str); 10] = [
    (10_000, "S0"),
    (20_000, "S1"),
    (50_000, "S2"),
    (100_000, "S3"),
    (125_000, "S4"),
    (250_000, "S5"),
    (500_000, "S6"),
    (750_000, "S7"),
    (800_000, "S7"),
    (1_000_000, "S8"),
];

/// The `Sn` command for a bit rate, if the protocol has one.
pub fn bitrate_command(bitrate: u32) -> Option<&'static str> {
    BITRATES
        .iter()
        .find(|(rate, _)| *rate == bitrate)
        .map(|(_, cmd)| *cmd)
}

impl SlcanConfig {
    /// A configuration with the defaults for everything but port and bit rate.
    pub fn new(port: &str, bitrate: u32) -> Self {
        Self {
            port: port.to_string(),
            bitrate,
            variant: SlcanVariant::Canable,
            timestamps: false,
            baud: 115_200,
            listen_only: false,
            brs: false,
            status_poll: None,
            reply_timeout: Duration::from_millis(1000),
        }
    }

    /// Parse `slcan:PORT?bitrate=N&variant=lawicel|canable&timestamps=0|1&baud=N&...`.
    pub fn parse(endpoint: &str) -> Result<Self, CanError> {
        let bad = |reason: String| CanError::BadOption {
            endpoint: endpoint.to_string(),
            reason,
        };
        let rest = endpoint
            .strip_prefix("slcan:")
            .ok_or_else(|| CanError::BadEndpoint(endpoint.to_string()))?;
        let (port, query) = rest.split_once('?').unwrap_or((rest, ""));
        if port.is_empty() {
            return Err(CanError::BadEndpoint(endpoint.to_string()));
        }
        let mut config = Self::new(port, 0);
        let mut bitrate = None;
        let mut poll = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("option `{pair}` has no `=value`")))?;
            let number = || {
                value
                    .parse::<u32>()
                    .map_err(|_| bad(format!("{key}=`{value}` is not a whole number")))
            };
            let flag = || match value {
                "1" | "true" | "yes" => Ok(true),
                "0" | "false" | "no" => Ok(false),
                _ => Err(bad(format!("{key}=`{value}`: write 0 or 1"))),
            };
            match key {
                "bitrate" => bitrate = Some(number()?),
                "variant" => {
                    config.variant = match value.to_ascii_lowercase().as_str() {
                        "lawicel" => SlcanVariant::Lawicel,
                        "canable" => SlcanVariant::Canable,
                        _ => {
                            return Err(bad(format!(
                                "variant `{value}` is not known: write `lawicel` or `canable`"
                            )))
                        }
                    }
                }
                "timestamps" => config.timestamps = flag()?,
                "baud" => config.baud = number()?,
                "listen_only" => config.listen_only = flag()?,
                "brs" => config.brs = flag()?,
                "status_poll_ms" => poll = Some(number()?),
                "timeout_ms" => config.reply_timeout = Duration::from_millis(number()?.into()),
                _ => {
                    return Err(bad(format!(
                        "unknown option `{key}`: known are bitrate, variant, timestamps, baud, \
                         listen_only, brs, status_poll_ms, timeout_ms"
                    )))
                }
            }
        }
        let bitrate = bitrate.ok_or_else(|| {
            bad("no bit rate: add `?bitrate=500000` (or the bus's rate)".to_string())
        })?;
        if bitrate_command(bitrate).is_none() {
            return Err(bad(format!(
                "bitrate {bitrate} has no SLCAN command: use 10000, 20000, 50000, 100000, \
                 125000, 250000, 500000, 750000/800000 or 1000000"
            )));
        }
        config.bitrate = bitrate;
        config.status_poll = match (poll, config.variant) {
            (Some(0), _) => None,
            (Some(ms), _) => Some(Duration::from_millis(ms.into())),
            (None, SlcanVariant::Lawicel) => Some(Duration::from_millis(1000)),
            (None, SlcanVariant::Canable) => None,
        };
        Ok(config)
    }
}

// ---------------------------------------------------------------------------------------
// The text codec
// ---------------------------------------------------------------------------------------

/// One frame line: the frame and how it travelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlcanFrame {
    /// The frame and its kind; for a remote frame `data` holds the requested length as zero
    /// bytes.
    pub frame: Frame,
    /// Adapter timestamp in milliseconds (0..60000), when timestamps are on.
    pub timestamp_ms: Option<u16>,
}

/// One CR-terminated line from an adapter, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A received frame.
    Frame(SlcanFrame),
    /// A bare CR: the last command succeeded.
    Ok,
    /// `z` or `Z`: a transmitted frame was accepted (Lawicel).
    TxAck,
    /// `Fxx`: status flags (bit 2 error warning, bit 5 error passive, ...).
    Status(u8),
    /// `s<a|w|p|b>RRRTTT`: controller state with receive and transmit error counters.
    State {
        /// The state the adapter reports.
        state: BusState,
        /// Receive error counter.
        rx_errors: u16,
        /// Transmit error counter.
        tx_errors: u16,
    },
    /// `V...` / `v...`: hardware and software version.
    Version(String),
    /// `N...`: serial number.
    Serial(String),
}

/// Status flag: error warning (`F` bit 2).
pub const STATUS_ERROR_WARNING: u8 = 0x04;
/// Status flag: error passive (`F` bit 5).
pub const STATUS_ERROR_PASSIVE: u8 = 0x20;

/// The bus state that `F` status flags imply (the flags have no bus-off bit).
pub fn state_from_status(flags: u8) -> BusState {
    if flags & STATUS_ERROR_PASSIVE != 0 {
        BusState::ErrorPassive
    } else if flags & STATUS_ERROR_WARNING != 0 {
        BusState::ErrorWarning
    } else {
        BusState::ErrorActive
    }
}

/// What is wrong with one SLCAN line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SlcanLineError {
    /// The line has bytes that are not printable ASCII.
    #[error("not ASCII text")]
    NotText,
    /// The first character is no reply or frame this codec knows.
    #[error("unknown line type `{0}`")]
    Unknown(char),
    /// The line ends before the id and DLC.
    #[error("frame line `{0}` is too short for its id and length digit")]
    Truncated(String),
    /// The id is not hexadecimal.
    #[error("id `{0}` is not hexadecimal")]
    BadId(String),
    /// The id is too large for its kind.
    #[error("id {id:X} is above {max:X}")]
    IdRange {
        /// The id.
        id: u32,
        /// The largest id of its kind.
        max: u32,
    },
    /// The length digit is not valid for the frame kind.
    #[error("length digit `{digit}` is not valid for a {kind} frame")]
    BadDlc {
        /// The digit.
        digit: char,
        /// Classic, remote or CAN FD.
        kind: &'static str,
    },
    /// The number of data digits does not match the length digit.
    #[error(
        "{got} hex digits after the length digit, but length {len} needs {want} \
         (or {want_ts} with a timestamp)"
    )]
    DataLength {
        /// Data bytes the DLC gives.
        len: usize,
        /// Digits found.
        got: usize,
        /// Digits needed without a timestamp.
        want: usize,
        /// Digits needed with a timestamp.
        want_ts: usize,
    },
    /// Data or timestamp digits that are not hexadecimal.
    #[error("`{0}` is not hexadecimal")]
    NotHex(String),
    /// A status reply that is not `F` and two hex digits.
    #[error("status reply `{0}` is not `F` and two hex digits")]
    BadStatus(String),
    /// A state line that is not `s<a|w|p|b>` and six decimal digits.
    #[error("state line `{0}` is not `s<a|w|p|b>RRRTTT`")]
    BadState(String),
    /// A frame that cannot be written as an SLCAN line.
    #[error("cannot encode: {0}")]
    Encode(String),
}

fn hex_u32(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 8 {
        return None;
    }
    let mut v: u32 = 0;
    for &b in text {
        v = (v << 4) | u32::from(hex_digit(b)?);
    }
    Some(v)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

/// Decode one line from an adapter, without its CR terminator.
pub fn decode_line(line: &[u8]) -> Result<Incoming, SlcanLineError> {
    if !line.iter().all(|b| (0x20..0x7F).contains(b)) {
        return Err(SlcanLineError::NotText);
    }
    let Some((&first, rest)) = line.split_first() else {
        return Ok(Incoming::Ok);
    };
    match first {
        b't' | b'T' | b'r' | b'R' | b'd' | b'D' | b'b' | b'B' => {
            decode_frame(first, rest, line).map(Incoming::Frame)
        }
        b'z' | b'Z' if rest.is_empty() => Ok(Incoming::TxAck),
        b'F' => match rest {
            [h, l] => match (hex_digit(*h), hex_digit(*l)) {
                (Some(h), Some(l)) => Ok(Incoming::Status((h << 4) | l)),
                _ => Err(SlcanLineError::BadStatus(text(line))),
            },
            _ => Err(SlcanLineError::BadStatus(text(line))),
        },
        b's' => decode_state(rest).ok_or_else(|| SlcanLineError::BadState(text(line))),
        b'V' | b'v' => Ok(Incoming::Version(text(rest))),
        b'N' => Ok(Incoming::Serial(text(rest))),
        other => Err(SlcanLineError::Unknown(char::from(other))),
    }
}

fn decode_state(rest: &[u8]) -> Option<Incoming> {
    let (&code, counters) = rest.split_first()?;
    let state = match code {
        b'a' => BusState::ErrorActive,
        b'w' => BusState::ErrorWarning,
        b'p' => BusState::ErrorPassive,
        b'b' => BusState::BusOff,
        _ => return None,
    };
    if counters.len() != 6 || !counters.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'))
    };
    Some(Incoming::State {
        state,
        rx_errors: number(counters.get(..3)?),
        tx_errors: number(counters.get(3..)?),
    })
}

fn decode_frame(kind: u8, rest: &[u8], line: &[u8]) -> Result<SlcanFrame, SlcanLineError> {
    let extended = kind.is_ascii_uppercase();
    let remote = matches!(kind, b'r' | b'R');
    let fd = matches!(kind, b'd' | b'D' | b'b' | b'B');
    let brs = matches!(kind, b'b' | b'B');
    let id_len = if extended { 8 } else { 3 };
    let (id_text, rest) = rest
        .split_at_checked(id_len)
        .ok_or_else(|| SlcanLineError::Truncated(text(line)))?;
    let (&dlc, digits) = rest
        .split_first()
        .ok_or_else(|| SlcanLineError::Truncated(text(line)))?;

    let id = hex_u32(id_text).ok_or_else(|| SlcanLineError::BadId(text(id_text)))?;
    let max = if extended { 0x1FFF_FFFF } else { 0x7FF };
    if id > max {
        return Err(SlcanLineError::IdRange { id, max });
    }

    let kind_name = if fd {
        "CAN FD"
    } else if remote {
        "remote"
    } else {
        "classic"
    };
    let code = hex_digit(dlc).ok_or(SlcanLineError::BadDlc {
        digit: char::from(dlc),
        kind: kind_name,
    })?;
    let len = if fd {
        FD_LENGTHS[usize::from(code)]
    } else if code <= 8 {
        usize::from(code)
    } else {
        return Err(SlcanLineError::BadDlc {
            digit: char::from(dlc),
            kind: kind_name,
        });
    };

    let want = if remote { 0 } else { 2 * len };
    let (data_digits, stamp) = if digits.len() == want {
        (digits, None)
    } else if digits.len() == want + 4 {
        let (d, s) = digits.split_at(want);
        (d, Some(s))
    } else {
        return Err(SlcanLineError::DataLength {
            len,
            got: digits.len(),
            want,
            want_ts: want + 4,
        });
    };

    let data = if remote {
        vec![0; len]
    } else {
        data_digits
            .chunks_exact(2)
            .map(|pair| match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(h), Some(l)) => Ok((h << 4) | l),
                _ => Err(SlcanLineError::NotHex(text(data_digits))),
            })
            .collect::<Result<Vec<u8>, _>>()?
    };
    let timestamp_ms = match stamp {
        Some(s) => Some(
            hex_u32(s)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(|| SlcanLineError::NotHex(text(s)))?,
        ),
        None => None,
    };
    let kind = if remote {
        FrameKind::Remote
    } else if fd {
        FrameKind::Fd { brs, esi: false }
    } else {
        FrameKind::Classic
    };
    Ok(SlcanFrame {
        frame: Frame {
            id,
            extended,
            data,
            kind,
        },
        timestamp_ms,
    })
}

/// Encode a frame as one SLCAN line, CR included (`t1232AABB\r`).
pub fn encode_frame(f: &SlcanFrame) -> Result<String, SlcanLineError> {
    let frame = &f.frame;
    let len = frame.data.len();
    let err = |m: String| Err(SlcanLineError::Encode(m));
    let (remote, fd, brs) = match frame.kind {
        FrameKind::Classic => (false, false, false),
        FrameKind::Remote => (true, false, false),
        FrameKind::Fd { brs, .. } => (false, true, brs),
        FrameKind::Error => return err("error frames cannot be sent".into()),
    };
    let dlc = if fd {
        match FD_LENGTHS.iter().position(|&l| l == len) {
            Some(code) => code,
            None => {
                return err(format!(
                    "{len} data bytes: a CAN FD frame carries 0-8, 12, 16, 20, 24, 32, 48 or 64"
                ))
            }
        }
    } else if len <= 8 {
        len
    } else {
        return err(format!(
            "{len} data bytes: a classic frame carries at most 8"
        ));
    };
    let kind = match (remote, fd, brs, frame.extended) {
        (true, _, _, false) => 'r',
        (true, _, _, true) => 'R',
        (false, true, true, false) => 'b',
        (false, true, true, true) => 'B',
        (false, true, false, false) => 'd',
        (false, true, false, true) => 'D',
        (false, false, _, false) => 't',
        (false, false, _, true) => 'T',
    };
    let mut out = String::with_capacity(1 + 8 + 1 + 2 * len + 5);
    out.push(kind);
    if frame.extended {
        if frame.id > 0x1FFF_FFFF {
            return err(format!("extended id {:X} is above 1FFFFFFF", frame.id));
        }
        out.push_str(&format!("{:08X}", frame.id));
    } else {
        if frame.id > 0x7FF {
            return err(format!("standard id {:X} is above 7FF", frame.id));
        }
        out.push_str(&format!("{:03X}", frame.id));
    }
    out.push_str(&format!("{dlc:X}"));
    if !remote {
        for b in &frame.data {
            out.push_str(&format!("{b:02X}"));
        }
    }
    if let Some(ms) = f.timestamp_ms {
        out.push_str(&format!("{ms:04X}"));
    }
    out.push('\r');
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Adapter timestamps onto the host clock
// ---------------------------------------------------------------------------------------

/// Maps the adapter's wrapping millisecond counter onto the host's monotonic clock.
///
/// Wraps are counted with the help of the host time between frames, so a silence longer than
/// a minute does not lose a wrap. The offset between the clocks is the smallest seen
/// (the frame that reached the host fastest), allowed to grow by 500 ppm of elapsed time so
/// that an adapter clock running slow does not make frames lag more and more. A mapped
/// time is never later than the host time at which the frame was read.
#[derive(Debug, Clone, Default)]
pub struct AdapterClock {
    state: Option<ClockState>,
}

#[derive(Debug, Clone)]
struct ClockState {
    first_host: Instant,
    last_host: Instant,
    last_stamp: u16,
    /// Adapter milliseconds since the first frame (wraps undone).
    unwrapped_ms: u64,
    /// (host - first_host) - (adapter - first adapter), in nanoseconds; at most 0 at start.
    offset_ns: i128,
}

/// How fast the clock offset may relax, in parts per million of elapsed time.
const DRIFT_PPM: i128 = 500;

impl AdapterClock {
    /// A clock that has seen no frame yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The host time of a frame stamped `stamp_ms` by the adapter and read at `host`.
    pub fn map(&mut self, stamp_ms: u16, host: Instant) -> Instant {
        if stamp_ms >= TIMESTAMP_WRAP_MS {
            return host;
        }
        let Some(st) = self.state.as_mut() else {
            self.state = Some(ClockState {
                first_host: host,
                last_host: host,
                last_stamp: stamp_ms,
                unwrapped_ms: 0,
                offset_ns: 0,
            });
            return host;
        };
        let wrap = u64::from(TIMESTAMP_WRAP_MS);
        let step = (u64::from(stamp_ms) + wrap - u64::from(st.last_stamp)) % wrap;
        let host_ms = host.saturating_duration_since(st.last_host).as_millis();
        let host_ms = u64::try_from(host_ms).unwrap_or(u64::MAX);
        // Whole wraps hidden in the silence: round (host elapsed - step) to minutes.
        let wraps = host_ms.saturating_sub(step).saturating_add(wrap / 2) / wrap;
        st.unwrapped_ms = st
            .unwrapped_ms
            .saturating_add(step)
            .saturating_add(wraps.saturating_mul(wrap));

        let host_ns = i128::try_from(host.saturating_duration_since(st.first_host).as_nanos())
            .unwrap_or(i128::MAX);
        let since_last_ns = i128::try_from(host.saturating_duration_since(st.last_host).as_nanos())
            .unwrap_or(i128::MAX);
        let adapter_ns = i128::from(st.unwrapped_ms) * 1_000_000;
        let candidate = host_ns - adapter_ns;
        let relaxed = st
            .offset_ns
            .saturating_add(since_last_ns.saturating_mul(DRIFT_PPM) / 1_000_000);
        st.offset_ns = candidate.min(relaxed);
        st.last_host = host;
        st.last_stamp = stamp_ms;

        let at_ns = adapter_ns + st.offset_ns;
        let mapped = if at_ns >= 0 {
            u64::try_from(at_ns)
                .ok()
                .and_then(|ns| st.first_host.checked_add(Duration::from_nanos(ns)))
        } else {
            u64::try_from(-at_ns)
                .ok()
                .and_then(|ns| st.first_host.checked_sub(Duration::from_nanos(ns)))
        };
        mapped.map_or(host, |t| t.min(host))
    }
}

// ---------------------------------------------------------------------------------------
// The bus
// ---------------------------------------------------------------------------------------

/// Counters of what crossed the serial line since the bus was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlcanStats {
    /// Data frames received and passed on.
    pub rx_frames: u64,
    /// Remote frames received (not passed on).
    pub rx_remote: u64,
    /// Lines that could not be decoded.
    pub bad_lines: u64,
    /// Frames written to the adapter.
    pub tx_frames: u64,
    /// Transmit acknowledgements (`z`/`Z`) received.
    pub tx_acks: u64,
    /// Error replies (BEL) received after opening.
    pub adapter_errors: u64,
}

#[derive(Default)]
struct Counters {
    rx_frames: AtomicU64,
    rx_remote: AtomicU64,
    bad_lines: AtomicU64,
    tx_frames: AtomicU64,
    tx_acks: AtomicU64,
    adapter_errors: AtomicU64,
}

/// A reply to a command while the adapter is being opened.
#[derive(Debug)]
enum Reply {
    Ok,
    Error,
}

struct Shared {
    name: String,
    state: StateCell,
    stop: AtomicBool,
    closed: AtomicBool,
    counters: Counters,
    replies: Mutex<Option<mpsc::Sender<Reply>>>,
    frames: broadcast::Sender<Received>,
    /// How many of the two port threads have ended (and so closed their handle on the port).
    ended: Mutex<u8>,
    /// Signalled when a port thread ends.
    ended_cv: std::sync::Condvar,
}

impl Shared {
    /// A port thread has ended: its handle on the port is closed.
    fn thread_ended(&self) {
        if let Ok(mut n) = self.ended.lock() {
            *n += 1;
        }
        self.ended_cv.notify_all();
    }
}

/// How long dropping a bus waits for its port threads to close the port, so that the same
/// process can open the port again at once (serial ports are opened exclusively).
const CLOSE_WAIT: Duration = Duration::from_secs(1);

struct Job {
    bytes: Vec<u8>,
    done: Option<oneshot::Sender<io::Result<()>>>,
}

/// An SLCAN adapter on a serial port (or any byte stream), behind the [`Bus`] trait.
pub struct SlcanBus {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    config: SlcanConfig,
}

impl SlcanBus {
    /// Open the serial port named in `config` and start the adapter.
    ///
    /// Blocks while the adapter answers the opening commands (at most a few reply timeouts).
    pub fn open(config: SlcanConfig) -> Result<Self, CanError> {
        let port = serialport::new(&config.port, config.baud)
            .timeout(Duration::from_millis(50))
            .open()
            .map_err(|e| serial_error(&config.port, e))?;
        let writer = port
            .try_clone()
            .map_err(|e| serial_error(&config.port, e))?;
        let name = format!("slcan:{}", config.port);
        Self::start(&name, Box::new(port), Box::new(writer), config)
    }

    /// Start the adapter over an already open byte stream (a pseudo-terminal in tests).
    ///
    /// The reader should return `TimedOut` now and then so that its thread can notice that
    /// the bus was dropped; otherwise the thread ends at the end of the input.
    pub fn start(
        name: &str,
        reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
        config: SlcanConfig,
    ) -> Result<Self, CanError> {
        let (frames, _) = broadcast::channel(CAPACITY);
        let (reply_tx, reply_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            state: StateCell::default(),
            stop: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            replies: Mutex::new(Some(reply_tx)),
            frames,
            ended: Mutex::new(0),
            ended_cv: std::sync::Condvar::new(),
        });
        let (jobs, job_rx) = mpsc::channel::<Job>();

        let reader_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("slcan-read".into())
            .spawn(move || {
                read_loop(reader, &reader_shared);
                reader_shared.thread_ended();
            })
            .map_err(|source| CanError::Io {
                bus: name.to_string(),
                context: "cannot start the reader thread".into(),
                source,
            })?;
        let writer_shared = Arc::clone(&shared);
        let poll = config.status_poll;
        thread::Builder::new()
            .name("slcan-write".into())
            .spawn(move || {
                write_loop(writer, &job_rx, poll, &writer_shared);
                writer_shared.thread_ended();
            })
            .map_err(|source| CanError::Io {
                bus: name.to_string(),
                context: "cannot start the writer thread".into(),
                source,
            })?;

        let bus = Self {
            shared,
            jobs,
            config,
        };
        bus.open_sequence(&reply_rx)?;
        if let Ok(mut replies) = bus.shared.replies.lock() {
            *replies = None;
        }
        Ok(bus)
    }

    fn open_sequence(&self, replies: &mpsc::Receiver<Reply>) -> Result<(), CanError> {
        let bitrate = bitrate_command(self.config.bitrate).ok_or_else(|| CanError::BadOption {
            endpoint: self.shared.name.clone(),
            reason: format!("bitrate {} has no SLCAN command", self.config.bitrate),
        })?;
        // A closed adapter may refuse `C`; that is fine. Any reply proves it is there.
        self.command("C", replies, true)?;
        self.command(bitrate, replies, false)?;
        if self.config.timestamps {
            self.command("Z1", replies, false)?;
        }
        self.command(
            if self.config.listen_only { "L" } else { "O" },
            replies,
            false,
        )
    }

    fn command(
        &self,
        cmd: &str,
        replies: &mpsc::Receiver<Reply>,
        refusal_ok: bool,
    ) -> Result<(), CanError> {
        while replies.try_recv().is_ok() {}
        self.jobs
            .send(Job {
                bytes: format!("{cmd}\r").into_bytes(),
                done: None,
            })
            .map_err(|_| CanError::Closed(self.shared.name.clone()))?;
        match replies.recv_timeout(self.config.reply_timeout) {
            Ok(Reply::Ok) => Ok(()),
            Ok(Reply::Error) if refusal_ok => Ok(()),
            Ok(Reply::Error) => Err(CanError::Adapter {
                bus: self.shared.name.clone(),
                reason: format!(
                    "the adapter refused `{cmd}`{}",
                    match cmd {
                        "Z1" => " (its firmware may not support timestamps: set timestamps=0)",
                        c if c.starts_with('S') => " (is the bit rate supported?)",
                        _ => "",
                    }
                ),
            }),
            Err(_) => Err(CanError::Adapter {
                bus: self.shared.name.clone(),
                reason: format!(
                    "no reply to `{cmd}` within {} ms: is this an SLCAN adapter, and is the \
                     serial baud rate ({}) right?",
                    self.config.reply_timeout.as_millis(),
                    self.config.baud
                ),
            }),
        }
    }

    /// What crossed the serial line since the bus was opened.
    pub fn stats(&self) -> SlcanStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SlcanStats {
            rx_frames: get(&c.rx_frames),
            rx_remote: get(&c.rx_remote),
            bad_lines: get(&c.bad_lines),
            tx_frames: get(&c.tx_frames),
            tx_acks: get(&c.tx_acks),
            adapter_errors: get(&c.adapter_errors),
        }
    }

    /// The configuration the bus was opened with.
    pub fn config(&self) -> &SlcanConfig {
        &self.config
    }
}

impl Drop for SlcanBus {
    fn drop(&mut self) {
        // Close the channel on the adapter; the writer thread ends after writing it.
        let _ = self.jobs.send(Job {
            bytes: b"C\r".to_vec(),
            done: None,
        });
        self.shared.stop.store(true, Ordering::Relaxed);
        // Disconnect the job queue so the writer ends after the close command, then wait
        // (bounded) for both threads to release the port: a bus opened again right after
        // (the firmware read-back, then the run) must not find the port still locked.
        drop(std::mem::replace(&mut self.jobs, mpsc::channel().0));
        if let Ok(ended) = self.shared.ended.lock() {
            let _ = self
                .shared
                .ended_cv
                .wait_timeout_while(ended, CLOSE_WAIT, |n| *n < 2);
        }
    }
}

impl Bus for SlcanBus {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn send(&self, frame: Frame) -> BusFuture<'_, Result<(), CanError>> {
        Box::pin(async move {
            if self.shared.closed.load(Ordering::Relaxed) {
                return Err(CanError::Closed(self.shared.name.clone()));
            }
            let mut frame = frame;
            if let FrameKind::Fd { brs, esi } = frame.kind {
                frame.kind = FrameKind::Fd {
                    brs: brs || self.config.brs,
                    esi,
                };
            }
            let line = encode_frame(&SlcanFrame {
                frame,
                timestamp_ms: None,
            })
            .map_err(|e| CanError::InvalidFrame(e.to_string()))?;
            let (done, wait) = oneshot::channel();
            self.jobs
                .send(Job {
                    bytes: line.into_bytes(),
                    done: Some(done),
                })
                .map_err(|_| CanError::Closed(self.shared.name.clone()))?;
            match wait.await {
                Ok(Ok(())) => {
                    self.shared
                        .counters
                        .tx_frames
                        .fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Ok(Err(source)) => Err(CanError::Io {
                    bus: self.shared.name.clone(),
                    context: "cannot write to the adapter".into(),
                    source,
                }),
                Err(_) => Err(CanError::Closed(self.shared.name.clone())),
            }
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Received> {
        self.shared.frames.subscribe()
    }

    fn state(&self) -> BusState {
        self.shared.state.get()
    }
}

fn serial_error(port: &str, e: serialport::Error) -> CanError {
    let kind = match e.kind() {
        serialport::ErrorKind::Io(kind) => kind,
        serialport::ErrorKind::NoDevice => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    CanError::Io {
        bus: format!("slcan:{port}"),
        context: format!("cannot open serial port {port}"),
        source: io::Error::new(kind, e.description),
    }
}

fn read_loop(mut reader: Box<dyn Read + Send>, shared: &Shared) {
    let mut buf = [0u8; 4096];
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE);
    let mut overflow = false;
    let mut clock = AdapterClock::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let n = match reader.read(&mut buf) {
            Ok(0) => {
                tracing::warn!(bus = %shared.name, "the adapter's port closed");
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::error!(bus = %shared.name, "reading the adapter failed: {e}");
                break;
            }
        };
        let at = Instant::now();
        for &b in buf.get(..n).unwrap_or_default() {
            match b {
                b'\r' | BEL => {
                    if overflow {
                        shared.counters.bad_lines.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(bus = %shared.name, "dropped an over-long line");
                    } else if b == BEL {
                        handle_error_reply(shared);
                    } else {
                        handle_line(&line, at, &mut clock, shared);
                    }
                    line.clear();
                    overflow = false;
                }
                b'\n' => {}
                _ if line.len() < MAX_LINE => line.push(b),
                _ => overflow = true,
            }
        }
    }
    shared.closed.store(true, Ordering::Relaxed);
}

fn reply(shared: &Shared, r: Reply) -> bool {
    match shared.replies.lock() {
        Ok(guard) => match guard.as_ref() {
            Some(tx) => tx.send(r).is_ok(),
            None => false,
        },
        Err(_) => false,
    }
}

fn handle_error_reply(shared: &Shared) {
    if !reply(shared, Reply::Error) {
        shared
            .counters
            .adapter_errors
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(bus = %shared.name, "the adapter answered with an error (BEL)");
    }
}

fn handle_line(line: &[u8], at: Instant, clock: &mut AdapterClock, shared: &Shared) {
    match decode_line(line) {
        Ok(Incoming::Frame(f)) => {
            if f.frame.kind == FrameKind::Remote {
                shared.counters.rx_remote.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.counters.rx_frames.fetch_add(1, Ordering::Relaxed);
            }
            let at = f.timestamp_ms.map_or(at, |ms| clock.map(ms, at));
            // No receiver is not an error: frames on a wire with no listener are lost too.
            let _ = shared.frames.send(Received { frame: f.frame, at });
        }
        Ok(Incoming::Ok) => {
            // After opening, a bare CR acknowledges a frame on some firmwares.
            if !reply(shared, Reply::Ok) {
                shared.counters.tx_acks.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(Incoming::TxAck) => {
            shared.counters.tx_acks.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Incoming::Status(flags)) => set_state(shared, state_from_status(flags)),
        Ok(Incoming::State { state, .. }) => set_state(shared, state),
        Ok(Incoming::Version(v)) => tracing::debug!(bus = %shared.name, "adapter version {v}"),
        Ok(Incoming::Serial(n)) => tracing::debug!(bus = %shared.name, "adapter serial {n}"),
        Err(e) => {
            shared.counters.bad_lines.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(bus = %shared.name, "undecodable line `{}`: {e}", text(line));
        }
    }
}

fn set_state(shared: &Shared, state: BusState) {
    let before = shared.state.set(state);
    if before != state {
        tracing::warn!(bus = %shared.name, "bus state {before} -> {state}");
    }
}

fn write_loop(
    mut writer: Box<dyn Write + Send>,
    jobs: &mpsc::Receiver<Job>,
    poll: Option<Duration>,
    shared: &Shared,
) {
    loop {
        let job = match poll {
            Some(every) => match jobs.recv_timeout(every) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            },
        };
        match job {
            Some(Job { bytes, done }) => {
                let result = writer.write_all(&bytes).and_then(|()| writer.flush());
                match done {
                    Some(done) => {
                        let _ = done.send(result);
                    }
                    None => {
                        if let Err(e) = result {
                            tracing::warn!(bus = %shared.name, "writing to the adapter failed: {e}");
                        }
                    }
                }
            }
            None => {
                let opening = shared.replies.lock().map(|r| r.is_some()).unwrap_or(true);
                if !opening && !shared.closed.load(Ordering::Relaxed) {
                    if let Err(e) = writer.write_all(b"F\r").and_then(|()| writer.flush()) {
                        tracing::warn!(bus = %shared.name, "polling the status flags failed: {e}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn frame(id: u32, extended: bool, data: &[u8]) -> Frame {
        Frame {
            id,
            extended,
            data: data.to_vec(),
            kind: FrameKind::Classic,
        }
    }

    fn kind(frame: Frame, kind: FrameKind) -> Frame {
        Frame { kind, ..frame }
    }

    fn data_frame(id: u32, extended: bool, data: &[u8], ts: Option<u16>) -> Incoming {
        Incoming::Frame(SlcanFrame {
            frame: frame(id, extended, data),
            timestamp_ms: ts,
        })
    }

    const REMOTE: FrameKind = FrameKind::Remote;
    const FD: FrameKind = FrameKind::Fd {
        brs: false,
        esi: false,
    };
    const BRS: FrameKind = FrameKind::Fd {
        brs: true,
        esi: false,
    };

    #[rstest]
    #[case::standard("t1232AABB", data_frame(0x123, false, &[0xAA, 0xBB], None))]
    #[case::standard_empty("t7FF0", data_frame(0x7FF, false, &[], None))]
    #[case::lowercase_hex("t1ab2aabb", data_frame(0x1AB, false, &[0xAA, 0xBB], None))]
    #[case::eight_bytes("t00080011223344556677", data_frame(0, false, &[0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77], None))]
    #[case::extended("T1F3344552DEAD", data_frame(0x1F33_4455, true, &[0xDE, 0xAD], None))]
    #[case::timestamp("t1231FF1234", data_frame(0x123, false, &[0xFF], Some(0x1234)))]
    #[case::timestamp_max("t1230EA5F", data_frame(0x123, false, &[], Some(59_999)))]
    #[case::extended_timestamp("T000000012AB00FFFF", data_frame(1, true, &[0xAB, 0x00], Some(0xFFFF)))]
    #[case::ok("", Incoming::Ok)]
    #[case::ack_std("z", Incoming::TxAck)]
    #[case::ack_ext("Z", Incoming::TxAck)]
    #[case::status("F24", Incoming::Status(0x24))]
    #[case::state_bus_off("sb256256", Incoming::State { state: BusState::BusOff, rx_errors: 256, tx_errors: 256 })]
    #[case::state_active("sa057033", Incoming::State { state: BusState::ErrorActive, rx_errors: 57, tx_errors: 33 })]
    #[case::version("V1013", Incoming::Version("1013".into()))]
    #[case::serial("NA123", Incoming::Serial("A123".into()))]
    fn decodes(#[case] line: &str, #[case] want: Incoming) {
        assert_eq!(decode_line(line.as_bytes()), Ok(want));
    }

    #[rstest]
    #[case::remote("r1234", 0x123, false, 4, None)]
    #[case::remote_ext("R1F3344558", 0x1F33_4455, true, 8, None)]
    #[case::remote_ts("r12300010", 0x123, false, 0, Some(0x10))]
    fn decodes_remote(
        #[case] line: &str,
        #[case] id: u32,
        #[case] extended: bool,
        #[case] len: usize,
        #[case] ts: Option<u16>,
    ) {
        let Ok(Incoming::Frame(f)) = decode_line(line.as_bytes()) else {
            panic!("{line}")
        };
        assert_eq!(f.frame, kind(frame(id, extended, &vec![0; len]), REMOTE));
        assert_eq!(f.timestamp_ms, ts);
    }

    #[rstest]
    #[case::fd_eight("d1238", 8, false, false)]
    #[case::fd_12("d1239", 12, false, false)]
    #[case::fd_16("d123A", 16, false, false)]
    #[case::fd_20("d123B", 20, false, false)]
    #[case::fd_24("d123C", 24, false, false)]
    #[case::fd_32("d123D", 32, false, false)]
    #[case::fd_48("d123E", 48, false, false)]
    #[case::fd_64("d123F", 64, false, false)]
    #[case::brs_64("b123F", 64, true, false)]
    #[case::ext_fd("D1F334455F", 64, false, true)]
    #[case::ext_brs("B1F3344559", 12, true, true)]
    fn decodes_fd(
        #[case] head: &str,
        #[case] len: usize,
        #[case] brs: bool,
        #[case] extended: bool,
    ) {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
        let line = format!("{head}{hex}");
        let Ok(Incoming::Frame(f)) = decode_line(line.as_bytes()) else {
            panic!("{line}")
        };
        assert_eq!(
            (f.frame.kind, f.frame.extended),
            (FrameKind::Fd { brs, esi: false }, extended)
        );
        assert_eq!(f.frame.data, data);
        // And back, byte for byte.
        assert_eq!(encode_frame(&f).unwrap(), format!("{line}\r"));
    }

    #[rstest]
    #[case::unknown("x123", SlcanLineError::Unknown('x'))]
    #[case::short_id("t12", SlcanLineError::Truncated("t12".into()))]
    #[case::no_dlc("t123", SlcanLineError::Truncated("t123".into()))]
    #[case::bad_id("tG232AABB", SlcanLineError::BadId("G23".into()))]
    #[case::id_range("t8001AA", SlcanLineError::IdRange { id: 0x800, max: 0x7FF })]
    #[case::ext_id_range("T200000000", SlcanLineError::IdRange { id: 0x2000_0000, max: 0x1FFF_FFFF })]
    #[case::classic_dlc_9("t1239", SlcanLineError::BadDlc { digit: '9', kind: "classic" })]
    #[case::remote_dlc_f("r123F", SlcanLineError::BadDlc { digit: 'F', kind: "remote" })]
    #[case::dlc_not_hex("t123G", SlcanLineError::BadDlc { digit: 'G', kind: "classic" })]
    #[case::missing_data("t1232AA", SlcanLineError::DataLength { len: 2, got: 2, want: 4, want_ts: 8 })]
    #[case::extra_data("t1231AABB", SlcanLineError::DataLength { len: 1, got: 4, want: 2, want_ts: 6 })]
    #[case::data_not_hex("t1231ZZ", SlcanLineError::NotHex("ZZ".into()))]
    #[case::ts_not_hex("t1231AAXYZW", SlcanLineError::NotHex("XYZW".into()))]
    #[case::status_short("F2", SlcanLineError::BadStatus("F2".into()))]
    #[case::status_not_hex("FZZ", SlcanLineError::BadStatus("FZZ".into()))]
    #[case::state_code("sx000000", SlcanLineError::BadState("sx000000".into()))]
    #[case::state_digits("sa00000", SlcanLineError::BadState("sa00000".into()))]
    #[case::control("t123\u{1}", SlcanLineError::NotText)]
    #[case::ack_with_text("z1", SlcanLineError::Unknown('z'))]
    fn rejects(#[case] line: &str, #[case] want: SlcanLineError) {
        assert_eq!(decode_line(line.as_bytes()), Err(want));
    }

    #[test]
    fn rejects_non_ascii_bytes() {
        assert_eq!(
            decode_line(b"t123\xFF"),
            Err(SlcanLineError::NotText),
            "bytes above 0x7E"
        );
    }

    #[rstest]
    #[case::classic(frame(0x123, false, &[0xAA, 0xBB]), None, "t1232AABB\r")]
    #[case::extended(frame(0x1F33_4455, true, &[]), None, "T1F3344550\r")]
    #[case::remote(kind(frame(0x123, false, &[0; 3]), REMOTE), None, "r1233\r")]
    #[case::remote_ext(kind(frame(0x1, true, &[0; 8]), REMOTE), None, "R000000018\r")]
    #[case::fd_small(kind(frame(0x10, false, &[1]), FD), None, "d010101\r")]
    #[case::brs_ext(kind(frame(0x10, true, &[0; 12]), BRS), None, "B000000109000000000000000000000000\r")]
    #[case::timestamp(frame(0x7FF, false, &[0xFF]), Some(59_999), "t7FF1FFEA5F\r")]
    fn encodes(#[case] frame: Frame, #[case] ts: Option<u16>, #[case] want: &str) {
        let f = SlcanFrame {
            frame,
            timestamp_ms: ts,
        };
        let line = encode_frame(&f).unwrap();
        assert_eq!(line, want);
        // Round trip through the decoder.
        let back = decode_line(line.trim_end_matches('\r').as_bytes()).unwrap();
        assert_eq!(back, Incoming::Frame(f));
    }

    #[rstest]
    #[case::classic_nine(frame(0x1, false, &[0; 9]))]
    #[case::fd_nine(kind(frame(0x1, false, &[0; 9]), FD))]
    #[case::error_frame(kind(frame(0x4, false, &[0; 8]), FrameKind::Error))]
    #[case::std_range(frame(0x800, false, &[]))]
    #[case::ext_range(frame(0x2000_0000, true, &[]))]
    fn refuses_to_encode(#[case] frame: Frame) {
        let f = SlcanFrame {
            frame,
            timestamp_ms: None,
        };
        assert!(matches!(encode_frame(&f), Err(SlcanLineError::Encode(_))));
    }

    #[test]
    fn random_lines_never_panic() {
        let alphabet = b"tTrRdDbBzZFsVN0123456789abcdefABCDEFGx\x07 ";
        let mut state: u64 = 7;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let len = (state >> 58) as usize;
            let line: Vec<u8> = (0..len)
                .map(|i| {
                    let r = state.rotate_left(i as u32 * 7);
                    alphabet[(r >> 33) as usize % alphabet.len()]
                })
                .collect();
            if let Ok(Incoming::Frame(f)) = decode_line(&line) {
                let again = encode_frame(&f).unwrap();
                assert_eq!(
                    decode_line(again.trim_end_matches('\r').as_bytes()),
                    Ok(Incoming::Frame(f))
                );
            }
        }
    }

    #[rstest]
    #[case(0x00, BusState::ErrorActive)]
    #[case(0x04, BusState::ErrorWarning)]
    #[case(0x20, BusState::ErrorPassive)]
    #[case(0x24, BusState::ErrorPassive)]
    #[case(0x80, BusState::ErrorActive)]
    fn status_flags(#[case] flags: u8, #[case] want: BusState) {
        assert_eq!(state_from_status(flags), want);
    }

    #[rstest]
    #[case(10_000, Some("S0"))]
    #[case(125_000, Some("S4"))]
    #[case(500_000, Some("S6"))]
    #[case(800_000, Some("S7"))]
    #[case(1_000_000, Some("S8"))]
    #[case(83_333, None)]
    fn bitrates(#[case] rate: u32, #[case] want: Option<&str>) {
        assert_eq!(bitrate_command(rate), want);
    }

    #[test]
    fn parses_endpoints() {
        let c = SlcanConfig::parse(
            "slcan:/dev/ttyACM0?bitrate=500000&variant=lawicel&timestamps=1&baud=921600",
        )
        .unwrap();
        assert_eq!(c.port, "/dev/ttyACM0");
        assert_eq!((c.bitrate, c.baud), (500_000, 921_600));
        assert_eq!(c.variant, SlcanVariant::Lawicel);
        assert!(c.timestamps && !c.listen_only && !c.brs);
        assert_eq!(c.status_poll, Some(Duration::from_millis(1000)));

        let c = SlcanConfig::parse("slcan:COM3?bitrate=1000000&variant=CANable&brs=1").unwrap();
        assert_eq!(
            (c.port.as_str(), c.variant),
            ("COM3", SlcanVariant::Canable)
        );
        assert!(c.brs && c.status_poll.is_none());

        let c = SlcanConfig::parse(
            "slcan:/dev/x?bitrate=250000&variant=lawicel&status_poll_ms=0&timeout_ms=50",
        )
        .unwrap();
        assert_eq!(c.status_poll, None);
        assert_eq!(c.reply_timeout, Duration::from_millis(50));
    }

    #[rstest]
    #[case::no_bitrate("slcan:/dev/ttyACM0", "bitrate")]
    #[case::odd_bitrate("slcan:/dev/ttyACM0?bitrate=83333", "83333")]
    #[case::not_number("slcan:/dev/ttyACM0?bitrate=fast", "fast")]
    #[case::variant("slcan:/dev/ttyACM0?bitrate=500000&variant=peak", "peak")]
    #[case::flag("slcan:/dev/ttyACM0?bitrate=500000&timestamps=maybe", "0 or 1")]
    #[case::unknown("slcan:/dev/ttyACM0?bitrate=500000&speed=1", "speed")]
    #[case::no_value("slcan:/dev/ttyACM0?bitrate", "=value")]
    fn rejects_endpoints(#[case] endpoint: &str, #[case] mentions: &str) {
        let err = SlcanConfig::parse(endpoint).unwrap_err().to_string();
        assert!(err.contains(mentions), "{err}");
        assert!(err.contains(endpoint), "{err}");
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn clock_keeps_the_wire_spacing_of_a_burst() {
        let base = Instant::now();
        let mut clock = AdapterClock::new();
        // Three frames 10 ms apart on the wire, read together 30 ms after the first.
        let a = clock.map(1000, base);
        let read = base + ms(30);
        let b = clock.map(1010, read);
        let c = clock.map(1020, read);
        let near = |d: Duration, want: Duration| d.abs_diff(want) < Duration::from_micros(100);
        assert_eq!(a, base);
        assert!(near(b - a, ms(10)), "{:?}", b - a);
        assert!(near(c - a, ms(20)), "{:?}", c - a);
        assert!(c <= read);
    }

    #[test]
    fn clock_unwraps_at_sixty_seconds() {
        let base = Instant::now();
        let mut clock = AdapterClock::new();
        clock.map(59_990, base);
        let t = clock.map(5, base + ms(15));
        assert_eq!(t - base, ms(15));
    }

    #[test]
    fn clock_counts_wraps_hidden_in_a_long_silence() {
        let base = Instant::now();
        let mut clock = AdapterClock::new();
        clock.map(100, base);
        // 150.2 s later the counter shows 30_300: two wraps and 30.2 s.
        let t = clock.map(30_300, base + ms(150_200));
        assert_eq!(t - base, ms(150_200));
    }

    #[test]
    fn clock_never_maps_after_the_read_time() {
        let base = Instant::now();
        let mut clock = AdapterClock::new();
        clock.map(0, base + ms(5)); // first frame arrived late
        let t = clock.map(10, base + ms(12)); // this one only 2 ms late... but first was later
        assert!(t <= base + ms(12));
        // An adapter clock running fast is pulled back to the host.
        let t = clock.map(1000, base + ms(900));
        assert!(t <= base + ms(900));
    }

    #[test]
    fn clock_ignores_out_of_range_stamps() {
        let base = Instant::now();
        let mut clock = AdapterClock::new();
        assert_eq!(clock.map(60_000, base), base);
        assert_eq!(clock.map(0xFFFF, base + ms(1)), base + ms(1));
    }
}
