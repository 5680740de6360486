//! The options `hilrig supply` and `hilrig load` share, and the one call into the manual
//! engine (`crate::instrument::manual`) that both make.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::exit::Failure;
use crate::instrument::manual::{self, Action, Kind, ManualOptions, MAX_ON_FOR};

/// The options `hilrig supply` and `hilrig load` share.
#[derive(Debug, Args)]
pub struct ManualArgs {
    /// Rig file (default: rig/sim.yaml, the built-in simulated bench).
    #[arg(long, global = true)]
    pub rig: Option<PathBuf>,
    /// Instrument id from the rig file (default: the rig's first of its kind).
    #[arg(long, global = true)]
    pub id: Option<String>,
    /// Wait this long for the bench lock when a run holds it (e.g. `30 s`, `10 min`).
    #[arg(long, global = true, value_name = "DURATION", allow_hyphen_values = true, value_parser = super::parse_duration)]
    pub wait: Option<Duration>,
    /// Change an instrument whose calibration has expired (as for `run`).
    #[arg(long, global = true)]
    pub allow_expired_calibration: bool,
}

/// Run one manual action on the `kind` of instrument of the chosen rig.
pub(super) async fn run(kind: Kind, a: ManualArgs, action: Action) -> Result<i32, Failure> {
    let session = super::instruments::session(a.rig).await?;
    let options = ManualOptions {
        id: a.id,
        wait: a.wait,
        allow_expired_calibration: a.allow_expired_calibration,
    };
    manual::run(kind, session, options, action).await
}

/// `--for` of `supply on` / `load on`: a duration above zero and at most 24 h (`10 min`).
pub(super) fn parse_on_for(text: &str) -> Result<Duration, String> {
    let d = super::parse_duration(text)?;
    if d.is_zero() || d > MAX_ON_FOR {
        return Err(format!("`{text}` is not above 0 s and at most 24 h"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("90 s", Ok(90.0))]
    #[case("10min", Ok(600.0))]
    #[case("24 h", Ok(86_400.0))]
    #[case("0 s", Err("is not above 0 s and at most 24 h"))]
    #[case("-5 s", Err("negative"))]
    #[case("25 h", Err("is not above 0 s and at most 24 h"))]
    #[case("5 V", Err(""))]
    fn on_for_is_a_duration_above_zero_and_at_most_a_day(
        #[case] text: &str,
        #[case] want: Result<f64, &str>,
    ) {
        match (parse_on_for(text), want) {
            (Ok(d), Ok(s)) => assert_eq!(d.as_secs_f64(), s),
            (Err(e), Err(part)) => assert!(e.contains(part), "{e}"),
            (got, want) => panic!("{text}: {got:?}, expected {want:?}"),
        }
    }
}
