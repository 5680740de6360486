//! What `hilrig report verify|approve|rejudge|render DIR` does with a finished run
//! directory: check its bundle and print what was found, sign an approval, re-judge it
//! against other limits, rebuild its reports.

use std::path::{Path, PathBuf};

use crate::exit::Failure;
use crate::report::bundle::REPORT_HTML;
use crate::report::manifest::{self, SignatureStatus, MANIFEST};
use crate::report::pdf::REPORT_PDF;
use crate::report::rejudge::{self, RejudgeOptions};
use crate::report::{html, keys};

/// Re-judge the run in `dir` with `opts` and print what changed; exit code of the outcome.
pub fn rejudge(dir: &Path, opts: RejudgeOptions) -> Result<i32, Failure> {
    let r = rejudge::rejudge(dir, opts).map_err(Failure::abort)?;
    for c in &r.changes {
        println!(
            "{:<24} {:<30} {:<26} -> {:<26} {:<12} -> {}",
            c.test,
            c.criterion,
            c.old_limit,
            c.new_limit,
            c.old.word(),
            c.new.word()
        );
    }
    println!(
        "{:?}: re-judged result in {} ({})",
        r.results.outcome,
        r.dir.display(),
        if r.signed {
            "signed"
        } else {
            "UNSIGNED: no station key; run `hilrig keygen`"
        }
    );
    Ok(r.results.outcome.exit_code())
}

/// Check every file of the bundle in `dir` against its manifest and the manifest's
/// signature (by `pubkey`, else the station's own key) and print what was found; exit 0
/// intact, 1 not verified.
pub fn verify(
    dir: &Path,
    pubkey: Option<String>,
    require_signature: bool,
    json: bool,
) -> Result<i32, Failure> {
    if !dir.is_dir() {
        return Err(Failure::abort(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let trusted = match pubkey {
        Some(p) => {
            Some(keys::parse_public(&p).map_err(|e| Failure::abort(format!("--pubkey: {e}")))?)
        }
        None => keys::default_key_path()
            .map(|k| keys::public_key_path(&k))
            .filter(|p| p.is_file())
            .and_then(|p| keys::parse_public(&p.to_string_lossy()).ok()),
    };
    let v = manifest::verify(dir, trusted.as_ref());
    let ok = v.ok(require_signature);
    if json {
        let doc = serde_json::json!({
            "ok": ok,
            "verification": v,
            "problems": v.all_problems(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(if ok { 0 } else { 1 });
    }
    print_one(&v, "");
    for n in &v.nested {
        let name = n
            .dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        print_one(n, &format!("{name}/"));
    }
    if ok {
        println!("INTACT: {}", dir.display());
        Ok(0)
    } else {
        let n = v.all_problems().len();
        if n == 0 && require_signature {
            println!(
                "NOT VERIFIED: {} is unsigned (pass --allow-unsigned to accept matching files \
                 without a signature)",
                dir.display()
            );
        } else {
            println!("NOT VERIFIED: {n} problem(s) in {}", dir.display());
        }
        Ok(1)
    }
}

fn print_one(v: &manifest::Verification, prefix: &str) {
    for p in &v.problems {
        println!("{:<13} {prefix}{}: {}", p.kind.word(), p.path, p.detail);
    }
    let sig = match &v.signature {
        SignatureStatus::Valid {
            fingerprint,
            trusted,
        } => format!(
            "signed by station key {fingerprint}{}",
            match trusted {
                Some(true) => " (the trusted key)",
                Some(false) => " (NOT the trusted key)",
                None => " (no trusted key given: pass --pubkey to check who signed)",
            }
        ),
        SignatureStatus::Unsigned => {
            "UNSIGNED: the files match the manifest, but anyone could have rewritten the manifest"
                .into()
        }
        SignatureStatus::Invalid => "signature INVALID".into(),
        SignatureStatus::Unknown => format!("no readable {MANIFEST}"),
    };
    println!("{prefix}{MANIFEST}: {} file(s) match; {sig}", v.files_ok);
    for a in &v.approvals {
        println!(
            "{prefix}{}: approved by {} on {} (key {})",
            a.path, a.by, a.at, a.fingerprint
        );
    }
}

/// Sign an approval of the report in `dir` by `by` with `key` (else the default key).
pub fn approve(dir: &Path, by: &str, key: Option<PathBuf>) -> Result<i32, Failure> {
    let key = match key {
        Some(p) => keys::load(&p).map(Some),
        None => keys::load_default(),
    };
    let key = match key {
        Ok(Some(k)) => k,
        Ok(None) => {
            return Err(Failure::abort(
                "no key to sign the approval with: pass --key personal.key (make one with \
                 `hilrig keygen --out personal.key`)",
            ));
        }
        Err(e) => return Err(Failure::abort(e)),
    };
    match crate::report::approval::approve(dir, by, &key) {
        Ok(p) => {
            println!(
                "approved by {by}: {} (key {})",
                p.display(),
                keys::fingerprint(&key.verifying_key())
            );
            Ok(0)
        }
        Err(e) => Err(Failure::failed(e)),
    }
}

/// Rebuild report.html and report.pdf of the bundle in `dir` (into `out` and beside it when
/// given); a bundle that no longer matches its manifest is not rendered.
pub fn render(dir: &Path, out: Option<PathBuf>) -> Result<i32, Failure> {
    // Rendering distrusts its input: a bundle whose files no longer match the manifest is
    // not rendered (the report would present tampered data as the run's).
    if let Err(problems) = crate::report::render_check(dir) {
        return Err(Failure::abort(format!(
            "{} does not match its manifest; refusing to render it:\n{}",
            dir.display(),
            problems.join("\n")
        )));
    }
    let page = html::render_dir(dir).map_err(Failure::abort)?;
    let pdf = crate::report::pdf::render_dir(dir).map_err(Failure::abort)?;
    // With --out FILE the PDF goes beside it as FILE with the extension `.pdf`.
    let targets = [
        (
            REPORT_HTML,
            out.clone().unwrap_or_else(|| dir.join(REPORT_HTML)),
            page.into_bytes(),
        ),
        (
            REPORT_PDF,
            out.as_ref()
                .map(|o| o.with_extension("pdf"))
                .unwrap_or_else(|| dir.join(REPORT_PDF)),
            pdf,
        ),
    ];
    if out.is_none() && dir.join(MANIFEST).exists() {
        // The reports are covered by the manifest: only write what still matches it.
        let listed = std::fs::read_to_string(dir.join(MANIFEST))
            .ok()
            .and_then(|t| serde_json::from_str::<manifest::Manifest>(&t).ok())
            .map(|m| m.files)
            .unwrap_or_default();
        for (name, _, bytes) in &targets {
            if let Some(f) = listed.iter().find(|f| f.path == *name) {
                if manifest::hash_bytes(bytes) != f.sha256 {
                    return Err(Failure::abort(format!(
                        "the rebuilt report differs from the {name} this bundle's manifest covers \
                         (written by another hilrig version?); replacing it would break `hilrig report verify`. \
                         Pass --out FILE to write the rebuilt report elsewhere."
                    )));
                }
            }
        }
    }
    for (_, target, bytes) in targets {
        std::fs::write(&target, bytes)
            .map_err(|e| Failure::abort(format!("cannot write {}: {e}", target.display())))?;
        println!("wrote {}", target.display());
    }
    Ok(0)
}
