//! A simulated switch unit for the rig's short-circuit switch: a Keysight DAQ970A (the
//! 34970A's command set) with a 34903A 20-channel actuator in each of slots 1-3, so
//! channels 101-120, 201-220 and 301-320.
//!
//! Commands, in short or long form and any case: `*IDN?`, `*RST` (opens every channel),
//! `*CLS`, `*OPC`, `*OPC?`, `SYSTem:ERRor[:NEXT]?` (`+0,"No error"` when the queue is
//! empty), `ROUTe:CLOSe (@<list>)` and `ROUTe:OPEN (@<list>)`, and their queries
//! `ROUTe:CLOSe? (@<list>)` / `ROUTe:OPEN? (@<list>)`, which answer `1` or `0` for each
//! channel of the list in its order, comma-separated. A channel list holds single channels
//! and ranges, `(@101:103,105)`; a range takes every number between its ends, so it stays
//! within one slot. A list naming a channel that is not installed is refused whole (nothing
//! switches, nothing is answered) with `-222,"Data out of range"`; an argument that is not
//! a channel list with `-104,"Data type error"`; an unknown header with `-113`; the error
//! queue holds 20 entries, the last becoming `-350,"Queue overflow"`.
//!
//! Wiring. One channel (the rig entry's `short.channel`) drives the coil of the contactor
//! across the pack: closing it closes the plant's short-circuit path
//! ([`crate::sim::plant::ShortState`]), and its state is read back from the plant. The other
//! channels are relays wired to nothing that keep their state.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

use super::line_server::{Core, LineDevice, Server};
use super::parser::{channel_list, single, Pattern};
use super::{fault, lock, ScpiFault};
use crate::scpi::Transport;
use crate::sim::plant::Plant;

/// Slots holding a 34903A actuator.
const SLOTS: std::ops::RangeInclusive<u32> = 1..=3;
/// Channels of a 34903A, within its slot.
const SLOT_CHANNELS: std::ops::RangeInclusive<u32> = 1..=20;

/// The dialects whose unit this simulates.
pub const SIMULATED_SWITCH_DIALECTS: &[&str] = &["keysight-daq970a"];

/// What a recognised header does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    SystemError,
    Close,
    Open,
}

fn patterns() -> Vec<Pattern<Act>> {
    vec![
        Pattern::new("SYSTem:ERRor[:NEXT]", Act::SystemError),
        Pattern::new("ROUTe:CLOSe", Act::Close),
        Pattern::new("ROUTe:OPEN", Act::Open),
    ]
}

struct SwitchShared {
    core: Core,
    patterns: Vec<Pattern<Act>>,
    plant: Plant,
    /// The channel that drives the plant's short-circuit path.
    plant_channel: u32,
    /// The other channels that are closed.
    closed: Mutex<BTreeSet<u32>>,
}

/// A running simulated switch unit; cloning gives another handle to the same unit.
#[derive(Clone)]
pub struct SimSwitch {
    server: Server<SwitchShared>,
}

impl std::fmt::Debug for SimSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimSwitch")
            .field("plant_channel", &self.server.shared.plant_channel)
            .field("local_addr", &self.server.local_addr())
            .finish()
    }
}

impl SimSwitch {
    /// Whether `channel` is one of the unit's installed channels (101-120, 201-220, 301-320).
    pub fn installed(channel: u32) -> bool {
        SLOTS.contains(&(channel / 100)) && SLOT_CHANNELS.contains(&(channel % 100))
    }

    fn new_shared(plant: Plant, plant_channel: u32, serial: &str) -> Arc<SwitchShared> {
        Arc::new(SwitchShared {
            core: Core::new("\n", serial),
            patterns: patterns(),
            plant,
            plant_channel,
            closed: Mutex::new(BTreeSet::new()),
        })
    }

    /// Serve on `listener`: channel `plant_channel` closes `plant`'s short-circuit path.
    pub async fn serve(listener: TcpListener, plant: Plant, plant_channel: u32) -> SimSwitch {
        let server = Server::serve(listener, Self::new_shared(plant, plant_channel, ""));
        server.set_serial(&format!("SIMSW{:05}", server.local_addr().port()));
        SimSwitch { server }
    }

    /// Serve without a socket: reachable through [`SimSwitch::connect_in_memory`] only.
    pub fn serve_in_memory(plant: Plant, plant_channel: u32) -> SimSwitch {
        SimSwitch {
            server: Server::in_memory(Self::new_shared(plant, plant_channel, "SIMSWMEM")),
        }
    }

    /// A transport connected to this unit without a socket.
    pub fn connect_in_memory(&self) -> Box<dyn Transport> {
        self.server.connect_in_memory()
    }

    /// The address to put in a rig file: `tcp://127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        self.server.address()
    }

    /// Answer `*IDN?` with this serial number.
    pub fn set_serial(&self, serial: &str) {
        self.server.set_serial(serial);
    }

    /// The command lines received, in order.
    pub fn command_log(&self) -> Vec<String> {
        self.server.command_log()
    }

    /// Whether `channel` is closed now (false for a channel that is not installed).
    pub fn is_closed(&self, channel: u32) -> bool {
        self.server.shared.is_closed(channel)
    }

    /// Stop listening and close every connection.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }
}

impl SwitchShared {
    fn is_closed(&self, channel: u32) -> bool {
        if channel == self.plant_channel {
            self.plant.lock().short.closed
        } else {
            lock(&self.closed).contains(&channel)
        }
    }

    fn set(&self, channel: u32, closed: bool) {
        if channel == self.plant_channel {
            self.plant.lock().short.closed = closed;
        } else if closed {
            lock(&self.closed).insert(channel);
        } else {
            lock(&self.closed).remove(&channel);
        }
    }

    /// The channel list argument, every channel installed.
    fn channels(params: &[String]) -> Result<Vec<u32>, ScpiFault> {
        let list =
            channel_list(single(params)?).ok_or_else(|| fault(-104, "Data type error"))??;
        if list.is_empty() || !list.iter().all(|c| SimSwitch::installed(*c)) {
            return Err(fault(-222, "Data out of range"));
        }
        Ok(list)
    }
}

impl LineDevice for SwitchShared {
    type Act = Act;

    fn core(&self) -> &Core {
        &self.core
    }

    fn patterns(&self) -> &[Pattern<Act>] {
        &self.patterns
    }

    fn identity(&self) -> String {
        format!(
            "Keysight Technologies,DAQ970A,{},A.03.01-01.00-03.01-00.02-01-00",
            self.core.serial()
        )
    }

    fn execute(
        &self,
        act: Act,
        _suffix: Option<u32>,
        query: bool,
        params: &[String],
    ) -> Result<Option<Vec<u8>>, ScpiFault> {
        match (act, query) {
            (Act::SystemError, true) => {
                let (code, msg) = self.core.pop_error().unwrap_or((0, "No error".into()));
                Ok(Some(format!("{code:+},\"{msg}\"").into_bytes()))
            }
            (Act::Close | Act::Open, false) => {
                for ch in Self::channels(params)? {
                    self.set(ch, act == Act::Close);
                }
                Ok(None)
            }
            (Act::Close | Act::Open, true) => {
                let answers: Vec<&str> = Self::channels(params)?
                    .into_iter()
                    .map(|ch| {
                        if self.is_closed(ch) == (act == Act::Close) {
                            "1"
                        } else {
                            "0"
                        }
                    })
                    .collect();
                Ok(Some(answers.join(",").into_bytes()))
            }
            _ => Err(fault(-113, "Undefined header")),
        }
    }

    fn reset(&self) {
        lock(&self.closed).clear();
        self.plant.lock().short.closed = false;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rstest::rstest;

    use super::*;
    use crate::instrument::{ScpiSwitch, Switch};
    use crate::scpi::builtin_switch_dialect;

    fn unit() -> (SimSwitch, Plant) {
        let plant = Plant::new(16, 3.3, 4, 25.0);
        {
            let mut g = plant.lock();
            g.dsg_fet = true;
            g.short.resistance_ohm = 0.25;
        }
        (SimSwitch::serve_in_memory(plant.clone(), 101), plant)
    }

    fn ask(s: &SimSwitch, line: &str) -> String {
        s.server.ask(line)
    }

    #[rstest]
    #[case::short_forms("ROUT:CLOS (@102)", "ROUT:CLOS? (@102)", "1")]
    #[case::long_forms_any_case("route:close (@102)", "ROUTe:CLOSe? (@102)", "1")]
    #[case::open_query_inverts("ROUT:CLOS (@102)", "ROUT:OPEN? (@102)", "0")]
    #[case::a_list_answers_per_channel("ROUT:CLOS (@101,103)", "ROUT:CLOS? (@101:104)", "1,0,1,0")]
    #[case::a_range_closes_each("ROUT:CLOS (@201:203)", "ROUT:CLOS? (@203,202,201,204)", "1,1,1,0")]
    #[case::open_a_range(
        "ROUT:CLOS (@301:305);:ROUT:OPEN (@302:304)",
        "ROUT:CLOS? (@301:305)",
        "1,0,0,0,1"
    )]
    #[case::path_rule("ROUT:CLOS (@120);OPEN (@120)", "ROUT:CLOS? (@120)", "0")]
    #[case::rst_opens_every_channel(
        "ROUT:CLOS (@101,120,320);*RST",
        "ROUT:CLOS? (@101,120,320)",
        "0,0,0"
    )]
    #[case::identity(
        "*CLS",
        "*IDN?",
        "Keysight Technologies,DAQ970A,SIMSWMEM,A.03.01-01.00-03.01-00.02-01-00"
    )]
    #[case::opc("*OPC", "*OPC?", "1")]
    #[case::no_error("ROUT:CLOS (@101)", "SYST:ERR?", "+0,\"No error\"")]
    fn commands_switch_and_queries_read_back(
        #[case] command: &str,
        #[case] query: &str,
        #[case] reply: &str,
    ) {
        let (s, _) = unit();
        assert_eq!(ask(&s, command), "");
        assert_eq!(ask(&s, query), reply);
    }

    #[rstest]
    #[case::slot_four("ROUT:CLOS (@401)", "-222,\"Data out of range\"")]
    #[case::channel_21("ROUT:CLOS (@121)", "-222,\"Data out of range\"")]
    #[case::channel_zero("ROUT:OPEN (@100)", "-222,\"Data out of range\"")]
    #[case::a_range_past_the_slot("ROUT:CLOS (@119:122)", "-222,\"Data out of range\"")]
    #[case::a_query_outside("ROUT:CLOS? (@101,999)", "-222,\"Data out of range\"")]
    #[case::not_a_list("ROUT:CLOS 101", "-104,\"Data type error\"")]
    #[case::missing("ROUT:CLOS", "-109,\"Missing parameter\"")]
    #[case::unknown_header("ROUT:SCAN (@101)", "-113,\"Undefined header\"")]
    #[case::unknown_common("*TRG", "-113,\"Undefined header\"")]
    fn a_refused_command_switches_nothing_and_queues_its_error(
        #[case] command: &str,
        #[case] error: &str,
    ) {
        let (s, plant) = unit();
        assert_eq!(ask(&s, command), "");
        assert_eq!(ask(&s, "SYST:ERR?"), error);
        assert_eq!(ask(&s, "SYSTem:ERRor:NEXT?"), "+0,\"No error\"");
        assert!(!plant.snapshot().short.closed);
        assert!(!s.is_closed(119) && !s.is_closed(120));
    }

    #[test]
    fn the_queue_overflows_into_350_and_cls_empties_it() {
        let (s, _) = unit();
        for _ in 0..25 {
            ask(&s, "ROUT:CLOS (@401)");
        }
        let mut codes = Vec::new();
        loop {
            let r = ask(&s, "SYST:ERR?");
            if r.starts_with("+0") {
                break;
            }
            codes.push(r);
        }
        assert_eq!(codes.len(), 20);
        assert_eq!(codes[19], "-350,\"Queue overflow\"");
        ask(&s, "ROUT:CLOS (@401);*CLS");
        assert_eq!(ask(&s, "SYST:ERR?"), "+0,\"No error\"");
    }

    #[test]
    fn only_the_wired_channel_closes_the_plants_short() {
        let (s, plant) = unit();
        ask(&s, "ROUT:CLOS (@102:120,201)");
        assert!(!plant.snapshot().short.closed);
        ask(&s, "ROUT:CLOS (@101)");
        assert!(plant.snapshot().short.closed);
        assert!(s.is_closed(101));
        // The plant's state is what reads back.
        plant.lock().short.closed = false;
        assert_eq!(ask(&s, "ROUT:CLOS? (@101,102)"), "0,1");
        ask(&s, "ROUT:CLOS (@101)");
        ask(&s, "*RST");
        assert!(!plant.snapshot().short.closed);
    }

    #[tokio::test]
    async fn the_rigs_driver_closes_the_short_and_the_pack_discharges_through_it() {
        let (s, plant) = unit();
        s.set_serial("SIM-DAQ-0001");
        let dialect = builtin_switch_dialect("keysight-daq970a").unwrap();
        let mut sw = ScpiSwitch::open_on(
            "short",
            s.connect_in_memory(),
            dialect,
            101,
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert!(sw.identity().contains("SIM-DAQ-0001"), "{}", sw.identity());
        assert!(!sw.closed().await.unwrap());
        sw.close().await.unwrap();
        let state = plant.snapshot();
        assert!(state.short.closed);
        assert!(-state.pack_current() > 150.0, "{}", state.pack_current());
        assert!(sw.closed().await.unwrap());
        sw.open().await.unwrap();
        let state = plant.snapshot();
        assert!(!state.short.closed);
        assert_eq!(state.pack_current(), 0.0);
        assert!(s.command_log().iter().any(|l| l.contains("(@101)")));
    }
}
