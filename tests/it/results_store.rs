//! The results store through the binary: three signed nightly runs, a defect-image run and
//! a re-sealed re-run with one verdict flipped, imported by 8 concurrent importers into
//! SQLite and (opt-in: `HILRIG_TEST_POSTGRES_URL=postgres://...`) into PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use rstest::rstest;

use crate::common::{read_json, root, temp_dir};

/// Bundles made once for every test of this module.
struct Runs {
    dir: PathBuf,
    key: PathBuf,
    reports: PathBuf,
}

fn hilrig(key: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(args)
        .current_dir(root())
        .env("HILRIG_KEY", key)
        .env("HILRIG_OPERATOR", "Results Tester")
        .env_remove("HILRIG_DB")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The run directories (plan bundles) under `dir`.
fn bundles(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.join("results.json").is_file() {
            out.push(p);
        } else if p.is_dir() {
            out.extend(bundles(&p));
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Rewrites a bundle's results.json through `edit` and seals it again with `key` (None:
/// unsigned), as a run that really produced those results would have.
fn reseal(dir: &Path, key: Option<&Path>, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut results = read_json(&dir.join("results.json"));
    edit(&mut results);
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
    let old: hilrig::report::manifest::Manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let key = key.map(|k| hilrig::report::keys::load(k).unwrap());
    hilrig::report::manifest::write(
        dir,
        hilrig::report::manifest::ManifestMeta {
            run_id: results["run_id"].as_str().unwrap().to_string(),
            station: old.station,
            created: old.created,
            firmware: old.firmware,
            original_manifest_sha256: None,
        },
        key.as_ref(),
    )
    .unwrap();
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let dir = temp_dir("results-store");
        let key = dir.join("station.key");
        let reports = dir.join("reports");
        let o = hilrig(&key, &["keygen", "--out", key.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        let lock = dir.join("lock");
        std::fs::create_dir_all(&lock).unwrap();
        let run = |plan: &str, rig: &Path, out: &Path| {
            let o = Command::new(env!("CARGO_BIN_EXE_hilrig"))
                .args(["run", plan, "--virtual-time", "--rig"])
                .arg(rig)
                .arg("--out")
                .arg(out)
                .current_dir(root())
                .env("HILRIG_KEY", &key)
                .env("HILRIG_LOCK_DIR", &lock)
                .env("HILRIG_OPERATOR", "Results Tester")
                .env_remove("HILRIG_DB")
                .output()
                .unwrap();
            o.status.code()
        };
        for i in 0..3 {
            let out = reports.join(format!("nightly-{i}"));
            let code = run(
                "test-plans/nightly.yaml",
                &root().join("rig/sim.yaml"),
                &out,
            );
            assert_eq!(code, Some(0), "nightly {i}");
        }
        // The OV threshold defect: the trip sits 70 mV above the declared level.
        let rig_text = std::fs::read_to_string(root().join("rig/sim.yaml"))
            .unwrap()
            .replace(
                "firmware-under-test/sim-bms-1.0.0.yaml",
                "firmware-under-test/sim-bms-1.0.0-defect-ov-threshold.yaml",
            )
            .replace("../", &format!("{}/", root().display()));
        let rig = dir.join("defect-rig.yaml");
        std::fs::write(&rig, rig_text).unwrap();
        let code = run("test-plans/ov-charge.yaml", &rig, &reports.join("defect"));
        assert_eq!(code, Some(1), "the defect image fails ov-charge");
        // A re-run on the same firmware and bench where one test's verdict flipped.
        let first = bundles(&reports.join("nightly-0"))
            .into_iter()
            .find(|b| b.ends_with("ov-charge"))
            .unwrap();
        let rerun = reports.join("rerun/ov-charge");
        copy_dir(&first, &rerun);
        reseal(&rerun, Some(&key), |r| {
            let id = format!("{}-rerun", r["run_id"].as_str().unwrap());
            r["run_id"] = id.into();
            r["tests"][0]["verdict"] = "fail".into();
        });
        Runs { dir, key, reports }
    })
}

/// A store URL for `backend`, fresh for this test; None when the backend is not available.
fn fresh_store(backend: &str, name: &str) -> Option<String> {
    match backend {
        "sqlite" => {
            let dir = temp_dir(&format!("results-db-{name}"));
            Some(format!("sqlite://{}/hilrig.db", dir.display()))
        }
        _ => {
            let Ok(base) = std::env::var("HILRIG_TEST_POSTGRES_URL") else {
                println!("{name} on PostgreSQL: not run: set HILRIG_TEST_POSTGRES_URL");
                return None;
            };
            let db = format!("hilrig_it_{}_{name}", std::process::id());
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
                sqlx::Executor::execute(&mut c, format!("DROP DATABASE IF EXISTS {db}").as_str())
                    .await
                    .unwrap();
                sqlx::Executor::execute(&mut c, format!("CREATE DATABASE {db}").as_str())
                    .await
                    .unwrap();
            });
            let (server, _) = base.rsplit_once('/').unwrap();
            Some(format!("{server}/{db}"))
        }
    }
}

/// `hilrig results --db URL ARGS...` with the runs' station key.
fn store_cmd(runs: &Runs, url: &str, args: &[&str]) -> Output {
    let mut all = vec!["results", "--db", url];
    all.extend_from_slice(args);
    hilrig(&runs.key, &all)
}

fn list(runs: &Runs, url: &str) -> Vec<serde_json::Value> {
    let o = store_cmd(runs, url, &["list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
}

#[rstest]
#[case("sqlite")]
#[case("postgres")]
fn eight_importers_store_every_run_once_and_refuse_tampering(#[case] backend: &str) {
    let Some(url) = fresh_store(backend, "import") else {
        return;
    };
    let runs = runs();
    let expected = bundles(&runs.reports).len();
    assert_eq!(expected, 3 * 12 + 2);
    let importers: Vec<_> = (0..8)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_hilrig"))
                .args(["results", "--db", &url, "import"])
                .arg(&runs.reports)
                .env("HILRIG_KEY", &runs.key)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut stored = 0;
    for child in importers {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        stored += String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("stored "))
            .count();
    }
    assert_eq!(
        stored, expected,
        "each bundle stored by exactly one importer"
    );
    let listed = list(runs, &url);
    let mut ids: Vec<&str> = listed
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!((listed.len(), ids.len()), (expected, expected));
    assert!(listed.iter().all(|r| r["signed_by"].is_string()));

    // Importing again changes nothing.
    let o = store_cmd(runs, &url, &["import", runs.reports.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("0 stored, {expected} already present")),
        "{}",
        text(&o)
    );
    assert_eq!(list(runs, &url).len(), expected);

    // A tampered bundle is refused and leaves the store as it was.
    let tampered = temp_dir(&format!("results-tampered-{backend}")).join("ov-charge");
    copy_dir(&bundles(&runs.reports.join("nightly-1"))[0], &tampered);
    let results = tampered.join("results.json");
    let edited = std::fs::read_to_string(&results)
        .unwrap()
        .replacen("\"pass\"", "\"fail\"", 1);
    std::fs::write(&results, edited).unwrap();
    let o = store_cmd(runs, &url, &["import", tampered.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not intact, refused"), "{}", text(&o));
    assert!(text(&o).contains("results.json"), "{}", text(&o));

    // An unsigned bundle only with --allow-unsigned, and then as unsigned.
    let unsigned = temp_dir(&format!("results-unsigned-{backend}")).join("ov-charge");
    copy_dir(&bundles(&runs.reports.join("nightly-2"))[0], &unsigned);
    reseal(&unsigned, None, |r| {
        let id = format!("{}-unsigned", r["run_id"].as_str().unwrap());
        r["run_id"] = id.into();
    });
    let o = store_cmd(runs, &url, &["import", unsigned.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("unsigned bundle refused"), "{}", text(&o));
    assert_eq!(list(runs, &url).len(), expected);
    let o = store_cmd(
        runs,
        &url,
        &["import", "--allow-unsigned", unsigned.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let listed = list(runs, &url);
    assert_eq!(listed.len(), expected + 1);
    assert_eq!(
        listed.iter().filter(|r| r["signed_by"].is_null()).count(),
        1
    );
}

#[rstest]
#[case("sqlite")]
#[case("postgres")]
fn trend_compare_and_flaky_answer_from_the_store(#[case] backend: &str) {
    let Some(url) = fresh_store(backend, "query") else {
        return;
    };
    let runs = runs();
    let o = store_cmd(runs, &url, &["import", runs.reports.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    let o = store_cmd(runs, &url, &["trend", "ov_threshold", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(t["unit"], "V");
    let series = t["series"].as_array().unwrap();
    let good = series.iter().find(|s| s["key"] == "sim-bms-1.0.0").unwrap();
    let bad = series
        .iter()
        .find(|s| s["key"] == "sim-bms-1.0.0-defect-ov-threshold")
        .unwrap();
    // Three nightly runs and the re-run, five repeats each; the defect run's five, whose
    // threshold is not determinable there (its delay is not checked by a step trip when
    // the plan fails early), stored as null and left out of the statistics.
    assert_eq!(good["points"].as_array().unwrap().len(), 4 * 5);
    assert_eq!(good["n"], 20);
    assert_eq!(bad["points"].as_array().unwrap().len(), 5);
    assert_eq!((bad["n"].as_u64(), bad["mean"].as_f64()), (Some(0), None));
    assert!(bad["points"][0]["value"].is_null());
    let mean = good["mean"].as_f64().unwrap();
    assert!((mean - 3.65).abs() < 0.01, "{mean}");
    assert!(good["points"][0]["uncertainty"].as_f64().unwrap() > 0.0);
    assert_eq!(good["points"][0]["k"], 2.0);

    let listed = list(runs, &url);
    let id_of = |fw: &str| {
        listed
            .iter()
            .find(|r| r["plan"] == "ov-charge" && r["firmware_id"] == fw)
            .unwrap()["run_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (good_id, bad_id) = (
        id_of("sim-bms-1.0.0"),
        id_of("sim-bms-1.0.0-defect-ov-threshold"),
    );
    let o = store_cmd(runs, &url, &["compare", &good_id, &bad_id, "--json"]);
    assert_eq!(o.status.code(), Some(1), "values moved: {}", text(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let moved: Vec<&serde_json::Value> = c["differences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["moved"] == true)
        .collect();
    // The defect lets the cells rise 70 mV further before the BMS opens.
    let peak = moved
        .iter()
        .find(|d| d["criterion"] == "cell_never_above_upper_limit")
        .unwrap_or_else(|| panic!("{moved:?}"));
    assert!(peak["difference"].as_f64().unwrap() > 0.03, "{peak}");
    assert!(peak["difference"].as_f64().unwrap() > peak["uncertainty"].as_f64().unwrap());
    // A value that is not determinable in B has no difference and never "moved".
    let threshold = c["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["criterion"] == "ov_threshold")
        .unwrap();
    assert!(threshold["difference"].is_null() && threshold["moved"] == false);
    // Comparing a run with itself moves nothing.
    let o = store_cmd(runs, &url, &["compare", &good_id, &good_id]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let o = store_cmd(runs, &url, &["flaky", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let f: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["plan"], "ov-charge");
    assert_eq!(f[0]["firmware"], "sim-bms-1.0.0");
    assert_eq!(f[0]["verdicts"]["fail"], 1);

    let page = runs.dir.join(format!("trends-{backend}.html"));
    let o = store_cmd(
        runs,
        &url,
        &["page", "--out", page.to_str().unwrap(), "ov_threshold"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<svg") && html.contains("sim-bms-1.0.0-defect-ov-threshold"));
    assert!(!html.contains("<script") && !html.contains("http"));

    let o = store_cmd(runs, &url, &["show", &bad_id]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("ov_threshold threshold = not determinable"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_bad_store_url_says_what_is_accepted() {
    let o = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(["results", "--db", "mysql://u:pw@h/db", "list"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("sqlite://PATH or postgres://") && !e.contains("pw@"),
        "{e}"
    );
}

#[test]
fn an_unreachable_server_is_named_with_the_cause_at_once() {
    // Port 1 on loopback refuses: the error says so, without the password, and without
    // waiting out a pool's retries.
    let o = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args([
            "results",
            "--db",
            "postgres://lab:pw@127.0.0.1:1/db",
            "list",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("refused") && e.contains("lab:***@") && !e.contains(":pw@"),
        "{e}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args([
            "results",
            "--db",
            "sqlite:///proc/no/x.db",
            "import",
            "/no/such/dir",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
