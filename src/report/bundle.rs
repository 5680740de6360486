//! The evidence bundle: after a run, the run directory gets copies of the files the run was
//! made from (`inputs/plan.yaml`, `rig.yaml`, `fixture.yaml`, `limits.yaml`, `dut.dbc`),
//! `bundle.json` (who, when, which tool, where each copy came from), `report.html`, and
//! `manifest.json` + `manifest.sig` (see `manifest`).
//!
//! Layout of a sealed run directory:
//! ```text
//! results.json junit.xml trace.csv [truth.json]   written by the run
//! inputs/{plan,rig,fixture,limits}.yaml inputs/dut.dbc
//! bundle.json report.html report.pdf
//! manifest.json [manifest.sig]
//! [rejudge-<time>/ ...]                             re-judged results, bundles of their own
//! ```

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::keys::{self, StationKey};
use super::manifest::{self, hash_bytes, Manifest, ManifestMeta, ToolInfo};
use super::{html, ReportError, RunResults};
use crate::plan::LoadedPlan;
use crate::trace::rfc3339;

/// Version of the `bundle.json` layout.
pub const BUNDLE_SCHEMA: &str = "hilrig.bundle/1";
/// File name of the bundle description.
pub const BUNDLE_INFO: &str = "bundle.json";
/// Directory of the input copies.
pub const INPUTS_DIR: &str = "inputs";
/// File name of the report.
pub const REPORT_HTML: &str = "report.html";

/// `bundle.json`: who sealed the bundle, when, with what, and the input copies.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BundleInfo {
    /// Layout version.
    pub schema: String,
    /// When the bundle was sealed (RFC 3339, UTC): the report's issue date.
    pub created: String,
    /// Who sealed the bundle (the run's `--operator` or `$HILRIG_OPERATOR`).
    pub operator: String,
    /// The tool.
    pub tool: ToolInfo,
    /// The input copies.
    pub inputs: Vec<InputCopy>,
    /// Inputs that could not be copied, and why.
    #[serde(default)]
    pub missing_inputs: Vec<String>,
}

/// One input file copied into the bundle.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct InputCopy {
    /// `plan`, `rig`, `fixture`, `limits` or `dbc`.
    pub role: String,
    /// Path inside the bundle.
    pub path: String,
    /// The path the run was given.
    pub original: String,
    /// SHA-256 of the content.
    pub sha256: String,
}

impl BundleInfo {
    /// Read `bundle.json` from a directory.
    pub fn read(dir: &Path) -> Result<BundleInfo, ReportError> {
        let path = dir.join(BUNDLE_INFO);
        let text = std::fs::read_to_string(&path).map_err(|e| ReportError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| ReportError::invalid(&path, e.to_string()))
    }

    /// The bundle path of an input by role.
    pub fn input(&self, role: &str) -> Option<&str> {
        self.inputs
            .iter()
            .find(|i| i.role == role)
            .map(|i| i.path.as_str())
    }
}

/// One input to copy: its role, where it came from and its bytes.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// `plan`, `rig`, `fixture`, `limits` or `dbc`.
    pub role: &'static str,
    /// The path the run was given.
    pub original: PathBuf,
    /// Content.
    pub bytes: Vec<u8>,
}

/// Which key signs.
#[derive(Debug, Default)]
pub enum KeyChoice {
    /// The station key at the default location, if there is one (see `keys`).
    #[default]
    Default,
    /// Leave the bundle unsigned.
    Unsigned,
    /// This key.
    Key(Box<StationKey>),
}

/// How to seal.
#[derive(Debug)]
pub struct SealOptions {
    /// Operator name; None: the run's operator (results.json), then `$HILRIG_OPERATOR`.
    pub operator: Option<String>,
    /// Signing key.
    pub key: KeyChoice,
}

impl Default for SealOptions {
    fn default() -> Self {
        Self {
            operator: None,
            key: KeyChoice::Default,
        }
    }
}

/// The operator from the environment: `$HILRIG_OPERATOR`, or a "not recorded" text that
/// says how to record one (a login name is not taken for the person responsible).
pub fn operator_from_env() -> String {
    match super::context::operator(None) {
        (Some(o), _) => o,
        _ => format!(
            "not recorded (give --operator or set {})",
            super::context::OPERATOR_ENV
        ),
    }
}

/// What sealing produced.
#[derive(Debug)]
pub struct Sealed {
    /// The manifest written.
    pub manifest: Manifest,
    /// Where the signing key came from, when signed.
    pub key_path: Option<PathBuf>,
    /// Warnings (inputs that could not be copied).
    pub warnings: Vec<String>,
}

impl Sealed {
    /// One line for the operator.
    pub fn summary(&self, dir: &Path) -> String {
        match (&self.manifest.signature, &self.key_path) {
            (Some(s), Some(k)) => format!(
                "evidence: {} files in {}, manifest signed with station key {} ({})",
                self.manifest.files.len(),
                dir.display(),
                s.fingerprint,
                k.display()
            ),
            _ => format!(
                "evidence: {} files in {}, manifest UNSIGNED (no station key; run `hilrig keygen` to make one)",
                self.manifest.files.len(),
                dir.display()
            ),
        }
    }
}

/// The inputs of a loaded plan plus the rig file.
pub fn inputs_of(plan: &LoadedPlan, rig_path: &Path) -> (Vec<InputFile>, Vec<String>) {
    let mut files = vec![
        InputFile {
            role: "plan",
            original: plan.plan.path.clone(),
            bytes: plan.plan.text.clone().into_bytes(),
        },
        InputFile {
            role: "fixture",
            original: plan.fixture.path.clone(),
            bytes: plan.fixture.text.clone().into_bytes(),
        },
        InputFile {
            role: "limits",
            original: plan.limits.path.clone(),
            bytes: plan.limits.text.clone().into_bytes(),
        },
    ];
    let mut missing = Vec::new();
    for (role, path) in [("rig", rig_path), ("dbc", plan.dbc_path.as_path())] {
        match std::fs::read(path) {
            Ok(bytes) => files.push(InputFile {
                role,
                original: path.to_path_buf(),
                bytes,
            }),
            Err(e) => missing.push(format!("{role} {}: {e}", path.display())),
        }
    }
    (files, missing)
}

fn bundle_name(role: &str) -> String {
    match role {
        "dbc" => format!("{INPUTS_DIR}/dut.dbc"),
        r => format!("{INPUTS_DIR}/{r}.yaml"),
    }
}

/// Seal a finished run directory: copy the inputs, write `bundle.json`, `report.html`,
/// `manifest.json` and (with a key) `manifest.sig`.
pub fn seal(
    dir: &Path,
    inputs: &[InputFile],
    missing: Vec<String>,
    opts: SealOptions,
) -> Result<Sealed, ReportError> {
    let results = RunResults::read(dir)?;
    let key = match opts.key {
        KeyChoice::Default => keys::load_default()?,
        KeyChoice::Unsigned => None,
        KeyChoice::Key(k) => Some(*k),
    };
    let idir = dir.join(INPUTS_DIR);
    std::fs::create_dir_all(&idir).map_err(|e| ReportError::io(&idir, e))?;
    let mut copies = Vec::new();
    for f in inputs {
        let rel = bundle_name(f.role);
        let p = dir.join(&rel);
        crate::durable::write(&p, &f.bytes).map_err(|e| ReportError::io(&p, e))?;
        copies.push(InputCopy {
            role: f.role.into(),
            path: rel,
            original: f.original.display().to_string(),
            sha256: hash_bytes(&f.bytes),
        });
    }
    let created = rfc3339(SystemTime::now());
    let info = BundleInfo {
        schema: BUNDLE_SCHEMA.into(),
        created: created.clone(),
        operator: opts
            .operator
            .or_else(|| results.context.operator.clone())
            .unwrap_or_else(operator_from_env),
        tool: ToolInfo::current(),
        inputs: copies,
        missing_inputs: missing.clone(),
    };
    let ipath = dir.join(BUNDLE_INFO);
    let text = serde_json::to_string_pretty(&info)
        .map_err(|e| ReportError::invalid(&ipath, e.to_string()))?;
    crate::durable::write(&ipath, text + "\n").map_err(|e| ReportError::io(&ipath, e))?;

    let page = html::render_dir(dir)?;
    let hpath = dir.join(REPORT_HTML);
    crate::durable::write(&hpath, page).map_err(|e| ReportError::io(&hpath, e))?;
    super::pdf::write_dir(dir)?;

    let key_path = key.as_ref().map(|k| k.path.clone());
    let manifest = manifest::write(
        dir,
        ManifestMeta {
            run_id: results.run_id.clone(),
            station: results.station.clone(),
            created,
            firmware: results.firmware.clone(),
            original_manifest_sha256: None,
        },
        key.as_ref(),
    )?;
    Ok(Sealed {
        manifest,
        key_path,
        warnings: missing,
    })
}

/// Seal a run directory from the plan and rig paths the run was given (the plan is loaded
/// again to find its fixture, limit profile and DBC). Used by `hilrig run`.
pub fn seal_run(dir: &Path, plan_path: &Path, rig_path: &Path) -> Result<Sealed, ReportError> {
    let (inputs, missing) = match crate::plan::load_plan(plan_path, None) {
        Ok(plan) => inputs_of(&plan, rig_path),
        Err(errors) => {
            // Keep what can be kept: the plan and rig as given.
            let mut files = Vec::new();
            let mut missing = vec![format!(
                "fixture, limits, dbc: the plan could not be loaded again ({})",
                errors
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or("")
            )];
            for (role, p) in [("plan", plan_path), ("rig", rig_path)] {
                match std::fs::read(p) {
                    Ok(bytes) => files.push(InputFile {
                        role,
                        original: p.to_path_buf(),
                        bytes,
                    }),
                    Err(e) => missing.push(format!("{role} {}: {e}", p.display())),
                }
            }
            (files, missing)
        }
    };
    seal(dir, &inputs, missing, SealOptions::default())
}
