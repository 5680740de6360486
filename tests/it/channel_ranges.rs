//! Protection levels and setpoints limited to the channel: each dialect's per-channel
//! ranges against simulated instruments that refuse out-of-range values with -222.

use std::time::Duration;

use hilrig::instrument::{InstrumentError, ScpiSupply, Supply};
use hilrig::plan::load_rig;
use hilrig::scpi::{builtin_dialect, ScpiError};
use hilrig::sim::plant::Plant;
use hilrig::sim::scpi_server::{serve_in_memory, SimInstrument};

const TIMEOUT: Duration = Duration::from_secs(2);

fn simulated(id: &str) -> SimInstrument {
    serve_in_memory(builtin_dialect(id).unwrap(), Plant::new(1, 3.3, 1, 25.0))
}

async fn supply(sim: &SimInstrument, channel: u32) -> ScpiSupply {
    ScpiSupply::open(
        "psu",
        sim.connect_in_memory(),
        sim.dialect().clone(),
        TIMEOUT,
    )
    .await
    .unwrap()
    .with_channel(channel)
    .unwrap()
}

/// Lines the instrument received, without the error-queue reads.
fn sent(sim: &SimInstrument) -> Vec<String> {
    sim.command_log()
        .into_iter()
        .filter(|l| !l.to_ascii_uppercase().contains("SYST:ERR?"))
        .collect()
}

#[tokio::test]
async fn e36312a_channel_1_under_a_25_v_envelope_sets_5_v_without_error() {
    let sim = simulated("keysight-e36300");
    let mut psu = supply(&sim, 1).await;
    psu.program_protection(25.0, 5.0).await.unwrap();
    psu.set_voltage(5.0).await.unwrap();
    psu.set_current(1.0).await.unwrap();
    psu.check_errors().await.unwrap();
    let log = sent(&sim);
    assert!(log.contains(&"VOLT:PROT 6.6,(@1)".to_string()), "{log:?}");
    assert!(log.contains(&"VOLT 5,(@1)".to_string()), "{log:?}");
    // The instrument holds the channel's ceiling as its OVP level.
    let mut client = ScpiSupply::open(
        "psu",
        sim.connect_in_memory(),
        sim.dialect().clone(),
        TIMEOUT,
    )
    .await
    .unwrap();
    let level = client.client().query("VOLT:PROT? (@1)").await.unwrap();
    assert_eq!(level, "+6.600000E+00");
}

#[tokio::test]
async fn dp832_under_the_lab_example_envelope_arms_ovp_at_the_channel_maximum() {
    let rig = load_rig(std::path::Path::new("rig/lab-example.yaml"))
        .unwrap()
        .value;
    let sim = simulated("rigol-dp800");
    let mut psu = supply(&sim, 1).await;
    psu.program_protection(
        rig.envelope.max_pack_voltage.0,
        rig.envelope.max_charge_current.0,
    )
    .await
    .unwrap();
    let log = sent(&sim);
    assert_eq!(
        log[log.len() - 4..],
        [
            ":OUTP:OVP:VAL CH1,33",
            ":OUTP:OVP CH1,ON",
            ":OUTP:OCP:VAL CH1,3.3",
            ":OUTP:OCP CH1,ON"
        ]
    );
    let client = psu.client();
    assert_eq!(client.query(":OUTP:OVP? CH1").await.unwrap(), "ON");
    assert_eq!(client.query(":OUTP:OVP:VAL? CH1").await.unwrap(), "33.0000");
}

#[tokio::test]
async fn a_refused_protection_level_is_never_followed_by_arming() {
    let sim = simulated("rigol-dp800");
    // A dialect that claims more OVP range than the instrument has.
    let mut dialect = sim.dialect().clone();
    for channel in &mut dialect.channels {
        channel.max_ovp = Some(100.0);
    }
    let mut psu = ScpiSupply::open("psu", sim.connect_in_memory(), dialect, TIMEOUT)
        .await
        .unwrap();
    let error = psu.program_protection(58.4, 3.0).await.unwrap_err();
    assert!(
        matches!(error.scpi(), Some(ScpiError::Instrument { code: -222, .. })),
        "{error}"
    );
    let log = sent(&sim);
    assert!(
        log.contains(&":OUTP:OVP:VAL CH1,58.4".to_string()),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|l| l.starts_with(":OUTP:OVP CH1,ON")),
        "armed after a refused level: {log:?}"
    );
}

#[tokio::test]
async fn a_setpoint_beyond_the_channel_is_refused_before_sending() {
    let sim = simulated("rigol-dp800");
    let mut psu = supply(&sim, 3).await;
    sim.clear_command_log();
    let error = psu.set_voltage(5.2).await.unwrap_err();
    assert!(
        matches!(
            error,
            InstrumentError::OutOfRange {
                channel: 3,
                max,
                ..
            } if max == 5.0
        ),
        "{error}"
    );
    assert!(sent(&sim).is_empty(), "{:?}", sent(&sim));
    // Within the range it goes through, and the instrument takes it.
    psu.set_voltage(4.9).await.unwrap();
}

/// The simulated instruments refuse values beyond the channel themselves (-222), so the
/// client's own check is not the only one.
#[tokio::test]
async fn the_simulated_instruments_refuse_out_of_range_values() {
    for (id, command) in [
        ("rigol-dp800", ":SOUR3:VOLT 5.2"),
        ("keysight-e36300", "VOLT 6.5,(@1)"),
        ("keysight-e36300", "VOLT:PROT 25,(@1)"),
        ("rigol-dl3000", ":SOUR:CURR 41"),
    ] {
        let sim = simulated(id);
        let mut client = hilrig::scpi::Client::new(
            sim.connect_in_memory(),
            sim.dialect().client_options(TIMEOUT),
        )
        .with_error_query(&sim.dialect().error_query);
        let error = client.write_checked(command).await.unwrap_err();
        assert!(
            matches!(error, ScpiError::Instrument { code: -222, .. }),
            "{id} {command}: {error}"
        );
    }
}

/// `validate` reports a channel index the model does not have (exit 2), naming it.
#[test]
fn validate_refuses_a_channel_the_model_lacks() {
    let root = crate::common::root();
    let dir = crate::common::temp_dir("channel-ranges-validate");
    let rig = std::fs::read_to_string(root.join("rig/lab-example.yaml"))
        .unwrap()
        .replace("dialect: ea-psb", "dialect: rigol-dp800")
        .replace(
            "tcp://192.168.10.21:5025",
            "tcp://192.168.10.21:5555?channel=4",
        )
        .replace("../fixtures", &root.join("fixtures").display().to_string());
    let path = dir.join("dp832.yaml");
    std::fs::write(&path, rig).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .arg("validate")
        .arg(&path)
        .current_dir(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("channel=4"), "{stderr}");
    assert!(stderr.contains("[1, 2, 3]"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ok:"));
}

/// A negative setpoint reaches the envelope check (not the argument parser) and is refused
/// there, with nothing sent.
#[test]
fn negative_setpoints_are_refused_by_the_envelope() {
    let lock_dir = crate::common::temp_dir("negative-locks");
    for args in [
        ["supply", "set", "--voltage", "-1"],
        ["load", "set", "--current", "-2"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hilrig"))
            .args(args)
            .env("HILRIG_LOCK_DIR", &lock_dir)
            .current_dir(crate::common::root())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("outside the rig's safety envelope"),
            "{args:?}: {stderr}"
        );
    }
}

/// Every command that waits for the bench lock takes `--wait` as a duration with its unit,
/// as `run` does; a bare number, a negative or an absurd duration is refused by the argument
/// parser (exit 2) with the reason.
#[rstest::rstest]
#[case::supply_bare(&["supply", "--wait", "30", "off"], "unit")]
#[case::load_negative(&["load", "--wait", "-5 s", "off"], "negative")]
#[case::scpi_huge(&["instruments", "scpi", "supply", "*IDN?", "--wait", "1e300 s"], "too long")]
#[case::run_bare(&["run", "test-plans/overcharge.yaml", "--wait", "30"], "unit")]
fn wait_takes_one_duration_syntax(#[case] args: &[&str], #[case] says: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(args)
        .env(
            "HILRIG_LOCK_DIR",
            crate::common::temp_dir(&format!("wait-syntax-{}", args[0])),
        )
        .current_dir(crate::common::root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains("--wait"), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
}
