//! The evidence bundle: `hilrig report verify` names every changed, missing or extra file
//! and a bad signature; re-judging writes a new signed result tied to the original;
//! `report render` rebuilds the same report.

use crate::report_support;

use std::path::Path;

use hilrig::report::bundle::KeyChoice;
use hilrig::report::manifest::{self, hash_bytes, list_files, SignatureStatus};
use hilrig::report::rejudge::{rejudge, RejudgeOptions, RejudgedResults};
use report_support::*;

fn verify_cli(dir: &Path, extra: &[&str]) -> (i32, String) {
    let d = dir.to_str().unwrap();
    let mut args = vec!["report", "verify", d];
    args.extend_from_slice(extra);
    let (code, out, err) = hilrig(&args);
    (code, format!("{out}{err}"))
}

/// Every file of the bundle, including the manifest and its signature.
fn bundle_files(dir: &Path) -> Vec<String> {
    let mut f = list_files(dir).unwrap();
    f.push("manifest.json".into());
    f.push("manifest.sig".into());
    f
}

#[test]
fn a_sealed_bundle_verifies_and_lists_what_the_design_asks_for() {
    let base = temp_dir("intact");
    let dir = base.join("run");
    sealed_run(&dir, false, true, "");
    let files = bundle_files(&dir);
    for f in [
        "results.json",
        "junit.xml",
        "trace.csv",
        "truth.json",
        "report.html",
        "bundle.json",
        "inputs/plan.yaml",
        "inputs/rig.yaml",
        "inputs/fixture.yaml",
        "inputs/limits.yaml",
        "inputs/dut.dbc",
    ] {
        assert!(files.contains(&f.to_string()), "{f} not in {files:?}");
    }
    let m: manifest::Manifest =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m.firmware.as_ref().unwrap().version, "1.0.0");
    assert_eq!(m.tool.name, "hilrig");
    assert!(m.signature.is_some());

    let v = manifest::verify(&dir, None);
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(matches!(v.signature, SignatureStatus::Valid { .. }));
    let (code, out) = verify_cli(&dir, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("INTACT"), "{out}");
    // With the right trusted key, and with a wrong one.
    let pk = hex::encode(test_key(&base).verifying_key().as_bytes());
    assert_eq!(verify_cli(&dir, &["--pubkey", &pk]).0, 0);
    let other = hex::encode(
        hilrig::report::keys::StationKey::from_seed([9u8; 32], base.join("x"))
            .verifying_key()
            .as_bytes(),
    );
    let (code, out) = verify_cli(&dir, &["--pubkey", &other]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not by the trusted key"), "{out}");
    std::fs::remove_dir_all(base).ok();
}

#[test]
fn flipping_deleting_or_adding_any_file_fails_and_names_it() {
    let base = temp_dir("tamper");
    let good = base.join("good");
    sealed_run(&good, false, true, "");
    let files = bundle_files(&good);
    assert!(files.len() >= 13, "{files:?}");
    for (i, f) in files.iter().enumerate() {
        // Flip one byte in the middle.
        let d = base.join(format!("flip{i}"));
        copy_dir(&good, &d);
        let p = d.join(f);
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(&p, &bytes).unwrap();
        let (code, out) = verify_cli(&d, &[]);
        assert_eq!(code, 1, "flipping a byte of {f} went unnoticed:\n{out}");
        assert!(out.contains(f.as_str()), "flip {f}: not named:\n{out}");

        // Delete it.
        let d = base.join(format!("del{i}"));
        copy_dir(&good, &d);
        std::fs::remove_file(d.join(f)).unwrap();
        let (code, out) = verify_cli(&d, &[]);
        assert_eq!(code, 1, "deleting {f} went unnoticed:\n{out}");
        assert!(out.contains(f.as_str()), "delete {f}: not named:\n{out}");
        assert!(out.contains("MISSING"), "delete {f}:\n{out}");
    }
    for extra in [
        "notes.txt",
        "inputs/extra.yaml",
        "rejudge-fake/results.json",
    ] {
        let d = base.join(format!("add-{}", extra.replace('/', "_")));
        copy_dir(&good, &d);
        let p = d.join(extra);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "added\n").unwrap();
        let (code, out) = verify_cli(&d, &[]);
        assert_eq!(code, 1, "adding {extra} went unnoticed:\n{out}");
        let name = Path::new(extra).file_name().unwrap().to_str().unwrap();
        assert!(out.contains(name), "add {extra}: not named:\n{out}");
    }
    std::fs::remove_dir_all(base).ok();
}

#[test]
fn an_unsigned_bundle_says_so() {
    let base = temp_dir("unsigned");
    let dir = base.join("run");
    sealed_run(&dir, false, false, "");
    assert!(!dir.join("manifest.sig").exists());
    // Unsigned fails by default; --allow-unsigned accepts matching files.
    let (code, out) = verify_cli(&dir, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("UNSIGNED") && out.contains("--allow-unsigned"),
        "{out}"
    );
    let (code, out) = verify_cli(&dir, &["--allow-unsigned"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify_cli(&dir, &["--require-signature"]);
    assert_eq!(code, 1, "{out}");
    // A changed file is still caught without a signature.
    std::fs::write(dir.join("junit.xml"), "<testsuites/>").unwrap();
    let (code, out) = verify_cli(&dir, &["--allow-unsigned"]);
    assert_eq!(code, 1);
    assert!(out.contains("junit.xml"), "{out}");
    std::fs::remove_dir_all(base).ok();
}

#[test]
fn rejudging_against_tighter_limits_writes_a_signed_result_tied_to_the_original() {
    let base = temp_dir("rejudge");
    let dir = base.join("run");
    sealed_run(&dir, false, true, "");
    let original_sha = hash_bytes(&std::fs::read(dir.join("manifest.json")).unwrap());
    // Revised profile: threshold tolerance 50 mV -> 0.5 mV, trip-time allowance 1 s -> 0.05 s.
    let text = LIMITS
        .replace("tolerance: 50 mV", "tolerance: 0.5 mV")
        .replace("allowance: 1 s", "allowance: 50 ms");
    let limits = base.join("tight.yaml");
    std::fs::write(&limits, text).unwrap();
    let r = rejudge(
        &dir,
        RejudgeOptions {
            limits: limits.clone(),
            decision_rule: Some(hilrig::verdict::DecisionRule::Simple),
            key: KeyChoice::Key(Box::new(test_key(&base))),
            operator: Some("Auditor".into()),
        },
    )
    .unwrap();
    assert!(r.signed);
    assert_eq!(r.results.outcome, hilrig::report::Outcome::Failed);
    let thr = r
        .changes
        .iter()
        .find(|c| c.criterion == "ov_threshold")
        .unwrap();
    assert_eq!(thr.new_limit, "3.6495 V .. 3.6505 V");
    assert_eq!(thr.new, hilrig::verdict::Verdict::Fail);
    assert_eq!(
        r.results.decision_rule,
        hilrig::verdict::DecisionRule::Simple
    );
    let doc: RejudgedResults =
        serde_json::from_slice(&std::fs::read(r.dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(doc.rejudged_from.original_manifest_sha256, original_sha);
    assert_eq!(doc.rejudged_from.original_outcome, "passed");
    // Measured values are unchanged; limits and verdicts are new.
    assert_eq!(doc.results.tests[0].measurements[0].value, 3.651);
    let html = std::fs::read_to_string(r.dir.join("report.html")).unwrap();
    assert!(html.contains("Re-judged result"), "no re-judge note");
    assert!(html.contains(&original_sha));

    // The original still verifies, with the re-judged result nested in it.
    let (code, out) = verify_cli(&dir, &[]);
    assert_eq!(code, 0, "{out}");
    // Tampering inside the re-judged result is named with its directory.
    let name = r.dir.file_name().unwrap().to_str().unwrap().to_string();
    let mut bytes = std::fs::read(r.dir.join("results.json")).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(r.dir.join("results.json"), bytes).unwrap();
    let (code, out) = verify_cli(&dir, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{name}/results.json")), "{out}");

    // A profile without a judged criterion is refused, naming it.
    let text = std::fs::read_to_string(&limits)
        .unwrap()
        .replace("ov_trip_time:", "renamed_trip_time:");
    std::fs::write(&limits, text).unwrap();
    std::fs::remove_dir_all(&r.dir).unwrap();
    let e = rejudge(
        &dir,
        RejudgeOptions {
            limits,
            decision_rule: None,
            key: KeyChoice::Unsigned,
            operator: None,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("ov_trip_time"), "{e}");
    std::fs::remove_dir_all(base).ok();
}

#[test]
fn report_render_rebuilds_the_pdf_too() {
    let base = temp_dir("render-pdf");
    let dir = base.join("run");
    sealed_run(&dir, true, true, "");
    let pdf = std::fs::read(dir.join("report.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    std::fs::remove_file(dir.join("report.pdf")).unwrap();
    std::fs::remove_file(dir.join("report.html")).unwrap();
    let (code, out, err) = hilrig(&["report", "render", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("report.pdf"), "{out}");
    assert_eq!(std::fs::read(dir.join("report.pdf")).unwrap(), pdf);
    assert_eq!(verify_cli(&dir, &[]).0, 0);

    // With --out the PDF goes beside the HTML.
    let elsewhere = base.join("copy.html");
    let (code, out, err) = hilrig(&[
        "report",
        "render",
        dir.to_str().unwrap(),
        "--out",
        elsewhere.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(base.join("copy.pdf")).unwrap(), pdf);
    std::fs::remove_dir_all(base).ok();
}

#[test]
fn rejudge_refuses_a_tampered_bundle_and_render_rebuilds_the_same_report() {
    let base = temp_dir("render");
    let dir = base.join("run");
    sealed_run(&dir, true, true, "");
    let before = std::fs::read(dir.join("report.html")).unwrap();
    std::fs::remove_file(dir.join("report.html")).unwrap();
    let (code, out, err) = hilrig(&["report", "render", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(dir.join("report.html")).unwrap(), before);
    assert_eq!(verify_cli(&dir, &[]).0, 0);

    std::fs::write(dir.join("trace.csv"), "t_s,channel,value,unit\n").unwrap();
    let limits = base.join("limits.yaml");
    std::fs::write(&limits, LIMITS).unwrap();
    let (code, out, err) = hilrig(&[
        "report",
        "rejudge",
        dir.to_str().unwrap(),
        "--limits",
        limits.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("trace.csv"), "{err}");
    std::fs::remove_dir_all(base).ok();
}
