use super::*;
use crate::instrument::test_support::{scripted_pipe, sent_commands};
use crate::scpi::builtin_dialect;

/// A scripted instrument on an in-memory pipe: answers queries from `answer`, and
/// `0,"No error"` to every error-queue read. Returns the lines it received.
fn fake(
    answer: fn(&str) -> Option<String>,
) -> (Box<dyn Transport>, tokio::task::JoinHandle<Vec<String>>) {
    scripted_pipe(move |line| {
        if line.ends_with("SYST:ERR?") {
            Some("0,\"No error\"".to_string())
        } else {
            answer(line)
        }
    })
}

const T: Duration = Duration::from_millis(300);

#[tokio::test]
async fn ea_supply_sends_the_dialect_commands() {
    let (transport, task) = fake(|line| match line {
        "MEAS:ARR?" => Some("48.00 V, 10.00 A, 480.0 W".into()),
        "OUTP?" => Some("ON".into()),
        _ => None,
    });
    let dialect = builtin_dialect("ea-psb").unwrap();
    let mut psu = ScpiSupply::open("psu", transport, dialect, T)
        .await
        .unwrap();
    psu.set_voltage(58.4).await.unwrap();
    psu.set_current(10.0).await.unwrap();
    psu.program_protection(60.0, 12.0).await.unwrap();
    psu.set_output(true).await.unwrap();
    assert!(psu.output().await.unwrap());
    assert_eq!(
        psu.measure().await.unwrap(),
        Measurement {
            voltage: 48.0,
            current: 10.0
        }
    );
    drop(psu);
    let sent = sent_commands(task).await;
    assert_eq!(
        sent,
        [
            "*CLS",
            "SYST:LOCK 1",
            "SOUR:VOLT 58.4",
            "SOUR:CURR 10",
            "SOUR:VOLT:PROT 60",
            "SOUR:CURR:PROT 12",
            "OUTP ON",
            "OUTP?",
            "MEAS:ARR?"
        ]
    );
}

#[tokio::test]
async fn rigol_load_measures_with_two_queries() {
    let (transport, task) = fake(|line| match line {
        ":MEAS:VOLT?" => Some("5.280000E+01".into()),
        ":MEAS:CURR?" => Some("2.000000E+00".into()),
        ":SOUR:INP:STAT?" => Some("0".into()),
        _ => None,
    });
    let mut load = ScpiLoad::open(
        "load",
        transport,
        builtin_dialect("rigol-dl3000").unwrap(),
        T,
    )
    .await
    .unwrap();
    load.set_current(2.0).await.unwrap();
    assert!(!load.input().await.unwrap());
    assert_eq!(
        load.measure().await.unwrap(),
        Measurement {
            voltage: 52.8,
            current: 2.0
        }
    );
    drop(load);
    let sent = task.await.unwrap();
    assert_eq!(
        &sent[..4],
        ["*CLS", ":SYST:ERR?", ":SOUR:FUNC CURR", ":SYST:ERR?"]
    );
    assert!(sent.contains(&":SOUR:CURR 2".to_string()));
}

#[tokio::test]
async fn measure_array_with_the_wrong_units_is_a_bad_reply() {
    let (transport, _task) =
        fake(|line| (line == "MEAS:ARR?").then(|| "10.00 A, 48.00 V, 480.0 W".into()));
    let mut psu = ScpiSupply::open("psu", transport, builtin_dialect("ea-psb").unwrap(), T)
        .await
        .unwrap();
    let error = psu.measure().await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error.scpi(), Some(ScpiError::BadReply { .. })),
        "{message}"
    );
    assert!(message.starts_with("instrument `psu`: "), "{message}");
    assert!(message.contains("expected a value in V"), "{message}");
}

#[tokio::test]
async fn non_finite_settings_are_not_sent() {
    let (transport, task) = fake(|_| None);
    let mut psu = ScpiSupply::open("psu", transport, builtin_dialect("ea-psb").unwrap(), T)
        .await
        .unwrap();
    let error = psu.set_voltage(f64::NAN).await.unwrap_err();
    assert!(
        matches!(
            error,
            InstrumentError::NotFinite {
                what: "set_voltage",
                ..
            }
        ),
        "{error}"
    );
    drop(psu);
    assert!(!task
        .await
        .unwrap()
        .iter()
        .any(|l| l.starts_with("SOUR:VOLT")));
}

#[tokio::test]
async fn a_load_dialect_cannot_drive_a_supply() {
    let (transport, _task) = fake(|_| None);
    let error = ScpiSupply::open(
        "psu",
        transport,
        builtin_dialect("rigol-dl3000").unwrap(),
        T,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, InstrumentError::WrongRole { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("give this instrument a supply dialect"),
        "{error}"
    );
}

#[tokio::test]
async fn identity_is_checked_against_the_dialect() {
    let (transport, _task) =
        fake(|line| (line == "*IDN?").then(|| "RIGOL TECHNOLOGIES,DP832,X,1".into()));
    let mut psu = ScpiSupply::open("psu", transport, builtin_dialect("ea-psb").unwrap(), T)
        .await
        .unwrap();
    let error = psu.verify_identity().await.unwrap_err();
    assert!(
        matches!(error, InstrumentError::WrongIdentity { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_missing_template_is_unsupported() {
    let (transport, _task) = fake(|_| None);
    let mut dialect = builtin_dialect("ea-psb").unwrap();
    dialect.commands.set_ocp = None;
    let mut psu = ScpiSupply::open("psu", transport, dialect, T)
        .await
        .unwrap();
    let error = psu.program_protection(60.0, 12.0).await.unwrap_err();
    assert!(
        matches!(
            error,
            InstrumentError::Unsupported {
                command: "set_ocp",
                ..
            }
        ),
        "{error}"
    );
}
