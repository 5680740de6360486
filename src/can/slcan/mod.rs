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

use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

pub use clock::AdapterClock;
pub use codec::{
    decode_line, encode_frame, state_from_status, Incoming, SlcanFrame, SlcanLineError,
    STATUS_ERROR_PASSIVE, STATUS_ERROR_WARNING,
};

mod clock;
mod codec;
use codec::text;

use super::{Bus, BusFuture, BusState, CanError, Frame, FrameKind, Received, StateCell};

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
            Err(e) if crate::scpi::is_transient(&e) => continue,
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
mod tests;
