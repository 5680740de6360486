//! Re-judging a bundle against a revised limit profile, without hardware.
//!
//! What is re-evaluated: every stored measurement (value, expanded uncertainty) against
//! the limit the revised criterion of the same name gives, using the declared values of the
//! fixture copy kept in the bundle. The measured values themselves do not depend on the
//! limit profile (they depend on the fixture's declared delay and trip level, which a
//! profile revision does not change), so no trace needs re-reading. The inverter checks are
//! re-judged the same way: a bound after the fault (`within`), the staleness bound, the
//! keep-alive allowance (on the fixture copy's declared reaction time), and the tolerances
//! of the period and of the announced measurements, re-centred on the old limit's middle
//! (the declared period, the instrument's reading); `announced_limits` and
//! `derate_before_trip` have no profile parameter and keep their limits.
//!
//! The new result goes to `DIR/rejudge-<UTC time>/`: `results.json` (the run's results with
//! new limits, verdicts and provenance, plus `rejudged_from` naming the original manifest's
//! SHA-256), `junit.xml`, `inputs/limits.yaml`, `bundle.json`, `report.html`, and its own
//! `manifest.json` (+ `manifest.sig`), whose `original_manifest_sha256` ties it to the
//! original. The original bundle must verify first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bundle::{
    operator_from_env, BundleInfo, InputCopy, KeyChoice, BUNDLE_INFO, BUNDLE_SCHEMA, INPUTS_DIR,
    REPORT_HTML,
};
use super::inputs::{parse_yaml, quantity, spec_for, FixtureView, PlanView};
use super::manifest::{self, hash_bytes, ManifestMeta, ToolInfo, MANIFEST, REJUDGE_PREFIX};
use super::{html, junit, keys, Outcome, ReportError, RunResults};
use crate::plan::limits::{LimitProfile, Provenance};
use crate::trace::rfc3339;
use crate::verdict::{decide, DecisionRule, Limit, Verdict};

/// Where a re-judged result comes from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RejudgeOrigin {
    /// When it was re-judged (RFC 3339, UTC).
    pub at: String,
    /// SHA-256 of the original bundle's `manifest.json`.
    pub original_manifest_sha256: String,
    /// The limit profile the original was judged against.
    pub original_limit_profile: String,
    /// The original decision rule (`simple`, `guarded`).
    pub original_decision_rule: String,
    /// The original outcome (`passed`, `failed`, ...).
    pub original_outcome: String,
    /// The revised profile as given on the command line.
    pub limits_path: String,
}

/// `results.json` of a re-judged result: the run's results plus their origin.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RejudgedResults {
    /// The results, judged against the revised limits.
    #[serde(flatten)]
    pub results: RunResults,
    /// What was re-judged.
    pub rejudged_from: RejudgeOrigin,
}

impl RejudgeOrigin {
    /// The origin recorded in `dir/results.json`, when it is a re-judged result.
    pub fn read(dir: &Path) -> Option<RejudgeOrigin> {
        #[derive(Deserialize)]
        struct Probe {
            rejudged_from: Option<RejudgeOrigin>,
        }
        let text = std::fs::read_to_string(dir.join("results.json")).ok()?;
        serde_json::from_str::<Probe>(&text).ok()?.rejudged_from
    }
}

/// How to re-judge.
#[derive(Debug)]
pub struct RejudgeOptions {
    /// The revised limit profile.
    pub limits: PathBuf,
    /// Override the profile's decision rule.
    pub decision_rule: Option<DecisionRule>,
    /// Signing key.
    pub key: KeyChoice,
    /// Operator; None: from the environment.
    pub operator: Option<String>,
}

/// One verdict that the revision changed (or not).
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Test name.
    pub test: String,
    /// Criterion.
    pub criterion: String,
    /// Limit before, as text.
    pub old_limit: String,
    /// Limit after, as text.
    pub new_limit: String,
    /// Verdict before.
    pub old: Verdict,
    /// Verdict after.
    pub new: Verdict,
}

/// What re-judging produced.
#[derive(Debug)]
pub struct Rejudged {
    /// The new directory.
    pub dir: PathBuf,
    /// The new results.
    pub results: RunResults,
    /// Every measurement, before and after.
    pub changes: Vec<Change>,
    /// Whether the new manifest is signed.
    pub signed: bool,
}

/// Errors of re-judging.
#[derive(Debug, thiserror::Error)]
pub enum RejudgeError {
    /// The original bundle does not verify.
    #[error("{dir}: the bundle does not verify, so re-judging it would sign data that may have been changed:\n{problems}\nRestore the bundle (or re-run the test) first.")]
    NotIntact {
        /// The bundle.
        dir: String,
        /// The problems, one per line.
        problems: String,
    },
    /// The revised profile is not valid.
    #[error("{0}")]
    Profile(String),
    /// A measurement cannot be judged against the revised profile.
    #[error("{0}")]
    Unjudgeable(String),
    /// Reading or writing failed.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// The parts of a criterion the re-judging needs, read from the profile as plain data.
#[derive(Debug, Deserialize)]
struct ProfileView {
    profile: String,
    decision_rule: DecisionRule,
    criteria: BTreeMap<String, CriterionView>,
}

#[derive(Debug, Deserialize)]
struct CriterionView {
    check: serde_json::Value,
    provenance: Provenance,
}

/// Re-judge the bundle in `dir` against the revised profile.
pub fn rejudge(dir: &Path, opts: RejudgeOptions) -> Result<Rejudged, RejudgeError> {
    // 1. The original must be intact.
    let v = manifest::verify(dir, None);
    if !v.problems.is_empty() {
        return Err(RejudgeError::NotIntact {
            dir: dir.display().to_string(),
            problems: v
                .problems
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    let manifest_bytes =
        std::fs::read(dir.join(MANIFEST)).map_err(|e| ReportError::io(&dir.join(MANIFEST), e))?;
    let original_sha = hash_bytes(&manifest_bytes);
    let original = RunResults::read(dir)?;
    let info = BundleInfo::read(dir)?;

    // 2. The revised profile: strict validation (with file:line:column), then plain reading.
    let strict = crate::plan::load::read_yaml::<LimitProfile>(&opts.limits)
        .map_err(|e| RejudgeError::Profile(e.to_string()))?;
    let profile: ProfileView = parse_yaml(&strict.text).ok_or_else(|| {
        RejudgeError::Profile(format!(
            "{}: cannot read the criteria",
            opts.limits.display()
        ))
    })?;
    let rule = opts.decision_rule.unwrap_or(profile.decision_rule);

    // 3. Declared values and the plan's steps, from the copies in the bundle.
    let read_copy = |role: &str| -> Option<String> {
        std::fs::read_to_string(dir.join(info.input(role)?)).ok()
    };
    let fixture: FixtureView = read_copy("fixture")
        .and_then(|t| parse_yaml(&t))
        .ok_or_else(|| {
            RejudgeError::Unjudgeable(format!(
                "{}: the bundle holds no readable fixture copy, so declared values are unknown",
                dir.display()
            ))
        })?;
    let specs = read_copy("plan")
        .and_then(|t| parse_yaml::<PlanView>(&t))
        .map(|p| p.tests())
        .unwrap_or_default();

    // 4. Judge again.
    let mut results = original.clone();
    results.limit_profile = profile.profile.clone();
    results.decision_rule = rule;
    let mut changes = Vec::new();
    let mut problems = Vec::new();
    for t in &mut results.tests {
        let protection = spec_for(&specs, &t.test, &t.name).and_then(|s| s.protection.clone());
        let mut worst = Verdict::Pass;
        for m in &mut t.measurements {
            let Some(c) = profile.criteria.get(&m.criterion) else {
                problems.push(format!(
                    "test `{}`: criterion `{}` is not in the revised profile {}",
                    t.name,
                    m.criterion,
                    opts.limits.display()
                ));
                continue;
            };
            match new_limit(
                &c.check,
                &m.quantity,
                m.limit,
                protection.as_deref(),
                &fixture,
            ) {
                Ok(limit) => {
                    let new = if m.not_determinable.is_some() {
                        Verdict::Inconclusive
                    } else {
                        decide(m.value, m.uncertainty, limit, rule)
                    };
                    changes.push(Change {
                        test: t.name.clone(),
                        criterion: m.criterion.clone(),
                        old_limit: junit::limit_text(&m.limit, &m.unit),
                        new_limit: junit::limit_text(&limit, &m.unit),
                        old: m.verdict,
                        new,
                    });
                    m.limit = limit;
                    m.verdict = new;
                    m.provenance = c.provenance.clone();
                    worst = worst.worst(new);
                }
                Err(e) => problems.push(format!(
                    "test `{}`, criterion `{}`: {e}",
                    t.name, m.criterion
                )),
            }
        }
        t.verdict = if t.message.is_some() && t.measurements.is_empty() {
            t.verdict
        } else {
            worst
        };
    }
    if !problems.is_empty() {
        return Err(RejudgeError::Unjudgeable(format!(
            "the stored measurements cannot all be judged against {}:\n  {}",
            opts.limits.display(),
            problems.join("\n  ")
        )));
    }
    results.outcome = match original.outcome {
        Outcome::Aborted => Outcome::Aborted,
        _ => match results.tests.iter().map(|t| t.verdict).max() {
            Some(Verdict::Fail) => Outcome::Failed,
            Some(Verdict::Inconclusive) => Outcome::Inconclusive,
            _ => Outcome::Passed,
        },
    };

    // 5. Write the new bundle.
    let now = SystemTime::now();
    let at = rfc3339(now);
    let stamp = at.replace([':', '-'], "");
    let stamp = stamp.get(..15).unwrap_or(&stamp).to_string();
    let mut out = dir.join(format!("{REJUDGE_PREFIX}{stamp}Z"));
    let mut k = 2;
    while out.exists() {
        out = dir.join(format!("{REJUDGE_PREFIX}{stamp}Z-{k}"));
        k += 1;
    }
    let idir = out.join(INPUTS_DIR);
    std::fs::create_dir_all(&idir).map_err(|e| ReportError::io(&idir, e))?;
    let doc = RejudgedResults {
        results: results.clone(),
        rejudged_from: RejudgeOrigin {
            at: at.clone(),
            original_manifest_sha256: original_sha.clone(),
            original_limit_profile: original.limit_profile.clone(),
            original_decision_rule: format!("{:?}", original.decision_rule).to_lowercase(),
            original_outcome: format!("{:?}", original.outcome).to_lowercase(),
            limits_path: opts.limits.display().to_string(),
        },
    };
    let rpath = out.join("results.json");
    let text = serde_json::to_string_pretty(&doc)
        .map_err(|e| ReportError::invalid(&rpath, e.to_string()))?;
    crate::durable::write(&rpath, text + "\n").map_err(|e| ReportError::io(&rpath, e))?;
    let jpath = out.join("junit.xml");
    junit::write(&results, &jpath).map_err(|e| ReportError::io(&jpath, e))?;
    let lrel = format!("{INPUTS_DIR}/limits.yaml");
    let lpath = out.join(&lrel);
    crate::durable::write(&lpath, &strict.text).map_err(|e| ReportError::io(&lpath, e))?;
    let binfo = BundleInfo {
        schema: BUNDLE_SCHEMA.into(),
        created: at.clone(),
        operator: opts.operator.unwrap_or_else(operator_from_env),
        tool: ToolInfo::current(),
        inputs: vec![InputCopy {
            role: "limits".into(),
            path: lrel,
            original: opts.limits.display().to_string(),
            sha256: hash_bytes(strict.text.as_bytes()),
        }],
        missing_inputs: Vec::new(),
    };
    let bpath = out.join(BUNDLE_INFO);
    let text = serde_json::to_string_pretty(&binfo)
        .map_err(|e| ReportError::invalid(&bpath, e.to_string()))?;
    crate::durable::write(&bpath, text + "\n").map_err(|e| ReportError::io(&bpath, e))?;
    let page = html::render_dir(&out)?;
    let hpath = out.join(REPORT_HTML);
    crate::durable::write(&hpath, page).map_err(|e| ReportError::io(&hpath, e))?;
    super::pdf::write_dir(&out)?;
    let key = match opts.key {
        KeyChoice::Default => keys::load_default()?,
        KeyChoice::Unsigned => None,
        KeyChoice::Key(k) => Some(*k),
    };
    manifest::write(
        &out,
        ManifestMeta {
            run_id: results.run_id.clone(),
            station: results.station.clone(),
            created: at,
            firmware: results.firmware.clone(),
            original_manifest_sha256: Some(original_sha),
        },
        key.as_ref(),
    )?;
    Ok(Rejudged {
        dir: out,
        results,
        changes,
        signed: key.is_some(),
    })
}

/// The limit a revised check gives for a stored quantity.
/// A symmetric limit of half-width `tolerance` around the middle of `old`.
fn around(old: Limit, tolerance: f64) -> Result<Limit, String> {
    match (old.low, old.high) {
        (Some(low), Some(high)) => {
            let mid = (low + high) / 2.0;
            Ok(Limit::between(mid - tolerance, mid + tolerance))
        }
        _ => Err("the stored limit has no middle to re-centre the tolerance on".into()),
    }
}

fn new_limit(
    check: &serde_json::Value,
    quantity_kind: &str,
    old: Limit,
    protection: Option<&str>,
    fx: &FixtureView,
) -> Result<Limit, String> {
    let (kind, params) = match check {
        serde_json::Value::String(s) => (s.as_str(), serde_json::Value::Null),
        serde_json::Value::Object(o) if o.len() == 1 => {
            let (k, v) = o.iter().next().ok_or("empty check")?;
            (k.as_str(), v.clone())
        }
        _ => return Err(format!("unreadable check `{check}`")),
    };
    let param = |name: &str| -> Result<f64, String> {
        let text = params
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string);
        quantity(text.as_deref())
            .map(|q| q.value)
            .ok_or_else(|| format!("`{kind}.{name}` is missing or has no unit"))
    };
    let declared = |field: &str| -> Result<f64, String> {
        let p = protection.ok_or(
            "the plan copy does not say which protection this test exercised, so its declared values are unknown",
        )?;
        let d = fx
            .protections
            .get(p)
            .ok_or_else(|| format!("protection `{p}` is not declared in the fixture copy"))?;
        let text = match field {
            "trip" => &d.trip,
            "release" => &d.release,
            _ => &d.delay,
        };
        quantity(text.as_deref())
            .map(|q| q.value)
            .ok_or_else(|| format!("declared {p}.{field} is missing or unreadable"))
    };
    let expect = |q: &str| -> Result<(), String> {
        if quantity_kind == q {
            Ok(())
        } else {
            Err(format!(
                "the revised criterion is a `{kind}` check, but the stored measurement is a `{quantity_kind}`"
            ))
        }
    };
    match kind {
        "threshold" => {
            expect("threshold")?;
            let (trip, tol) = (declared("trip")?, param("tolerance")?);
            Ok(Limit::between(trip - tol, trip + tol))
        }
        "release" => {
            expect("release")?;
            let (rel, tol) = (declared("release")?, param("tolerance")?);
            Ok(Limit::between(rel - tol, rel + tol))
        }
        "trip_time" => {
            expect("trip_time")?;
            Ok(Limit::between(
                0.0,
                declared("delay")? + param("allowance")?,
            ))
        }
        "stimulus_peak" => {
            expect("stimulus_peak")?;
            let key = params
                .get("at_most")
                .and_then(|v| v.as_str())
                .ok_or("`stimulus_peak.at_most` is missing")?;
            let lim = quantity(fx.cell_limits.get(key).map(String::as_str))
                .map(|q| q.value)
                .ok_or_else(|| format!("cell limit `{key}` is not in the fixture copy"))?;
            // A falling stimulus was judged against a lower bound; keep the direction.
            Ok(if old.low.is_some() && old.high.is_none() {
                Limit {
                    low: Some(lim),
                    high: None,
                }
            } else {
                Limit::at_most(lim)
            })
        }
        "range" => {
            let min = params
                .get("min")
                .filter(|v| !v.is_null())
                .map(|_| param("min"))
                .transpose()?;
            let max = params
                .get("max")
                .filter(|v| !v.is_null())
                .map(|_| param("max"))
                .transpose()?;
            Ok(Limit {
                low: min,
                high: max,
            })
        }
        "holds" => Ok(old),
        // The inverter checks. Their limits come from the check's parameters, the
        // fixture's declarations (the bundle's copy, unchanged) and, for the announced
        // measurements and the period, a centre the run measured or declared: the old
        // limit's middle.
        "announced_limits" | "derate_before_trip" => Ok(old),
        "disabled_after_trip" | "alarm_bits" => Ok(Limit::between(0.0, param("within")?)),
        "announce_period" if quantity_kind.ends_with("_age") => {
            Ok(Limit::between(0.0, param("stale_after")?))
        }
        "announce_period" => around(old, param("tolerance")?),
        "announced_measurements" if quantity_kind == "announced_voltage" => {
            around(old, param("voltage")?)
        }
        "announced_measurements" => around(old, param("current")?),
        "keepalive_loss" => {
            let within = fx
                .inverter
                .as_ref()
                .and_then(|i| i.keepalive_loss.as_ref())
                .and_then(|l| quantity(l.within.as_deref()))
                .map(|q| q.value)
                .ok_or("the fixture copy declares no inverter.keepalive_loss.within")?;
            Ok(Limit::between(0.0, within + param("allowance")?))
        }
        other => Err(format!("unknown check `{other}`")),
    }
}
