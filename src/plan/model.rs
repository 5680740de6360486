//! Test plans and suites as written in YAML.

use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::condition::Condition;
use crate::units::{Amps, Seconds, Volts, VoltsPerSecond};

/// A test plan file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Plan id, used in result names.
    pub plan: String,
    /// Human title.
    pub title: String,
    /// Requirement references, e.g. `IEC 62619:2022 8.2.2`.
    #[serde(default)]
    pub requirements: Vec<String>,
    /// DUT fixture path, relative to the plan file.
    pub dut: PathBuf,
    /// Limit profile: a name (looked up in `limits/` beside the fixture) or a path.
    pub limits: Spanned<String>,
    /// How many times `steps` run (setup and teardown run once).
    #[serde(default = "one")]
    pub repeat: u32,
    /// Steps before the tests.
    #[serde(default)]
    pub setup: Vec<Spanned<Step>>,
    /// The test steps.
    pub steps: Vec<Spanned<Step>>,
    /// Steps that always run at the end, even after a failure or abort.
    #[serde(default)]
    pub teardown: Vec<Spanned<Step>>,
}

fn one() -> u32 {
    1
}

/// On or off, as written `on`/`off` or `true`/`false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnOff(pub bool);

impl<'de> Deserialize<'de> for OnOff {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = OnOff;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`on` or `off`")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<OnOff, E> {
                Ok(OnOff(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OnOff, E> {
                match v {
                    "on" | "ON" | "On" => Ok(OnOff(true)),
                    "off" | "OFF" | "Off" => Ok(OnOff(false)),
                    _ => Err(E::custom(format!("`{v}` is neither `on` nor `off`"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One step of a plan.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Program the DC supply.
    Supply(SupplySet),
    /// Program the electronic load.
    Load(LoadSet),
    /// Set cell-simulator voltages.
    Cells(CellsSet),
    /// Wait a fixed time.
    Wait(Seconds),
    /// Wait until a condition holds, or fail after the timeout.
    WaitFor(WaitFor),
    /// Drive a stimulus until the BMS trips, and judge threshold and timing.
    Trip(Trip),
}

impl Step {
    /// Short name of the step kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Supply(_) => "supply",
            Step::Load(_) => "load",
            Step::Cells(_) => "cells",
            Step::Wait(_) => "wait",
            Step::WaitFor(_) => "wait_for",
            Step::Trip(_) => "trip",
        }
    }
}

/// Supply settings; absent fields are left as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplySet {
    /// Voltage setpoint.
    pub voltage: Option<Volts>,
    /// Current limit.
    pub current: Option<Amps>,
    /// Output state.
    pub output: Option<OnOff>,
}

/// Load settings; absent fields are left as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSet {
    /// Sink current (constant-current mode).
    pub current: Option<Amps>,
    /// Input state.
    pub input: Option<OnOff>,
}

/// Cell-simulator voltages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellsSet {
    /// Every cell to this voltage.
    pub all: Option<Volts>,
    /// One cell (1-based) ...
    pub cell: Option<u32>,
    /// ... to this voltage.
    pub voltage: Option<Volts>,
}

/// Wait for a condition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    /// The condition.
    pub until: Spanned<Condition>,
    /// Give up (and fail the step) after this long.
    pub timeout: Seconds,
}

/// A trip test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trip {
    /// Test name (unique within the plan).
    pub name: String,
    /// Which declared protection this exercises (`ov`, `uv`, ...).
    pub protection: Spanned<String>,
    /// How the stimulus is driven.
    pub stimulus: Stimulus,
    /// The condition that means "the BMS acted".
    pub detect: Spanned<Condition>,
    /// Fail the test if nothing is detected within this time.
    pub timeout: Seconds,
    /// Criteria of the limit profile to judge.
    pub judge: Vec<Spanned<String>>,
}

/// Stimulus methods.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stimulus {
    /// A linear ramp of one cell's voltage.
    Ramp(CellRamp),
}

/// A cell-voltage ramp.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellRamp {
    /// 1-based cell index.
    pub cell: u32,
    /// Start voltage.
    pub from: Volts,
    /// End voltage (the ramp holds here until the timeout).
    pub to: Volts,
    /// Ramp rate.
    pub rate: VoltsPerSecond,
}
