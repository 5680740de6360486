//! Flashing the simulated target end to end (on a paused clock): the manifest check, the
//! simulated BMS restarted with the image, the CAN readback of version and image hash, and
//! the image recorded in the run's results; and each way the proof fails.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hilrig::dbc::Dbc;
use hilrig::flash::manifest::{hash_prefix, prefix_hex};
use hilrig::flash::{
    flash, flash_declared, flash_on_rig, read_running, verify_running, FlashError, FlashEvent,
    FlashOptions, Manifest, Phase, ProgressSink,
};
use hilrig::plan::load_plan;
use hilrig::report::FirmwareInfo;
use hilrig::sim::flasher::SimFlasher;
use hilrig::sim::{Bench, BenchOptions, ScpiExposure};
use tokio_util::sync::CancellationToken;

fn manifest() -> Manifest {
    Manifest::load(&root().join("firmware-under-test/manifest.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn dbc() -> Dbc {
    Dbc::from_file(&root().join("fixtures/dbc/sim-bms.dbc")).unwrap()
}

async fn start() -> (hilrig::rig::Rig, Bench) {
    let rig = sim_rig(None);
    let options = BenchOptions {
        scpi: ScpiExposure::InMemory,
        ..Default::default()
    };
    let bench = Bench::start_with(&rig, &root().join("rig/sim.yaml"), &options)
        .await
        .unwrap();
    (rig, bench)
}

fn recorder() -> (ProgressSink, Arc<Mutex<Vec<FlashEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = events.clone();
    (Arc::new(move |ev| e.lock().unwrap().push(ev)), events)
}

#[tokio::test(start_paused = true)]
async fn flashing_the_simulated_bms_runs_the_image_and_the_readback_proves_it() {
    let (rig, mut bench) = start().await;
    let m = manifest();
    let image = m.resolve("sim-bms-1.0.0-defect-ov-threshold").unwrap();
    let resolved = bench.resolve(&rig);
    let (sink, events) = recorder();
    let info = flash_on_rig(
        &resolved,
        Some(bench.flasher()),
        &image,
        &dbc(),
        None,
        &FlashOptions::default(),
        &sink,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let entry = m.image("sim-bms-1.0.0-defect-ov-threshold").unwrap();
    assert_eq!(
        (
            info.id.as_str(),
            info.version.as_str(),
            info.sha256.as_str()
        ),
        (entry.id.as_str(), "1.0.0", entry.sha256.as_str())
    );
    assert_eq!(bench.image.id, "sim-bms-1.0.0-defect-ov-threshold");
    assert_eq!(bench.image.config.ov.trip, 3720, "the defect image runs");

    let events = events.lock().unwrap().clone();
    assert!(matches!(events.first(), Some(FlashEvent::Attached { .. })));
    for phase in [Phase::Program, Phase::Verify] {
        let at = |want: &FlashEvent| events.iter().position(|e| e == want);
        let (s, f) = (
            at(&FlashEvent::Started(phase)),
            at(&FlashEvent::Finished(phase)),
        );
        assert!(s.is_some() && s < f, "{phase:?}: {events:?}");
    }
    assert_eq!(events.last(), Some(&FlashEvent::Running));

    // An independent look at the bus agrees.
    let bus = bench.bus_port("bms").unwrap().clone();
    let running = read_running(&bus, &dbc(), "BMS_Version", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(running.version, "1.0.0");
    assert_eq!(running.image_hash, hash_prefix(&entry.sha256));
}

#[tokio::test(start_paused = true)]
async fn a_plan_that_declares_firmware_records_what_was_flashed_in_its_results() {
    let (rig, mut bench) = start().await;
    let dir = temp_dir("flash-plan");
    let plan_path = dir.join("plan.yaml");
    std::fs::write(
        &plan_path,
        format!(
            "plan: firmware-declared\ntitle: The declared image runs\n\
             firmware: sim-bms-1.0.0-defect-no-warning\n\
             dut: {}\nlimits: pas63100\nsteps:\n  - declaration:\n      \
             name: declared energy within the cap for its location\n      judge: energy_cap\n",
            root().join("fixtures/sim-bms-16s-lfp.yaml").display()
        ),
    )
    .unwrap();
    let plan = Arc::new(load_plan(&plan_path, Some(&rig)).unwrap_or_else(|e| panic!("{e:?}")));
    let declared = plan.plan.value.firmware.clone().unwrap();
    let resolved = bench.resolve(&rig);
    let info = flash_declared(
        &declared,
        &root().join("firmware-under-test/manifest.yaml"),
        &resolved,
        Some(bench.flasher()),
        &plan.dbc,
        plan.fixture.value.version_message.as_deref(),
        &hilrig::flash::no_progress(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut opts = options(&dir.join("run"), CancellationToken::new());
    opts.firmware = Some(info.clone());
    let results = hilrig::run::execute(plan, &resolved, opts).await.unwrap();
    let fw = results.firmware.as_ref().unwrap();
    assert_eq!(fw.id, "sim-bms-1.0.0-defect-no-warning");
    let on_disk = std::fs::read_to_string(dir.join("run/results.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&on_disk).unwrap();
    assert_eq!(json["firmware"]["id"], "sim-bms-1.0.0-defect-no-warning");
    assert_eq!(json["firmware"]["version"], "1.0.0");
    assert_eq!(
        json["firmware"]["sha256"],
        manifest()
            .image("sim-bms-1.0.0-defect-no-warning")
            .unwrap()
            .sha256
    );
}

#[tokio::test(start_paused = true)]
async fn a_bms_running_something_else_fails_the_readback_naming_both() {
    let (_rig, bench) = start().await;
    let bus = bench.bus_port("bms").unwrap().clone();
    let other = manifest()
        .image("sim-bms-1.0.0-defect-uv-latch")
        .unwrap()
        .sha256
        .clone();
    let expected = FirmwareInfo {
        id: "sim-bms-1.0.0-defect-uv-latch".into(),
        version: "1.0.0".into(),
        sha256: other.clone(),
    };
    let e = verify_running(&bus, &dbc(), &expected, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, FlashError::ReadbackMismatch { .. }), "{e}");
    let text = e.to_string();
    let running = prefix_hex(hash_prefix(&bench.image.sha256).unwrap());
    assert!(
        text.contains(&other[..8]) && text.contains(&running) && text.contains("No test was run"),
        "{text}"
    );
    let wrong_version = FirmwareInfo {
        version: "1.0.1".into(),
        sha256: bench.image.sha256.clone(),
        ..expected
    };
    let e = verify_running(&bus, &dbc(), &wrong_version, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("version 1.0.1") && e.contains("version 1.0.0"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_bms_or_a_dbc_without_the_version_message_is_explained() {
    let (_rig, bench) = start().await;
    bench.halt_firmware();
    let bus = bench.bus_port("bms").unwrap().clone();
    let info = FirmwareInfo {
        id: bench.image.id.clone(),
        version: bench.image.version.clone(),
        sha256: bench.image.sha256.clone(),
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let e = verify_running(&bus, &dbc(), &info, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, FlashError::NoReadback { .. }), "{e}");
    let bare = Dbc::parse(
        "VERSION \"\"\n\nBU_: BMS\n\nBO_ 256 BMS_Status: 8 BMS\n SG_ State : 0|8@1+ (1,0) [0|255] \"\" Vector__XXX\n",
        "bare.dbc",
    )
    .unwrap();
    let e = verify_running(&bus, &bare, &info, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("BMS_Version") && e.contains("version_message"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_simulated_target_refuses_images_for_a_real_chip() {
    let (_rig, mut bench) = start().await;
    let dir = temp_dir("flash-sim-real");
    let bytes = [1u8, 2, 3, 4];
    std::fs::write(dir.join("app.bin"), bytes).unwrap();
    std::fs::write(
        dir.join("manifest.yaml"),
        format!(
            "images:\n  - id: app\n    version: 1.0.0\n    chip: STM32G474RETx\n    format: bin\n    \
             file: app.bin\n    sha256: {}\n",
            hilrig::flash::manifest::sha256_hex(&bytes)
        ),
    )
    .unwrap();
    let image = Manifest::load(&dir.join("manifest.yaml"))
        .unwrap()
        .resolve("app")
        .unwrap();
    let mut flasher = SimFlasher::new(&mut bench);
    let e = flash(
        &mut flasher,
        &image,
        &FlashOptions::default(),
        &hilrig::flash::no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FlashError::WrongTarget { .. }), "{e}");
    assert_eq!(bench.image.id, "sim-bms-1.0.0", "nothing was loaded");
}

#[test]
fn a_manipulated_image_is_refused_naming_the_expected_and_actual_hashes() {
    let dir = temp_dir("flash-tamper");
    let src = root().join("firmware-under-test");
    std::fs::copy(src.join("manifest.yaml"), dir.join("manifest.yaml")).unwrap();
    std::fs::copy(
        src.join("sim-bms-1.0.0.yaml"),
        dir.join("sim-bms-1.0.0.yaml"),
    )
    .unwrap();
    let victim = dir.join("sim-bms-1.0.0.yaml");
    let text = std::fs::read_to_string(&victim)
        .unwrap()
        .replace("delay: 2 s}", "delay: 2.5 s}");
    std::fs::write(&victim, &text).unwrap();
    let m = Manifest::load(&dir.join("manifest.yaml")).unwrap();
    let recorded = m.image("sim-bms-1.0.0").unwrap().sha256.clone();
    let actual = hilrig::flash::manifest::sha256_hex(text.as_bytes());
    for how in ["sim-bms-1.0.0", victim.to_str().unwrap()] {
        let e = m.resolve(how).unwrap_err();
        let FlashError::HashMismatch {
            expected,
            actual: got,
            ..
        } = &e
        else {
            panic!("{how}: {e}")
        };
        assert_eq!((expected, got), (&recorded, &actual));
        let msg = e.to_string();
        assert!(
            msg.contains("refusing to flash") && msg.contains(&recorded) && msg.contains(&actual),
            "{msg}"
        );
    }
    // A stray copy elsewhere is not in the manifest at all.
    let stray = temp_dir("flash-stray").join("mine.yaml");
    std::fs::write(&stray, &text).unwrap();
    let e = m.resolve(stray.to_str().unwrap()).unwrap_err().to_string();
    assert!(e.contains("not listed") && e.contains(&actual), "{e}");
    let e = m.resolve("no-such-image").unwrap_err().to_string();
    assert!(
        e.contains("known images") && e.contains("sim-bms-1.0.0"),
        "{e}"
    );
}
