//! `hilrig instruments check|ping|scpi [--rig R]`: the arguments; the work is in
//! `crate::bench::{check, direct}` over a [`bench::session::Session`], which this
//! file starts (with the simulated bench, on a simulated rig, for as long as the command).
//!
//! Exit codes: 0 done (check: every instrument passed); 1 a check failed, or the instrument
//! reported an error in its error queue; 2 nothing was sent or the command could not finish:
//! bad input, a refused setting (no `--allow-settings`, outside the envelope), no connection,
//! a timeout.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::bench::{self, direct::ScpiLine, session::Session};
use crate::exit::Failure;
use crate::sim::SimBenchProvider;

/// Arguments of `hilrig instruments`.
#[derive(Debug, Args)]
pub struct InstrumentsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: InstrumentsCommand,
}

/// `hilrig instruments` subcommands.
#[derive(Debug, Subcommand)]
pub enum InstrumentsCommand {
    /// Check every SCPI instrument of the rig: `*IDN?` against its dialect and the rig's
    /// serial number, its error queue (read, not cleared first), and the calibration due date
    /// from the rig's `calibration:` map.
    Check(CheckArgs),
    /// Round-trip latency of `*IDN?` to one instrument: min, median and p99.
    Ping(PingArgs),
    /// Send one SCPI line to an instrument and print the reply. Queries are sent freely;
    /// settings only with --allow-settings, and only inside the rig's envelope.
    #[command(long_about = SCPI_HELP)]
    Scpi(ScpiArgs),
}

const SCPI_HELP: &str = "Send one SCPI line to an instrument and print the reply.

Queries (every command ending in `?`) are sent freely. Anything else needs --allow-settings,
takes the bench lock, and is checked first: these headers are recognised (short or long form,
any case, with or without SOURce[n], channel suffixes and trailing LEVel/IMMediate/AMPLitude):

  VOLTage                           supply voltage (cell voltage on a cell simulator)
  CURRent, CURRent:LIMit[:NEGative] supply current limit / load current
  CURRent:STATic:L1|L2              load current (Chroma)
  VOLTage:PROTection[:REMote], OUTPut:OVP:VALue   OVP level, at most the envelope's voltage
  CURRent:PROTection, OUTPut:OCP:VALue            OCP level, at most the envelope's current
  APPLy                             voltage and current (Rigol)

Their first numeric parameter must lie inside the rig's envelope (MIN/DEF count as zero; MAX
is refused). Other settings are sent unchecked. After the line the error queue is read; an
error there exits with 1.";

/// Arguments of `hilrig instruments check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Rig file (default: rig/sim.yaml, the built-in simulated bench).
    #[arg(long)]
    pub rig: Option<PathBuf>,
    /// One JSON object on stdout instead of lines for people.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `hilrig instruments ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// Instrument id from the rig file.
    pub id: String,
    /// Rig file (default: rig/sim.yaml, the built-in simulated bench).
    #[arg(long)]
    pub rig: Option<PathBuf>,
    /// Number of timed queries (one untimed query goes first).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub count: u32,
    /// One JSON object on stdout instead of a line for people.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `hilrig instruments scpi`.
#[derive(Debug, Args)]
pub struct ScpiArgs {
    /// Instrument id from the rig file.
    pub id: String,
    /// The SCPI line, e.g. "MEAS:VOLT?" or "VOLT 12;CURR 2".
    pub line: String,
    /// Rig file (default: rig/sim.yaml, the built-in simulated bench).
    #[arg(long)]
    pub rig: Option<PathBuf>,
    /// Allow commands that change the instrument (still checked against the envelope).
    #[arg(long)]
    pub allow_settings: bool,
    /// Also allow resets (`*RST`, `*RCL`, `SYST:PRES`) and switching a protection off.
    #[arg(long)]
    pub allow_unprotected: bool,
    /// Wait this long for the bench lock when a run holds it (e.g. `30 s`, `10 min`).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = super::parse_duration)]
    pub wait: Option<Duration>,
}

/// Run `hilrig instruments ...`: the exit code, or the failure that stopped it.
pub async fn instruments(a: InstrumentsArgs) -> Result<i32, Failure> {
    match a.command {
        InstrumentsCommand::Check(c) => {
            Ok(bench::check::check(&session(c.rig).await?, c.json).await)
        }
        InstrumentsCommand::Ping(p) => {
            bench::direct::ping(&session(p.rig).await?, &p.id, p.count, p.json).await
        }
        InstrumentsCommand::Scpi(s) => {
            let line = ScpiLine {
                id: s.id,
                line: s.line,
                allow_settings: s.allow_settings,
                allow_unprotected: s.allow_unprotected,
                wait: s.wait,
            };
            bench::direct::scpi(&session(s.rig).await?, line).await
        }
    }
}

/// The rig's session, with the simulated bench started on a simulated rig.
pub(super) async fn session(rig: Option<PathBuf>) -> Result<Session, String> {
    Session::start(rig, &SimBenchProvider).await
}
