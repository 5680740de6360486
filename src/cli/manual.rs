//! What `hilrig supply` and `hilrig load` share: the options, the actions (one definition,
//! [`manual_actions!`], worded for the output of a supply or the input of a load), and the
//! one call into the manual engine (`crate::bench::manual`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::bench::manual::{self, Action, Kind, ManualOptions, MAX_ON_FOR};
use crate::exit::Failure;

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

/// Arguments of `hilrig supply` and `hilrig load`: the shared options, then the action.
#[derive(Debug, Args)]
pub struct ManualCommand<A: Subcommand> {
    /// Rig, instrument, lock and calibration options.
    #[command(flatten)]
    pub options: ManualArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: A,
}

/// The setpoints of `set`, as each kind takes them.
pub trait Setpoints {
    /// The engine's action, or why the setpoints are refused.
    fn action(self) -> Result<Action, Failure>;
}

/// The actions of `hilrig $kind` (`$port`: `output` or `input`): `set` with the kind's own
/// setpoints (`$set`, its help `$set_about`), then `on` (its long help around the kind's
/// paragraph `$without_for`), `off` and `measure`, the same for both.
macro_rules! manual_actions {
    ($name:ident, $kind:literal, $port:literal, $set:ty, $set_about:expr, $without_for:expr) => {
        #[doc = concat!("The actions on the ", $port, ".")]
        #[derive(Debug, clap::Subcommand)]
        pub enum $name {
            /// Program setpoints.
            #[command(about = $set_about)]
            Set($set),
            /// Switch on.
            #[command(
                about = concat!("Switch the ", $port, " on; it stays on after the command ends (see --for)"),
                long_about = concat!(
                    "Switch the ", $port, " on.\n\n",
                    $without_for,
                    "\n\nWith --for D (`90 s`, `10 min`, at most 24 h) the command stays in the \
                     foreground holding\nthe bench lock, reads the ", $port, " back once a second, \
                     and switches it off (confirmed by\nread-back) when D has passed, on Ctrl-C \
                     or SIGTERM, or when the ", $port, " went off by itself.\nOn a lab rig it \
                     first starts the out-of-process guard (`hilrig guard`, as `hilrig run`\n\
                     does): if hilrig is killed (SIGKILL, the OOM killer) the guard switches the ",
                    $port, " off and\nwrites guard.json into a `hilrig-", $kind, "-on-PID` \
                     directory of the system's temporary\ndirectory."
                )
            )]
            On {
                /// How long to hold it on.
                #[arg(
                    long = "for",
                    value_name = "DURATION",
                    value_parser = super::manual::parse_on_for,
                    help = concat!("Keep the ", $port, " on this long (`10 min`, at most 24 h), then switch it off; a guard process switches it off if hilrig is killed first")
                )]
                for_: Option<std::time::Duration>,
            },
            /// Switch off.
            #[command(about = concat!("Switch the ", $port, " off"))]
            Off,
            /// Measure.
            #[command(about = concat!("Read terminal voltage, current and ", $port, " state"))]
            Measure {
                /// One JSON object instead of a line for people.
                #[arg(long)]
                json: bool,
            },
        }

        impl $name {
            /// The engine's action.
            fn action(self) -> Result<crate::bench::manual::Action, crate::exit::Failure> {
                use crate::bench::manual::Action;
                Ok(match self {
                    $name::Set(s) => super::manual::Setpoints::action(s)?,
                    $name::On { for_ } => Action::On { for_ },
                    $name::Off => Action::Off,
                    $name::Measure { json } => Action::Measure { json },
                })
            }
        }
    };
}
pub(super) use manual_actions;

/// Run one manual action on the `kind` of instrument of the chosen rig.
pub(super) async fn run<A: Subcommand>(
    kind: Kind,
    a: ManualCommand<A>,
    action: impl FnOnce(A) -> Result<Action, Failure>,
) -> Result<i32, Failure> {
    let action = action(a.action)?;
    let a = a.options;
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
