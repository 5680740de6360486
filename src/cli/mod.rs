//! The command line: one file per subcommand, no logic a test would want to call.

mod can;
mod flash;
mod instruments;
mod keygen;
mod list;
mod load;
mod lock;
mod manual;
mod modbus;
mod probe;
mod report;
mod results;
mod run;
mod schema;
mod sim;
mod supply;
mod validate;

use std::path::PathBuf;

use crate::stdio;

use clap::{Parser, Subcommand};

pub use crate::exit::{Failure, EXIT_ABORT};

/// For a mistyped subcommand that clap finds no near match for (`rnu`), suggest the
/// closest one by edit distance, as the plan loader does for keys.
pub fn suggest_subcommand(e: &mut clap::Error) {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand || e.get(ContextKind::SuggestedSubcommand).is_some()
    {
        return;
    }
    let Some(ContextValue::String(typed)) = e.get(ContextKind::InvalidSubcommand) else {
        return;
    };
    let command = <Cli as clap::CommandFactory>::command();
    let names: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
    if let Some(best) = crate::plan::error::did_you_mean(typed, names.iter().copied()) {
        let best = best.to_string();
        e.insert(
            ContextKind::SuggestedSubcommand,
            ContextValue::Strings(vec![best]),
        );
    }
}

/// A duration on the command line, in the plans' syntax (`30 s`, `10 min`, `1.5 h`).
pub(crate) use crate::units::parse_duration;

/// hilrig: hardware-in-the-loop test rig controller for BMS firmware.
#[derive(Debug, Parser)]
#[command(name = "hilrig", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a test plan (on the built-in simulated bench unless --rig names another).
    Run(run::RunArgs),
    /// Check plans, fixtures, limit profiles and rigs; report every problem with its location.
    Validate(validate::ValidateArgs),
    /// The tests of a plan or suite: what each judges, the steps around them.
    List(list::ListArgs),
    /// The simulated bench as its own process (`hilrig sim serve`).
    Sim(sim::SimArgs),
    /// Verify, re-judge or re-render the evidence bundle of a run directory.
    Report(report::ReportArgs),
    /// The results store: import run bundles; list, show, trend, compare runs; flaky tests.
    Results(results::ResultsArgs),
    /// Make the station key that signs evidence bundles.
    Keygen(keygen::KeygenArgs),
    /// Print the JSON Schema of results.json (or of manifest.json, rejudged results).
    Schema(schema::SchemaArgs),
    /// CAN tools: decode candump logs through a DBC, dump a live bus, send frames.
    Can(can::CanArgs),
    /// Modbus tools: read a device's register map over Modbus TCP or RTU.
    Modbus(modbus::ModbusArgs),
    /// The bench lock (one run per bench).
    Lock(lock::LockArgs),
    /// Debug probes: `hilrig probe list`.
    Probe(probe::ProbeArgs),
    /// Flash a firmware image and prove over CAN that the BMS runs it.
    Flash(flash::FlashArgs),
    /// SCPI instruments: check identity, errors and calibration; ping; send one command.
    Instruments(instruments::InstrumentsArgs),
    /// Manual control of the DC supply (inside the rig's envelope).
    Supply(supply::SupplyArgs),
    /// Manual control of the electronic load (inside the rig's envelope).
    Load(load::LoadArgs),
    /// The out-of-process safe-state guard that `hilrig run` starts (reads its pipe).
    #[command(hide = true)]
    Guard,
}

/// The rig a command uses: `--rig`, `HILRIG_RIG`, `hilrig.toml`, else the built-in simulated
/// bench (see `rig::choice`). Err: a `hilrig.toml` that cannot be read.
pub fn choose_rig(flag: Option<PathBuf>) -> Result<crate::rig::choice::RigChoice, Failure> {
    crate::rig::choice::choose_from_env(flag).map_err(Failure::plain)
}

/// Run the command and return the process exit code: the one place where a command's
/// [`Failure`] is printed and mapped to it.
pub fn main(cli: Cli) -> std::process::ExitCode {
    let code = crate::exit::code(command(cli));
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

/// Run the command: its exit code, or the failure that stopped it.
fn command(cli: Cli) -> Result<i32, Failure> {
    // A file-size limit must not kill the process with the bench on: with SIGXFSZ ignored,
    // a write beyond the limit fails (EFBIG) and is handled as every write error is.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    stdio::install_stdout_panic_hook();
    let runtime = match &cli.command {
        // Virtual time: one thread, and a paused clock that jumps to the next timer.
        Command::Run(a) if a.virtual_time => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let rt = runtime.map_err(|e| Failure::abort(format!("cannot start the runtime: {e}")))?;
    Ok(match cli.command {
        Command::Run(a) => rt.block_on(run::run(a))?,
        Command::Validate(a) => validate::validate(a)?,
        Command::List(a) => list::list(a)?,
        Command::Sim(a) => rt.block_on(sim::run(a))?,
        Command::Report(a) => report::report(a)?,
        Command::Results(a) => rt.block_on(results::results(a))?,
        Command::Keygen(a) => keygen::keygen(a)?,
        Command::Schema(a) => schema::schema(a)?,
        Command::Can(a) => can::can(a, &rt)?,
        Command::Modbus(a) => rt.block_on(modbus::modbus(a))?,
        Command::Lock(a) => lock::lock(a)?,
        Command::Probe(a) => probe::probe(a)?,
        Command::Flash(a) => rt.block_on(flash::flash(a))?,
        Command::Instruments(a) => rt.block_on(instruments::instruments(a))?,
        Command::Supply(a) => rt.block_on(supply::supply(a))?,
        Command::Load(a) => rt.block_on(load::load(a))?,
        Command::Guard => rt.block_on(crate::guard::serve()),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[rstest::rstest]
    #[case::swapped("rnu", Some("run"))]
    #[case::clap_finds_it("valdate", Some("validate"))]
    #[case::nothing_near("zzzzzz", None)]
    fn mistyped_subcommands_get_a_suggestion(#[case] typed: &str, #[case] want: Option<&str>) {
        let mut e = super::Cli::try_parse_from(["hilrig", typed]).unwrap_err();
        super::suggest_subcommand(&mut e);
        let text = e.render().to_string();
        match want {
            Some(name) => assert!(text.contains(&format!("'{name}'")), "{text}"),
            None => assert!(!text.contains("similar subcommand"), "{text}"),
        }
    }
}
