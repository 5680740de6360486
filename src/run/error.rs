//! What can stop a run, as data: the kind of failure (recorded in the results as
//! [`AbortKind`]), the stage of the run it happened in ([`AbortStage`]), and the underlying
//! error kept as its source.
//!
//! The executor's functions return [`RunError`]; the texts are those an operator reads in the
//! summary and the report, so a variant's message is the lower layer's message, unchanged.

use crate::instrument::InstrumentError;
use crate::report::{AbortKind, AbortStage};
use crate::rig::EnvelopeViolation;

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An instrument failed a command, could not be connected, or its connection was lost.
    #[error("{0}")]
    Instrument(#[from] InstrumentError),
    /// The cell simulator failed a command.
    #[error("{0}")]
    CellSim(#[from] crate::instrument::cellsim::CellSimError),
    /// An instrument failure described by the layer that met it (connecting, reconnecting).
    #[error("{0}")]
    InstrumentText(String),
    /// A command outside the rig's envelope, refused before anything was sent.
    #[error("{0}")]
    Envelope(#[from] EnvelopeViolation),
    /// The DUT's CAN bus failed: it could not be opened, a frame could not be sent or
    /// encoded, or the DUT fell silent.
    #[error("{0}")]
    Bus(String),
    /// The rig, fixture or DBC lacks what the step needs (no supply in the rig, a state
    /// request the DBC does not have, a condition that cannot be bound).
    #[error("{0}")]
    Setup(String),
    /// An instrument is not the one the rig file names (another serial number).
    #[error("{0}")]
    Identity(String),
    /// A prompt could not be asked or answered.
    #[error("{0}")]
    Operator(String),
    /// The trace could not be written (a full disk, a file-size limit).
    #[error("{0}")]
    Trace(String),
    /// The operator or a signal stopped the run.
    #[error("{0}")]
    Cancelled(String),
    /// The run was refused before its first step (its firmware could not be flashed).
    #[error("{0}")]
    Refused(String),
    /// A step needed by the plan timed out on the bench's side (a teardown condition).
    #[error("{0}")]
    Timeout(String),
    /// A defect of hilrig itself (a panic in the executor).
    #[error("{0}")]
    Internal(String),
    /// The same error, with where it happened (`steps[2] trip (plan.yaml:14)`) in front.
    #[error("{context}: {source}")]
    Context {
        /// Where it happened.
        context: String,
        /// What happened.
        #[source]
        source: Box<RunError>,
    },
}

impl RunError {
    /// The kind of failure, for the results and the exit code.
    pub fn kind(&self) -> AbortKind {
        match self {
            RunError::Instrument(_) | RunError::CellSim(_) | RunError::InstrumentText(_) => {
                AbortKind::Instrument
            }
            RunError::Envelope(_) => AbortKind::Envelope,
            RunError::Bus(_) => AbortKind::Bus,
            RunError::Setup(_) => AbortKind::Setup,
            RunError::Identity(_) => AbortKind::Identity,
            RunError::Operator(_) => AbortKind::Operator,
            RunError::Trace(_) => AbortKind::Trace,
            RunError::Cancelled(_) => AbortKind::Cancelled,
            RunError::Refused(_) => AbortKind::Refused,
            RunError::Timeout(_) => AbortKind::Timeout,
            RunError::Internal(_) => AbortKind::Internal,
            RunError::Context { source, .. } => source.kind(),
        }
    }

    /// The same error with `context` (where it happened) in front of its text.
    pub fn context(self, context: impl Into<String>) -> Self {
        RunError::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// A setup error from a lower layer's text.
    pub fn setup(text: impl std::fmt::Display) -> Self {
        RunError::Setup(text.to_string())
    }

    /// A bus error from a lower layer's text.
    pub fn bus(text: impl std::fmt::Display) -> Self {
        RunError::Bus(text.to_string())
    }
}

/// Why the step sequence stopped early: the error, the stage, the step running, and who
/// stopped it when an operator did.
#[derive(Debug)]
pub(crate) struct Stop {
    /// What went wrong.
    pub error: RunError,
    /// Where in the run.
    pub stage: AbortStage,
    /// The step running (`setup[0] supply (plan.yaml:12)`), when one was.
    pub step: Option<String>,
    /// Who stopped the run, when an operator did.
    pub stopped_by: Option<String>,
}

impl Stop {
    /// A stop at a stage where no step runs.
    pub fn at(stage: AbortStage, error: RunError) -> Self {
        Stop {
            error,
            stage,
            step: None,
            stopped_by: None,
        }
    }

    /// A stop while steps run; `step` is the step running, when one was.
    pub fn in_steps(step: Option<String>, error: RunError) -> Self {
        Stop {
            error,
            stage: AbortStage::Steps,
            step,
            stopped_by: None,
        }
    }

    /// The `during` text of the results: the step, else the stage in words.
    pub fn during(&self) -> Option<String> {
        self.step
            .clone()
            .or_else(|| self.stage.words().map(str::to_string))
    }
}

/// One phase of a plan's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// `setup:`, run once.
    Setup,
    /// `steps:`, run `repeat` times.
    Steps,
    /// `teardown:`, always run at the end when the bench is usable.
    Teardown,
}

impl Phase {
    /// The plan's key for this phase.
    pub fn key(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Steps => "steps",
            Phase::Teardown => "teardown",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::envelope(RunError::Envelope(EnvelopeViolation { what: "supply voltage".into(), value: "70 V".into(), limit: "60 V".into() }), AbortKind::Envelope)]
    #[case::bus(RunError::bus("no frame"), AbortKind::Bus)]
    #[case::lost(RunError::InstrumentText("lost".into()), AbortKind::Instrument)]
    #[case::nested(RunError::bus("no frame").context("steps[1] wait").context("outer"), AbortKind::Bus)]
    fn the_kind_survives_context(#[case] e: RunError, #[case] kind: AbortKind) {
        assert_eq!(e.kind(), kind);
    }

    #[test]
    fn context_goes_in_front_and_keeps_the_source() {
        let e = RunError::setup("the rig has no supply").context("setup[0] supply (p.yaml:3)");
        assert_eq!(
            e.to_string(),
            "setup[0] supply (p.yaml:3): the rig has no supply"
        );
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("the rig has no supply"));
    }

    #[rstest::rstest]
    #[case::step(Stop::in_steps(Some("steps[0] wait (p.yaml:9)".into()), RunError::bus("x")), Some("steps[0] wait (p.yaml:9)"))]
    #[case::connecting(
        Stop::at(AbortStage::Connecting, RunError::bus("x")),
        Some("connecting the bench")
    )]
    #[case::no_step(Stop::in_steps(None, RunError::bus("x")), None)]
    fn during_names_the_step_else_the_stage(#[case] s: Stop, #[case] want: Option<&str>) {
        assert_eq!(s.during().as_deref(), want);
    }
}
