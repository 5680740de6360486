//! `hilrig flash [--rig R] [--image ID|PATH] [--manifest M] [--fixture F] [--dry-run]
//! [--no-verify] [--json]`

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::dbc::Dbc;
use crate::exit::Failure;
use crate::flash::console::Display;
use crate::flash::manifest::{hash_prefix, prefix_hex};
use crate::flash::{
    flash_on_rig, FlashError, FlashOptions, Manifest, ProgressSink, DEFAULT_MANIFEST,
};
use crate::plan::fixture::Fixture;
use crate::plan::load::{read_yaml, relative};
use crate::plan::load_rig;
use crate::report::FirmwareInfo;
use crate::run::lock::BenchLock;
use crate::sim::SimBenchProvider;

/// Arguments of `hilrig flash`.
#[derive(Debug, Args)]
pub struct FlashArgs {
    /// Rig file (default: rig/sim.yaml, the simulated bench).
    #[arg(long)]
    pub rig: Option<PathBuf>,
    /// Image id from the manifest, or the path of an image file it lists (default on a
    /// simulated rig: the image the rig names).
    #[arg(long)]
    pub image: Option<String>,
    /// The firmware manifest.
    #[arg(long, default_value = DEFAULT_MANIFEST)]
    pub manifest: PathBuf,
    /// DUT fixture whose DBC (and `version_message`) reads back what the BMS runs.
    #[arg(long, default_value = "fixtures/sim-bms-16s-lfp.yaml")]
    pub fixture: PathBuf,
    /// Attach, parse and lay out the image, but write nothing (no reset, no readback).
    #[arg(long)]
    pub dry_run: bool,
    /// Do not read the flash back after programming (the CAN readback still runs).
    #[arg(long)]
    pub no_verify: bool,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Flash the image and return the exit code: 0 flashed and proven, 2 otherwise.
pub async fn flash(a: FlashArgs) -> Result<i32, Failure> {
    let progress = Display::sink(a.json);
    match run(&a, &progress).await {
        Ok((info, target)) => {
            let hash = hash_prefix(&info.sha256)
                .map(prefix_hex)
                .unwrap_or_default();
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "image": info.id,
                        "version": info.version,
                        "sha256": info.sha256,
                        "target": target,
                        "dry_run": a.dry_run,
                        "readback": if a.dry_run { "skipped" } else { "matches" },
                    })
                );
            } else if a.dry_run {
                println!(
                    "dry run: image {} {} sha256:{} would be flashed on {target}; nothing written",
                    info.id, info.version, info.sha256
                );
            } else {
                println!(
                    "flashed {} {} sha256:{} on {target}; the BMS reports version {} and image \
                     hash {hash}: it runs what was flashed",
                    info.id, info.version, info.sha256, info.version
                );
            }
            Ok(0)
        }
        Err(e) => {
            if a.json {
                println!("{}", serde_json::json!({ "error": e.to_string() }));
            }
            Err(Failure::abort(e))
        }
    }
}

async fn run(a: &FlashArgs, progress: &ProgressSink) -> Result<(FirmwareInfo, String), FlashError> {
    let rig_path = crate::rig::choice::choose_from_env(a.rig.clone())?.path;
    let rig = load_rig(&rig_path)?.value;
    let manifest = Manifest::load(&a.manifest)?;
    // One user of a bench at a time: never flash under a running plan.
    let what = format!("hilrig flash {}", a.image.as_deref().unwrap_or(""));
    let _lock = BenchLock::acquire(
        &rig.station,
        rig.simulation.is_some(),
        what.trim(),
        Duration::ZERO,
    )
    .await
    .map_err(|e| FlashError::BenchBusy(e.to_string()))?;
    let wanted = match (&a.image, &rig.simulation) {
        (Some(i), _) => i.clone(),
        (None, Some(sim)) => sim.firmware.display().to_string(),
        (None, None) => {
            return Err(FlashError::NoFlasher(format!(
                "name the image to flash with --image ID (images in {}: {})",
                manifest.path.display(),
                manifest
                    .images
                    .iter()
                    .map(|e| e.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    let image = manifest.resolve(&wanted)?;
    let fixture = read_yaml::<Fixture>(&a.fixture)?.value;
    let dbc_path = relative(&a.fixture, &fixture.dbc);
    let dbc = Dbc::from_file(&dbc_path)
        .map_err(|e| FlashError::Input(crate::plan::InputError::file(&dbc_path, e.to_string())))?;
    let options = FlashOptions {
        verify: !a.no_verify,
        dry_run: a.dry_run,
        chip_erase: false,
    };
    let message = fixture.version_message.as_deref();
    let bench = SimBenchProvider::start_bench(&rig, &rig_path, true)
        .await
        .map_err(|e| FlashError::Sim(format!("cannot start the simulated bench: {e}")))?;
    match bench {
        Some(mut bench) => {
            let resolved = bench.resolve(&rig);
            let info = flash_on_rig(
                &resolved,
                Some(bench.flasher()),
                &image,
                &dbc,
                message,
                &options,
                progress,
            )
            .await?;
            Ok((info, format!("the simulated BMS of {}", rig.station)))
        }
        None => {
            let info = flash_on_rig(&rig, None, &image, &dbc, message, &options, progress).await?;
            Ok((info, rig.station.clone()))
        }
    }
}
