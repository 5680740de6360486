//! At the bench: `hilrig.toml` names the rig, a simulated run says SIMULATED in every output,
//! and a run narrowed by `--test` records the selection. Through the binary.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Run hilrig in `cwd` with no `HILRIG_RIG` and the user config directory `xdg`.
fn hilrig_in(cwd: &Path, xdg: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(args)
        .current_dir(cwd)
        .env_remove("HILRIG_RIG")
        .env("XDG_CONFIG_HOME", xdg)
        .env("HILRIG_LOCK_DIR", xdg)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn plan() -> String {
    root()
        .join("test-plans/overcharge.yaml")
        .to_string_lossy()
        .into_owned()
}

/// A working directory with `./hilrig.toml` (when given) and an empty user config dir.
fn bench_dir(name: &str, local: Option<&str>) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let xdg = dir.join("config");
    std::fs::create_dir_all(&xdg).unwrap();
    if let Some(text) = local {
        std::fs::write(dir.join("hilrig.toml"), text).unwrap();
    }
    (dir, xdg)
}

/// `./hilrig.toml` naming a rig that is not there: `run` and `list` fail (exit 2) naming
/// the toml, and nothing starts the simulated bench.
#[test]
fn a_rig_named_by_hilrig_toml_never_falls_back_to_the_simulated_one() {
    let (dir, xdg) = bench_dir(
        "toml-missing-rig",
        Some("rig = \"benches/no-such-rig.yaml\"\n"),
    );
    let (code, stdout, stderr) = hilrig_in(&dir, &xdg, &["run", &plan(), "--virtual-time"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("no-such-rig.yaml (from hilrig.toml)"),
        "{stderr}"
    );
    assert!(!stdout.contains("SIMULATED"), "{stdout}");
    let (code, _, stderr) = hilrig_in(&dir, &xdg, &["list", &plan()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no-such-rig.yaml"), "{stderr}");
}

/// The user's hilrig.toml is read when the working directory has none, and `HILRIG_RIG`
/// wins over it.
#[test]
fn the_user_hilrig_toml_names_the_rig_unless_hilrig_rig_does() {
    let (dir, xdg) = bench_dir("toml-user", None);
    std::fs::create_dir_all(xdg.join("hilrig")).unwrap();
    std::fs::write(
        xdg.join("hilrig/hilrig.toml"),
        "# this machine's bench\nrig = \"lab/missing.yaml\"\n",
    )
    .unwrap();
    let (code, _, stderr) = hilrig_in(&dir, &xdg, &["run", &plan(), "--virtual-time"]);
    assert_eq!(code, 2, "{stderr}");
    let user_toml = xdg.join("hilrig/hilrig.toml");
    assert!(
        stderr.contains(&format!("(from {})", user_toml.display())),
        "{stderr}"
    );
    assert!(stderr.contains("lab/missing.yaml"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(["list", &plan()])
        .current_dir(&dir)
        .env("HILRIG_RIG", root().join("rig/sim.yaml"))
        .env("XDG_CONFIG_HOME", &xdg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A mistyped key is an error at its line and column with the closest key; a syntax error
/// is located too.
#[rstest::rstest]
#[case::unknown_key(
    "toml-unknown-key",
    "\nrgi = \"rig/sim.yaml\"\n",
    "hilrig.toml:2:1",
    "did you mean `rig`?"
)]
#[case::syntax("toml-syntax", "rig = \"rig/sim.yaml\n", "hilrig.toml:1:", "")]
fn a_bad_hilrig_toml_is_an_error_at_its_place(
    #[case] name: &str,
    #[case] text: &str,
    #[case] place: &str,
    #[case] says: &str,
) {
    let (dir, xdg) = bench_dir(name, Some(text));
    let (code, stdout, stderr) = hilrig_in(&dir, &xdg, &["run", &plan(), "--virtual-time"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains(place), "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
    assert!(!stdout.contains("SIMULATED"), "{stdout}");
}

/// On the simulated bench, the console's first and last lines, the JUnit suite properties
/// and the report cover say SIMULATED; the `--test` selection is recorded in results.json,
/// junit.xml and the report.
#[test]
fn a_simulated_run_says_so_and_records_the_selection() {
    let (dir, xdg) = bench_dir("sim-label", None);
    let out = dir.join("reports");
    let junit = dir.join("ci.xml");
    let (code, stdout, stderr) = hilrig_in(
        &root(),
        &xdg,
        &[
            "run",
            "test-plans/overcharge.yaml",
            "--virtual-time",
            "--test",
            "OV cell 5",
            "--junit",
            junit.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.first().unwrap().starts_with("SIMULATED BENCH"),
        "{stdout}"
    );
    assert!(lines.last().unwrap().contains("SIMULATED"), "{stdout}");

    let run_dir = first_run_dir(&out);
    let r = read_json(&run_dir.join("results.json"));
    assert_eq!(r["simulated"], true);
    assert_eq!(r["selected_tests"], serde_json::json!(["OV cell 5"]));

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert!(!suites.is_empty(), "{xml}");
    for s in suites {
        let prop = |name: &str| -> Vec<&str> {
            s.descendants()
                .filter(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
                .filter_map(|n| n.attribute("value"))
                .collect()
        };
        assert_eq!(prop("simulated"), ["true"], "{xml}");
        assert_eq!(prop("selected_test"), ["OV cell 5"], "{xml}");
    }

    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(
        html.contains("SIMULATED BENCH — not a physical test"),
        "report.html has no banner"
    );
    assert!(html.contains("only OV cell 5 (run --test)"), "no selection");
}

/// In `--json` mode the first and last events carry `"simulated": true`.
#[test]
fn json_events_open_and_close_with_simulated() {
    let (dir, xdg) = bench_dir("sim-label-json", None);
    let (code, stdout, stderr) = hilrig_in(
        &root(),
        &xdg,
        &[
            "run",
            "test-plans/overcharge.yaml",
            "--virtual-time",
            "--json",
            "--out",
            dir.join("reports").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (first, last) = (events.first().unwrap(), events.last().unwrap());
    assert_eq!(first["event"], "bench", "{first}");
    assert_eq!(first["simulated"], true, "{first}");
    assert_eq!(last["event"], "finished", "{last}");
    assert_eq!(last["simulated"], true, "{last}");
    let r = read_json(&first_run_dir(&dir.join("reports")).join("results.json"));
    assert_eq!(r["selected_tests"], serde_json::json!([]));
}
