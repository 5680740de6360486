//! Simulated SCPI instruments: a supply or a load that answers on a TCP socket the way the
//! modelled instrument does, reading from and writing to the shared [`Plant`].
//!
//! The command set is the standard SCPI tree for the role (short and long forms, any case,
//! optional nodes, `;`-separated commands with SCPI's header-path rule), narrowed by the
//! dialect: `MEAS:ARR?` only where the dialect measures that way, `SYST:LOCK` only where the
//! model needs it. Reply formats (booleans, numbers, units) follow the dialect.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::scpi::reply::{format_nr3, parse_quantity};
use crate::scpi::{BoolFormat, Dialect, NumberFormat, Role, Transport};
use crate::sim::plant::{Plant, PlantState};

/// Longest command line accepted; longer input is dropped with `-363,"Input buffer overrun"`.
const MAX_LINE: usize = 64 * 1024;

/// Error-queue depth; on overflow the newest entry becomes `-350,"Queue overflow"`.
const QUEUE_DEPTH: usize = 20;

/// Protection levels are accepted up to this multiple of the output range.
const PROTECTION_HEADROOM: f64 = 1.1;

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

/// State shared by the accept loop, the connection tasks and the handles.
struct Shared {
    dialect: Dialect,
    plant: Plant,
    patterns: Vec<Pattern>,
    state: Mutex<InstrumentState>,
    log: Mutex<Vec<String>>,
    /// Cancelled by `drop_connections`; replaced by a fresh child of `shutdown` each time.
    connections: Mutex<CancellationToken>,
    shutdown: CancellationToken,
    serial: String,
}

/// Per-instrument state that is not part of the plant.
#[derive(Debug, Default)]
struct InstrumentState {
    errors: VecDeque<(i32, String)>,
    esr: u8,
    locked: bool,
}

/// An error to queue: SCPI code and text.
type ScpiFault = (i32, String);

fn fault(code: i32, message: &str) -> ScpiFault {
    (code, message.to_string())
}

/// Start serving `dialect` on `listener`, backed by `plant`. The server runs until
/// [`SimInstrument::shutdown`] or until the runtime stops.
pub async fn serve(listener: TcpListener, dialect: Dialect, plant: Plant) -> SimInstrument {
    let local_addr = listener.local_addr().unwrap_or_else(|error| {
        tracing::error!(%error, "simulated instrument listener has no local address");
        SocketAddr::from(([0, 0, 0, 0], 0))
    });
    let shutdown = CancellationToken::new();
    let shared = Arc::new(Shared {
        patterns: patterns(&dialect),
        serial: format!("SIM{:06}", local_addr.port()),
        dialect,
        plant,
        state: Mutex::new(InstrumentState::default()),
        log: Mutex::new(Vec::new()),
        connections: Mutex::new(shutdown.child_token()),
        shutdown,
    });
    tokio::spawn(accept_loop(listener, shared.clone()));
    SimInstrument { shared, local_addr }
}

/// Serve `dialect` backed by `plant` without a socket: reachable only through
/// [`SimInstrument::connect_in_memory`] (for example behind a `mem://` endpoint), so that it
/// runs under a paused, virtual clock. Its `local_addr` is the unspecified address.
pub fn serve_in_memory(dialect: Dialect, plant: Plant) -> SimInstrument {
    static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let shutdown = CancellationToken::new();
    let shared = Arc::new(Shared {
        patterns: patterns(&dialect),
        serial: format!("SIMMEM{n:04}"),
        dialect,
        plant,
        state: Mutex::new(InstrumentState::default()),
        log: Mutex::new(Vec::new()),
        connections: Mutex::new(shutdown.child_token()),
        shutdown,
    });
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
                tokio::spawn(run_connection(shared.clone(), stream, token));
            }
            Err(error) => {
                tracing::warn!(%error, "simulated instrument: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
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

    /// Every command line received on any connection, in order, without terminator.
    pub fn command_log(&self) -> Vec<String> {
        lock(&self.shared.log).clone()
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
        let token = lock(&self.shared.connections).clone();
        tokio::spawn(run_connection(self.shared.clone(), far, token));
        Box::new(near)
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

async fn run_connection<S>(shared: Arc<Shared>, stream: S, token: CancellationToken)
where
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
            lock(&shared.log).push(line.to_string());
            if let Some(reply) = shared.handle_line(line) {
                let reply = format!("{reply}{}", shared.dialect.terminator);
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
    Voltage,
    Current,
    Ovp,
    Ocp,
    Output,
    ClearProtection,
    MeasureVoltage,
    MeasureCurrent,
    MeasurePower,
    MeasureArray,
    Lock,
    Function,
    SystemError,
    SystemVersion,
}

impl Action {
    /// Settings change the instrument and are refused before the lock where the model needs it.
    fn is_setting(self) -> bool {
        matches!(
            self,
            Action::Voltage
                | Action::Current
                | Action::Ovp
                | Action::Ocp
                | Action::Output
                | Action::ClearProtection
                | Action::Function
        )
    }
}

/// One mnemonic of a header pattern: `[SOURce]` is optional, short form `SOUR`.
#[derive(Debug, Clone)]
struct Node {
    short: String,
    long: String,
    optional: bool,
}

/// A header in SCPI notation and what it does.
#[derive(Debug, Clone)]
struct Pattern {
    nodes: Vec<Node>,
    action: Action,
}

impl Pattern {
    /// Build from SCPI notation, e.g. `[SOURce]:VOLTage[:LEVel]` (upper case = short form).
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
                Node {
                    short: name.chars().filter(|c| c.is_ascii_uppercase()).collect(),
                    long: name.to_ascii_uppercase(),
                    optional,
                }
            })
            .collect();
        Pattern { nodes, action }
    }

    fn matches(&self, mnemonics: &[String]) -> bool {
        match_nodes(mnemonics, &self.nodes)
    }
}

fn match_nodes(input: &[String], nodes: &[Node]) -> bool {
    let Some((node, rest)) = nodes.split_first() else {
        return input.is_empty();
    };
    let here =
        input.first().is_some_and(|m| mnemonic_matches(m, node)) && match_nodes(&input[1..], rest);
    here || (node.optional && match_nodes(input, rest))
}

/// `m` is upper case; a numeric suffix other than 1 addresses a channel the model lacks.
fn mnemonic_matches(m: &str, node: &Node) -> bool {
    let name = m.trim_end_matches(|c: char| c.is_ascii_digit());
    let suffix = &m[name.len()..];
    (suffix.is_empty() || suffix == "1") && (name == node.short || name == node.long)
}

/// The header tree of the dialect's role, narrowed by what the dialect uses.
fn patterns(dialect: &Dialect) -> Vec<Pattern> {
    let mut table = vec![
        Pattern::new("SYSTem:ERRor[:NEXT]", Action::SystemError),
        Pattern::new("SYSTem:VERSion", Action::SystemVersion),
        Pattern::new("MEASure[:SCALar]:VOLTage[:DC]", Action::MeasureVoltage),
        Pattern::new("MEASure[:SCALar]:CURRent[:DC]", Action::MeasureCurrent),
        Pattern::new("MEASure[:SCALar]:POWer[:DC]", Action::MeasurePower),
        Pattern::new(
            "[SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]",
            Action::Current,
        ),
    ];
    match dialect.role {
        Role::Supply => {
            table.extend([
                Pattern::new(
                    "[SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
                    Action::Voltage,
                ),
                Pattern::new("[SOURce]:VOLTage:PROTection[:LEVel]", Action::Ovp),
                Pattern::new("[SOURce]:CURRent:PROTection[:LEVel]", Action::Ocp),
                Pattern::new("OUTPut[:STATe]", Action::Output),
                Pattern::new("OUTPut:PROTection:CLEar", Action::ClearProtection),
            ]);
            if dialect.commands.measure_all.is_some() {
                table.push(Pattern::new("MEASure[:SCALar]:ARRay", Action::MeasureArray));
            }
            if dialect.settings_require_lock {
                table.push(Pattern::new("SYSTem:LOCK", Action::Lock));
            }
        }
        Role::Load => {
            table.extend([
                Pattern::new("[SOURce]:FUNCtion", Action::Function),
                Pattern::new("[SOURce]:INPut[:STATe]", Action::Output),
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

fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == separator => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            None => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

impl Shared {
    /// Execute one received line; the reply to send, if any query produced one.
    fn handle_line(&self, line: &str) -> Option<String> {
        let mut replies = Vec::new();
        let mut state = lock(&self.state);
        let mut plant = self.plant.lock();
        for command in parse_line(line) {
            let result = if command.common {
                self.common(&mut state, &mut plant, &command)
            } else {
                self.execute(&mut state, &mut plant, &command)
            };
            self.check_protection(&mut plant);
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

    fn common(
        &self,
        state: &mut InstrumentState,
        plant: &mut PlantState,
        c: &Command,
    ) -> Result<Option<String>, ScpiFault> {
        let d = &self.dialect;
        match (c.mnemonics[0].as_str(), c.query) {
            ("*IDN", true) => Ok(Some(format!(
                "{},{},{},hilrig-sim-{}",
                d.maker,
                d.model,
                self.serial,
                env!("CARGO_PKG_VERSION")
            ))),
            ("*CLS", false) => {
                state.errors.clear();
                state.esr = 0;
                Ok(None)
            }
            ("*RST", false) => {
                match d.role {
                    Role::Supply => plant.supply = Default::default(),
                    Role::Load => plant.load = Default::default(),
                }
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

    fn execute(
        &self,
        state: &mut InstrumentState,
        plant: &mut PlantState,
        c: &Command,
    ) -> Result<Option<String>, ScpiFault> {
        let d = &self.dialect;
        let Some(action) = self
            .patterns
            .iter()
            .find(|p| p.matches(&c.mnemonics))
            .map(|p| p.action)
        else {
            return Err(fault(-113, "Undefined header"));
        };
        if c.query && !c.params.is_empty() {
            return Err(fault(-108, "Parameter not allowed"));
        }
        if !c.query && action.is_setting() && d.settings_require_lock && !state.locked {
            // [L] EA's exact code and text for a setting without remote lock are not
            // confirmed; -203 is the standard SCPI "command protected".
            return Err(fault(
                -203,
                "Command protected;remote lock required (SYST:LOCK 1)",
            ));
        }
        let max_v = d.ranges.max_voltage;
        let max_i = d.ranges.max_current;
        match (action, c.query) {
            (Action::SystemError, true) => Ok(Some(match state.errors.pop_front() {
                Some((code, message)) => format!("{code},\"{}\"", message.replace('"', "\"\"")),
                None => "0,\"No error\"".into(),
            })),
            (Action::SystemVersion, true) => Ok(Some("1999.0".into())),
            (Action::Lock, false) => {
                state.locked = boolean(&c.params)?;
                Ok(None)
            }
            (Action::Lock, true) => Ok(Some(self.format_bool(state.locked))),
            (Action::Voltage, false) => {
                plant.supply.voltage_set = numeric(&c.params, max_v, "V")?;
                Ok(None)
            }
            (Action::Voltage, true) => Ok(Some(self.format_number(plant.supply.voltage_set, "V"))),
            (Action::Current, false) => {
                let value = numeric(&c.params, max_i, "A")?;
                match d.role {
                    Role::Supply => plant.supply.current_set = value,
                    Role::Load => plant.load.current_set = value,
                }
                Ok(None)
            }
            (Action::Current, true) => Ok(Some(self.format_number(
                match d.role {
                    Role::Supply => plant.supply.current_set,
                    Role::Load => plant.load.current_set,
                },
                "A",
            ))),
            (Action::Ovp, false) => {
                plant.supply.ovp = Some(numeric(&c.params, max_v * PROTECTION_HEADROOM, "V")?);
                Ok(None)
            }
            (Action::Ovp, true) => {
                let level = plant.supply.ovp.unwrap_or(max_v * PROTECTION_HEADROOM);
                Ok(Some(self.format_number(level, "V")))
            }
            (Action::Ocp, false) => {
                plant.supply.ocp = Some(numeric(&c.params, max_i * PROTECTION_HEADROOM, "A")?);
                Ok(None)
            }
            (Action::Ocp, true) => {
                let level = plant.supply.ocp.unwrap_or(max_i * PROTECTION_HEADROOM);
                Ok(Some(self.format_number(level, "A")))
            }
            (Action::Output, false) => {
                let on = boolean(&c.params)?;
                match d.role {
                    Role::Supply if on && plant.supply.protection_tripped => Err(fault(
                        -221,
                        "Settings conflict;protection tripped, clear it first",
                    )),
                    Role::Supply => {
                        plant.supply.output = on;
                        Ok(None)
                    }
                    Role::Load => {
                        plant.load.input = on;
                        Ok(None)
                    }
                }
            }
            (Action::Output, true) => Ok(Some(self.format_bool(match d.role {
                Role::Supply => plant.supply.output,
                Role::Load => plant.load.input,
            }))),
            (Action::ClearProtection, false) => {
                no_params(&c.params)?;
                plant.supply.protection_tripped = false;
                Ok(None)
            }
            (Action::Function, false) => {
                let mode = single(&c.params)?.to_ascii_uppercase();
                match mode.as_str() {
                    "CURR" | "CURRENT" => Ok(None),
                    "VOLT" | "VOLTAGE" | "RES" | "RESISTANCE" | "POW" | "POWER" => Err(fault(
                        -221,
                        "Settings conflict;only constant-current mode is simulated",
                    )),
                    _ => Err(fault(-224, "Illegal parameter value")),
                }
            }
            (Action::Function, true) => Ok(Some("CC".into())),
            (Action::MeasureVoltage, true) => {
                Ok(Some(self.format_number(self.voltage(plant), "V")))
            }
            (Action::MeasureCurrent, true) => {
                Ok(Some(self.format_number(self.current(plant), "A")))
            }
            (Action::MeasurePower, true) => Ok(Some(
                self.format_number(self.voltage(plant) * self.current(plant), "W"),
            )),
            (Action::MeasureArray, true) => {
                let (v, i) = (self.voltage(plant), self.current(plant));
                Ok(Some(format!(
                    "{}, {}, {}",
                    self.format_number(v, "V"),
                    self.format_number(i, "A"),
                    self.format_number(v * i, "W")
                )))
            }
            _ => Err(fault(-113, "Undefined header")),
        }
    }

    fn voltage(&self, plant: &PlantState) -> f64 {
        match self.dialect.role {
            Role::Supply => plant.supply_voltage(),
            Role::Load => plant.load_voltage(),
        }
    }

    fn current(&self, plant: &PlantState) -> f64 {
        match self.dialect.role {
            Role::Supply => plant.supply_current(),
            Role::Load => plant.load_current(),
        }
    }

    /// Switch the supply off and latch the trip when the set voltage exceeds OVP or the
    /// delivered current exceeds OCP.
    fn check_protection(&self, plant: &mut PlantState) {
        if self.dialect.role != Role::Supply
            || !plant.supply.output
            || plant.supply.protection_tripped
        {
            return;
        }
        let over_v = plant
            .supply
            .ovp
            .is_some_and(|ovp| plant.supply.voltage_set > ovp);
        let over_i = plant
            .supply
            .ocp
            .is_some_and(|ocp| plant.supply_current() > ocp);
        if over_v || over_i {
            tracing::info!(dialect = %self.dialect.id, over_v, over_i, "simulated supply: protection tripped");
            plant.supply.output = false;
            plant.supply.protection_tripped = true;
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

    fn format_number(&self, value: f64, unit: &str) -> String {
        match self.dialect.replies.number {
            NumberFormat::Nr3 => format_nr3(value),
            NumberFormat::Nr2 => format!("{value:.3}"),
            NumberFormat::WithUnits if unit == "W" => format!("{value:.1} {unit}"),
            NumberFormat::WithUnits => format!("{value:.2} {unit}"),
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
    let text = single(params)?;
    let value = match text.to_ascii_uppercase().as_str() {
        "MIN" | "MINIMUM" | "DEF" | "DEFAULT" => 0.0,
        "MAX" | "MAXIMUM" => max,
        _ => {
            parse_quantity(text, Some(unit))
                .map_err(|_| fault(-104, "Data type error"))?
                .value
        }
    };
    // A little slack so that a range limit written with rounding is still accepted.
    if value < 0.0 || value > max * (1.0 + 1e-9) {
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
        assert_eq!(pattern.matches(&mnemonics), expected, "{header}");
    }

    /// Every command a shipped dialect sends is one the simulated instrument understands.
    #[test]
    fn every_dialect_command_is_understood() {
        for dialect in builtin_dialects() {
            let shared = Shared {
                patterns: patterns(&dialect),
                serial: "SIM".into(),
                plant: Plant::new(16, 3.3, 4, 25.0),
                state: Mutex::new(InstrumentState::default()),
                log: Mutex::new(Vec::new()),
                connections: Mutex::new(CancellationToken::new()),
                shutdown: CancellationToken::new(),
                dialect: dialect.clone(),
            };
            let mut commands: Vec<String> = dialect.on_connect.clone();
            commands.push(dialect.error_query.clone());
            commands.extend(
                dialect
                    .templates()
                    .into_iter()
                    .map(|(_, t)| crate::scpi::render(t, Some(1.0), 1)),
            );
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
