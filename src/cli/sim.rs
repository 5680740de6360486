//! `hilrig sim serve [--rig R] [--json] [--chemistry C] [--soc PERCENT]`

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::EXIT_ABORT;
use crate::plan::load_rig;
use crate::rig::Backend;
use crate::sim::cell::Chemistry;
use crate::sim::plant::PackConfig;
use crate::sim::slcan_pty::SlcanPty;
use crate::sim::{Bench, BenchOptions, ScpiExposure};

/// Arguments of `hilrig sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// What to do with the simulated bench.
    #[command(subcommand)]
    pub command: SimCommand,
}

/// `hilrig sim` subcommands.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run the simulated bench as its own process: SCPI instruments on loopback TCP, each
    /// CAN bus as an SLCAN adapter on a pseudo-terminal. Prints the endpoints and runs
    /// until interrupted (Ctrl-C) or terminated.
    Serve(ServeArgs),
}

/// Arguments of `hilrig sim serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Simulated rig file (default: rig/sim.yaml).
    #[arg(long)]
    pub rig: Option<PathBuf>,
    /// Print the endpoints as one JSON object instead of one per line.
    #[arg(long)]
    pub json: bool,
    /// Cell chemistry of the simulated pack: LFP or NMC (default: the rig's, else LFP).
    #[arg(long)]
    pub chemistry: Option<String>,
    /// Initial state of charge of every cell, in percent (default: the rig's, else 50).
    #[arg(long)]
    pub soc: Option<f64>,
}

/// Run `hilrig sim ...` and return the exit code.
pub async fn run(a: SimArgs) -> i32 {
    match a.command {
        SimCommand::Serve(s) => serve(s).await,
    }
}

async fn serve(a: ServeArgs) -> i32 {
    let choice = match super::rig_choice(a.rig.clone()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rig_path = choice.path.clone();
    let rig = match load_rig(&rig_path) {
        Ok(r) => r.value,
        Err(e) => {
            eprintln!("{choice}: {e}");
            return EXIT_ABORT;
        }
    };
    if rig.simulation.is_none() {
        eprintln!(
            "error: {} is not a simulated rig (it has no `simulation:` section); give a rig \
             such as rig/sim.yaml",
            rig_path.display()
        );
        return EXIT_ABORT;
    }
    let chemistry: Option<Chemistry> = match a.chemistry.as_deref().map(str::parse).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: --chemistry: {e}");
            return EXIT_ABORT;
        }
    };
    if let Some(soc) = a.soc.filter(|soc| !(0.0..=100.0).contains(soc)) {
        eprintln!("error: --soc {soc} is not a percentage from 0 to 100");
        return EXIT_ABORT;
    }
    let image = match crate::sim::firmware::FirmwareImage::load(
        &rig.simulation
            .as_ref()
            .map(|s| s.firmware.clone())
            .unwrap_or_default(),
    ) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_ABORT;
        }
    };
    let mut pack = PackConfig::of_rig(&rig, image.config.cells as usize);
    if let Some(c) = chemistry {
        pack = PackConfig {
            chemistry: c,
            cell: c.typical_cell(),
            ..pack
        };
    }
    if let Some(soc) = a.soc {
        pack.soc = soc / 100.0;
    }
    let chemistry = pack.chemistry;
    let options = BenchOptions {
        scpi: ScpiExposure::Tcp,
        pack: Some(pack),
        ..Default::default()
    };
    let bench = match Bench::start_with(&rig, &rig_path, &options).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot start the simulated bench: {e}");
            return EXIT_ABORT;
        }
    };

    let mut instruments = Vec::new();
    for inst in &rig.instruments {
        let Some(real) = inst.address.as_ref().and_then(|a| bench.addresses().get(a)) else {
            continue;
        };
        instruments.push(json!({
            "id": inst.id,
            "role": inst.role,
            "dialect": inst.dialect,
            "address": real,
        }));
    }
    let mut adapters = Vec::new();
    let mut buses = Vec::new();
    for b in rig.buses.iter().filter(|b| b.backend == Backend::Virtual) {
        let Some(port) = bench.bus_port(&b.id) else {
            continue;
        };
        match SlcanPty::open(port.clone()) {
            Ok(pty) => {
                buses.push(json!({
                    "id": b.id,
                    "backend": "slcan",
                    "port": pty.path(),
                    "endpoint": format!("slcan:{}", pty.path().display()),
                    "bitrate": b.bitrate,
                    "dut": b.dut,
                }));
                adapters.push(pty);
            }
            Err(e) => {
                eprintln!(
                    "error: cannot open a pseudo-terminal for CAN bus `{}`: {e}; check that \
                     /dev/ptmx is available (a container may need it mounted)",
                    b.id
                );
                return EXIT_ABORT;
            }
        }
    }

    if a.json {
        let doc = json!({
            "station": rig.station,
            "firmware": {
                "id": bench.image.id,
                "version": bench.image.version,
                "sha256": bench.image.sha256,
            },
            "chemistry": chemistry.to_string(),
            "instruments": instruments,
            "buses": buses,
            "modbus": bench.modbus_address().map(|a| json!({
                "id": "bms",
                "protocol": "modbus-tcp",
                "address": a,
                "unit": 1,
                "map": "fixtures/modbus/sim-bms-inverter.yaml",
            })),
        });
        println!("{doc}");
    } else {
        for i in &instruments {
            println!(
                "instrument {} {}",
                i["id"].as_str().unwrap_or(""),
                i["address"].as_str().unwrap_or("")
            );
        }
        for b in &buses {
            println!(
                "bus {} {}",
                b["id"].as_str().unwrap_or(""),
                b["endpoint"].as_str().unwrap_or("")
            );
        }
        if let Some(a) = bench.modbus_address() {
            println!("modbus bms {a}");
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    eprintln!(
        "hilrig sim: {} serving firmware {} {} on a {} pack; Ctrl-C to stop",
        rig.station, bench.image.id, bench.image.version, chemistry
    );

    wait_for_stop().await;
    eprintln!("hilrig sim: stopping");
    drop(adapters);
    drop(bench);
    0
}

/// Resolve on Ctrl-C or SIGTERM.
async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                eprintln!("warning: cannot watch for SIGTERM ({e}); stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
