//! `hilrig probe list [--json]`

use clap::{Args, Subcommand};

use crate::exit::Failure;
use crate::flash::probe::list_probes;

/// Arguments of `hilrig probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ProbeCommand,
}

/// `hilrig probe` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// List the debug probes connected to this machine, with their selectors.
    List {
        /// One JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// Run `hilrig probe`: exit 0 (a machine without probes lists none).
pub fn probe(a: ProbeArgs) -> Result<i32, Failure> {
    let ProbeCommand::List { json } = a.command;
    let probes = list_probes();
    if json {
        let list = probes.iter().map(|p| {
            serde_json::json!({"name": p.name, "selector": p.selector, "accessible": p.accessible})
        });
        println!("{}", serde_json::Value::Array(list.collect()));
    } else if probes.is_empty() {
        println!(
            "no debug probes found (connect one over USB; CMSIS-DAP v1/HID probes are not \
             supported, v2 are)"
        );
    }
    for p in probes.iter().filter(|_| !json) {
        let note = match p.accessible {
            true => "",
            false => "  (permission denied: install the probe-rs udev rules)",
        };
        println!("{}  selector {}{note}", p.name, p.selector);
    }
    Ok(0)
}
