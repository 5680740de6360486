//! Approvals: `hilrig report approve DIR --by NAME [--key personal.key]` adds a signed
//! statement that NAME approved the bundle as it stands, without changing any file the
//! manifest covers.
//!
//! An approval is `approvals/<n>-<name>.json` (who, when, the run id and the SHA-256 of the
//! bundle's `manifest.json`) and `approvals/<n>-<name>.sig`, an ed25519 signature over the
//! exact bytes of the JSON (hex, one line), made with the approver's own key (`hilrig keygen
//! --out personal.key`) or, without `--key`, the station key. The `approvals/` directory is
//! outside the manifest's file list (like `rejudge-*/`); `report verify` checks every
//! approval: its signature, and that it names the manifest the bundle has now (an approval
//! of a bundle whose manifest was rewritten no longer holds).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::keys::{fingerprint, from_hex, StationKey};
use super::manifest::{self, hash_bytes, Problem, ProblemKind, MANIFEST};
use super::ReportError;
use crate::trace::rfc3339;

/// Version of the approval layout.
pub const APPROVAL_SCHEMA: &str = "hilrig.approval/1";
/// Directory of the approvals inside a bundle.
pub const APPROVALS_DIR: &str = "approvals";

/// One approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Layout version.
    pub schema: String,
    /// Who approved.
    pub by: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What the approver states.
    pub statement: String,
    /// Run id of the bundle.
    pub run_id: String,
    /// SHA-256 of the bundle's `manifest.json` when approved.
    pub manifest_sha256: String,
    /// The approver's public key, hex.
    pub public_key: String,
    /// Its fingerprint.
    pub fingerprint: String,
}

/// An approval found valid by verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalCheck {
    /// The approval file, relative to the bundle.
    pub path: String,
    /// Who approved.
    pub by: String,
    /// When.
    pub at: String,
    /// Fingerprint of the key that signed it.
    pub fingerprint: String,
}

/// Add an approval by `by` to the bundle in `dir`, signed with `key`. The bundle must verify
/// (signed, every file intact). Returns the approval file written.
pub fn approve(dir: &Path, by: &str, key: &StationKey) -> Result<PathBuf, ReportError> {
    let by = by.trim();
    if by.is_empty() {
        return Err(ReportError::invalid(dir, "--by needs the approver's name"));
    }
    let v = manifest::verify(dir, None);
    if !v.ok(true) {
        let problems: Vec<String> = v.all_problems().iter().map(|p| format!("  {p}")).collect();
        return Err(ReportError::invalid(
            dir,
            format!(
                "not approved: the bundle does not verify{}",
                if problems.is_empty() {
                    " (it is unsigned)".to_string()
                } else {
                    format!(":\n{}", problems.join("\n"))
                }
            ),
        ));
    }
    let mpath = dir.join(MANIFEST);
    let mbytes = std::fs::read(&mpath).map_err(|e| ReportError::io(&mpath, e))?;
    let m: manifest::Manifest =
        serde_json::from_slice(&mbytes).map_err(|e| ReportError::invalid(&mpath, e.to_string()))?;
    let approval = Approval {
        schema: APPROVAL_SCHEMA.into(),
        by: by.to_string(),
        at: rfc3339(SystemTime::now()),
        statement: format!("{by} approved this report and the bundle it belongs to"),
        run_id: m.run_id,
        manifest_sha256: hash_bytes(&mbytes),
        public_key: key.public_hex(),
        fingerprint: fingerprint(&key.verifying_key()),
    };
    let adir = dir.join(APPROVALS_DIR);
    std::fs::create_dir_all(&adir).map_err(|e| ReportError::io(&adir, e))?;
    let slug: String = by
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut n = 1;
    let mut path = adir.join(format!("{n}-{slug}.json"));
    while path.exists() {
        n += 1;
        path = adir.join(format!("{n}-{slug}.json"));
    }
    let text = serde_json::to_string_pretty(&approval)
        .map_err(|e| ReportError::invalid(&path, e.to_string()))?
        + "\n";
    crate::durable::write(&path, &text).map_err(|e| ReportError::io(&path, e))?;
    let spath = path.with_extension("sig");
    crate::durable::write(&spath, key.sign_hex(text.as_bytes()) + "\n")
        .map_err(|e| ReportError::io(&spath, e))?;
    Ok(path)
}

/// Check every approval of the bundle in `dir` against `manifest_bytes` (its current
/// manifest); problems are added to `problems`, valid approvals returned.
pub fn check_all(
    dir: &Path,
    manifest_bytes: &[u8],
    problems: &mut Vec<Problem>,
) -> Vec<ApprovalCheck> {
    let adir = dir.join(APPROVALS_DIR);
    let Ok(rd) = std::fs::read_dir(&adir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let want = hash_bytes(manifest_bytes);
    let mut ok = Vec::new();
    let mut push = |path: &str, kind, detail: String| {
        problems.push(Problem {
            path: path.to_string(),
            kind,
            detail,
        })
    };
    for name in &names {
        let rel = format!("{APPROVALS_DIR}/{name}");
        if let Some(stem) = name.strip_suffix(".sig") {
            if !names.iter().any(|n| n == &format!("{stem}.json")) {
                push(
                    &rel,
                    ProblemKind::Extra,
                    "a signature without its approval".into(),
                );
            }
            continue;
        }
        let Some(stem) = name.strip_suffix(".json") else {
            push(&rel, ProblemKind::Extra, "not an approval".into());
            continue;
        };
        let bytes = match std::fs::read(adir.join(name)) {
            Ok(b) => b,
            Err(e) => {
                push(&rel, ProblemKind::Unreadable, e.to_string());
                continue;
            }
        };
        let a: Approval = match serde_json::from_slice(&bytes) {
            Ok(a) => a,
            Err(e) => {
                push(
                    &rel,
                    ProblemKind::Unreadable,
                    format!("not an approval ({e})"),
                );
                continue;
            }
        };
        let sig = std::fs::read_to_string(adir.join(format!("{stem}.sig")))
            .ok()
            .and_then(|t| from_hex(&t))
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b));
        let key = from_hex(&a.public_key)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok());
        match (sig, key) {
            (Some(s), Some(k)) if k.verify_strict(&bytes, &s).is_ok() => {
                if a.manifest_sha256 != want {
                    push(
                        &rel,
                        ProblemKind::Changed,
                        format!(
                            "approval by {} of manifest {}, but the bundle's manifest is now {want}",
                            a.by, a.manifest_sha256
                        ),
                    );
                } else {
                    ok.push(ApprovalCheck {
                        path: rel,
                        by: a.by,
                        at: a.at,
                        fingerprint: fingerprint(&k),
                    });
                }
            }
            _ => push(
                &rel,
                ProblemKind::BadSignature,
                format!(
                    "the approval by {} does not verify against {stem}.sig: one of them was \
                     changed or is missing",
                    a.by
                ),
            ),
        }
    }
    ok
}
