//! Switching a supply output or a load input off by hand (`hilrig supply off`,
//! `hilrig load off`): the switch-off is sent even after earlier errors (a refused remote
//! lock, an error left in the queue), and only the instrument's read-back decides whether
//! it worked.

use super::{InstrumentError, Load, Supply};

/// The output (input) was not confirmed off.
#[derive(Debug, thiserror::Error)]
pub enum SwitchOff {
    /// The read-back says the output is still on.
    #[error(
        "instrument `{id}`: still on after the switch-off (read back on){}",
        earlier_text(.errors)
    )]
    StillOn {
        /// Instrument id from the rig file.
        id: String,
        /// The errors reported on the way.
        errors: Vec<InstrumentError>,
    },
    /// The read-back failed, so the state is unknown.
    #[error("instrument `{id}`: the switch-off could not be confirmed: {source}{}", earlier_text(.errors))]
    Unconfirmed {
        /// Instrument id from the rig file.
        id: String,
        /// Why the read-back failed.
        #[source]
        source: InstrumentError,
        /// The errors reported on the way.
        errors: Vec<InstrumentError>,
    },
}

fn earlier_text(errors: &[InstrumentError]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let texts: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    format!("; on the way: {}", texts.join("; "))
}

/// Send the output-off to `psu` whatever happened before (`earlier`: errors already
/// reported, e.g. by the connect sequence), then read it back. Ok with every error seen on
/// the way when the read-back says off.
pub async fn confirm_supply_off(
    psu: &mut dyn Supply,
    mut earlier: Vec<InstrumentError>,
) -> Result<Vec<InstrumentError>, SwitchOff> {
    if let Err(e) = psu.set_output(false).await {
        earlier.push(e);
    }
    let id = psu.id().to_string();
    let read_back = psu.output().await;
    judge_read_back(id, read_back, earlier)
}

/// As [`confirm_supply_off`], for a load's input.
pub async fn confirm_load_off(
    load: &mut dyn Load,
    mut earlier: Vec<InstrumentError>,
) -> Result<Vec<InstrumentError>, SwitchOff> {
    if let Err(e) = load.set_input(false).await {
        earlier.push(e);
    }
    let id = load.id().to_string();
    let read_back = load.input().await;
    judge_read_back(id, read_back, earlier)
}

/// Ok with the errors seen on the way when the read-back says off; otherwise why not.
#[allow(clippy::result_large_err)]
fn judge_read_back(
    id: String,
    read_back: Result<bool, InstrumentError>,
    errors: Vec<InstrumentError>,
) -> Result<Vec<InstrumentError>, SwitchOff> {
    match read_back {
        Ok(false) => Ok(errors),
        Ok(true) => Err(SwitchOff::StillOn { id, errors }),
        Err(source) => Err(SwitchOff::Unconfirmed { id, source, errors }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::test_support::scripted_pipe;
    use crate::instrument::{ConnectMode, ScpiLoad, ScpiSupply};
    use crate::scpi::builtin_dialect;
    use std::collections::VecDeque;
    use std::time::Duration;

    /// A scripted instrument: `errors_after` names commands that queue an error,
    /// `output` is what the output query answers. Returns the lines it received.
    fn scripted(
        errors_after: &'static [&'static str],
        output: &'static str,
    ) -> (
        Box<dyn crate::scpi::Transport>,
        tokio::task::JoinHandle<Vec<String>>,
    ) {
        let mut queue: VecDeque<String> = VecDeque::new();
        scripted_pipe(move |line| {
            if line.ends_with("SYST:ERR?") {
                Some(queue.pop_front().unwrap_or_else(|| "0,\"No error\"".into()))
            } else if line.ends_with('?') || line.contains("? ") {
                Some(output.to_string())
            } else {
                if errors_after.contains(&line) {
                    queue.push_back("-200,\"Execution error\"".into());
                }
                None
            }
        })
    }

    const T: Duration = Duration::from_millis(500);

    #[tokio::test]
    async fn supply_off_is_sent_after_a_refused_remote_lock() {
        let (transport, task) = scripted(&["SYST:LOCK 1"], "OFF");
        let dialect = builtin_dialect("ea-psb").unwrap();
        let (mut psu, passed) =
            ScpiSupply::open_with("psu", transport, dialect, T, ConnectMode::SwitchOff)
                .await
                .unwrap();
        assert_eq!(passed.len(), 1, "{passed:?}");
        let errors = confirm_supply_off(&mut psu, passed).await.unwrap();
        assert_eq!(errors.len(), 1);
        drop(psu);
        let sent = task.await.unwrap();
        assert!(sent.contains(&"OUTP OFF".to_string()), "{sent:?}");
        assert_eq!(sent.last().map(String::as_str), Some("OUTP?"));
    }

    #[tokio::test]
    async fn a_refused_remote_lock_still_refuses_settings() {
        let (transport, _task) = scripted(&["SYST:LOCK 1"], "OFF");
        let dialect = builtin_dialect("ea-psb").unwrap();
        let error = ScpiSupply::open_with("psu", transport, dialect, T, ConnectMode::Settings)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("-200"), "{error}");
    }

    #[tokio::test]
    async fn supply_off_fails_when_the_read_back_says_on() {
        let (transport, _task) = scripted(&["OUTP OFF"], "ON");
        let dialect = builtin_dialect("ea-psb").unwrap();
        let (mut psu, passed) =
            ScpiSupply::open_with("psu", transport, dialect, T, ConnectMode::SwitchOff)
                .await
                .unwrap();
        let error = confirm_supply_off(&mut psu, passed).await.unwrap_err();
        assert!(
            matches!(&error, SwitchOff::StillOn { errors, .. } if errors.len() == 1),
            "{error}"
        );
    }

    #[tokio::test]
    async fn load_off_fails_when_the_read_back_says_on() {
        let (transport, task) = scripted(&[], "1");
        let dialect = builtin_dialect("rigol-dl3000").unwrap();
        let (mut load, passed) =
            ScpiLoad::open_with("load", transport, dialect, T, ConnectMode::SwitchOff)
                .await
                .unwrap();
        let error = confirm_load_off(&mut load, passed).await.unwrap_err();
        assert!(matches!(error, SwitchOff::StillOn { .. }), "{error}");
        drop(load);
        let sent = task.await.unwrap();
        assert!(sent.contains(&":SOUR:INP:STAT OFF".to_string()), "{sent:?}");
    }

    #[tokio::test]
    async fn a_read_only_connection_sends_nothing_but_queries() {
        let (transport, task) = scripted(&[], "1");
        let dialect = builtin_dialect("rigol-dl3000").unwrap();
        let (mut load, passed) =
            ScpiLoad::open_with("load", transport, dialect, T, ConnectMode::ReadOnly)
                .await
                .unwrap();
        assert!(passed.is_empty());
        load.measure().await.unwrap();
        load.input().await.unwrap();
        drop(load);
        let sent = task.await.unwrap();
        assert!(
            sent.iter()
                .all(|l| l.ends_with('?') && !l.contains("SYST:ERR")),
            "{sent:?}"
        );
    }
}
