//! `hilrig report verify|approve|rejudge|render DIR`: the arguments; the work is in
//! `crate::report::actions`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::exit::Failure;
use crate::report::actions;
use crate::report::bundle::KeyChoice;
use crate::report::rejudge::RejudgeOptions;
use crate::verdict::DecisionRule;

/// Arguments of `hilrig report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// What to do with a run directory.
    #[command(subcommand)]
    pub action: ReportAction,
}

/// `hilrig report` actions.
#[derive(Debug, Subcommand)]
pub enum ReportAction {
    /// Check every file of a bundle against its manifest and the manifest's signature;
    /// exit 1 naming each changed, missing or extra file or a bad signature.
    Verify {
        /// The run directory.
        dir: PathBuf,
        /// The public key the bundle must be signed with (hex, or a `.pub` file).
        /// Default: the station key's `.pub` file when one exists beside the station key.
        #[arg(long)]
        pubkey: Option<String>,
        /// Fail on an unsigned bundle (the default; kept for scripts that pass it).
        #[arg(long, conflicts_with = "allow_unsigned")]
        require_signature: bool,
        /// Accept an unsigned bundle whose files match its manifest (anyone could have
        /// rewritten such a manifest, so by default it fails).
        #[arg(long)]
        allow_unsigned: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Judge the stored measurements again against a revised limit profile, without
    /// hardware; writes a new signed result in DIR/rejudge-<time>/.
    Rejudge {
        /// The run directory (a sealed bundle).
        dir: PathBuf,
        /// The revised limit profile.
        #[arg(long)]
        limits: PathBuf,
        /// Override the profile's decision rule.
        #[arg(long, value_enum)]
        decision_rule: Option<super::run::RuleArg>,
        /// Operator name (default: $HILRIG_OPERATOR).
        #[arg(long)]
        operator: Option<String>,
        /// Leave the new result unsigned even when a station key exists.
        #[arg(long)]
        unsigned: bool,
    },
    /// Add a signed approval to a bundle without changing it (checked by `report verify`).
    Approve {
        /// The run (or suite run) directory.
        dir: PathBuf,
        /// Who approves.
        #[arg(long)]
        by: String,
        /// The approver's own key (`hilrig keygen --out personal.key`); default: the
        /// station key.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Rebuild report.html and report.pdf from the stored data.
    Render {
        /// The run (or rejudge-*) directory.
        dir: PathBuf,
        /// Where to write (default: DIR/report.html; a signed bundle's report is only
        /// replaced when the rebuilt one is identical, otherwise pass --out).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Run `hilrig report`: the exit code, or the failure that stopped it.
pub fn report(a: ReportArgs) -> Result<i32, Failure> {
    match a.action {
        ReportAction::Verify {
            dir,
            pubkey,
            require_signature: _,
            allow_unsigned,
            json,
        } => actions::verify(&dir, pubkey, !allow_unsigned, json),
        ReportAction::Approve { dir, by, key } => actions::approve(&dir, &by, key),
        ReportAction::Rejudge {
            dir,
            limits,
            decision_rule,
            operator,
            unsigned,
        } => {
            let opts = RejudgeOptions {
                limits,
                decision_rule: decision_rule.map(DecisionRule::from),
                key: if unsigned {
                    KeyChoice::Unsigned
                } else {
                    KeyChoice::Default
                },
                operator,
            };
            actions::rejudge(&dir, opts)
        }
        ReportAction::Render { dir, out } => actions::render(&dir, out),
    }
}
