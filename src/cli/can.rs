//! `hilrig can decode|dump|send`: the arguments; the tools are in `crate::can::tools`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::can::decode::{DecodeOptions, Format};
use crate::can::tools;
use crate::exit::Failure;

/// Arguments of `hilrig can`.
#[derive(Debug, Args)]
pub struct CanArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CanCommand,
}

/// `hilrig can` subcommands.
#[derive(Debug, Subcommand)]
pub enum CanCommand {
    /// Decode a candump log (`candump -L`) through a DBC: CSV with one column per signal, or JSON lines.
    Decode(DecodeArgs),
    /// Print the frames seen on a bus as candump lines (decoded when a DBC is given).
    Dump(DumpArgs),
    /// Send frames written as `cansend` takes them: `123#DEADBEEF`, `1F334455#00`, `123##1AABB`.
    Send(SendArgs),
}

/// Arguments of `hilrig can decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// DBC file.
    #[arg(long)]
    pub dbc: PathBuf,
    /// candump log; `-` reads standard input.
    pub log: PathBuf,
    /// JSON lines instead of CSV.
    #[arg(long)]
    pub json: bool,
    /// Treat frames whose ids are not in the DBC as errors.
    #[arg(long)]
    pub strict: bool,
    /// One row per signal once the log is read (frames, values, min, max, mean, last)
    /// instead of one row per frame; with `--json`, one JSON document.
    #[arg(long)]
    pub stats: bool,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Arguments of `hilrig can dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Bus endpoint: `socketcan:can0`, `slcan:/dev/ttyACM0?bitrate=500000`, `virtual:NAME`.
    #[arg(long)]
    pub bus: String,
    /// Decode frames through this DBC.
    #[arg(long)]
    pub dbc: Option<PathBuf>,
    /// JSON lines instead of candump lines.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many frames.
    #[arg(long)]
    pub count: Option<u64>,
}

/// Arguments of `hilrig can send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Bus endpoint: `socketcan:can0`, `slcan:/dev/ttyACM0?bitrate=500000`, `virtual:NAME`.
    #[arg(long)]
    pub bus: String,
    /// Frames, sent in order, as `cansend` writes them: `123#DEADBEEF`, `1F334455#11`,
    /// `123#R` or `123#R4` (remote), `123##1AABB` (CAN FD; flags digit 1 = bit-rate switch).
    #[arg(required = true)]
    pub frames: Vec<String>,
}

/// Run `hilrig can ...`: the exit code, or the failure that stopped it.
pub fn can(a: CanArgs, rt: &tokio::runtime::Runtime) -> Result<i32, Failure> {
    match a.command {
        CanCommand::Decode(d) => {
            let options = DecodeOptions {
                format: if d.json { Format::Json } else { Format::Csv },
                strict: d.strict,
                stats: d.stats,
                ..DecodeOptions::default()
            };
            tools::decode(&d.dbc, &d.log, d.output.as_deref(), options)
        }
        CanCommand::Dump(d) => rt.block_on(tools::dump(&d.bus, d.dbc.as_deref(), d.json, d.count)),
        CanCommand::Send(s) => rt.block_on(tools::send(&s.bus, &s.frames)),
    }
}
