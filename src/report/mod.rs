//! What a run writes: `results.json` (the model below), `junit.xml`, and the trace; and the
//! evidence built on them: `report.html`, the bundle with `manifest.json` and its ed25519
//! signature, verification, re-judging against revised limits and the JSON Schemas.
//!
//! Choices: plots are hand-written SVG (no plotting crate) and the HTML is written by a small
//! escaping writer (no template crate), which keeps the build light and the output fully
//! under our control (one self-contained file, nothing fetched).

pub mod actions;
pub mod approval;
pub mod bundle;
pub mod calibration;
pub mod context;
pub mod html;
pub mod inputs;
pub mod junit;
pub mod keys;
pub mod manifest;
pub mod pdf;
pub mod rejudge;
pub mod schema;
pub mod series;
pub mod suite;
pub mod svg;
#[cfg(test)]
pub(crate) mod test_support;

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plan::limits::Provenance;
use crate::verdict::{DecisionRule, Limit, Verdict};

/// Version of the results.json layout.
pub const RESULTS_SCHEMA: &str = "hilrig.results/1";

/// How the run ended as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every test passed.
    Passed,
    /// At least one test failed.
    Failed,
    /// No failure, but at least one inconclusive result.
    Inconclusive,
    /// The run stopped early (error, timeout, cancel, lost instrument).
    Aborted,
}

impl Outcome {
    /// Process exit code: 0 passed, 1 failed or inconclusive, 2 aborted.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Passed => 0,
            Outcome::Failed | Outcome::Inconclusive => 1,
            Outcome::Aborted => 2,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunResults {
    /// Layout version.
    pub schema: String,
    /// Run id (also the directory name).
    pub run_id: String,
    /// Plan id.
    pub plan: String,
    /// Plan title.
    pub title: String,
    /// Requirement references.
    pub requirements: Vec<String>,
    /// Station id.
    pub station: String,
    /// DUT fixture id.
    pub dut: String,
    /// Limit profile id.
    pub limit_profile: String,
    /// The decision rule used for every verdict.
    #[schemars(with = "schema::DecisionRuleDef")]
    pub decision_rule: DecisionRule,
    /// The coverage factor `k` of every expanded uncertainty in the run (`U = k·u_c`).
    #[serde(default = "default_k")]
    pub coverage_factor: f64,
    /// Firmware the DUT ran, when known.
    pub firmware: Option<FirmwareInfo>,
    /// The SCPI instruments as they identified themselves (`*IDN?`) when connected.
    #[serde(default)]
    pub instruments: Vec<InstrumentIdentity>,
    /// Wall time at the run clock's origin (RFC 3339, UTC): trace times count from here.
    pub clock_anchor: String,
    /// Run duration in seconds.
    pub duration_s: f64,
    /// Overall outcome.
    pub outcome: Outcome,
    /// Why the run stopped early, when it did.
    pub abort: Option<Abort>,
    /// Whether every safe-state action succeeded.
    pub safe_state_reached: bool,
    /// Each safe-state action and whether it succeeded.
    pub safe_state: Vec<SafeStateAction>,
    /// The supply's I/O watchdog, when the run armed one: armed at the start, disarmed after
    /// a confirmed safe state.
    #[serde(default)]
    pub watchdog: Option<WatchdogRecord>,
    /// The tests, one entry per test and repeat.
    pub tests: Vec<TestResult>,
    /// Rows in trace.csv.
    pub trace_rows: u64,
    /// Min / mean / max over the repeats of each test and criterion.
    #[serde(default)]
    pub statistics: Vec<RepeatStatistics>,
    /// The parameter values in effect.
    #[serde(default)]
    pub parameters: std::collections::BTreeMap<String, String>,
    /// The item, the people, the conditions and the instruments' calibration.
    #[serde(flatten, default)]
    pub context: context::RunContext,
    /// Tests of the plan that did not run (the plan stopped early or was not started), each
    /// with the reason.
    #[serde(default)]
    pub not_run: Vec<NotRun>,
    /// Warnings about the run and its assumptions (a DBC message cycle the bus contradicts,
    /// a supply watchdog that could not be disarmed, ...).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The operator's answers to the plan's `prompt` steps, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<PromptRecord>,
}

/// A `prompt` step's answers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PromptRecord {
    /// The step (`steps[1] prompt (plan.yaml:12)`).
    pub step: String,
    /// Repeat number (1-based; 0 for setup/teardown).
    pub repeat: u32,
    /// What the operator was asked.
    pub text: String,
    /// Entry name → value.
    pub answers: std::collections::BTreeMap<String, String>,
    /// Who answered: `terminal`, `page` (the live page) or `default` (nobody could).
    pub answered_by: String,
    /// Seconds since the run's clock origin, when answered.
    pub at_s: f64,
}

/// A test of the plan that did not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotRun {
    /// Name, unique within the run (`OV cell 5 #2`), as it would have been reported.
    pub name: String,
    /// Why it did not run.
    pub reason: String,
}

/// Statistics of one criterion over the repeats of one test.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RepeatStatistics {
    /// Test name as in the plan.
    pub test: String,
    /// Criterion.
    pub criterion: String,
    /// Unit.
    pub unit: String,
    /// Number of values.
    pub n: usize,
    /// Smallest value.
    pub min: f64,
    /// Mean value.
    pub mean: f64,
    /// Largest value.
    pub max: f64,
    /// Type A standard uncertainty of the mean: the spread of the repeats, `s/√n`.
    #[serde(default)]
    pub type_a: f64,
    /// Expanded uncertainty of the mean, `k·√(type_a² + mean u_c²)`: the Type A part with
    /// the repeats' own (Type B) budgets.
    #[serde(default)]
    pub expanded_uncertainty: f64,
}

/// Min / mean / max per (test, criterion, quantity) over all repeats, in order of first
/// appearance (a criterion that judges several quantities, as the inverter checks do, gets
/// one row per quantity).
pub fn repeat_statistics(tests: &[TestResult]) -> Vec<RepeatStatistics> {
    let mut out: Vec<(RepeatStatistics, f64)> = Vec::new();
    // The quantity of each row of `out`, in step.
    let mut quantities: Vec<String> = Vec::new();
    let mut samples: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new();
    for t in tests {
        for m in &t.measurements {
            if !m.value.is_finite() {
                continue;
            }
            match out.iter().zip(&quantities).position(|((s, _), q)| {
                s.test == t.test && s.criterion == m.criterion && *q == m.quantity
            }) {
                Some(i) => {
                    let (s, sum) = &mut out[i];
                    samples[i].0.push(m.value);
                    samples[i].1.push(m.combined_standard_uncertainty);
                    s.n += 1;
                    s.min = s.min.min(m.value);
                    s.max = s.max.max(m.value);
                    *sum += m.value;
                }
                None => {
                    quantities.push(m.quantity.clone());
                    samples.push((
                        vec![m.value],
                        vec![m.combined_standard_uncertainty],
                        m.coverage_factor,
                    ));
                    out.push((
                        RepeatStatistics {
                            test: t.test.clone(),
                            criterion: m.criterion.clone(),
                            unit: m.unit.clone(),
                            n: 1,
                            min: m.value,
                            mean: 0.0,
                            max: m.value,
                            type_a: 0.0,
                            expanded_uncertainty: 0.0,
                        },
                        m.value,
                    ))
                }
            }
        }
    }
    out.into_iter()
        .zip(samples)
        .map(|((mut s, sum), (values, u_b, k))| {
            s.mean = sum / s.n as f64;
            s.type_a = crate::verdict::gum::type_a(&values);
            let u_b2 = u_b.iter().map(|u| u * u).sum::<f64>() / u_b.len() as f64;
            s.expanded_uncertainty = k * (s.type_a.powi(2) + u_b2).sqrt();
            s
        })
        .collect()
}

/// Firmware identity.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FirmwareInfo {
    /// Image id.
    pub id: String,
    /// Version.
    pub version: String,
    /// SHA-256 of the image, hex.
    pub sha256: String,
}

/// An instrument's answer to `*IDN?` at connect, split into its IEEE 488.2 fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InstrumentIdentity {
    /// Instrument id in the rig.
    pub id: String,
    /// The whole `*IDN?` reply.
    pub idn: String,
    /// Manufacturer (first `*IDN?` field).
    pub manufacturer: String,
    /// Model (second field).
    pub model: String,
    /// Serial number (third field; empty when the instrument reports none).
    pub serial: String,
    /// Firmware (fourth field).
    pub firmware: String,
}

impl InstrumentIdentity {
    /// Split an IEEE 488.2 `*IDN?` reply (`maker,model,serial,firmware`) for instrument `id`.
    pub fn parse(id: &str, idn: &str) -> Self {
        let mut f = idn.splitn(4, ',').map(|x| x.trim().to_string());
        let mut next = || f.next().unwrap_or_default();
        InstrumentIdentity {
            id: id.to_string(),
            idn: idn.trim().to_string(),
            manufacturer: next(),
            model: next(),
            serial: next(),
            firmware: next(),
        }
    }

    /// Whether the reported serial number says nothing (empty or all zeros, as some
    /// instruments report).
    pub fn serial_unknown(&self) -> bool {
        self.serial.chars().all(|c| c == '0')
    }

    /// Whether the instrument reports a serial number other than the rig file's `serial`.
    pub fn other_serial_than(&self, serial: Option<&str>) -> bool {
        let expected = serial.map(str::trim).unwrap_or_default();
        !expected.is_empty() && !self.serial_unknown() && self.serial != expected
    }
}

/// Why a run stopped early.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Abort {
    /// What went wrong, in words.
    pub cause: String,
    /// The step running when it happened (`steps[2] trip "OV cell 5"`), when any.
    pub during: Option<String>,
    /// Seconds since the run's clock origin.
    pub at_s: f64,
    /// Who stopped the run, when an operator did (`live page`, `interrupt or terminate
    /// signal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// What kind of failure stopped it (absent in results written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AbortKind>,
    /// The stage of the run it stopped in (absent in results written before it was
    /// recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<AbortStage>,
}

/// The kind of failure that aborted a run: a lost instrument, an envelope refusal and a dead
/// bus are told apart as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AbortKind {
    /// An instrument failed a command, could not be connected, or was lost.
    Instrument,
    /// A command outside the rig's envelope was refused before it was sent.
    Envelope,
    /// The DUT's CAN bus failed or fell silent.
    Bus,
    /// The rig, fixture or DBC lacks what a step needs.
    Setup,
    /// An instrument is not the one the rig file names.
    Identity,
    /// A prompt could not be asked or answered.
    Operator,
    /// The trace could not be written.
    Trace,
    /// The operator or a signal stopped the run.
    Cancelled,
    /// The run was refused before its first step (its firmware could not be flashed), or a
    /// suite did not start it.
    Refused,
    /// A bench-side wait timed out (a teardown condition).
    Timeout,
    /// A defect of hilrig itself.
    Internal,
}

/// The stage of a run an abort happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AbortStage {
    /// Connecting the instruments and buses: no step ran, no teardown.
    Connecting,
    /// Refused before the first step: no step ran, no teardown.
    BeforeStart,
    /// Programming the instruments' protection levels and watchdog.
    Protection,
    /// While the plan's steps ran.
    Steps,
    /// During teardown and the safe state.
    TeardownAndSafeState,
    /// A suite did not start the plan.
    NotStarted,
}

impl AbortStage {
    /// The stage in words (`during` of the results), for the stages without a step.
    pub fn words(self) -> Option<&'static str> {
        match self {
            AbortStage::Connecting => Some("connecting the bench"),
            AbortStage::BeforeStart => Some("before the first step"),
            AbortStage::Protection => Some("programming instrument protection"),
            AbortStage::Steps => None,
            AbortStage::TeardownAndSafeState => Some("teardown and safe state"),
            AbortStage::NotStarted => Some("not started"),
        }
    }

    /// Whether steps may have run, so that the plan's teardown runs.
    pub fn after_start(self) -> bool {
        !matches!(
            self,
            AbortStage::Connecting | AbortStage::BeforeStart | AbortStage::NotStarted
        )
    }
}

/// One action of the safe-state sequence.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SafeStateAction {
    /// Instrument id.
    pub instrument: String,
    /// What was done.
    pub action: String,
    /// Whether it was done: confirmed, or sent (over CAN) while the DUT's bus was alive.
    pub ok: bool,
    /// Confirmed by an answer: a read-back from the instrument or the BMS's own state.
    #[serde(default)]
    pub confirmed: bool,
    /// The error, when not.
    pub error: Option<String>,
}

impl SafeStateAction {
    /// Done, but only sent: no answer confirmed it.
    pub fn sent_not_confirmed(&self) -> bool {
        self.ok && !self.confirmed
    }

    /// Its outcome in words, as the report's safe-state table shows it: `confirmed`,
    /// `sent, not confirmed`, or `FAILED: ` and the error.
    pub fn outcome_text(&self) -> String {
        match (self.ok, self.confirmed) {
            (true, true) => "confirmed".into(),
            (true, false) => "sent, not confirmed".into(),
            (false, _) => format!("FAILED: {}", self.error.as_deref().unwrap_or("")),
        }
    }
}

/// The supply's hardware I/O watchdog over one run (where its model has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WatchdogRecord {
    /// Instrument id.
    pub instrument: String,
    /// The delay it was armed with at the start, in seconds.
    pub armed_s: f64,
    /// Whether it was switched off at the end (its commands accepted without an error).
    pub disarmed: bool,
    /// Why it was left armed, when it was: the safe state was not confirmed (the watchdog
    /// stays as a second line of defence), or disarming it failed (then also a warning).
    pub left_armed: Option<String>,
}

/// One test (one repeat of one trip step).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TestResult {
    /// The test as named in the plan (`OV cell 5`), shared by its repeats.
    #[serde(default)]
    pub test: String,
    /// Name, unique within the run (`OV cell 5 #2`).
    pub name: String,
    /// Repeat number, from 1.
    pub repeat: u32,
    /// Verdict (worst of its measurements; fail when the test could not complete).
    #[schemars(with = "schema::VerdictDef")]
    pub verdict: Verdict,
    /// Requirement references (from the plan).
    pub requirements: Vec<String>,
    /// Measured values and their judgement.
    pub measurements: Vec<MeasurementResult>,
    /// Why the test failed without measurements, if it did.
    pub message: Option<String>,
    /// Seconds since the clock origin when the stimulus started.
    pub started_s: f64,
    /// Seconds since the clock origin when the detect condition was first observed.
    pub detected_s: Option<f64>,
}

/// One measured value judged against one criterion.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MeasurementResult {
    /// Criterion name in the limit profile.
    pub criterion: String,
    /// What was measured: `threshold`, `trip_time`, `stimulus_peak`.
    pub quantity: String,
    /// Measured value (SI unit); null when not determinable.
    #[serde(deserialize_with = "null_as_nan")]
    #[schemars(with = "Option<f64>")]
    pub value: f64,
    /// Expanded uncertainty `U = k·u_c`, half-width (same unit).
    pub uncertainty: f64,
    /// The coverage factor `k` of the expanded uncertainty.
    #[serde(default = "default_k")]
    pub coverage_factor: f64,
    /// The combined standard uncertainty `u_c` (root sum of squares of the budget).
    #[serde(default)]
    pub combined_standard_uncertainty: f64,
    /// The uncertainty budget: each contribution with its value, distribution and standard
    /// uncertainty.
    #[serde(default)]
    pub budget: Vec<crate::verdict::gum::Contribution>,
    /// The value and expanded uncertainty as stated (`3.6515 ± 0.0023 V`: `U` to two
    /// significant digits, the value to the same decimal).
    #[serde(default)]
    pub stated: String,
    /// Unit.
    pub unit: String,
    /// Why the value could not be determined (an assumption of the method that the run could
    /// not check, or that it contradicted); the value is then null and the verdict
    /// inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_determinable: Option<String>,
    /// Acceptance interval.
    #[schemars(with = "schema::LimitDef")]
    pub limit: Limit,
    /// Verdict under the run's decision rule.
    #[schemars(with = "schema::VerdictDef")]
    pub verdict: Verdict,
    /// How the uncertainty was composed.
    pub uncertainty_budget: String,
    /// Where the criterion comes from.
    #[schemars(with = "schema::ProvenanceDef")]
    pub provenance: Provenance,
}

fn default_k() -> f64 {
    crate::verdict::gum::DEFAULT_COVERAGE_FACTOR
}

/// A number that may be null (not determinable): null reads as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl RunResults {
    /// Write `results.json` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::durable::write(dir.join("results.json"), text + "\n")
    }

    /// Read `results.json` from a run directory.
    pub fn read(dir: &Path) -> Result<RunResults, ReportError> {
        let path = dir.join("results.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ReportError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| ReportError::Invalid {
            path,
            message: format!("not a hilrig results file ({e})"),
        })
    }
}

/// The files rendering writes (their absence or difference does not stop a render).
const RENDERED: [&str; 2] = [bundle::REPORT_HTML, "report.pdf"];

/// Whether the data of the run (or re-judged result) in `dir` may be rendered: every
/// manifest over it (its own, and the run's for a re-judged result) holds for the files the
/// report is built from. A directory without a manifest is not sealed and passes. Returns
/// the problems otherwise.
pub fn render_check(dir: &Path) -> Result<(), Vec<String>> {
    let rejudged = dir.join("results.json").is_file()
        && html::data_dir(dir, true) != dir
        && dir
            .file_name()
            .is_some_and(|n| manifest::is_rejudge_dir(&n.to_string_lossy()));
    let mut problems = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    if rejudged {
        dirs.push(html::data_dir(dir, true));
    }
    for d in dirs {
        if !d.join(manifest::MANIFEST).exists() {
            continue;
        }
        let v = manifest::verify(&d, None);
        for p in v.problems.iter().filter(|p| {
            // The reports themselves are outputs of rendering.
            !(RENDERED.contains(&p.path.as_str())
                && matches!(
                    p.kind,
                    manifest::ProblemKind::Changed | manifest::ProblemKind::Missing
                ))
        }) {
            problems.push(format!("  {}: {p}", d.display()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Errors of the evidence functions: what went wrong, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The station key is unusable.
    #[error("station key {}: {message}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

impl ReportError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An invalid-content error on `path`.
    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        ReportError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InstrumentIdentity;
    use rstest::rstest;

    #[rstest]
    #[case(
        "EA Elektro-Automatik,PSB 10060-60,2187010001,V2.11 KE:3.02",
        "EA Elektro-Automatik",
        "PSB 10060-60",
        "2187010001",
        "V2.11 KE:3.02",
        false
    )]
    #[case(
        "RIGOL TECHNOLOGIES,DL3021,DL3A204800001,00.01.02.00.02\n",
        "RIGOL TECHNOLOGIES",
        "DL3021",
        "DL3A204800001",
        "00.01.02.00.02",
        false
    )]
    #[case(
        "Keysight Technologies,N6700C,MY12345678,D.04.01,extra",
        "Keysight Technologies",
        "N6700C",
        "MY12345678",
        "D.04.01,extra",
        false
    )]
    #[case("Maker,Model,0,1.0", "Maker", "Model", "0", "1.0", true)]
    #[case("Maker,Model", "Maker", "Model", "", "", true)]
    fn idn_fields(
        #[case] idn: &str,
        #[case] maker: &str,
        #[case] model: &str,
        #[case] serial: &str,
        #[case] firmware: &str,
        #[case] unknown: bool,
    ) {
        let i = InstrumentIdentity::parse("x", idn);
        assert_eq!(
            (
                i.manufacturer.as_str(),
                i.model.as_str(),
                i.serial.as_str(),
                i.firmware.as_str()
            ),
            (maker, model, serial, firmware)
        );
        assert_eq!(i.serial_unknown(), unknown);
        assert_eq!(i.idn, idn.trim());
        assert!(!i.other_serial_than(None) && !i.other_serial_than(Some(" ")));
        assert!(!i.other_serial_than(Some(&format!(" {serial} "))));
        assert_eq!(i.other_serial_than(Some("X1")), !unknown);
    }
}
