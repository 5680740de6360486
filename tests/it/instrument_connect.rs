//! One connection path: identity before anything else, and what read-only and refused
//! commands leave untouched, checked through the binary against simulated instruments.

use hilrig::scpi::builtin_dialect;
use hilrig::sim::plant::Plant;
use hilrig::sim::scpi_server::{serve, SimInstrument};
use tokio::net::TcpListener;

async fn simulated(id: &str) -> SimInstrument {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve(
        listener,
        builtin_dialect(id).unwrap(),
        Plant::new(16, 3.3, 4, 25.0),
    )
    .await
}

/// A rig whose `supply` is said to be a DP832 at `address`.
fn rig_file(name: &str, dialect: &str, address: &str) -> std::path::PathBuf {
    let root = crate::common::root();
    let dir = crate::common::temp_dir(name);
    let text = std::fs::read_to_string(root.join("rig/lab-example.yaml"))
        .unwrap()
        .replace("dialect: ea-psb", &format!("dialect: {dialect}"))
        .replace("tcp://192.168.10.21:5025", address)
        .replace("../fixtures", &root.join("fixtures").display().to_string());
    let path = dir.join("rig.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn hilrig(args: Vec<String>) -> std::process::Output {
    let lock_dir = crate::common::temp_dir("instrument-connect-locks");
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hilrig"))
            .args(args)
            .env("HILRIG_LOCK_DIR", lock_dir)
            .current_dir(crate::common::root())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instruments_scpi_at_the_wrong_model_sends_nothing_but_idn() {
    // The address answers as a DL3021 load; the rig says it is a DP832 supply.
    let load = simulated("rigol-dl3000").await;
    let rig = rig_file("wrong-model", "rigol-dp800", &load.address());
    let out = hilrig(vec![
        "instruments".into(),
        "scpi".into(),
        "supply".into(),
        ":SOUR:CURR 3".into(),
        "--allow-settings".into(),
        "--rig".into(),
        rig.display().to_string(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("DL3021"), "{stderr}");
    assert_eq!(load.command_log(), ["*IDN?"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_measure_leaves_the_mode_and_the_error_queue_alone() {
    let load = simulated("rigol-dl3000").await;
    load.set_serial("DL3A000000000");
    // An error the user may want to read later.
    load.inject_error(-221, "Settings conflict");
    let root = crate::common::root();
    let dir = crate::common::temp_dir("load-measure");
    let text = std::fs::read_to_string(root.join("rig/lab-example.yaml"))
        .unwrap()
        .replace("tcp://192.168.10.22:5555", &load.address())
        .replace("../fixtures", &root.join("fixtures").display().to_string());
    let rig = dir.join("rig.yaml");
    std::fs::write(&rig, text).unwrap();
    let out = hilrig(vec![
        "load".into(),
        "--rig".into(),
        rig.display().to_string(),
        "measure".into(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let log = load.command_log();
    assert!(
        log.iter()
            .all(|l| l.ends_with('?') && !l.contains("SYST:ERR")),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.contains("FUNC")), "{log:?}");
    // The queued error is still there for the user.
    let mut client = hilrig::scpi::Client::connect_for(
        &load.address(),
        load.dialect(),
        std::time::Duration::from_secs(2),
    )
    .await
    .unwrap()
    .0;
    let errors = client.error_queue().await.unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, -221);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instruments_scpi_refuses_reset_and_protection_off() {
    let psu = simulated("rigol-dp800").await;
    let rig = rig_file("refuse-reset", "rigol-dp800", &psu.address());
    for line in ["*RST", ":OUTP:OVP CH1,OFF"] {
        let out = hilrig(vec![
            "instruments".into(),
            "scpi".into(),
            "supply".into(),
            line.into(),
            "--allow-settings".into(),
            "--rig".into(),
            rig.display().to_string(),
        ])
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{line}: {stderr}");
        assert!(stderr.contains("--allow-unprotected"), "{stderr}");
    }
    assert!(psu.command_log().is_empty(), "{:?}", psu.command_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supply_set_refuses_another_unit_and_an_expired_calibration() {
    let psu = simulated("ea-psb").await;
    let rig = rig_file("unit-check", "ea-psb", &psu.address());
    let set = |rig: &std::path::Path, extra: Option<&str>| {
        let mut args: Vec<String> = ["supply", "--rig"].map(String::from).to_vec();
        args.push(rig.display().to_string());
        args.extend(extra.map(String::from));
        args.extend(["set", "--voltage", "10"].map(String::from));
        args
    };
    // Another serial than the rig file's: refused, nothing but `*IDN?` sent.
    psu.set_serial("PSB-9999999");
    let out = hilrig(set(&rig, None)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("PSB-9999999"), "{stderr}");
    assert_eq!(psu.command_log(), ["*IDN?"]);
    // The right unit, calibration expired: refused unless allowed.
    psu.set_serial("PSB-0000000");
    psu.clear_command_log();
    let text = std::fs::read_to_string(&rig)
        .unwrap()
        .replace("PSB-0000000: 2027-06-30", "PSB-0000000: 2020-01-01");
    std::fs::write(&rig, text).unwrap();
    let out = hilrig(set(&rig, None)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--allow-expired-calibration"), "{stderr}");
    assert!(
        !psu.command_log().iter().any(|l| l.contains("VOLT")),
        "{:?}",
        psu.command_log()
    );
    let out = hilrig(set(&rig, Some("--allow-expired-calibration"))).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(psu.command_log().contains(&"SOUR:VOLT 10".to_string()));
}
