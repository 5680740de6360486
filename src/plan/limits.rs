//! Limit profiles: pass criteria written against the DUT's declared values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::fixture::QuantityValue;
use crate::units::Seconds;

/// How a measured value with uncertainty is turned into a verdict (ILAC-G8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionRule {
    /// Pass when the measured value is within the limit, uncertainty not subtracted.
    Simple,
    /// Pass only when value ± uncertainty is within the limit; fail only when it is all
    /// outside; otherwise inconclusive.
    Guarded,
}

/// A limit profile file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitProfile {
    /// Profile id.
    pub profile: String,
    /// Human title.
    pub title: String,
    /// The decision rule the profile asks for.
    pub decision_rule: DecisionRule,
    /// Criteria by name.
    pub criteria: BTreeMap<String, Spanned<Criterion>>,
}

/// One criterion with its provenance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    /// What is checked.
    pub check: Check,
    /// Where the criterion comes from and how sure we are of it.
    pub provenance: Provenance,
}

/// The kinds of check.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The measured trip level lies within ± tolerance of the declared trip level.
    Threshold {
        /// Allowed deviation from the declared trip level.
        tolerance: QuantityValue,
    },
    /// The measured trip level lies in an absolute window (chemistry-typical settings).
    ThresholdWindow {
        /// Lowest acceptable trip level.
        min: QuantityValue,
        /// Highest acceptable trip level.
        max: QuantityValue,
    },
    /// The measured trip time is at most the declared delay plus an allowance.
    TripTime {
        /// Allowed time beyond the declared delay.
        allowance: Seconds,
    },
    /// The stimulus never went beyond a cell-maker limit named in the fixture (above it for
    /// rising stimuli, below it for falling ones).
    StimulusPeak {
        /// Key in the fixture's `cell_limits`.
        at_most: String,
    },
    /// The measured release level lies within ± tolerance of the declared release level.
    Release {
        /// Allowed deviation from the declared release level.
        tolerance: QuantityValue,
    },
    /// A condition holds (judged by an `expect` step).
    Holds,
    /// The fixture's declared pack energy is within the cap for its declared location
    /// (judged by a `declaration` step).
    EnergyCap {
        /// Cap for installation inside a dwelling.
        indoor: QuantityValue,
        /// Cap outdoors or in a detached, fire-separated building.
        outdoor: QuantityValue,
    },
    /// A measured value lies in a range (judged by a `measure` step).
    Range {
        /// Lowest acceptable value.
        min: Option<QuantityValue>,
        /// Highest acceptable value.
        max: Option<QuantityValue>,
    },
    /// The BMS's reported state of charge lies within ± `max_error` percentage points of the
    /// rig's SOC reference (judged by a `soc` step, see `verdict::soc`).
    SocAccuracy {
        /// Largest deviation, percentage points of SOC.
        max_error: f64,
    },
    /// An inverter-interface check (judged by an `inverter` step), see `plan::inverter`.
    #[serde(untagged)]
    Inverter(super::inverter::InverterCheck),
    /// What no other variant reads (a misspelled check or field): kept so that validation
    /// refuses it at its line with the known checks, rather than serde's "no variant".
    #[serde(untagged)]
    Unknown(serde_json::Value),
}

/// The checks a limit profile may name.
pub const CHECK_KINDS: [&str; 16] = [
    "threshold",
    "threshold_window",
    "trip_time",
    "stimulus_peak",
    "release",
    "holds",
    "energy_cap",
    "range",
    "soc_accuracy",
    "announced_limits",
    "derate_before_trip",
    "disabled_after_trip",
    "alarm_bits",
    "announce_period",
    "announced_measurements",
    "keepalive_loss",
];

impl Check {
    /// The check's name as written.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Threshold { .. } => "threshold",
            Check::ThresholdWindow { .. } => "threshold_window",
            Check::EnergyCap { .. } => "energy_cap",
            Check::TripTime { .. } => "trip_time",
            Check::StimulusPeak { .. } => "stimulus_peak",
            Check::Release { .. } => "release",
            Check::Holds => "holds",
            Check::Range { .. } => "range",
            Check::SocAccuracy { .. } => "soc_accuracy",
            Check::Inverter(c) => c.kind(),
            Check::Unknown(_) => "unknown",
        }
    }
}

/// Where a criterion comes from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Standard or source, e.g. `IEC 62619:2022`.
    pub source: String,
    /// Clause, where there is one.
    #[serde(default)]
    pub clause: Option<String>,
    /// What the criterion rests on, in our words (the standards are not quoted).
    pub basis: String,
    /// How sure we are: `high`, `medium`, `low`, with a reason.
    pub confidence: String,
}
