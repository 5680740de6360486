//! Simulated SCPI instruments: a supply, a load or a cell simulator that answers on a TCP
//! socket (or an in-memory pipe, or a pseudo-terminal) the way the modelled instrument does,
//! reading from and writing to the shared [`Plant`].
//!
//! Each shipped dialect has its model's own command set, written from the vendor's manual
//! rather than from the dialect file (so that the two check each other): Keysight channel
//! lists `(@1)`, Rigol `CH1` arguments and `:SOUR2:` suffixes, R&S `INST:NSEL` with the
//! master output `OUTP:GEN`, Chroma `CHAN` with `MODE CCL|CCH`, Bloomy `SOURn`/`OUTPn`
//! with fault injection, EA's `SYST:LOCK`, Siglent current ranges, and the N6700/RP7900
//! I/O watchdog. A lab's own dialect gets the standard SCPI tree for its role. Headers
//! are matched in short and long form, any case, with optional nodes and `;`-separated
//! commands under SCPI's header-path rule. Reply formats (booleans, numbers, units) follow
//! the dialect; errors carry the standard SCPI codes.
//!
//! The first channel of a model drives the plant; further channels are open circuits that
//! keep their settings.

use super::pty::{open_pty, read_fd, set_nonblocking, tty_name, write_fd};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::scpi::reply::{format_nr3, parse_quantity};
use crate::scpi::{BoolFormat, Dialect, NumberFormat, Role, Transport};
use crate::sim::plant::{LoadState, Plant, PlantState, SupplyState};

/// How many received command lines a simulated instrument keeps for inspection.
pub const COMMAND_LOG_LIMIT: usize = 100_000;
/// Longest command line accepted; longer input is dropped with `-363,"Input buffer overrun"`.
const MAX_LINE: usize = 64 * 1024;

/// Error-queue depth; on overflow the newest entry becomes `-350,"Queue overflow"`.
const QUEUE_DEPTH: usize = 20;

/// Protection levels are accepted up to this multiple of the output range.
const PROTECTION_HEADROOM: f64 = 1.1;

/// The low current range of a Chroma load is this fraction of the high one.
const CHROMA_LOW_RANGE: f64 = 0.1;

/// Siglent SDL current ranges (A).
const SIGLENT_RANGES: [f64; 2] = [5.0, 30.0];

/// A running simulated instrument; cloning gives another handle to the same instrument.
#[derive(Clone)]
pub struct SimInstrument {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for SimInstrument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimInstrument")
            .field("dialect", &self.shared.dialect.id)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

/// Which command set the instrument speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// The standard SCPI tree for the role, narrowed by the dialect (EA PSB, Rigol DL3000,
    /// and any lab dialect).
    Standard,
    /// Keysight E36300 and N6700: channel lists `(@n)`.
    KeysightList,
    /// Keysight RP7900: priority mode and current limits.
    KeysightRp,
    /// Rigol DP800: `CHn` arguments, `:SOURn:` suffixes, OVP/OCP with their own on/off.
    RigolDp,
    /// R&S HMP/NGE: `INST:NSEL`, `OUTP:SEL` and the master `OUTP:GEN`, the fuse.
    RsHmp,
    /// Siglent SDL1000X: current ranges, OCP.
    Siglent,
    /// Chroma 63600: `CHAN`, `MODE`, `CURR:STAT:L1`, `LOAD`.
    Chroma,
    /// Bloomy ABS: `SOURn`, `OUTPn`, `MEASn`, fault injection.
    Bloomy,
}

impl Family {
    fn of(dialect: &Dialect) -> Family {
        match dialect.id.as_str() {
            "keysight-e36300" | "keysight-n6700" => Family::KeysightList,
            "keysight-rp7900" => Family::KeysightRp,
            "rigol-dp800" => Family::RigolDp,
            "rs-hmp4040" | "rs-nge100" => Family::RsHmp,
            "siglent-sdl1000x" => Family::Siglent,
            "chroma-63600" => Family::Chroma,
            "bloomy-abs" => Family::Bloomy,
            _ if dialect.role == Role::CellSim => Family::Bloomy,
            _ => Family::Standard,
        }
    }

    /// Channel lists `(@1,2)` as the last parameter.
    fn channel_lists(self) -> bool {
        matches!(self, Family::KeysightList | Family::KeysightRp)
    }

    /// `CH1` as the first parameter.
    fn channel_arguments(self) -> bool {
        self == Family::RigolDp
    }

    /// OVP and OCP levels are switched on and off separately from their level.
    fn protection_states(self) -> bool {
        matches!(self, Family::RigolDp | Family::Siglent)
    }

    /// Whether the model has the I/O watchdog.
    fn watchdog(self) -> bool {
        matches!(self, Family::KeysightList | Family::KeysightRp)
    }
}

/// State shared by the accept loop, the connection tasks and the handles.
struct Shared {
    dialect: Dialect,
    family: Family,
    plant: Plant,
    patterns: Vec<Pattern>,
    state: Mutex<InstrumentState>,
    log: Mutex<std::collections::VecDeque<String>>,
    /// Cancelled by `drop_connections`; replaced by a fresh child of `shutdown` each time.
    connections: Mutex<CancellationToken>,
    shutdown: CancellationToken,
    serial: Mutex<String>,
}

/// What tripped a channel's protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trip {
    OverVoltage,
    OverCurrent,
    Watchdog,
}

/// A fault injected into a simulated cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum CellFault {
    #[default]
    None,
    Open,
    Short,
    Polarity,
}

impl CellFault {
    fn name(self) -> &'static str {
        match self {
            CellFault::None => "NONE",
            CellFault::Open => "OPEN",
            CellFault::Short => "SHORT",
            CellFault::Polarity => "POL",
        }
    }
}

/// One cell of a cell simulator.
#[derive(Debug, Clone, Default)]
struct CellState {
    voltage: f64,
    output: bool,
    fault: CellFault,
    source_limit: f64,
    sink_limit: f64,
}

/// Protection and mode settings of one channel.
#[derive(Debug, Clone, Default)]
struct Extra {
    ovp_level: Option<f64>,
    ovp_on: bool,
    ocp_level: Option<f64>,
    ocp_on: bool,
    ocp_at_limit: bool,
    trip: Option<Trip>,
    /// R&S: the channel is selected for the master output.
    selected: bool,
    /// Chroma: the mode (`CCL`, `CCH`).
    mode: Option<String>,
    /// Siglent: the current range (A).
    range: Option<f64>,
    /// RP7900: the negative current limit (A, at most 0).
    negative_limit: f64,
}

/// One channel: its own supply/load state (unused for the channel wired to the plant), its
/// cell (cell simulators) and its protection settings.
#[derive(Debug, Clone, Default)]
struct ChannelState {
    supply: SupplyState,
    load: LoadState,
    cell: CellState,
    x: Extra,
}

/// Per-instrument state that is not part of the plant.
#[derive(Debug)]
struct InstrumentState {
    errors: VecDeque<(i32, String)>,
    esr: u8,
    locked: bool,
    /// Channel addressed by commands without a channel (`INST:NSEL`, `CHAN`).
    selected: u32,
    /// R&S master output.
    master: bool,
    channels: BTreeMap<u32, ChannelState>,
    watchdog_on: bool,
    watchdog_delay: Duration,
    last_io: Instant,
}

impl InstrumentState {
    fn new(dialect: &Dialect) -> Self {
        Self {
            errors: VecDeque::new(),
            esr: 0,
            locked: false,
            selected: dialect.channel_numbers().first().copied().unwrap_or(1),
            master: false,
            channels: BTreeMap::new(),
            watchdog_on: false,
            watchdog_delay: Duration::from_secs(60),
            last_io: Instant::now(),
        }
    }
}

/// An error to queue: SCPI code and text.
type ScpiFault = (i32, String);

fn fault(code: i32, message: &str) -> ScpiFault {
    (code, message.to_string())
}

impl Shared {
    fn new(dialect: Dialect, plant: Plant, serial: String, shutdown: CancellationToken) -> Self {
        let family = Family::of(&dialect);
        Shared {
            patterns: patterns(&dialect, family),
            family,
            serial: Mutex::new(serial),
            state: Mutex::new(InstrumentState::new(&dialect)),
            dialect,
            plant,
            log: Mutex::new(std::collections::VecDeque::new()),
            connections: Mutex::new(shutdown.child_token()),
            shutdown,
        }
    }

    /// The channel wired to the plant.
    fn plant_channel(&self) -> u32 {
        self.dialect.channel_numbers().first().copied().unwrap_or(1)
    }
}

/// Start serving `dialect` on `listener`, backed by `plant`. The server runs until
/// [`SimInstrument::shutdown`] or until the runtime stops.
pub async fn serve(listener: TcpListener, dialect: Dialect, plant: Plant) -> SimInstrument {
    let local_addr = listener.local_addr().unwrap_or_else(|error| {
        tracing::error!(%error, "simulated instrument listener has no local address");
        SocketAddr::from(([0, 0, 0, 0], 0))
    });
    let shared = Arc::new(Shared::new(
        dialect,
        plant,
        format!("SIM{:06}", local_addr.port()),
        CancellationToken::new(),
    ));
    start_watchdog(&shared);
    tokio::spawn(accept_loop(listener, shared.clone()));
    SimInstrument { shared, local_addr }
}

/// Serve `dialect` backed by `plant` without a socket: reachable only through
/// [`SimInstrument::connect_in_memory`] (for example behind a `mem://` endpoint), so that it
/// runs under a paused, virtual clock. Its `local_addr` is the unspecified address.
pub fn serve_in_memory(dialect: Dialect, plant: Plant) -> SimInstrument {
    static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let shared = Arc::new(Shared::new(
        dialect,
        plant,
        format!("SIMMEM{n:04}"),
        CancellationToken::new(),
    ));
    start_watchdog(&shared);
    SimInstrument {
        shared,
        local_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, %peer, "TCP_NODELAY not set");
                }
                tracing::debug!(dialect = %shared.dialect.id, %peer, "simulated instrument: connection");
                let token = lock(&shared.connections).clone();
                let terminator = shared.dialect.terminator.clone();
                tokio::spawn(run_connection(shared.clone(), stream, token, terminator));
            }
            Err(error) => {
                tracing::warn!(%error, "simulated instrument: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Switch every supply output off when the armed I/O watchdog sees no traffic for its delay.
fn start_watchdog(shared: &Arc<Shared>) {
    let has_watchdog = shared.family.watchdog() || shared.dialect.watchdog.is_some();
    if !has_watchdog || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        loop {
            let wait = {
                let state = lock(&shared.state);
                if state.watchdog_on {
                    (state.last_io + state.watchdog_delay).saturating_duration_since(Instant::now())
                } else {
                    Duration::from_millis(200)
                }
            };
            tokio::select! {
                biased;
                _ = shared.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            }
            let mut state = lock(&shared.state);
            if state.watchdog_on && Instant::now() >= state.last_io + state.watchdog_delay {
                let mut plant = shared.plant.lock();
                shared.watchdog_trip(&mut state, &mut plant);
                // Trip once per silence: the next traffic re-arms the count.
                state.last_io = Instant::now();
            }
        }
    });
}

impl SimInstrument {
    /// The socket address the instrument listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address to put in a rig file: `tcp://127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("tcp://{}", self.local_addr)
    }

    /// The dialect this instrument speaks.
    pub fn dialect(&self) -> &Dialect {
        &self.shared.dialect
    }

    /// The plant this instrument acts on.
    pub fn plant(&self) -> &Plant {
        &self.shared.plant
    }

    /// Answer `*IDN?` with this serial number (e.g. the one in the rig file).
    pub fn set_serial(&self, serial: &str) {
        *lock(&self.shared.serial) = serial.to_string();
    }

    /// The command lines received on any connection, in order, without terminator (the
    /// last [`COMMAND_LOG_LIMIT`] of them, so that long runs stay bounded in memory).
    pub fn command_log(&self) -> Vec<String> {
        lock(&self.shared.log).iter().cloned().collect()
    }

    /// Forget the command lines received so far.
    pub fn clear_command_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// Queue an instrument error, so the next error-queue check reports it.
    pub fn inject_error(&self, code: i32, message: &str) {
        push_error(&mut lock(&self.shared.state), code, message);
    }

    /// Close every current connection, as if the instrument dropped off the network; new
    /// connections are still accepted.
    pub fn drop_connections(&self) {
        let mut current = lock(&self.shared.connections);
        current.cancel();
        *current = self.shared.shutdown.child_token();
    }

    /// Stop listening and close every connection.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// A transport connected to this instrument without a socket (for virtual-time runs).
    pub fn connect_in_memory(&self) -> Box<dyn Transport> {
        let (near, far) = tokio::io::duplex(64 * 1024);
        self.serve_stream(far, &self.shared.dialect.terminator);
        Box::new(near)
    }

    /// Serve this instrument on any byte stream, ending replies with `terminator`.
    pub fn serve_stream<S>(&self, stream: S, terminator: &str)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let token = lock(&self.shared.connections).clone();
        tokio::spawn(run_connection(
            self.shared.clone(),
            stream,
            token,
            terminator.to_string(),
        ));
    }

    /// Serve this instrument on a new pseudo-terminal, as on its serial port (replies end
    /// with the dialect's serial terminator). Open [`SerialEndpoint::path`] with
    /// `serial://PATH`. Must be called inside a tokio runtime.
    pub fn serve_serial(&self) -> io::Result<SerialEndpoint> {
        let (master, slave) = open_pty()?;
        let path = tty_name(slave.as_raw_fd())?;
        set_nonblocking(master.as_raw_fd())?;
        // SAFETY: `master` is an OwnedFd: open, owned here alone, and never replaced while
        // the AsyncFd holds it.
        let master = unsafe { AsyncFd::register(master) }.map_err(|e| e.into_parts().1)?;
        let terminator = self.shared.dialect.serial_terminator().to_string();
        self.serve_stream(PtyMaster { fd: master }, &terminator);
        Ok(SerialEndpoint {
            path,
            _slave: slave,
        })
    }
}

/// A simulated instrument's serial port: the far end of a pseudo-terminal.
#[derive(Debug)]
pub struct SerialEndpoint {
    path: PathBuf,
    /// Held open so that the terminal survives a client closing and reopening it.
    _slave: OwnedFd,
}

impl SerialEndpoint {
    /// The terminal to open, e.g. `/dev/pts/3`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The address for a rig file: `serial:///dev/pts/3`.
    pub fn address(&self) -> String {
        format!("serial://{}", self.path.display())
    }
}

/// The master side of a pseudo-terminal as an async byte stream.
struct PtyMaster {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncRead for PtyMaster {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| read_fd(fd.as_raw_fd(), unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| write_fd(fd.as_raw_fd(), buf)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a connection task panicked; the data is still usable.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn push_error(state: &mut InstrumentState, code: i32, message: &str) {
    state.esr |= match code {
        -199..=-100 => 1 << 5,
        -299..=-200 => 1 << 4,
        -399..=-300 => 1 << 3,
        -499..=-400 => 1 << 2,
        _ => 1 << 3,
    };
    if state.errors.len() >= QUEUE_DEPTH {
        if let Some(last) = state.errors.back_mut() {
            *last = fault(-350, "Queue overflow");
        }
    } else {
        state.errors.push_back(fault(code, message));
    }
}

async fn run_connection<S>(
    shared: Arc<Shared>,
    stream: S,
    token: CancellationToken,
    terminator: String,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            if token.is_cancelled() {
                return;
            }
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]);
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            {
                let mut log = lock(&shared.log);
                if log.len() >= COMMAND_LOG_LIMIT {
                    log.pop_front();
                }
                log.push_back(line.to_string());
            }
            if let Some(reply) = shared.handle_line(line) {
                let reply = format!("{reply}{terminator}");
                let written = tokio::select! {
                    biased;
                    _ = token.cancelled() => return,
                    written = writer.write_all(reply.as_bytes()) => written,
                };
                if written.is_err() {
                    return;
                }
            }
        }
        if buf.len() > MAX_LINE {
            buf.clear();
            push_error(&mut lock(&shared.state), -363, "Input buffer overrun");
        }
        let n = tokio::select! {
            biased;
            _ = token.cancelled() => return,
            n = reader.read(&mut chunk) => n,
        };
        match n {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What a recognised header does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    SystemError,
    SystemVersion,
    Lock,
    /// Select the channel by name (`INST CH2`, `INST OUT2`, `CHAN 2`).
    Select,
    /// Select the channel by number (`INST:NSEL 2`).
    SelectNumber,
    Voltage,
    Current,
    CurrentLimitNegative,
    CurrentRange,
    Priority,
    Ovp,
    OvpState,
    OvpTripped,
    ClearOvp,
    Ocp,
    OcpState,
    OcpTripped,
    ClearOcp,
    /// Over-current protection that trips at the current setting (Keysight, R&S fuse).
    OcpAtLimit,
    Output,
    OutputSelect,
    Master,
    ClearProtection,
    MeasureVoltage,
    MeasureCurrent,
    MeasurePower,
    MeasureArray,
    MeasureAll,
    Apply,
    Function,
    Mode,
    WatchdogState,
    WatchdogDelay,
    CellVoltage,
    SourceLimit,
    SinkLimit,
    Fault,
}

impl Action {
    /// Settings change the instrument and are refused before the lock where the model needs it.
    fn is_setting(self) -> bool {
        !matches!(
            self,
            Action::SystemError
                | Action::SystemVersion
                | Action::Lock
                | Action::OvpTripped
                | Action::OcpTripped
                | Action::MeasureVoltage
                | Action::MeasureCurrent
                | Action::MeasurePower
                | Action::MeasureArray
                | Action::MeasureAll
        )
    }

    /// Actions on the whole instrument, not on a channel.
    fn instrument_wide(self) -> bool {
        matches!(
            self,
            Action::SystemError
                | Action::SystemVersion
                | Action::Lock
                | Action::Select
                | Action::SelectNumber
                | Action::Master
                | Action::Priority
                | Action::WatchdogState
                | Action::WatchdogDelay
                | Action::Function
        )
    }

    fn is_measurement(self) -> bool {
        matches!(
            self,
            Action::MeasureVoltage
                | Action::MeasureCurrent
                | Action::MeasurePower
                | Action::MeasureArray
                | Action::MeasureAll
        )
    }
}

/// One mnemonic of a header pattern: `[SOURce]` is optional, short form `SOUR`; `SOURce#`
/// takes the channel as a numeric suffix (`SOUR2`).
#[derive(Debug, Clone)]
struct Node {
    short: String,
    long: String,
    optional: bool,
    channel: bool,
}

/// A header in SCPI notation and what it does.
#[derive(Debug, Clone)]
struct Pattern {
    nodes: Vec<Node>,
    action: Action,
}

impl Pattern {
    /// Build from SCPI notation, e.g. `[SOURce#]:VOLTage[:LEVel]` (upper case = short form).
    fn new(notation: &str, action: Action) -> Self {
        let nodes = notation
            .split(':')
            .filter(|part| !part.is_empty() && *part != "[" && *part != "]")
            .map(|part| {
                // `[:LEVel]` splits into `...[` and `LEVel]`: a node is optional when a `[`
                // opens before its name or a `]` closes right after it.
                let unopened = part.trim_start_matches('[');
                let name_end = unopened.find(['[', ']']).unwrap_or(unopened.len());
                let (name, after) = unopened.split_at(name_end);
                let optional = part.starts_with('[') || after.starts_with(']');
                let channel = name.ends_with('#');
                let name = name.trim_end_matches('#');
                Node {
                    short: name
                        .chars()
                        .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                        .collect(),
                    long: name.to_ascii_uppercase(),
                    optional,
                    channel,
                }
            })
            .collect();
        Pattern { nodes, action }
    }

    /// None: no match; Some(suffix): a match, with the channel suffix if one was given.
    fn matches(&self, mnemonics: &[String]) -> Option<Option<u32>> {
        match_nodes(mnemonics, &self.nodes)
    }
}

fn match_nodes(input: &[String], nodes: &[Node]) -> Option<Option<u32>> {
    let Some((node, rest)) = nodes.split_first() else {
        return input.is_empty().then_some(None);
    };
    if let Some(suffix) = input.first().and_then(|m| mnemonic_matches(m, node)) {
        if let Some(later) = match_nodes(&input[1..], rest) {
            return Some(suffix.or(later));
        }
    }
    if node.optional {
        return match_nodes(input, rest);
    }
    None
}

/// `m` is upper case. On a channel node a numeric suffix is the channel; elsewhere only the
/// suffix 1 (SCPI's default) is accepted. None: no match; Some(suffix) otherwise.
fn mnemonic_matches(m: &str, node: &Node) -> Option<Option<u32>> {
    if m == node.short || m == node.long {
        return Some(None);
    }
    let name = m.trim_end_matches(|c: char| c.is_ascii_digit());
    let suffix = &m[name.len()..];
    if suffix.is_empty() || !(name == node.short || name == node.long) {
        return None;
    }
    if node.channel {
        suffix.parse::<u32>().ok().map(Some)
    } else {
        (suffix == "1").then_some(None)
    }
}

fn measures(prefix: &str) -> Vec<Pattern> {
    vec![
        Pattern::new(
            &format!("{prefix}[:SCALar]:VOLTage[:DC]"),
            Action::MeasureVoltage,
        ),
        Pattern::new(
            &format!("{prefix}[:SCALar]:CURRent[:DC]"),
            Action::MeasureCurrent,
        ),
        Pattern::new(
            &format!("{prefix}[:SCALar]:POWer[:DC]"),
            Action::MeasurePower,
        ),
    ]
}

const VOLTAGE: &str = "[SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]";
const CURRENT: &str = "[SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]";

/// The header tree of the instrument's command set.
fn patterns(dialect: &Dialect, family: Family) -> Vec<Pattern> {
    use Action as A;
    let mut table = vec![
        Pattern::new("SYSTem:ERRor[:NEXT]", A::SystemError),
        Pattern::new("SYSTem:VERSion", A::SystemVersion),
    ];
    let watchdog = [
        Pattern::new("OUTPut:PROTection:WDOG[:STATe]", A::WatchdogState),
        Pattern::new("OUTPut:PROTection:WDOG:DELay", A::WatchdogDelay),
    ];
    match family {
        Family::Standard => {
            table.extend(measures("MEASure"));
            table.push(Pattern::new(CURRENT, A::Current));
            match dialect.role {
                Role::Supply => {
                    table.extend([
                        Pattern::new(VOLTAGE, A::Voltage),
                        Pattern::new("[SOURce]:VOLTage:PROTection[:LEVel]", A::Ovp),
                        Pattern::new("[SOURce]:CURRent:PROTection[:LEVel]", A::Ocp),
                        Pattern::new("OUTPut[:STATe]", A::Output),
                        Pattern::new("OUTPut:PROTection:CLEar", A::ClearProtection),
                    ]);
                    if dialect.commands.measure_all.is_some() {
                        table.push(Pattern::new("MEASure[:SCALar]:ARRay", A::MeasureArray));
                    }
                    if dialect.settings_require_lock {
                        table.push(Pattern::new("SYSTem:LOCK", A::Lock));
                    }
                    if dialect.watchdog.is_some() {
                        table.extend([
                            Pattern::new("SYSTem:COMMunicate:WDOG[:STATe]", A::WatchdogState),
                            Pattern::new("SYSTem:COMMunicate:WDOG:DELay", A::WatchdogDelay),
                        ]);
                    }
                }
                Role::Load | Role::CellSim => {
                    table.extend([
                        Pattern::new("[SOURce]:FUNCtion", A::Function),
                        Pattern::new("[SOURce]:INPut[:STATe]", A::Output),
                    ]);
                }
            }
        }
        Family::KeysightList => {
            table.extend(measures("MEASure"));
            table.extend([
                Pattern::new(VOLTAGE, A::Voltage),
                Pattern::new(CURRENT, A::Current),
                Pattern::new("[SOURce]:VOLTage:PROTection[:LEVel]", A::Ovp),
                Pattern::new("[SOURce]:VOLTage:PROTection:TRIPped", A::OvpTripped),
                Pattern::new("[SOURce]:CURRent:PROTection:STATe", A::OcpAtLimit),
                Pattern::new("[SOURce]:CURRent:PROTection:TRIPped", A::OcpTripped),
                Pattern::new("OUTPut[:STATe]", A::Output),
                Pattern::new("OUTPut:PROTection:CLEar", A::ClearProtection),
                Pattern::new("INSTrument:NSELect", A::SelectNumber),
                Pattern::new("INSTrument[:SELect]", A::Select),
            ]);
            if dialect.watchdog.is_some() {
                table.extend(watchdog);
            }
        }
        Family::KeysightRp => {
            table.extend(measures("MEASure"));
            table.extend([
                Pattern::new(VOLTAGE, A::Voltage),
                Pattern::new(
                    "[SOURce]:CURRent:LIMit[:POSitive][:IMMediate][:AMPLitude]",
                    A::Current,
                ),
                Pattern::new(
                    "[SOURce]:CURRent:LIMit:NEGative[:IMMediate][:AMPLitude]",
                    A::CurrentLimitNegative,
                ),
                Pattern::new("[SOURce]:FUNCtion", A::Priority),
                Pattern::new(
                    "[SOURce]:VOLTage:PROTection:REMote[:POSitive][:LEVel]",
                    A::Ovp,
                ),
                Pattern::new("OUTPut[:STATe]", A::Output),
                Pattern::new("OUTPut:PROTection:CLEar", A::ClearProtection),
            ]);
            table.extend(watchdog);
        }
        Family::RigolDp => {
            table.extend([
                Pattern::new(
                    "[SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
                    A::Voltage,
                ),
                Pattern::new(
                    "[SOURce#]:CURRent[:LEVel][:IMMediate][:AMPLitude]",
                    A::Current,
                ),
                Pattern::new("[SOURce#]:VOLTage:PROTection[:LEVel]", A::Ovp),
                Pattern::new("[SOURce#]:VOLTage:PROTection:STATe", A::OvpState),
                Pattern::new("[SOURce#]:CURRent:PROTection[:LEVel]", A::Ocp),
                Pattern::new("[SOURce#]:CURRent:PROTection:STATe", A::OcpState),
                Pattern::new("OUTPut[:STATe]", A::Output),
                Pattern::new("OUTPut:OVP[:STATe]", A::OvpState),
                Pattern::new("OUTPut:OVP:VALue", A::Ovp),
                Pattern::new("OUTPut:OVP:QUEStion", A::OvpTripped),
                Pattern::new("OUTPut:OVP:CLEar", A::ClearOvp),
                Pattern::new("OUTPut:OCP[:STATe]", A::OcpState),
                Pattern::new("OUTPut:OCP:VALue", A::Ocp),
                Pattern::new("OUTPut:OCP:QUEStion", A::OcpTripped),
                Pattern::new("OUTPut:OCP:CLEar", A::ClearOcp),
                Pattern::new("MEASure[:VOLTage][:DC]", A::MeasureVoltage),
                Pattern::new("MEASure:CURRent[:DC]", A::MeasureCurrent),
                Pattern::new("MEASure:POWEr[:DC]", A::MeasurePower),
                Pattern::new("MEASure:ALL[:DC]", A::MeasureAll),
                Pattern::new("APPLy", A::Apply),
                Pattern::new("INSTrument:NSELect", A::SelectNumber),
                Pattern::new("INSTrument[:SELect]", A::Select),
            ]);
        }
        Family::RsHmp => {
            table.extend(measures("MEASure"));
            table.extend([
                Pattern::new("INSTrument:NSELect", A::SelectNumber),
                Pattern::new("INSTrument[:SELect]", A::Select),
                Pattern::new(VOLTAGE, A::Voltage),
                Pattern::new(CURRENT, A::Current),
                Pattern::new("[SOURce]:VOLTage:PROTection[:LEVel]", A::Ovp),
                Pattern::new("[SOURce]:VOLTage:PROTection:TRIPped", A::OvpTripped),
                Pattern::new("[SOURce]:VOLTage:PROTection:CLEar", A::ClearProtection),
                Pattern::new("OUTPut[:STATe]", A::Output),
                Pattern::new("OUTPut:SELect", A::OutputSelect),
                Pattern::new("OUTPut:GENeral[:STATe]", A::Master),
                Pattern::new("FUSE[:STATe]", A::OcpAtLimit),
                Pattern::new("FUSE:TRIPed", A::OcpTripped),
            ]);
        }
        Family::Siglent => {
            table.extend(measures("MEASure"));
            table.extend([
                Pattern::new("[SOURce]:FUNCtion", A::Function),
                Pattern::new("[SOURce]:CURRent[:LEVel][:IMMediate]", A::Current),
                Pattern::new("[SOURce]:CURRent:IRANGe", A::CurrentRange),
                Pattern::new("[SOURce]:CURRent:PROTection:STATe", A::OcpState),
                Pattern::new("[SOURce]:CURRent:PROTection:LEVel", A::Ocp),
                Pattern::new("[SOURce]:INPut[:STATe]", A::Output),
            ]);
        }
        Family::Chroma => {
            table.extend(measures("MEASure"));
            table.extend(measures("FETCh"));
            table.extend([
                Pattern::new("CHANnel[:LOAD]", A::Select),
                Pattern::new("MODE", A::Mode),
                Pattern::new("CURRent:STATic:L1", A::Current),
                Pattern::new("LOAD[:STATe]", A::Output),
                Pattern::new("LOAD:PROTection:CLEar", A::ClearProtection),
            ]);
        }
        Family::Bloomy => {
            table.extend([
                Pattern::new(
                    "SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
                    A::CellVoltage,
                ),
                Pattern::new("SOURce#:CURRent:SRC", A::SourceLimit),
                Pattern::new("SOURce#:CURRent:SNK", A::SinkLimit),
                Pattern::new("OUTPut#[:STATe]", A::Output),
                Pattern::new("OUTPut#:FAULt", A::Fault),
                Pattern::new("MEASure#:VOLTage[:DC]", A::MeasureVoltage),
                Pattern::new("MEASure#:CURRent[:DC]", A::MeasureCurrent),
            ]);
        }
    }
    table
}

/// One command of a line: header mnemonics (upper case), query flag, parameters.
#[derive(Debug, PartialEq)]
struct Command {
    common: bool,
    mnemonics: Vec<String>,
    query: bool,
    params: Vec<String>,
}

/// Split a line at `;` and apply SCPI's header-path rule: a command not starting with `:`
/// or `*` continues from the path of the previous one.
fn parse_line(line: &str) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut path: Vec<String> = Vec::new();
    for unit in split_outside_quotes(line, ';') {
        let unit = unit.trim();
        if unit.is_empty() {
            continue;
        }
        let (header, params) = match unit.find(char::is_whitespace) {
            Some(at) => (&unit[..at], unit[at..].trim()),
            None => (unit, ""),
        };
        let params: Vec<String> = if params.is_empty() {
            Vec::new()
        } else {
            split_outside_quotes(params, ',')
                .into_iter()
                .map(|p| p.trim().to_string())
                .collect()
        };
        let (header, query) = match header.strip_suffix('?') {
            Some(h) => (h, true),
            None => (header, false),
        };
        if header.starts_with('*') {
            commands.push(Command {
                common: true,
                mnemonics: vec![header.to_ascii_uppercase()],
                query,
                params,
            });
            continue;
        }
        let absolute = header.starts_with(':');
        let own: Vec<String> = header
            .trim_start_matches(':')
            .split(':')
            .map(str::to_ascii_uppercase)
            .collect();
        let mut mnemonics = if absolute { Vec::new() } else { path.clone() };
        mnemonics.extend(own);
        path = mnemonics[..mnemonics.len().saturating_sub(1)].to_vec();
        commands.push(Command {
            common: false,
            mnemonics,
            query,
            params,
        });
    }
    commands
}

/// Split at `separator` outside quotes and parentheses (a channel list `(@1,2)` is one part).
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '(' => depth += 1,
            None if c == ')' => depth = depth.saturating_sub(1),
            None if c == separator && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            None => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A channel list `(@1,3)` or `(@1:3)`; None when `text` is not a channel list.
fn channel_list(text: &str) -> Option<Result<Vec<u32>, ScpiFault>> {
    let inner = text.trim().strip_prefix("(@")?.strip_suffix(')')?;
    let bad = || fault(-222, "Data out of range;channel list");
    let mut channels = Vec::new();
    for part in inner.split(',') {
        let part = part.trim();
        let parsed = match part.split_once(':') {
            Some((from, to)) => match (from.trim().parse::<u32>(), to.trim().parse::<u32>()) {
                (Ok(from), Ok(to)) if from <= to && to - from < 64 => {
                    channels.extend(from..=to);
                    Ok(())
                }
                _ => Err(bad()),
            },
            None => part
                .parse::<u32>()
                .map(|n| channels.push(n))
                .map_err(|_| bad()),
        };
        if let Err(e) = parsed {
            return Some(Err(e));
        }
    }
    Some(Ok(channels))
}

/// A channel word: `CH2`, `OUT2`, `OUTP2`, `OUTPUT2`, or a bare number.
fn channel_word(text: &str) -> Option<u32> {
    let upper = text.trim().to_ascii_uppercase();
    let digits = ["OUTPUT", "OUTP", "OUT", "CH"]
        .iter()
        .find_map(|prefix| upper.strip_prefix(prefix))
        .unwrap_or(&upper);
    digits.parse::<u32>().ok()
}

/// Borrowed view of one channel: the supply/load state (the plant's for the plant channel)
/// and its protection settings.
struct Ch<'a> {
    sup: &'a mut SupplyState,
    load: &'a mut LoadState,
    x: &'a mut Extra,
}

fn channel<'a>(
    channels: &'a mut BTreeMap<u32, ChannelState>,
    plant: &'a mut PlantState,
    ch: u32,
    plant_ch: u32,
) -> Ch<'a> {
    let ChannelState {
        supply, load, x, ..
    } = channels.entry(ch).or_default();
    if ch == plant_ch {
        Ch {
            sup: &mut plant.supply,
            load: &mut plant.load,
            x,
        }
    } else {
        Ch {
            sup: supply,
            load,
            x,
        }
    }
}

impl Shared {
    /// Execute one received line; the reply to send, if any query produced one.
    fn handle_line(&self, line: &str) -> Option<String> {
        let mut replies = Vec::new();
        let mut state = lock(&self.state);
        state.last_io = Instant::now();
        let commands = parse_line(line);
        // Identity, status and error-queue queries leave the plant alone, so they do not
        // wait for it (nor run its observers).
        let mut plant = if commands.iter().all(|c| self.plant_free(c)) {
            None
        } else {
            Some(self.plant.lock())
        };
        for command in commands {
            let result = match plant.as_deref_mut() {
                Some(plant) => {
                    let result = if command.common {
                        self.common(&mut state, Some(&mut *plant), &command)
                    } else {
                        self.execute(&mut state, plant, &command)
                    };
                    self.sync(&mut state, plant);
                    self.check_protection(&mut state, plant);
                    result
                }
                None if command.common => self.common(&mut state, None, &command),
                None => self.instrument_action(&mut state, Action::SystemError, true, &[]),
            };
            match result {
                Ok(Some(reply)) => replies.push(reply),
                Ok(None) => {}
                Err((code, message)) => {
                    push_error(&mut state, code, &message);
                    // A command error abandons the rest of the line.
                    if (-199..=-100).contains(&code) {
                        break;
                    }
                }
            }
        }
        (!replies.is_empty()).then(|| replies.join(";"))
    }

    /// Common commands other than `*RST`, and the error-queue query.
    fn plant_free(&self, c: &Command) -> bool {
        if c.common {
            return c.mnemonics[0] != "*RST";
        }
        c.query
            && c.params.is_empty()
            && self
                .patterns
                .iter()
                .find_map(|p| p.matches(&c.mnemonics).map(|_| p.action))
                == Some(Action::SystemError)
    }

    fn common(
        &self,
        state: &mut InstrumentState,
        plant: Option<&mut PlantState>,
        c: &Command,
    ) -> Result<Option<String>, ScpiFault> {
        let d = &self.dialect;
        match (c.mnemonics[0].as_str(), c.query) {
            ("*IDN", true) => Ok(Some(format!(
                "{},{},{},hilrig-sim-{}",
                d.maker.first().map(String::as_str).unwrap_or(""),
                d.model.first().map(String::as_str).unwrap_or(""),
                lock(&self.serial),
                env!("CARGO_PKG_VERSION")
            ))),
            ("*CLS", false) => {
                state.errors.clear();
                state.esr = 0;
                Ok(None)
            }
            ("*RST", false) => {
                let Some(plant) = plant else {
                    return Err(fault(-300, "Device-specific error;plant unavailable"));
                };
                match d.role {
                    Role::Supply => plant.supply = Default::default(),
                    Role::Load => plant.load = Default::default(),
                    Role::CellSim => {
                        for (&ch, _) in state.channels.iter().filter(|(_, c)| c.cell.output) {
                            plant.set_cell_override(ch as usize - 1, None);
                        }
                    }
                }
                state.channels.clear();
                state.master = false;
                state.selected = self.plant_channel();
                state.watchdog_on = false;
                Ok(None)
            }
            ("*OPC", true) => Ok(Some("1".into())),
            ("*OPC" | "*WAI", false) => Ok(None),
            ("*TST", true) => Ok(Some("0".into())),
            ("*ESR", true) => Ok(Some(std::mem::take(&mut state.esr).to_string())),
            ("*STB", true) => {
                let queue = if state.errors.is_empty() { 0 } else { 1 << 2 };
                let esb = if state.esr != 0 { 1 << 5 } else { 0 };
                Ok(Some((queue | esb).to_string()))
            }
            _ => Err(fault(-113, "Undefined header")),
        }
    }

    /// The channels a command addresses: a header suffix, a channel list, a `CHn`
    /// argument (removed from `params`), or else the selected channel.
    fn channels_of(
        &self,
        state: &InstrumentState,
        suffix: Option<u32>,
        params: &mut Vec<String>,
    ) -> Result<Vec<u32>, ScpiFault> {
        let exists = |ch: u32| self.dialect.channel_ranges(ch).is_some();
        if let Some(ch) = suffix {
            return if exists(ch) {
                Ok(vec![ch])
            } else {
                Err(fault(-114, "Header suffix out of range"))
            };
        }
        if self.family.channel_lists() {
            if let Some(list) = params.last().and_then(|p| channel_list(p)) {
                let list = list?;
                if list.is_empty() || !list.iter().all(|&ch| exists(ch)) {
                    return Err(fault(-222, "Data out of range;channel list"));
                }
                params.pop();
                return Ok(list);
            }
        }
        if self.family.channel_arguments() {
            if let Some(first) = params.first() {
                if first.to_ascii_uppercase().starts_with("CH") {
                    let ch = channel_word(first)
                        .filter(|&ch| exists(ch))
                        .ok_or_else(|| fault(-224, "Illegal parameter value;channel"))?;
                    params.remove(0);
                    return Ok(vec![ch]);
                }
            }
        }
        Ok(vec![state.selected])
    }

    fn execute(
        &self,
        state: &mut InstrumentState,
        plant: &mut PlantState,
        c: &Command,
    ) -> Result<Option<String>, ScpiFault> {
        let Some((action, suffix)) = self
            .patterns
            .iter()
            .find_map(|p| p.matches(&c.mnemonics).map(|suffix| (p.action, suffix)))
        else {
            return Err(fault(-113, "Undefined header"));
        };
        let mut params = c.params.clone();
        let channels = if action.instrument_wide() {
            Vec::new()
        } else {
            self.channels_of(state, suffix, &mut params)?
        };
        if c.query && !params.is_empty() {
            return Err(fault(-108, "Parameter not allowed"));
        }
        if !c.query && action.is_setting() && self.dialect.settings_require_lock && !state.locked {
            // [L] EA's exact code and text for a setting without remote lock are not
            // confirmed; -203 is the standard SCPI "command protected".
            return Err(fault(
                -203,
                "Command protected;remote lock required (SYST:LOCK 1)",
            ));
        }
        if action.instrument_wide() {
            return self.instrument_action(state, action, c.query, &params);
        }
        let mut replies = Vec::new();
        for ch in channels {
            let reply = if action.is_measurement() {
                if !c.query {
                    return Err(fault(-113, "Undefined header"));
                }
                Some(self.measure_action(state, plant, action, ch))
            } else if self.dialect.role == Role::CellSim {
                self.cell_action(state, action, c.query, &params, ch)?
            } else {
                self.channel_action(state, plant, action, c.query, &params, ch)?
            };
            replies.extend(reply);
        }
        Ok((!replies.is_empty()).then(|| replies.join(",")))
    }

    fn instrument_action(
        &self,
        state: &mut InstrumentState,
        action: Action,
        query: bool,
        params: &[String],
    ) -> Result<Option<String>, ScpiFault> {
        let exists = |ch: u32| self.dialect.channel_ranges(ch).is_some();
        match (action, query) {
            (Action::SystemError, true) => Ok(Some(match state.errors.pop_front() {
                Some((code, message)) => format!("{code},\"{}\"", message.replace('"', "\"\"")),
                None => match self.dialect.replies.number {
                    NumberFormat::Nr3Signed => "+0,\"No error\"".into(),
                    _ => "0,\"No error\"".into(),
                },
            })),
            (Action::SystemVersion, true) => Ok(Some("1999.0".into())),
            (Action::Lock, false) => {
                state.locked = boolean(params)?;
                Ok(None)
            }
            (Action::Lock, true) => Ok(Some(self.format_bool(state.locked))),
            (Action::Select, false) => {
                let ch = channel_word(single(params)?)
                    .ok_or_else(|| fault(-224, "Illegal parameter value"))?;
                if !exists(ch) {
                    return Err(fault(-222, "Data out of range;no such channel"));
                }
                state.selected = ch;
                Ok(None)
            }
            (Action::Select, true) => Ok(Some(match self.family {
                Family::RsHmp => format!("OUTP{}", state.selected),
                Family::RigolDp | Family::KeysightList => format!("CH{}", state.selected),
                _ => state.selected.to_string(),
            })),
            (Action::SelectNumber, false) => {
                let n = numeric(params, f64::from(u32::MAX), "")?;
                let ch = n as u32;
                if f64::from(ch) != n || !exists(ch) {
                    return Err(fault(-222, "Data out of range;no such channel"));
                }
                state.selected = ch;
                Ok(None)
            }
            (Action::SelectNumber, true) => Ok(Some(state.selected.to_string())),
            (Action::Master, false) => {
                state.master = boolean(params)?;
                Ok(None)
            }
            (Action::Master, true) => Ok(Some(self.format_bool(state.master))),
            (Action::Priority, false) => match single(params)?.to_ascii_uppercase().as_str() {
                "VOLT" | "VOLTAGE" => Ok(None),
                "CURR" | "CURRENT" => Err(fault(
                    -221,
                    "Settings conflict;only voltage priority is simulated",
                )),
                _ => Err(fault(-224, "Illegal parameter value")),
            },
            (Action::Priority, true) => Ok(Some("VOLT".into())),
            (Action::WatchdogState, false) => {
                state.watchdog_on = boolean(params)?;
                state.last_io = Instant::now();
                Ok(None)
            }
            (Action::WatchdogState, true) => Ok(Some(self.format_bool(state.watchdog_on))),
            (Action::WatchdogDelay, false) => {
                let seconds = numeric(params, 3600.0, "s")?;
                if seconds < 1.0 {
                    return Err(fault(-222, "Data out of range"));
                }
                state.watchdog_delay = Duration::from_secs_f64(seconds.round());
                Ok(None)
            }
            (Action::WatchdogDelay, true) => Ok(Some(
                self.format_number(state.watchdog_delay.as_secs_f64(), "s"),
            )),
            (Action::Function, false) => {
                let mode = single(params)?.to_ascii_uppercase();
                match mode.as_str() {
                    "CURR" | "CURRENT" => Ok(None),
                    "VOLT" | "VOLTAGE" | "RES" | "RESISTANCE" | "POW" | "POWER" => Err(fault(
                        -221,
                        "Settings conflict;only constant-current mode is simulated",
                    )),
                    _ => Err(fault(-224, "Illegal parameter value")),
                }
            }
            (Action::Function, true) => Ok(Some(match self.family {
                Family::Siglent => "CURRENT".into(),
                _ => "CC".into(),
            })),
            _ => Err(fault(-113, "Undefined header")),
        }
    }

    /// The highest current setting on `ch` in its present range or mode.
    fn current_range(&self, x: &Extra, ch: u32) -> f64 {
        let max = self
            .dialect
            .channel_ranges(ch)
            .map(|r| r.max_current)
            .unwrap_or(self.dialect.ranges.max_current);
        match self.family {
            Family::Chroma if x.mode.as_deref() == Some("CCL") => max * CHROMA_LOW_RANGE,
            Family::Siglent => x.range.unwrap_or(max).min(max),
            _ => max,
        }
    }

    fn channel_action(
        &self,
        state: &mut InstrumentState,
        plant: &mut PlantState,
        action: Action,
        query: bool,
        params: &[String],
        ch: u32,
    ) -> Result<Option<String>, ScpiFault> {
        let ranges = self
            .dialect
            .channel_ranges(ch)
            .ok_or_else(|| fault(-222, "Data out of range;no such channel"))?;
        let (max_v, max_i) = (ranges.max_voltage, ranges.max_current);
        let supply = self.dialect.role == Role::Supply;
        let plant_ch = self.plant_channel();
        let master = &mut state.master;
        let Ch { sup, load, x } = channel(&mut state.channels, plant, ch, plant_ch);
        match (action, query) {
            (Action::Voltage, false) if supply => {
                sup.voltage_set = numeric(params, max_v, "V")?;
                Ok(None)
            }
            (Action::Voltage, true) if supply => Ok(Some(self.format_number(sup.voltage_set, "V"))),
            (Action::Current, false) => {
                let range = self.current_range(x, ch);
                let value = numeric(params, range, "A")?;
                if supply {
                    sup.current_set = value;
                } else {
                    load.current_set = value;
                }
                Ok(None)
            }
            (Action::Current, true) => Ok(Some(self.format_number(
                if supply {
                    sup.current_set
                } else {
                    load.current_set
                },
                "A",
            ))),
            (Action::CurrentLimitNegative, false) => {
                x.negative_limit = numeric_between(params, -max_i, 0.0, "A")?;
                Ok(None)
            }
            (Action::CurrentLimitNegative, true) => {
                Ok(Some(self.format_number(x.negative_limit, "A")))
            }
            (Action::CurrentRange, false) => {
                let value = numeric(params, max_i, "A")?;
                let range = SIGLENT_RANGES
                    .iter()
                    .copied()
                    .find(|&r| (r - value).abs() < 1e-9)
                    .ok_or_else(|| fault(-224, "Illegal parameter value;range is 5 or 30"))?;
                x.range = Some(range);
                load.current_set = load.current_set.min(range);
                Ok(None)
            }
            (Action::CurrentRange, true) => {
                Ok(Some(self.format_number(self.current_range(x, ch), "A")))
            }
            (Action::Ovp, false) => {
                x.ovp_level = Some(numeric(params, max_v * PROTECTION_HEADROOM, "V")?);
                if !self.family.protection_states() {
                    x.ovp_on = true;
                }
                Ok(None)
            }
            (Action::Ovp, true) => Ok(Some(
                self.format_number(x.ovp_level.unwrap_or(max_v * PROTECTION_HEADROOM), "V"),
            )),
            (Action::OvpState, false) => {
                x.ovp_on = boolean(params)?;
                Ok(None)
            }
            (Action::OvpState, true) => Ok(Some(self.format_bool(x.ovp_on))),
            (Action::Ocp, false) => {
                x.ocp_level = Some(numeric(params, max_i * PROTECTION_HEADROOM, "A")?);
                if !self.family.protection_states() {
                    x.ocp_on = true;
                }
                Ok(None)
            }
            (Action::Ocp, true) => Ok(Some(
                self.format_number(x.ocp_level.unwrap_or(max_i * PROTECTION_HEADROOM), "A"),
            )),
            (Action::OcpState, false) => {
                x.ocp_on = boolean(params)?;
                Ok(None)
            }
            (Action::OcpState, true) => Ok(Some(self.format_bool(x.ocp_on))),
            (Action::OcpAtLimit, false) => {
                x.ocp_at_limit = boolean(params)?;
                Ok(None)
            }
            (Action::OcpAtLimit, true) => Ok(Some(self.format_bool(x.ocp_at_limit))),
            (Action::OvpTripped, true) => {
                Ok(Some(self.format_trip(x.trip == Some(Trip::OverVoltage))))
            }
            (Action::OcpTripped, true) => {
                Ok(Some(self.format_trip(x.trip == Some(Trip::OverCurrent))))
            }
            (Action::ClearOvp | Action::ClearOcp | Action::ClearProtection, false) => {
                no_params(params)?;
                let clears = match action {
                    Action::ClearOvp => x.trip == Some(Trip::OverVoltage),
                    Action::ClearOcp => x.trip == Some(Trip::OverCurrent),
                    _ => true,
                };
                if clears {
                    x.trip = None;
                    if supply {
                        sup.protection_tripped = false;
                    }
                }
                Ok(None)
            }
            (Action::Output, false) => {
                let on = boolean(params)?;
                if supply {
                    if on && (sup.protection_tripped || x.trip.is_some()) {
                        return Err(fault(
                            -221,
                            "Settings conflict;protection tripped, clear it first",
                        ));
                    }
                    if self.family == Family::RsHmp {
                        // `OUTP ON` selects the channel and switches the master output on.
                        x.selected = on;
                        if on {
                            *master = true;
                        }
                    } else {
                        sup.output = on;
                    }
                } else {
                    if on && x.trip.is_some() {
                        if self.family == Family::Siglent {
                            // [L] Siglent: switching the input on again resets a trip.
                            x.trip = None;
                        } else {
                            return Err(fault(
                                -221,
                                "Settings conflict;protection tripped, clear it first",
                            ));
                        }
                    }
                    load.input = on;
                }
                Ok(None)
            }
            (Action::Output, true) => Ok(Some(self.format_bool(if !supply {
                load.input
            } else if self.family == Family::RsHmp {
                x.selected && *master
            } else {
                sup.output
            }))),
            (Action::OutputSelect, false) => {
                let on = boolean(params)?;
                if on && (sup.protection_tripped || x.trip.is_some()) {
                    return Err(fault(
                        -221,
                        "Settings conflict;protection tripped, clear it first",
                    ));
                }
                x.selected = on;
                Ok(None)
            }
            (Action::OutputSelect, true) => Ok(Some(self.format_bool(x.selected))),
            (Action::Apply, false) if supply => {
                let (v, i) = match params {
                    [v] => (v, None),
                    [v, i] => (v, Some(i)),
                    [] => return Err(fault(-109, "Missing parameter")),
                    _ => return Err(fault(-108, "Parameter not allowed")),
                };
                let volts = numeric(std::slice::from_ref(v), max_v, "V")?;
                let amps = match i {
                    Some(i) => Some(numeric(std::slice::from_ref(i), max_i, "A")?),
                    None => None,
                };
                sup.voltage_set = volts;
                if let Some(amps) = amps {
                    sup.current_set = amps;
                }
                Ok(None)
            }
            (Action::Mode, false) => {
                let mode = single(params)?.to_ascii_uppercase();
                match mode.as_str() {
                    "CCL" | "CCH" => {
                        x.mode = Some(mode);
                        let range = self.current_range(x, ch);
                        load.current_set = load.current_set.min(range);
                        Ok(None)
                    }
                    "CCDL" | "CCDH" | "CRL" | "CRH" | "CVL" | "CVH" | "CPL" | "CPH" => Err(fault(
                        -221,
                        "Settings conflict;only CCL and CCH are simulated",
                    )),
                    _ => Err(fault(-224, "Illegal parameter value")),
                }
            }
            (Action::Mode, true) => Ok(Some(x.mode.clone().unwrap_or_else(|| "CCH".into()))),
            _ => Err(fault(-113, "Undefined header")),
        }
    }

    fn cell_action(
        &self,
        state: &mut InstrumentState,
        action: Action,
        query: bool,
        params: &[String],
        ch: u32,
    ) -> Result<Option<String>, ScpiFault> {
        let ranges = self
            .dialect
            .channel_ranges(ch)
            .ok_or_else(|| fault(-114, "Header suffix out of range"))?;
        let cell = &mut state.channels.entry(ch).or_default().cell;
        match (action, query) {
            (Action::CellVoltage, false) => {
                cell.voltage = numeric(params, ranges.max_voltage, "V")?;
                Ok(None)
            }
            (Action::CellVoltage, true) => Ok(Some(self.format_number(cell.voltage, "V"))),
            (Action::SourceLimit, false) => {
                cell.source_limit = numeric(params, ranges.max_current, "A")?;
                Ok(None)
            }
            (Action::SourceLimit, true) => Ok(Some(self.format_number(cell.source_limit, "A"))),
            (Action::SinkLimit, false) => {
                cell.sink_limit = numeric(params, ranges.max_current, "A")?;
                Ok(None)
            }
            (Action::SinkLimit, true) => Ok(Some(self.format_number(cell.sink_limit, "A"))),
            (Action::Output, false) => {
                cell.output = boolean(params)?;
                Ok(None)
            }
            (Action::Output, true) => Ok(Some(self.format_bool(cell.output))),
            (Action::Fault, false) => {
                cell.fault = match single(params)?.to_ascii_uppercase().as_str() {
                    "NONE" => CellFault::None,
                    "OPEN" => CellFault::Open,
                    "SHORT" => CellFault::Short,
                    "POL" | "POLARITY" => CellFault::Polarity,
                    _ => return Err(fault(-224, "Illegal parameter value")),
                };
                Ok(None)
            }
            (Action::Fault, true) => Ok(Some(cell.fault.name().into())),
            _ => Err(fault(-113, "Undefined header")),
        }
    }

    /// The voltage a cell channel applies (None: its output is off).
    fn cell_applied(cell: &CellState) -> Option<f64> {
        cell.output.then_some(match cell.fault {
            CellFault::None => cell.voltage,
            CellFault::Open | CellFault::Short => 0.0,
            CellFault::Polarity => -cell.voltage,
        })
    }

    fn measure_action(
        &self,
        state: &InstrumentState,
        plant: &PlantState,
        action: Action,
        ch: u32,
    ) -> String {
        let (v, i) = self.reading(state, plant, ch);
        match action {
            Action::MeasureVoltage => self.format_number(v, "V"),
            Action::MeasureCurrent => self.format_number(i, "A"),
            Action::MeasurePower => self.format_number(v * i, "W"),
            Action::MeasureAll => format!(
                "{},{},{}",
                self.format_number(v, "V"),
                self.format_number(i, "A"),
                self.format_number(v * i, "W")
            ),
            _ => format!(
                "{}, {}, {}",
                self.format_number(v, "V"),
                self.format_number(i, "A"),
                self.format_number(v * i, "W")
            ),
        }
    }

    /// Terminal voltage and current of a channel.
    fn reading(&self, state: &InstrumentState, plant: &PlantState, ch: u32) -> (f64, f64) {
        let local = state.channels.get(&ch);
        match self.dialect.role {
            Role::CellSim => {
                let Some(cell) = local.map(|c| &c.cell) else {
                    return (0.0, 0.0);
                };
                match Self::cell_applied(cell) {
                    None => (0.0, 0.0),
                    Some(applied) => {
                        let k = ch as usize - 1;
                        let in_pack = plant.cell_voltage(k).is_some();
                        let current = if in_pack && cell.fault == CellFault::None {
                            // Positive when the cell sources (the pack discharging).
                            -plant.pack_current()
                        } else {
                            0.0
                        };
                        (applied, current)
                    }
                }
            }
            _ if ch == self.plant_channel() => match self.dialect.role {
                Role::Supply => (plant.supply_voltage(), plant.supply_current()),
                _ => (plant.load_voltage(), plant.load_current()),
            },
            Role::Supply => match local {
                Some(c) if c.supply.output => (c.supply.voltage_set, 0.0),
                _ => (0.0, 0.0),
            },
            Role::Load => (0.0, 0.0),
        }
    }

    /// Carry channel settings to the plant: effective protection levels, R&S outputs, cells.
    fn sync(&self, state: &mut InstrumentState, plant: &mut PlantState) {
        let plant_ch = self.plant_channel();
        match self.dialect.role {
            Role::Supply => {
                let master = state.master;
                for ch in self.dialect.channel_numbers() {
                    let Some(ranges) = self.dialect.channel_ranges(ch) else {
                        continue;
                    };
                    let Ch { sup, x, .. } = channel(&mut state.channels, plant, ch, plant_ch);
                    sup.ovp = x.ovp_on.then(|| {
                        x.ovp_level
                            .unwrap_or(ranges.max_voltage * PROTECTION_HEADROOM)
                    });
                    sup.ocp = x.ocp_on.then(|| {
                        x.ocp_level
                            .unwrap_or(ranges.max_current * PROTECTION_HEADROOM)
                    });
                    if self.family == Family::RsHmp {
                        sup.output = x.selected && master && !sup.protection_tripped;
                    }
                }
            }
            Role::Load => {}
            Role::CellSim => {
                for (&ch, c) in &state.channels {
                    if ch >= 1 {
                        plant.set_cell_override(ch as usize - 1, Self::cell_applied(&c.cell));
                    }
                }
            }
        }
    }

    /// Switch a supply output off and latch the trip when its set voltage exceeds OVP, its
    /// current exceeds OCP, or (at-limit OCP) it runs at its current setting; switch a load
    /// input off when its current exceeds its OCP.
    fn check_protection(&self, state: &mut InstrumentState, plant: &mut PlantState) {
        let plant_ch = self.plant_channel();
        let plant_current = match self.dialect.role {
            Role::Supply => plant.supply_current(),
            _ => plant.load_current(),
        };
        for ch in self.dialect.channel_numbers() {
            // Channels other than the plant's are open circuits.
            let current = if ch == plant_ch { plant_current } else { 0.0 };
            match self.dialect.role {
                Role::Supply => {
                    let Ch { sup, x, .. } = channel(&mut state.channels, plant, ch, plant_ch);
                    if !sup.output || sup.protection_tripped {
                        continue;
                    }
                    let over_v = sup.ovp.is_some_and(|ovp| sup.voltage_set > ovp);
                    let over_i = sup.ocp.is_some_and(|ocp| current > ocp)
                        || (x.ocp_at_limit
                            && sup.current_set > 0.0
                            && current >= sup.current_set * (1.0 - 1e-9));
                    if over_v || over_i {
                        tracing::info!(dialect = %self.dialect.id, ch, over_v, over_i, "simulated supply: protection tripped");
                        sup.output = false;
                        sup.protection_tripped = true;
                        x.selected = false;
                        x.trip = Some(if over_v {
                            Trip::OverVoltage
                        } else {
                            Trip::OverCurrent
                        });
                    }
                }
                Role::Load => {
                    let Ch { load, x, .. } = channel(&mut state.channels, plant, ch, plant_ch);
                    let level = x.ocp_on.then_some(x.ocp_level).flatten();
                    if load.input && level.is_some_and(|l| load.current_set > l) {
                        tracing::info!(dialect = %self.dialect.id, ch, "simulated load: over-current protection tripped");
                        load.input = false;
                        x.trip = Some(Trip::OverCurrent);
                    }
                }
                Role::CellSim => {}
            }
        }
    }

    /// The I/O watchdog expired: every supply output off, latched until cleared.
    fn watchdog_trip(&self, state: &mut InstrumentState, plant: &mut PlantState) {
        if self.dialect.role != Role::Supply {
            return;
        }
        let plant_ch = self.plant_channel();
        for ch in self.dialect.channel_numbers() {
            let Ch { sup, x, .. } = channel(&mut state.channels, plant, ch, plant_ch);
            if sup.output {
                tracing::info!(dialect = %self.dialect.id, ch, "simulated supply: I/O watchdog expired");
                sup.output = false;
                sup.protection_tripped = true;
                x.selected = false;
                x.trip = Some(Trip::Watchdog);
            }
        }
    }

    fn format_bool(&self, value: bool) -> String {
        match (self.dialect.replies.boolean, value) {
            (BoolFormat::OnOff, true) => "ON".into(),
            (BoolFormat::OnOff, false) => "OFF".into(),
            (BoolFormat::OneZero, true) => "1".into(),
            (BoolFormat::OneZero, false) => "0".into(),
        }
    }

    /// A trip query's answer: Rigol says YES/NO, the others answer like any boolean.
    fn format_trip(&self, tripped: bool) -> String {
        match (self.family, tripped) {
            (Family::RigolDp, true) => "YES".into(),
            (Family::RigolDp, false) => "NO".into(),
            _ => self.format_bool(tripped),
        }
    }

    fn format_number(&self, value: f64, unit: &str) -> String {
        let decimals = self.dialect.replies.decimals.map(usize::from);
        match self.dialect.replies.number {
            NumberFormat::Nr3 => format_nr3(value),
            NumberFormat::Nr3Signed if value >= 0.0 => format!("+{}", format_nr3(value)),
            NumberFormat::Nr3Signed => format_nr3(value),
            NumberFormat::Nr2 => format!("{value:.*}", decimals.unwrap_or(3)),
            NumberFormat::WithUnits if unit == "W" => {
                format!("{value:.*} {unit}", decimals.unwrap_or(2).saturating_sub(1))
            }
            NumberFormat::WithUnits => format!("{value:.*} {unit}", decimals.unwrap_or(2)),
        }
    }
}

fn single(params: &[String]) -> Result<&str, ScpiFault> {
    match params {
        [] => Err(fault(-109, "Missing parameter")),
        [one] => Ok(one),
        _ => Err(fault(-108, "Parameter not allowed")),
    }
}

fn no_params(params: &[String]) -> Result<(), ScpiFault> {
    if params.is_empty() {
        Ok(())
    } else {
        Err(fault(-108, "Parameter not allowed"))
    }
}

fn boolean(params: &[String]) -> Result<bool, ScpiFault> {
    match single(params)?.to_ascii_uppercase().as_str() {
        "ON" | "1" => Ok(true),
        "OFF" | "0" => Ok(false),
        _ => Err(fault(-224, "Illegal parameter value")),
    }
}

/// A numeric parameter in `0..=max` (`MIN`/`MAX`/`DEF` allowed, unit suffix optional).
fn numeric(params: &[String], max: f64, unit: &str) -> Result<f64, ScpiFault> {
    numeric_between(params, 0.0, max, unit)
}

/// A numeric parameter in `min..=max` (`MIN`/`MAX`/`DEF` allowed, unit suffix optional).
fn numeric_between(params: &[String], min: f64, max: f64, unit: &str) -> Result<f64, ScpiFault> {
    let text = single(params)?;
    let value = match text.to_ascii_uppercase().as_str() {
        "MIN" | "MINIMUM" => min,
        "DEF" | "DEFAULT" => 0.0_f64.clamp(min, max),
        "MAX" | "MAXIMUM" => max,
        _ => {
            let expected = (!unit.is_empty()).then_some(unit);
            parse_quantity(text, expected)
                .map_err(|_| fault(-104, "Data type error"))?
                .value
        }
    };
    // A little slack so that a range limit written with rounding is still accepted.
    let slack = 1e-9 * max.abs().max(min.abs()).max(1.0);
    if value < min - slack || value > max + slack {
        return Err(fault(-222, "Data out of range"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scpi::builtin_dialects;
    use rstest::rstest;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[rstest]
    #[case("VOLT 5", &["VOLT"], false, &["5"])]
    #[case("SOURce:VOLTage:LEVel 5 V", &["SOURCE", "VOLTAGE", "LEVEL"], false, &["5 V"])]
    #[case("meas:volt?", &["MEAS", "VOLT"], true, &[])]
    #[case(":SOUR:INP:STAT ON", &["SOUR", "INP", "STAT"], false, &["ON"])]
    fn parses_single_commands(
        #[case] line: &str,
        #[case] mnemonics: &[&str],
        #[case] query: bool,
        #[case] params: &[&str],
    ) {
        let commands = parse_line(line);
        assert_eq!(
            commands,
            vec![Command {
                common: false,
                mnemonics: names(mnemonics),
                query,
                params: names(params)
            }]
        );
    }

    #[test]
    fn header_path_carries_across_semicolons() {
        let commands = parse_line("SOUR:VOLT 5;CURR 1;:OUTP ON;*OPC?;STAT?");
        let headers: Vec<Vec<String>> = commands.iter().map(|c| c.mnemonics.clone()).collect();
        assert_eq!(
            headers,
            vec![
                names(&["SOUR", "VOLT"]),
                names(&["SOUR", "CURR"]),
                names(&["OUTP"]),
                names(&["*OPC"]),
                names(&["STAT"]),
            ]
        );
    }

    #[rstest]
    #[case("VOLT", true)]
    #[case("VOLTAGE", true)]
    #[case("SOUR:VOLT", true)]
    #[case("SOURCE:VOLTAGE:LEVEL:IMMEDIATE:AMPLITUDE", true)]
    #[case("SOUR1:VOLT", true)]
    #[case("SOUR2:VOLT", false)]
    #[case("VOLTA", false)]
    #[case("VOLT:PROT", false)]
    #[case("LEV", false)]
    fn matches_short_long_and_optional_nodes(#[case] header: &str, #[case] expected: bool) {
        let pattern = Pattern::new(
            "[SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            Action::Voltage,
        );
        let mnemonics: Vec<String> = header.split(':').map(str::to_string).collect();
        assert_eq!(pattern.matches(&mnemonics).is_some(), expected, "{header}");
    }

    fn shared(dialect: &Dialect) -> Shared {
        Shared::new(
            dialect.clone(),
            Plant::new(16, 3.3, 4, 25.0),
            "SIM".into(),
            CancellationToken::new(),
        )
    }

    /// Every command a shipped dialect sends, on every channel it declares, is one the
    /// simulated instrument understands.
    #[test]
    fn every_dialect_command_is_understood() {
        for dialect in builtin_dialects() {
            let shared = shared(&dialect);
            let mut commands: Vec<String> = dialect.on_connect.clone();
            commands.push(dialect.error_query.clone());
            if let Some(w) = &dialect.watchdog {
                commands.extend(w.arm.iter().map(|c| crate::scpi::render(c, Some(5.0), 1)));
                commands.extend(w.disarm.iter().cloned());
            }
            for ch in dialect.channel_numbers() {
                for (_, template) in dialect.templates() {
                    let mut values = vec![Some(1.0)];
                    values.extend(template.ranges.iter().map(|r| Some(r.up_to)));
                    for value in values {
                        commands.extend(template.render(value, ch));
                    }
                }
            }
            for command in commands {
                shared.handle_line(&command);
                let errors = &lock(&shared.state).errors;
                assert!(
                    errors.is_empty(),
                    "{}: `{command}` gave {errors:?}",
                    dialect.id
                );
            }
        }
    }

    #[rstest]
    #[case("(@1)", Some(Ok(vec![1])))]
    #[case("(@1,3)", Some(Ok(vec![1, 3])))]
    #[case("(@2:4)", Some(Ok(vec![2, 3, 4])))]
    #[case("(@x)", Some(Err(-222)))]
    #[case("CH1", None)]
    fn channel_lists(#[case] text: &str, #[case] expected: Option<Result<Vec<u32>, i32>>) {
        assert_eq!(
            channel_list(text).map(|r| r.map_err(|(code, _)| code)),
            expected
        );
    }

    #[test]
    fn channel_lists_stay_whole_when_parameters_are_split() {
        assert_eq!(split_outside_quotes("5,(@1,2)", ','), vec!["5", "(@1,2)"]);
    }

    #[rstest]
    #[case("SOUR2:VOLT", Some(Some(2)))]
    #[case("VOLT", Some(None))]
    #[case("SOURCE3:VOLTAGE:LEVEL", Some(Some(3)))]
    #[case("SOURX:VOLT", None)]
    fn channel_suffixes_are_captured(#[case] header: &str, #[case] expected: Option<Option<u32>>) {
        let pattern = Pattern::new("[SOURce#]:VOLTage[:LEVel]", Action::Voltage);
        let mnemonics: Vec<String> = header.split(':').map(str::to_string).collect();
        assert_eq!(pattern.matches(&mnemonics), expected, "{header}");
    }

    #[rstest]
    #[case(&["5"], 80.0, Ok(5.0))]
    #[case(&["5 V"], 80.0, Ok(5.0))]
    #[case(&["500 mV"], 80.0, Ok(0.5))]
    #[case(&["MAX"], 80.0, Ok(80.0))]
    #[case(&["min"], 80.0, Ok(0.0))]
    #[case(&["80.0000000001"], 80.0, Ok(80.0000000001))]
    #[case(&["81"], 80.0, Err(-222))]
    #[case(&["-1"], 80.0, Err(-222))]
    #[case(&["five"], 80.0, Err(-104))]
    #[case(&["5 A"], 80.0, Err(-104))]
    #[case(&[], 80.0, Err(-109))]
    #[case(&["1", "2"], 80.0, Err(-108))]
    fn numeric_parameters(
        #[case] params: &[&str],
        #[case] max: f64,
        #[case] expected: Result<f64, i32>,
    ) {
        let got = numeric(&names(params), max, "V").map_err(|(code, _)| code);
        assert_eq!(got, expected);
    }
}
