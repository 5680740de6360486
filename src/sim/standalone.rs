//! The simulated bench as its own process (`hilrig sim serve`): SCPI instruments on
//! loopback TCP, each CAN bus as an SLCAN adapter on a pseudo-terminal; the endpoints are
//! printed (lines, or one JSON object) and the bench runs until Ctrl-C or SIGTERM.

use serde_json::json;

use crate::exit::Failure;
use crate::plan::load_rig;
use crate::rig::choice::RigChoice;
use crate::rig::Backend;
use crate::sim::cell::Chemistry;
use crate::sim::plant::PackConfig;
use crate::sim::slcan_pty::SlcanPty;
use crate::sim::{Bench, BenchOptions, ScpiExposure};

/// How `hilrig sim serve` sets up the pack and prints the endpoints.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// Cell chemistry, `LFP` or `NMC` (default: the rig's, else LFP).
    pub chemistry: Option<String>,
    /// Initial state of charge of every cell in percent (default: the rig's, else 50).
    pub soc: Option<f64>,
    /// The endpoints as one JSON object instead of one per line.
    pub json: bool,
}

/// Serve the simulated bench of the chosen rig until Ctrl-C or SIGTERM.
pub async fn serve(choice: RigChoice, o: ServeOptions) -> Result<i32, Failure> {
    let rig_path = choice.path.clone();
    let rig = match load_rig(&rig_path) {
        Ok(r) => r.value,
        Err(e) => return Err(Failure::plain(format!("{choice}: {e}"))),
    };
    if rig.simulation.is_none() {
        return Err(Failure::abort(format!(
            "{} is not a simulated rig (it has no `simulation:` section); give a rig such as \
             rig/sim.yaml",
            rig_path.display()
        )));
    }
    let chemistry: Option<Chemistry> = o
        .chemistry
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| Failure::abort(format!("--chemistry: {e}")))?;
    if let Some(soc) = o.soc.filter(|soc| !(0.0..=100.0).contains(soc)) {
        return Err(Failure::abort(format!(
            "--soc {soc} is not a percentage from 0 to 100"
        )));
    }
    let image = match crate::sim::firmware::FirmwareImage::load(
        &rig.simulation
            .as_ref()
            .map(|s| s.firmware.clone())
            .unwrap_or_default(),
    ) {
        Ok(i) => i,
        Err(e) => return Err(Failure::plain(e)),
    };
    let mut pack = PackConfig::of_rig(&rig, image.config.cells as usize);
    if let Some(c) = chemistry {
        pack = PackConfig {
            chemistry: c,
            cell: c.typical_cell(),
            ..pack
        };
    }
    if let Some(soc) = o.soc {
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
            return Err(Failure::abort(format!(
                "cannot start the simulated bench: {e}"
            )))
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
                return Err(Failure::abort(format!(
                    "cannot open a pseudo-terminal for CAN bus `{}`: {e}; check that \
                     /dev/ptmx is available (a container may need it mounted)",
                    b.id
                )));
            }
        }
    }

    let mut out = String::new();
    if o.json {
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
        out = format!("{doc}\n");
    } else {
        for i in &instruments {
            out.push_str(&format!(
                "instrument {} {}\n",
                i["id"].as_str().unwrap_or(""),
                i["address"].as_str().unwrap_or("")
            ));
        }
        for b in &buses {
            out.push_str(&format!(
                "bus {} {}\n",
                b["id"].as_str().unwrap_or(""),
                b["endpoint"].as_str().unwrap_or("")
            ));
        }
        if let Some(a) = bench.modbus_address() {
            out.push_str(&format!("modbus bms {a}\n"));
        }
    }
    // A reader that has gone away (a closed pipe) must not stop the bench it asked for.
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout
            .write_all(out.as_bytes())
            .and_then(|_| stdout.flush());
    }
    eprintln!(
        "hilrig sim: {} serving firmware {} {} on a {} pack; Ctrl-C to stop",
        rig.station, bench.image.id, bench.image.version, chemistry
    );

    wait_for_stop().await;
    eprintln!("hilrig sim: stopping");
    drop(adapters);
    drop(bench);
    Ok(0)
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
