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
//!
//! The simulated instruments keep their own SCPI parser (`parser`), written apart from the
//! client in `crate::scpi`, so that the simulated bench is an independent check of the
//! client rather than its mirror. The server (`server`: TCP accept, in-memory and
//! pseudo-terminal connections, the line loop) is shared; each vendor family has its own
//! module with its header tree and its model-specific behaviour.
//!
//! The instruments with a header table of their own, the oscilloscope (`scope`,
//! [`SimScope`]) and the short-circuit switch unit (`switch`, [`SimSwitch`]), share
//! `line_server`: accept loop, in-memory connections, line loop, command log, error queue,
//! common commands and the dispatch of a line's commands.

mod bloomy;
mod chroma;
mod engine;
mod keysight;
mod line_server;
mod parser;
mod rigol;
mod rs;
mod scope;
mod server;
mod siglent;
mod standard;
mod switch;
#[cfg(test)]
mod tests;

pub use scope::SimScope;
pub use server::{serve, serve_in_memory, SerialEndpoint, SimInstrument};
pub use switch::{SimSwitch, SIMULATED_SWITCH_DIALECTS};

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::scpi::{Dialect, Role};
use crate::sim::plant::{LoadState, Plant, PlantState, SupplyState};
use parser::Pattern;

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
    /// Simulated fault: once on, the output ignores `OUTP OFF` (accepted, not obeyed).
    output_stuck_on: bool,
    /// Cell simulators: the plant's cells before channel 1 (a pack split over units).
    cell_offset: u32,
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
            output_stuck_on: false,
            cell_offset: 0,
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

/// The standard voltage setting header.
const VOLTAGE: &str = "[SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]";
/// The standard current setting header.
const CURRENT: &str = "[SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]";

/// The header tree of the instrument's command set: the common part and its family's.
fn patterns(dialect: &Dialect, family: Family) -> Vec<Pattern> {
    let mut table = vec![
        Pattern::new("SYSTem:ERRor[:NEXT]", Action::SystemError),
        Pattern::new("SYSTem:VERSion", Action::SystemVersion),
    ];
    table.extend(match family {
        Family::Standard => standard::patterns(dialect),
        Family::KeysightList => keysight::list_patterns(dialect),
        Family::KeysightRp => keysight::rp_patterns(),
        Family::RigolDp => rigol::patterns(),
        Family::RsHmp => rs::patterns(),
        Family::Siglent => siglent::patterns(),
        Family::Chroma => chroma::patterns(),
        Family::Bloomy => bloomy::patterns(),
    });
    table
}
