//! `hilrig probe list` and `hilrig flash` through the binary: no probes is not an error for
//! listing, but is for flashing a real rig (exit 2, with advice); the simulated rig is
//! flashed and its readback proven; a manipulated image is refused; a run whose firmware
//! cannot be flashed is recorded as aborted before its first step. Its log warnings reach a
//! piped stderr as plain text.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn hilrig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn probe_list_without_probes_says_so_and_succeeds() {
    let (code, out, err) = text(&hilrig(&["probe", "list"]));
    assert_eq!(code, 0, "{out}{err}");
    let (_, json, _) = text(&hilrig(&["probe", "list", "--json"]));
    let list: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    if list.as_array().unwrap().is_empty() {
        assert!(out.contains("no debug probes found"), "{out}");
    } else {
        assert!(out.contains("selector"), "{out}");
    }
}

/// A manifest with one bin image for the lab example's chip.
fn real_manifest(dir: &Path) -> String {
    let bytes = [0x5au8; 256];
    std::fs::write(dir.join("app.bin"), bytes).unwrap();
    std::fs::write(
        dir.join("manifest.yaml"),
        format!(
            "images:\n  - id: bms-app\n    version: 2.4.1\n    chip: STM32G474RETx\n    \
             format: bin\n    file: app.bin\n    sha256: {}\n",
            hilrig::flash::manifest::sha256_hex(&bytes)
        ),
    )
    .unwrap();
    dir.join("manifest.yaml").display().to_string()
}

#[test]
fn flashing_a_real_rig_without_a_probe_fails_with_advice() {
    if !hilrig::flash::probe::list_probes().is_empty() {
        eprintln!("a debug probe is connected: this test needs a machine without one");
        return;
    }
    let dir = temp_dir("flash-cli-real");
    let manifest = real_manifest(&dir);
    let (code, out, err) = text(&hilrig(&[
        "flash",
        "--rig",
        "rig/lab-example.yaml",
        "--manifest",
        &manifest,
        "--image",
        "bms-app",
    ]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("no debug probe found") && err.contains("hilrig probe list"),
        "{err}"
    );
    // Without --image there is nothing to flash: say which images there are.
    let (code, _, err) = text(&hilrig(&[
        "flash",
        "--rig",
        "rig/lab-example.yaml",
        "--manifest",
        &manifest,
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("--image") && err.contains("bms-app"), "{err}");
    // A simulated image on a real rig is refused before touching the probe.
    let (code, _, err) = text(&hilrig(&[
        "flash",
        "--rig",
        "rig/lab-example.yaml",
        "--image",
        "sim-bms-1.0.0",
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("simulated bench"), "{err}");
}

#[test]
fn flashing_the_simulated_rig_proves_the_image_runs() {
    let (code, out, err) = text(&hilrig(&[
        "flash",
        "--image",
        "sim-bms-1.0.0-defect-ot-charge",
        "--json",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let m =
        hilrig::flash::Manifest::load(&root().join("firmware-under-test/manifest.yaml")).unwrap();
    let entry = m.image("sim-bms-1.0.0-defect-ot-charge").unwrap();
    assert_eq!(v["image"], "sim-bms-1.0.0-defect-ot-charge");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["sha256"], entry.sha256.as_str());
    assert_eq!(v["readback"], "matches");
    // By path, with progress lines for people.
    let (code, out, err) = text(&hilrig(&[
        "flash",
        "--image",
        "firmware-under-test/sim-bms-1.0.0-defect-uv-latch.yaml",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("flashed sim-bms-1.0.0-defect-uv-latch"),
        "{out}"
    );
    assert!(err.contains("program") && err.contains("reset"), "{err}");
}

#[test]
fn a_manipulated_image_is_refused_by_the_command() {
    let dir = temp_dir("flash-cli-tamper");
    let src = root().join("firmware-under-test");
    std::fs::copy(src.join("manifest.yaml"), dir.join("manifest.yaml")).unwrap();
    let text_in = std::fs::read_to_string(src.join("sim-bms-1.0.0.yaml"))
        .unwrap()
        .replace("delay: 2 s}", "delay: 9 s}");
    std::fs::write(dir.join("sim-bms-1.0.0.yaml"), &text_in).unwrap();
    let manifest = dir.join("manifest.yaml");
    let recorded = hilrig::flash::Manifest::load(&manifest)
        .unwrap()
        .image("sim-bms-1.0.0")
        .unwrap()
        .sha256
        .clone();
    let actual = hilrig::flash::manifest::sha256_hex(text_in.as_bytes());
    let (code, out, err) = text(&hilrig(&[
        "flash",
        "--manifest",
        manifest.to_str().unwrap(),
        "--image",
        "sim-bms-1.0.0",
    ]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("refusing to flash") && err.contains(&recorded) && err.contains(&actual),
        "{err}"
    );
}

/// A plan that declares `firmware` and lasts long enough (2 s) for the BMS to be heard on
/// the bus, so the safe state over CAN can be confirmed at its end.
fn plan_declaring(dir: &Path, firmware: &str) -> String {
    let path = dir.join("plan.yaml");
    std::fs::write(
        &path,
        format!(
            "plan: firmware-declared\ntitle: The declared image runs\nfirmware: {firmware}\n\
             dut: {}\nlimits: pas63100\nsteps:\n  - wait: 2 s\n  - declaration:\n      \
             name: declared energy within the cap for its location\n      judge: energy_cap\n",
            root().join("fixtures/sim-bms-16s-lfp.yaml").display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn a_run_flashes_the_declared_image_first_and_records_it() {
    let dir = temp_dir("flash-cli-run");
    let plan = plan_declaring(&dir, "sim-bms-1.0.0-defect-cell-index");
    let out = dir.join("reports");
    let o = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args([
            "run",
            &plan,
            "--virtual-time",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("HILRIG_LOCK_DIR", dir.join("locks"))
        .current_dir(root())
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&o);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let run_dir = first_run_dir(&out);
    let results = read_json(&run_dir.join("results.json"));
    let m =
        hilrig::flash::Manifest::load(&root().join("firmware-under-test/manifest.yaml")).unwrap();
    let entry = m.image("sim-bms-1.0.0-defect-cell-index").unwrap();
    assert_eq!(results["firmware"]["id"], entry.id.as_str());
    assert_eq!(results["firmware"]["version"], entry.version.as_str());
    assert_eq!(results["firmware"]["sha256"], entry.sha256.as_str());
    // The sealed evidence names it too.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["firmware"], results["firmware"]);

    // An image the manifest does not know stops the run before any test.
    let plan = plan_declaring(&dir, "no-such-image");
    let out = dir.join("reports-2");
    let o = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args([
            "run",
            &plan,
            "--virtual-time",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("HILRIG_LOCK_DIR", dir.join("locks"))
        .current_dir(root())
        .output()
        .unwrap();
    let (code, _, stderr) = text(&o);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no-such-image") && stderr.contains("known images"),
        "{stderr}"
    );
    // No test ran, but the refusal is on record for CI, with the bench in its safe state.
    let run_dir = first_run_dir(&out);
    let results = read_json(&run_dir.join("results.json"));
    assert_eq!(results["outcome"], "aborted");
    assert_eq!(results["tests"].as_array().unwrap().len(), 0);
    assert_eq!(results["abort"]["during"], "before the first step");
    assert_eq!(results["abort"]["kind"], "refused");
    assert_eq!(results["abort"]["stage"], "before_start");
    assert!(
        results["abort"]["cause"]
            .as_str()
            .unwrap()
            .contains("firmware `no-such-image`"),
        "{results}"
    );
    assert!(
        results["firmware"].is_null(),
        "nothing known runs: {results}"
    );
    assert_eq!(results["safe_state_reached"], true, "{results}");
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<error") && junit.contains("no-such-image"),
        "{junit}"
    );
}

/// A log warning (a DBC whose version message has no `ImageHash`) on a stderr that is a
/// pipe, not a terminal: plain text, no colour codes.
#[test]
fn a_warning_on_a_piped_stderr_has_no_colour_codes() {
    let dir = temp_dir("flash-cli-no-hash");
    let dbc = std::fs::read_to_string(root().join("fixtures/dbc/sim-bms.dbc")).unwrap();
    let without: String = dbc
        .lines()
        .filter(|l| !l.contains("SG_ ImageHash"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(dbc.lines().count(), without.lines().count());
    std::fs::write(dir.join("bms.dbc"), without).unwrap();
    let fixture = std::fs::read_to_string(root().join("fixtures/sim-bms-16s-lfp.yaml"))
        .unwrap()
        .replace(
            "dbc: dbc/sim-bms.dbc",
            &format!("dbc: {}", dir.join("bms.dbc").display()),
        );
    let fixture = fixture_paths_absolute(&fixture);
    std::fs::write(dir.join("fixture.yaml"), fixture).unwrap();
    // `output()` connects stderr to a pipe.
    let out = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args([
            "flash",
            "--image",
            "sim-bms-1.0.0-defect-ot-charge",
            "--fixture",
        ])
        .arg(dir.join("fixture.yaml"))
        .env_remove("HILRIG_LOG")
        .current_dir(root())
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.contains("has no ImageHash signal"))
        .unwrap_or_else(|| panic!("no warning in {stderr:?}"));
    assert!(warning.contains(" WARN "), "{warning:?}");
    assert!(
        !stderr.contains("\x1b["),
        "colour codes on a pipe: {stderr:?}"
    );
    std::fs::remove_dir_all(dir).ok();
}
