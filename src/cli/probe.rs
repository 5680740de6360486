//! `hilrig probe list [--json]`

use clap::{Args, Subcommand};

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

/// Run `hilrig probe` and return the exit code.
pub fn probe(a: ProbeArgs) -> i32 {
    match a.command {
        ProbeCommand::List { json } => {
            let probes = list_probes();
            if json {
                let list: Vec<_> = probes
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "name": p.name,
                            "selector": p.selector,
                            "accessible": p.accessible,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
                return 0;
            }
            if probes.is_empty() {
                println!(
                    "no debug probes found (connect one over USB; CMSIS-DAP v1/HID probes are \
                     not supported, v2 are)"
                );
                return 0;
            }
            for p in &probes {
                let note = if p.accessible {
                    ""
                } else {
                    "  (permission denied: install the probe-rs udev rules)"
                };
                println!("{}  selector {}{note}", p.name, p.selector);
            }
            0
        }
    }
}
