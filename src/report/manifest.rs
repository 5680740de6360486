//! `manifest.json`: the SHA-256 of every file of a bundle, the tool version and the firmware
//! identity; `manifest.sig`: an ed25519 signature over the exact bytes of `manifest.json`
//! (hex, one line), written when a station key exists.
//!
//! A bundle without a station key still gets a manifest; it says `"signature": null` and
//! verification reports it as unsigned (intact files, but anyone could have rewritten the
//! manifest). Re-judged results live in `rejudge-*/` sub-directories: each is a bundle of
//! its own, left out of the parent's file list, verified with it, and must name the
//! parent's manifest hash. `approvals/` holds signed approvals of the bundle (see
//! `approval`), outside the file list and checked by `verify`.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::{fingerprint, from_hex, StationKey};
use super::{FirmwareInfo, ReportError};

/// Version of the manifest layout.
pub const MANIFEST_SCHEMA: &str = "hilrig.manifest/1";
/// File name of the manifest.
pub const MANIFEST: &str = "manifest.json";
/// File name of the signature.
pub const SIGNATURE: &str = "manifest.sig";
/// Prefix of re-judged sub-bundles.
pub const REJUDGE_PREFIX: &str = "rejudge-";

/// The manifest of one bundle.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    /// Layout version.
    pub schema: String,
    /// The tool that wrote the bundle.
    pub tool: ToolInfo,
    /// Run id.
    pub run_id: String,
    /// Station id.
    pub station: String,
    /// When the manifest was written (RFC 3339, UTC).
    pub created: String,
    /// Firmware the DUT ran, when known.
    #[schemars(with = "Option<FirmwareDef>")]
    pub firmware: Option<FirmwareInfo>,
    /// For a re-judged result: SHA-256 of the original bundle's `manifest.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_manifest_sha256: Option<String>,
    /// The signing key, or null for an unsigned bundle.
    pub signature: Option<SignatureInfo>,
    /// Every file of the bundle except the manifest, its signature and `rejudge-*/`.
    pub files: Vec<FileEntry>,
}

/// Firmware identity (schema of `FirmwareInfo`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FirmwareDef {
    /// Image id.
    pub id: String,
    /// Version.
    pub version: String,
    /// SHA-256 of the image, hex.
    pub sha256: String,
}

/// Tool name and version.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct ToolInfo {
    /// `hilrig`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

impl ToolInfo {
    /// This build of hilrig.
    pub fn current() -> Self {
        Self {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Which key signed the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct SignatureInfo {
    /// `ed25519`.
    pub algorithm: String,
    /// Public key, hex.
    pub public_key: String,
    /// First 16 hex digits of the public key's SHA-256.
    pub fingerprint: String,
}

/// One file and its digest.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the bundle directory, `/`-separated.
    pub path: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// SHA-256 of a file, hex, and its size.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((hex::encode(h.finalize()), n))
}

/// SHA-256 of bytes, hex.
pub fn hash_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether a top-level entry belongs to the manifest rather than the file list.
fn excluded(rel: &str, is_dir: bool) -> bool {
    rel == MANIFEST
        || rel == SIGNATURE
        || (is_dir && (is_rejudge_dir(rel) || rel == super::approval::APPROVALS_DIR))
}

/// Whether a top-level directory name is a re-judged sub-bundle.
pub fn is_rejudge_dir(name: &str) -> bool {
    name.starts_with(REJUDGE_PREFIX) && !name.contains('/')
}

/// Every file under `dir` that the manifest covers, as sorted relative paths.
pub fn list_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(base: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let here = if prefix.is_empty() {
        base.to_path_buf()
    } else {
        base.join(prefix)
    };
    for entry in std::fs::read_dir(&here)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let is_dir = entry.path().is_dir();
        if excluded(&rel, is_dir) {
            continue;
        }
        if is_dir {
            walk(base, &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// What goes into a manifest besides the file list.
#[derive(Debug, Clone)]
pub struct ManifestMeta {
    /// Run id.
    pub run_id: String,
    /// Station id.
    pub station: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Firmware identity.
    pub firmware: Option<FirmwareInfo>,
    /// For re-judged results: the original manifest's SHA-256.
    pub original_manifest_sha256: Option<String>,
}

/// Hash every file in `dir`, write `manifest.json`, and `manifest.sig` when a key is given.
/// A stale `manifest.sig` is removed when no key is given.
pub fn write(
    dir: &Path,
    meta: ManifestMeta,
    key: Option<&StationKey>,
) -> Result<Manifest, ReportError> {
    let mut files = Vec::new();
    for rel in list_files(dir).map_err(|e| ReportError::io(dir, e))? {
        let p = dir.join(&rel);
        let (sha256, bytes) = hash_file(&p).map_err(|e| ReportError::io(&p, e))?;
        files.push(FileEntry {
            path: rel,
            sha256,
            bytes,
        });
    }
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA.into(),
        tool: ToolInfo::current(),
        run_id: meta.run_id,
        station: meta.station,
        created: meta.created,
        firmware: meta.firmware,
        original_manifest_sha256: meta.original_manifest_sha256,
        signature: key.map(|k| SignatureInfo {
            algorithm: "ed25519".into(),
            public_key: k.public_hex(),
            fingerprint: fingerprint(&k.verifying_key()),
        }),
        files,
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| ReportError::Invalid {
        path: dir.join(MANIFEST),
        message: e.to_string(),
    })? + "\n";
    let mpath = dir.join(MANIFEST);
    crate::durable::write(&mpath, &text).map_err(|e| ReportError::io(&mpath, e))?;
    let spath = dir.join(SIGNATURE);
    match key {
        Some(k) => crate::durable::write(&spath, k.sign_hex(text.as_bytes()) + "\n")
            .map_err(|e| ReportError::io(&spath, e))?,
        None => {
            if spath.exists() {
                std::fs::remove_file(&spath).map_err(|e| ReportError::io(&spath, e))?;
            }
        }
    }
    Ok(manifest)
}

/// What is wrong with one file of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Its content differs from the manifest.
    Changed,
    /// The manifest lists it, but it is not there.
    Missing,
    /// It is there, but the manifest does not list it.
    Extra,
    /// The signature does not verify, or was not made by the trusted key.
    BadSignature,
    /// It cannot be read or parsed.
    Unreadable,
}

impl ProblemKind {
    /// Upper-case word for output.
    pub fn word(self) -> &'static str {
        match self {
            ProblemKind::Changed => "CHANGED",
            ProblemKind::Missing => "MISSING",
            ProblemKind::Extra => "EXTRA",
            ProblemKind::BadSignature => "BAD SIGNATURE",
            ProblemKind::Unreadable => "UNREADABLE",
        }
    }
}

/// One problem found by verification.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The file, relative to the verified directory.
    pub path: String,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// Details.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<13} {}: {}", self.kind.word(), self.path, self.detail)
    }
}

/// How the signature looked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum SignatureStatus {
    /// Valid ed25519 signature by this key; `trusted` says whether it matched the key the
    /// caller trusts (None when no trusted key was given).
    Valid {
        /// Fingerprint of the signing key.
        fingerprint: String,
        /// Whether it is the trusted key.
        trusted: Option<bool>,
    },
    /// The manifest says it is unsigned.
    Unsigned,
    /// The signature is missing, malformed or wrong (see the problems).
    Invalid,
    /// No manifest could be read.
    Unknown,
}

/// The result of verifying a bundle directory.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The directory verified.
    pub dir: PathBuf,
    /// Files whose digests matched.
    pub files_ok: usize,
    /// Everything wrong, one entry per file and problem.
    pub problems: Vec<Problem>,
    /// Signature status.
    pub signature: SignatureStatus,
    /// Re-judged sub-bundles, verified the same way.
    pub nested: Vec<Verification>,
    /// Approvals whose signature holds and that name the current manifest.
    pub approvals: Vec<super::approval::ApprovalCheck>,
}

impl Verification {
    /// Whether the bundle (and every sub-bundle) is intact; with `require_signature`, also
    /// whether each is signed.
    pub fn ok(&self, require_signature: bool) -> bool {
        self.problems.is_empty()
            && !(require_signature && self.signature == SignatureStatus::Unsigned)
            && self.nested.iter().all(|n| n.ok(require_signature))
    }

    /// All problems, with nested paths prefixed by their sub-directory.
    pub fn all_problems(&self) -> Vec<Problem> {
        let mut out = self.problems.clone();
        for n in &self.nested {
            let name = n
                .dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            for mut p in n.all_problems() {
                p.path = format!("{name}/{}", p.path);
                out.push(p);
            }
        }
        out
    }
}

/// Verify the bundle in `dir` against its manifest (and signature), and every `rejudge-*/`
/// sub-bundle. `trusted`: the public key the signature must come from, when known.
pub fn verify(dir: &Path, trusted: Option<&VerifyingKey>) -> Verification {
    verify_inner(dir, trusted, None)
}

fn verify_inner(
    dir: &Path,
    trusted: Option<&VerifyingKey>,
    parent_manifest_sha: Option<&str>,
) -> Verification {
    let mut v = Verification {
        dir: dir.to_path_buf(),
        files_ok: 0,
        problems: Vec::new(),
        signature: SignatureStatus::Unknown,
        nested: Vec::new(),
        approvals: Vec::new(),
    };
    let ps = &mut v.problems;
    let mpath = dir.join(MANIFEST);
    let bytes = match std::fs::read(&mpath) {
        Ok(b) => b,
        Err(e) => {
            push(
                ps,
                MANIFEST,
                if e.kind() == std::io::ErrorKind::NotFound {
                    ProblemKind::Missing
                } else {
                    ProblemKind::Unreadable
                },
                format!("cannot read the manifest ({e}); nothing can be verified"),
            );
            if parent_manifest_sha.is_some() {
                // A rejudge-* directory without a manifest: everything in it is unaccounted for.
                for f in list_files(dir).unwrap_or_default() {
                    push(
                        ps,
                        &f,
                        ProblemKind::Extra,
                        "in a rejudge-* directory that has no manifest".into(),
                    );
                }
            }
            return v;
        }
    };
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            push(
                ps,
                MANIFEST,
                ProblemKind::Unreadable,
                format!("not a hilrig manifest ({e}); it was changed or damaged"),
            );
            return v;
        }
    };

    // The signature.
    let spath = dir.join(SIGNATURE);
    v.signature = match &manifest.signature {
        None => {
            if spath.exists() {
                push(
                    ps,
                    SIGNATURE,
                    ProblemKind::Extra,
                    "a signature is present but manifest.json says the bundle is unsigned \
                     (the manifest was replaced?)"
                        .into(),
                );
                SignatureStatus::Invalid
            } else {
                if trusted.is_some() {
                    push(
                        ps,
                        MANIFEST,
                        ProblemKind::BadSignature,
                        "unsigned, but a trusted key was given".into(),
                    );
                }
                SignatureStatus::Unsigned
            }
        }
        Some(info) => check_signature(&bytes, info, &spath, trusted, ps),
    };

    // The original this result re-judges.
    if let Some(parent) = parent_manifest_sha {
        match &manifest.original_manifest_sha256 {
            Some(h) if h == parent => {}
            Some(h) => push(
                ps,
                MANIFEST,
                ProblemKind::Changed,
                format!(
                    "re-judges the bundle with manifest {h}, but the enclosing bundle's \
                     manifest is {parent}"
                ),
            ),
            None => push(
                ps,
                MANIFEST,
                ProblemKind::Unreadable,
                "inside a rejudge-* directory but names no original manifest".into(),
            ),
        }
    }

    // The files.
    let present = match list_files(dir) {
        Ok(p) => p,
        Err(e) => {
            push(
                ps,
                ".",
                ProblemKind::Unreadable,
                format!("cannot list: {e}"),
            );
            Vec::new()
        }
    };
    let listed: std::collections::BTreeSet<&str> =
        manifest.files.iter().map(|f| f.path.as_str()).collect();
    let mut files_ok = 0;
    for f in &manifest.files {
        let p = dir.join(&f.path);
        if f.path.split('/').any(|c| c == ".." || c.is_empty()) || Path::new(&f.path).is_absolute()
        {
            push(
                ps,
                &f.path,
                ProblemKind::Unreadable,
                "path in the manifest leaves the bundle".into(),
            );
            continue;
        }
        match hash_file(&p) {
            Ok((h, n)) if h == f.sha256 && n == f.bytes => files_ok += 1,
            Ok((h, n)) => push(
                ps,
                &f.path,
                ProblemKind::Changed,
                format!(
                    "SHA-256 {h} ({n} bytes), manifest says {} ({} bytes)",
                    f.sha256, f.bytes
                ),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => push(
                ps,
                &f.path,
                ProblemKind::Missing,
                "listed in the manifest, not in the bundle".into(),
            ),
            Err(e) => push(ps, &f.path, ProblemKind::Unreadable, e.to_string()),
        }
    }
    for p in present.iter().filter(|p| !listed.contains(p.as_str())) {
        push(
            ps,
            p,
            ProblemKind::Extra,
            "in the bundle, not in the manifest".into(),
        );
    }
    v.files_ok = files_ok;
    v.approvals = super::approval::check_all(dir, &bytes, &mut v.problems);

    // Re-judged sub-bundles.
    let own_sha = hash_bytes(&bytes);
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut subs: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| is_rejudge_dir(&n.to_string_lossy()))
            })
            .collect();
        subs.sort();
        for s in subs {
            v.nested.push(verify_inner(&s, trusted, Some(&own_sha)));
        }
    }
    // A suite run: each member bundle is also verified on its own.
    if dir.join(super::suite::SUITE_INFO).is_file() {
        let mut members: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_dir() && p.join(MANIFEST).is_file())
                    .collect()
            })
            .unwrap_or_default();
        members.sort();
        for m in members {
            v.nested.push(verify_inner(&m, trusted, None));
        }
    }
    v
}

fn push(ps: &mut Vec<Problem>, path: &str, kind: ProblemKind, detail: String) {
    ps.push(Problem {
        path: path.to_string(),
        kind,
        detail,
    });
}

fn check_signature(
    manifest_bytes: &[u8],
    info: &SignatureInfo,
    spath: &Path,
    trusted: Option<&VerifyingKey>,
    ps: &mut Vec<Problem>,
) -> SignatureStatus {
    let key = match from_hex(&info.public_key)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(|b| VerifyingKey::from_bytes(&b))
    {
        Some(Ok(k)) => k,
        _ => {
            push(
                ps,
                MANIFEST,
                ProblemKind::BadSignature,
                "the public key in the manifest is not an ed25519 key".into(),
            );
            return SignatureStatus::Invalid;
        }
    };
    let sig_text = match std::fs::read_to_string(spath) {
        Ok(t) => t,
        Err(e) => {
            push(
            ps,
                SIGNATURE,
                if e.kind() == std::io::ErrorKind::NotFound {
                    ProblemKind::Missing
                } else {
                    ProblemKind::Unreadable
                },
                format!("the manifest says the bundle is signed, but the signature cannot be read ({e})"),
            );
            return SignatureStatus::Invalid;
        }
    };
    let Some(sig) = from_hex(&sig_text)
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b))
    else {
        push(
            ps,
            SIGNATURE,
            ProblemKind::BadSignature,
            "not an ed25519 signature (expected 128 hex digits)".into(),
        );
        return SignatureStatus::Invalid;
    };
    if key.verify_strict(manifest_bytes, &sig).is_err() {
        push(
            ps,
            "manifest.json + manifest.sig",
            ProblemKind::BadSignature,
            "the signature does not match manifest.json: one of them was changed".into(),
        );
        return SignatureStatus::Invalid;
    }
    let fp = fingerprint(&key);
    let trusted_ok = trusted.map(|t| *t == key);
    if trusted_ok == Some(false) {
        push(
            ps,
            SIGNATURE,
            ProblemKind::BadSignature,
            format!(
                "signed by key {fp}, not by the trusted key {}",
                trusted.map(fingerprint).unwrap_or_default()
            ),
        );
    }
    SignatureStatus::Valid {
        fingerprint: fp,
        trusted: trusted_ok,
    }
}
