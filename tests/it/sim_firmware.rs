//! The firmware images for the simulated target: the manifest matches the files, each
//! seeded-defect image differs from the good one in exactly its defect, and the simulated
//! BMS reports the version and image hash it runs.

use crate::common;

use std::time::Duration;

use common::*;
use hilrig::can::Bus;
use hilrig::sim::firmware::{FirmwareImage, Manifest};
use hilrig::sim::{Bench, BenchOptions, ScpiExposure};

fn manifest_path() -> std::path::PathBuf {
    root().join("firmware-under-test/manifest.yaml")
}

#[test]
fn the_manifest_hashes_match_the_files_and_list_every_image() {
    let path = manifest_path();
    let manifest = Manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let problems = manifest.verify(&path);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let mut listed: Vec<String> = manifest.images.iter().map(|e| e.file.clone()).collect();
    listed.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("firmware-under-test"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "manifest.yaml")
        .collect();
    on_disk.sort();
    assert_eq!(listed, on_disk, "every image file is in the manifest");
    for e in &manifest.images {
        assert_eq!(
            (e.target.as_str(), e.format.as_str()),
            ("sim-bms", "sim-yaml")
        );
    }
    let defects = manifest
        .images
        .iter()
        .filter(|e| e.defect.is_some())
        .count();
    assert!(defects >= 7, "{defects} seeded-defect images");
}

#[test]
fn a_tampered_image_is_reported_with_what_to_do() {
    let dir = temp_dir("manifest-tamper");
    let src = root().join("firmware-under-test");
    std::fs::copy(src.join("manifest.yaml"), dir.join("manifest.yaml")).unwrap();
    for e in Manifest::load(&manifest_path()).unwrap().images {
        std::fs::copy(src.join(&e.file), dir.join(&e.file)).unwrap();
    }
    let victim = dir.join("sim-bms-1.0.0.yaml");
    let text = std::fs::read_to_string(&victim)
        .unwrap()
        .replace("delay: 2 s}", "delay: 2.5 s}");
    std::fs::write(&victim, text).unwrap();
    let path = dir.join("manifest.yaml");
    let problems = Manifest::load(&path).unwrap().verify(&path);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("sim-bms-1.0.0.yaml") && problems[0].contains("update the manifest"),
        "{}",
        problems[0]
    );
}

#[test]
fn each_seeded_defect_image_differs_from_the_good_one_only_in_its_defect() {
    let dir = root().join("firmware-under-test");
    let good = FirmwareImage::load(&dir.join("sim-bms-1.0.0.yaml"))
        .unwrap()
        .config;
    let image = |name: &str| {
        FirmwareImage::load(&dir.join(format!("sim-bms-1.0.0-defect-{name}.yaml")))
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    };
    let mut want = good;
    want.ov.delay_ms = 6000;
    assert_eq!(image("ov-delay"), want);
    let mut want = good;
    want.ov.trip = 3720;
    assert_eq!(image("ov-threshold"), want);
    for (name, set) in [
        (
            "no-hysteresis",
            (|d| d.no_hysteresis = true) as fn(&mut sim_bms::Defects),
        ),
        ("cell-index", |d| d.wrong_cell_index = true),
        ("ot-charge", |d| d.ignore_ot_in_charge = true),
        ("uv-latch", |d| d.uv_latch_never_releases = true),
        ("no-warning", |d| d.no_warning_output = true),
        ("balance-wrong-cell", |d| d.balance.wrong_cell = true),
        ("balance-never", |d| d.balance.never = true),
    ] {
        let mut want = good;
        set(&mut want.defects);
        assert_eq!(image(name), want, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_bms_reports_its_version_and_the_first_bytes_of_the_image_hash() {
    let rig = sim_rig(Some("sim-bms-1.0.0-defect-cell-index.yaml"));
    let options = BenchOptions {
        scpi: ScpiExposure::InMemory,
        ..Default::default()
    };
    let bench = Bench::start_with(&rig, &root().join("rig/sim.yaml"), &options)
        .await
        .unwrap();
    let mut rx = bench.bus_port("bms").unwrap().subscribe();
    let frame = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let r = rx.recv().await.unwrap();
            if r.frame.id == 304 {
                return r.frame;
            }
        }
    })
    .await
    .expect("a BMS_Version frame within 5 s");
    assert_eq!(&frame.data[..3], &[1, 0, 0]);
    let sha = &bench.image.sha256;
    let first: Vec<u8> = (0..4)
        .map(|i| u8::from_str_radix(&sha[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert_eq!(&frame.data[4..8], first.as_slice(), "sha256 {sha}");
}
