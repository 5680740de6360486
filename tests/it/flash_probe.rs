//! The probe-rs backend without hardware: probe-rs's FakeProbe (a mocked Cortex-M core) for
//! attach, ELF / Intel HEX / BIN parsing into the chip's flash layout, a dry run through the
//! Flasher trait with its events, progress-event mapping, error advice and chip suggestions.
//! Real programming needs a probe and a board.

use crate::common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hilrig::flash::probe::{
    advice, chip_for, find_target, load_image, map_progress, plan_layout, ProbeRsFlasher,
};
use hilrig::flash::{
    flash, FlashError, FlashEvent, FlashOptions, Manifest, Phase, ProgressSink, VerifiedImage,
};
use hilrig::rig::ProbeConfig;
use probe_rs::flashing::{ProgressEvent, ProgressOperation};
use probe_rs::integration::FakeProbe;
use probe_rs::probe::{DebugProbeError, ProbeCreationError};
use probe_rs::{Permissions, Session};

/// nRF51822: flash at 0 with 1 KiB sectors; probe-rs attaches to it through FakeProbe.
const CHIP: &str = "nRF51822_xxAC";

fn session() -> Session {
    FakeProbe::with_mocked_core()
        .into_probe()
        .attach(CHIP, Permissions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn sha(bytes: &[u8]) -> String {
    hilrig::flash::manifest::sha256_hex(bytes)
}

/// Write `files` and a manifest listing them (id, format, file, extra YAML) into `dir`.
fn manifest(dir: &Path, files: &[(&str, &str, &str, &[u8], &str)]) -> Manifest {
    let mut yaml = String::from("images:\n");
    for (id, format, file, bytes, extra) in files {
        std::fs::write(dir.join(file), bytes).unwrap();
        yaml.push_str(&format!(
            "  - id: {id}\n    version: 2.4.1\n    chip: {CHIP}\n    format: {format}\n    \
             file: {file}\n    sha256: {}\n{extra}",
            sha(bytes)
        ));
    }
    std::fs::write(dir.join("manifest.yaml"), yaml).unwrap();
    Manifest::load(&dir.join("manifest.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// Intel HEX of `data` at `addr`, 16 bytes a record.
fn intel_hex(addr: u32, data: &[u8]) -> Vec<u8> {
    let record = |kind: u8, offset: u16, bytes: &[u8]| {
        let mut r = vec![bytes.len() as u8, (offset >> 8) as u8, offset as u8, kind];
        r.extend_from_slice(bytes);
        let sum = r.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        r.push(0u8.wrapping_sub(sum));
        let hex: String = r.iter().map(|b| format!("{b:02X}")).collect();
        format!(":{hex}\n")
    };
    let mut out = record(4, 0, &((addr >> 16) as u16).to_be_bytes());
    for (i, chunk) in data.chunks(16).enumerate() {
        out.push_str(&record(
            0,
            (addr as u16).wrapping_add((i * 16) as u16),
            chunk,
        ));
    }
    out.push_str(":00000001FF\n");
    out.into_bytes()
}

/// A minimal 32-bit little-endian ARM ELF: one PT_LOAD segment holding `.text` at `addr`.
fn elf(addr: u32, text: &[u8]) -> Vec<u8> {
    let data_off = 128u32;
    let strtab = b"\0.text\0.shstrtab\0";
    let str_off = data_off + text.len() as u32;
    let sh_off = (str_off + strtab.len() as u32 + 3) & !3;
    let mut f = Vec::new();
    let u16le = |f: &mut Vec<u8>, v: u16| f.extend_from_slice(&v.to_le_bytes());
    let u32le = |f: &mut Vec<u8>, v: u32| f.extend_from_slice(&v.to_le_bytes());
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    u16le(&mut f, 2); // ET_EXEC
    u16le(&mut f, 40); // EM_ARM
    u32le(&mut f, 1);
    u32le(&mut f, addr); // entry
    u32le(&mut f, 52); // phoff
    u32le(&mut f, sh_off);
    u32le(&mut f, 0x0500_0000);
    u16le(&mut f, 52);
    u16le(&mut f, 32);
    u16le(&mut f, 1);
    u16le(&mut f, 40);
    u16le(&mut f, 3);
    u16le(&mut f, 2);
    // Program header: PT_LOAD.
    for v in [
        1,
        data_off,
        addr,
        addr,
        text.len() as u32,
        text.len() as u32,
        5,
        4,
    ] {
        u32le(&mut f, v);
    }
    f.resize(data_off as usize, 0);
    f.extend_from_slice(text);
    f.extend_from_slice(strtab);
    f.resize(sh_off as usize, 0);
    f.extend_from_slice(&[0; 40]);
    for v in [1, 1, 6, addr, data_off, text.len() as u32, 0, 0, 4, 0] {
        u32le(&mut f, v);
    }
    for v in [7, 3, 0, 0, str_off, strtab.len() as u32, 0, 0, 1, 0] {
        u32le(&mut f, v);
    }
    f
}

fn image(m: &Manifest, id: &str) -> VerifiedImage {
    m.resolve(id).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn elf_hex_and_bin_images_parse_into_the_chips_flash_layout() {
    let dir = common::temp_dir("flash-layout");
    let m = manifest(
        &dir,
        &[
            ("app-bin", "bin", "app.bin", &payload(5000), ""),
            (
                "app-bin-at",
                "bin",
                "app-at.bin",
                &payload(100),
                "    base_address: 0x0000_2000\n",
            ),
            (
                "app-hex",
                "hex",
                "app.hex",
                &intel_hex(0x1000, &payload(3000)),
                "",
            ),
            ("app-elf", "elf", "app.elf", &elf(0, &payload(2049)), ""),
        ],
    );
    let mut s = session();
    // (id, start, end, bytes, sectors, erase range)
    let want = [
        ("app-bin", 0, 5000, 5000, 5, (0, 5120)),
        ("app-bin-at", 0x2000, 0x2064, 100, 1, (0x2000, 0x2400)),
        ("app-hex", 0x1000, 0x1bb8, 3000, 3, (0x1000, 0x1c00)),
        ("app-elf", 0, 2049, 2049, 3, (0, 3072)),
    ];
    for (id, start, end, bytes, sectors, erase) in want {
        let img = image(&m, id);
        let loader = load_image(&mut s, &img).unwrap_or_else(|e| panic!("{id}: {e}"));
        let data: Vec<u8> = loader.data().flat_map(|(_, d)| d.to_vec()).collect();
        let expected = match id {
            "app-hex" => payload(3000),
            "app-elf" => payload(2049),
            "app-bin" => payload(5000),
            _ => payload(100),
        };
        assert_eq!(data, expected, "{id}: the parsed bytes are the image's");
        let plan = plan_layout(s.target(), &loader).unwrap();
        assert_eq!(plan.regions.len(), 1, "{id}: {plan:?}");
        let r = &plan.regions[0];
        assert_eq!(
            (
                r.start,
                r.end,
                r.bytes,
                r.sectors,
                (r.erase_start, r.erase_end)
            ),
            (start, end, bytes, sectors, erase),
            "{id}: {r:?}"
        );
    }
}

#[test]
fn an_image_outside_the_chips_memory_is_refused_with_the_chips_regions() {
    let dir = common::temp_dir("flash-outside");
    let m = manifest(
        &dir,
        &[(
            "far",
            "bin",
            "far.bin",
            &payload(64),
            "    base_address: 0x9000_0000\n",
        )],
    );
    let mut s = session();
    let err = match load_image(&mut s, &image(&m, "far")) {
        Err(e) => e.to_string(),
        Ok(loader) => plan_layout(s.target(), &loader).unwrap_err(),
    };
    assert!(
        err.contains("0x90000000") && (err.contains("outside") || err.contains("No flash")),
        "{err}"
    );
    // A file that is not what its format says is a format error naming the image.
    let m = manifest(&dir, &[("junk", "elf", "junk.elf", b"not an elf", "")]);
    let err = load_image(&mut s, &image(&m, "junk")).err().unwrap();
    assert!(matches!(err, FlashError::Format { .. }), "{err}");
    assert!(err.to_string().contains("`junk` as elf"), "{err}");
}

fn recorder() -> (ProgressSink, Arc<Mutex<Vec<FlashEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = events.clone();
    (Arc::new(move |ev| e.lock().unwrap().push(ev)), events)
}

#[tokio::test]
async fn a_dry_run_through_the_flasher_attaches_parses_and_lays_out() {
    let dir = common::temp_dir("flash-dry");
    let m = manifest(&dir, &[("app", "bin", "app.bin", &payload(5000), "")]);
    let img = image(&m, "app");
    let mut flasher = ProbeRsFlasher::with_probe(
        FakeProbe::with_mocked_core().into_probe(),
        ProbeConfig::default(),
        CHIP,
    )
    .unwrap();
    let (sink, events) = recorder();
    let options = FlashOptions {
        dry_run: true,
        ..Default::default()
    };
    let info = flash(&mut flasher, &img, &options, &sink)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.id, "app");
    assert_eq!(info.sha256, sha(&payload(5000)));
    let events = events.lock().unwrap().clone();
    assert!(
        matches!(&events[0], FlashEvent::Attached { chip, .. } if chip == CHIP),
        "{events:?}"
    );
    let FlashEvent::Layout(plan) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!((plan.bytes(), plan.sectors()), (5000, 5));
    assert_eq!(events.len(), 2, "a dry run writes nothing: {events:?}");
}

#[test]
fn probe_rs_progress_events_become_flash_events() {
    use ProgressOperation as Op;
    let cases = [
        (
            ProgressEvent::AddProgressBar {
                operation: Op::Erase,
                total: Some(4096),
            },
            Some(FlashEvent::Planned {
                phase: Phase::Erase,
                total: Some(4096),
            }),
        ),
        (
            ProgressEvent::Started(Op::Program),
            Some(FlashEvent::Started(Phase::Program)),
        ),
        (
            ProgressEvent::Progress {
                operation: Op::Program,
                size: 256,
                time: Duration::from_millis(3),
            },
            Some(FlashEvent::Progress {
                phase: Phase::Program,
                bytes: 256,
            }),
        ),
        (
            ProgressEvent::Finished(Op::Verify),
            Some(FlashEvent::Finished(Phase::Verify)),
        ),
        (
            ProgressEvent::Failed(Op::Fill),
            Some(FlashEvent::Failed(Phase::Fill)),
        ),
        (
            ProgressEvent::DiagnosticMessage {
                message: "hi".into(),
            },
            Some(FlashEvent::Message("hi".into())),
        ),
        (
            ProgressEvent::FlashLayoutReady {
                flash_layout: vec![],
            },
            None,
        ),
    ];
    for (event, want) in cases {
        let text = format!("{event:?}");
        assert_eq!(map_progress(event), want, "{text}");
    }
}

#[test]
fn probe_errors_become_advice() {
    let no_probe = probe_rs::Error::Probe(DebugProbeError::ProbeCouldNotBeCreated(
        ProbeCreationError::NotFound,
    ));
    assert!(matches!(
        advice(&no_probe, "p", CHIP, "app"),
        FlashError::NoProbe
    ));
    let denied = probe_rs::Error::Probe(DebugProbeError::Usb(std::io::Error::from(
        std::io::ErrorKind::PermissionDenied,
    )));
    let e = advice(&denied, "STLink V3 (0483:374e)", CHIP, "app");
    assert!(matches!(e, FlashError::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("udev"), "{e}");
    for silent in [
        probe_rs::Error::Timeout,
        probe_rs::Error::Probe(DebugProbeError::Timeout),
        probe_rs::Error::Probe(DebugProbeError::TargetNotFound),
    ] {
        let e = advice(&silent, "p", CHIP, "app");
        assert!(matches!(e, FlashError::ChipNotResponding { .. }), "{e}");
        assert!(e.to_string().contains("powered"), "{e}");
    }
    let verify = probe_rs::flashing::FlashError::Verify;
    let e = advice(&verify, "p", CHIP, "app");
    assert!(matches!(e, FlashError::VerifyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("`app`"), "{e}");
    let other = probe_rs::Error::Other("the cable smells".into());
    assert!(matches!(
        advice(&other, "p", CHIP, "app"),
        FlashError::Probe(m) if m.contains("smells")
    ));
}

#[test]
fn unknown_chips_get_suggestions_and_rig_and_manifest_must_agree() {
    assert!(find_target(CHIP).is_ok());
    assert!(
        find_target("STM32G474RETx").is_ok(),
        "the lab example's chip"
    );
    let e = find_target("nRF51823_xxAC").unwrap_err();
    let FlashError::UnknownChip { suggestions, .. } = &e else {
        panic!("{e}")
    };
    assert!(suggestions.iter().any(|s| s == CHIP), "{suggestions:?}");
    assert!(e.to_string().contains("did you mean"), "{e}");
    let e = find_target("STM32G474").unwrap_err().to_string();
    assert!(e.contains("STM32G474"), "several matches are listed: {e}");

    let dir = common::temp_dir("flash-chip");
    let m = manifest(&dir, &[("app", "bin", "app.bin", &payload(16), "")]);
    let img = image(&m, "app");
    let rig = |chip: Option<&str>| ProbeConfig {
        chip: chip.map(str::to_string),
        ..Default::default()
    };
    assert_eq!(chip_for(None, &img).unwrap(), CHIP);
    assert_eq!(chip_for(Some(&rig(Some(CHIP))), &img).unwrap(), CHIP);
    let e = chip_for(Some(&rig(Some("STM32G474RETx"))), &img).unwrap_err();
    assert!(matches!(e, FlashError::ChipConflict { .. }), "{e}");
    // A simulated image is refused by the probe backend.
    let sim = Manifest::load(&common::root().join("firmware-under-test/manifest.yaml"))
        .unwrap()
        .resolve("sim-bms-1.0.0")
        .unwrap();
    let e = ProbeRsFlasher::new(None, &sim).err().unwrap();
    assert!(matches!(e, FlashError::WrongTarget { .. }), "{e}");
}
