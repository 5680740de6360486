//! A DUT fixture's signal map against the fixture's DBC, for `hilrig validate FIXTURE`.
//!
//! Every `Message.Signal` the map names must be in the DBC: an unknown message and a message
//! without that signal are told apart, each error pointing at the fixture line and column
//! of the entry (with a "did you mean" from the DBC's names). The DBC itself is loaded with
//! its strict checks (errors at the DBC's line and column); its warnings and notes are
//! handed back for the caller to print. The state request's message, signal and labels are
//! checked too.

use std::path::{Path, PathBuf};

use super::error::{did_you_mean, InputError};
use super::fixture::{Fixture, StateRequest};
use super::load::{read_yaml, relative, Source};
use crate::dbc::{Dbc, Signal};

/// What checking a fixture found besides errors.
#[derive(Debug)]
pub struct SignalMapReport {
    /// The DBC the fixture names (resolved against the fixture's directory).
    pub dbc_path: PathBuf,
    /// Entries of the signal map checked.
    pub entries: usize,
    /// The DBC's warnings and notes, as lines to print.
    pub notes: Vec<String>,
}

/// True for a DUT fixture file: top-level `dbc:` and `signals:` keys and no `plan:` key.
pub fn is_fixture(text: &str) -> bool {
    let top = |key: &str| text.lines().any(|l| l.starts_with(key));
    top("dbc:") && top("signals:") && !top("plan:")
}

/// Load a fixture and its DBC and check the fixture's signal map against the DBC.
pub fn check_fixture_file(path: &Path) -> Result<SignalMapReport, Vec<InputError>> {
    let fixture: Source<Fixture> = read_yaml(path).map_err(|e| vec![e])?;
    let dbc_path = relative(path, &fixture.value.dbc);
    let dbc = Dbc::from_file(&dbc_path).map_err(|e| {
        vec![InputError::file(
            path,
            format!("its DBC cannot be used: {e}"),
        )]
    })?;
    let dbc = super::inverter::with_inverter_dbc(path, &fixture.value, dbc)
        .map_err(|e| vec![InputError::file(path, e)])?;
    let errors = check_signal_map(&fixture, &dbc);
    if !errors.is_empty() {
        return Err(errors);
    }
    let notes = dbc
        .warnings()
        .iter()
        .map(|w| format!("warning: {w}"))
        .chain(dbc.notes().iter().map(|n| format!("note: {n}")))
        .collect();
    Ok(SignalMapReport {
        dbc_path,
        entries: fixture.value.signals.len(),
        notes,
    })
}

/// Errors for signal-map entries (and the state request) that the DBC does not have.
pub fn check_signal_map(fixture: &Source<Fixture>, dbc: &Dbc) -> Vec<InputError> {
    let mut errors = Vec::new();
    let origin = dbc.origin();
    let at =
        |loc, message: String| InputError::at_location(&fixture.path, &fixture.text, loc, message);
    for (logical, target) in &fixture.value.signals {
        let loc = &target.referenced;
        let Some((message, signal)) = target.value.split_once('.') else {
            errors.push(at(
                loc,
                format!(
                    "signal map `{logical}`: `{}` should be `Message.Signal`",
                    target.value
                ),
            ));
            continue;
        };
        let Some(m) = dbc.message(message) else {
            let hint = did_you_mean(message, dbc.messages().iter().map(|m| m.name.as_str()))
                .map(|b| format!("; did you mean `{b}`?"))
                .unwrap_or_default();
            errors.push(at(
                loc,
                format!("signal map `{logical}`: no message `{message}` in {origin}{hint}"),
            ));
            continue;
        };
        if m.signal(signal).is_none() {
            let hint = did_you_mean(signal, m.signals.iter().map(|s| s.name.as_str()))
                .map(|b| format!("; did you mean `{b}`?"))
                .unwrap_or_default();
            errors.push(at(
                loc,
                format!(
                    "signal map `{logical}`: message `{message}` ({} {:#X}) in {origin} has no \
                     signal `{signal}`{hint}",
                    if m.extended { "extended id" } else { "id" },
                    m.id
                ),
            ));
        }
    }
    if let Some(sr) = &fixture.value.state_request {
        match dbc.message(&sr.message).map(|m| m.signal(&sr.signal)) {
            None => errors.push(InputError::file(
                &fixture.path,
                format!("state_request: no message `{}` in {origin}", sr.message),
            )),
            Some(None) => errors.push(InputError::file(
                &fixture.path,
                format!(
                    "state_request: message `{}` in {origin} has no signal `{}`",
                    sr.message, sr.signal
                ),
            )),
            Some(Some(s)) => check_state_labels(&fixture.path, sr, s, &mut errors),
        }
    }
    errors
}

/// An error for each of a state request's `run` and `standby` labels that is not in the
/// value table of its signal.
pub(crate) fn check_state_labels(
    path: &Path,
    sr: &StateRequest,
    signal: &Signal,
    errors: &mut Vec<InputError>,
) {
    for label in [&sr.run, &sr.standby] {
        if signal.label_value(label).is_none() {
            errors.push(InputError::file(
                path,
                format!(
                    "state_request: `{label}` is not in the value table of {}.{}",
                    sr.message, sr.signal
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_told_from_plans() {
        assert!(is_fixture("dut: x\ndbc: a.dbc\nsignals:\n  a: M.S\n"));
        assert!(!is_fixture("plan: p\ndut: ../f.yaml\nsignals:\ndbc: x\n"));
        assert!(!is_fixture("station: s\n"));
    }

    #[test]
    fn unknown_messages_and_signals_are_named_at_their_line() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("fixtures/sim-bms-16s-lfp.yaml")).unwrap();
        let dbc = root.join("fixtures/dbc/sim-bms.dbc");
        let text = text
            .replace("dbc: dbc/sim-bms.dbc", &format!("dbc: {}", dbc.display()))
            .replace(
                "bms.chg_fet: BMS_Status.ChgFet",
                "bms.chg_fet: BMS_Statu.ChgFet",
            )
            .replace(
                "bms.dsg_fet: BMS_Status.DsgFet",
                "bms.dsg_fet: BMS_Status.DsgFett",
            );
        let dir = std::env::temp_dir().join(format!("hilrig-signal-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fixture.yaml");
        let text = crate::plan::fixture::absolute_paths(&text, &root.join("fixtures"));
        std::fs::write(&path, &text).unwrap();
        let line = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let errors = check_fixture_file(&path).unwrap_err();
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        let at = |l: usize| format!("{}:{l}:", path.display());
        let message = errors.iter().find(|e| e.contains("BMS_Statu`")).unwrap();
        assert!(
            message.contains("no message `BMS_Statu`")
                && message.contains("did you mean `BMS_Status`")
                && message.contains(&at(line("BMS_Statu.ChgFet"))),
            "{message}"
        );
        let signal = errors.iter().find(|e| e.contains("DsgFett")).unwrap();
        assert!(
            signal.contains("has no signal `DsgFett`")
                && signal.contains("did you mean `DsgFet`")
                && signal.contains(&at(line("DsgFett"))),
            "{signal}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shipped_fixtures_match_their_dbcs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for f in [
            "fixtures/sim-bms-16s-lfp.yaml",
            "fixtures/foxbms2-style.yaml",
        ] {
            let report = check_fixture_file(&root.join(f)).unwrap_or_else(|e| {
                panic!(
                    "{f}: {}",
                    e.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            });
            assert!(report.entries > 5, "{f}");
        }
    }
}
