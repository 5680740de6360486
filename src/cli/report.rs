//! `hilrig report verify|rejudge|render DIR`

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::EXIT_ABORT;
use crate::report::bundle::{KeyChoice, REPORT_HTML};
use crate::report::manifest::{self, SignatureStatus, MANIFEST};
use crate::report::pdf::REPORT_PDF;
use crate::report::rejudge::{rejudge, RejudgeOptions};
use crate::report::{html, keys};
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

/// Run `hilrig report` and return the exit code.
pub fn report(a: ReportArgs) -> i32 {
    match a.action {
        ReportAction::Verify {
            dir,
            pubkey,
            require_signature: _,
            allow_unsigned,
            json,
        } => verify(dir, pubkey, !allow_unsigned, json),
        ReportAction::Approve { dir, by, key } => approve(dir, &by, key),
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
            match rejudge(&dir, opts) {
                Ok(r) => {
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
                    r.results.outcome.exit_code()
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    EXIT_ABORT
                }
            }
        }
        ReportAction::Render { dir, out } => render(dir, out),
    }
}

fn verify(dir: PathBuf, pubkey: Option<String>, require_signature: bool, json: bool) -> i32 {
    if !dir.is_dir() {
        eprintln!("error: {} is not a directory", dir.display());
        return EXIT_ABORT;
    }
    let trusted = match pubkey {
        Some(p) => match keys::parse_public(&p) {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("error: --pubkey: {e}");
                return EXIT_ABORT;
            }
        },
        None => keys::default_key_path()
            .map(|k| keys::public_key_path(&k))
            .filter(|p| p.is_file())
            .and_then(|p| keys::parse_public(&p.to_string_lossy()).ok()),
    };
    let v = manifest::verify(&dir, trusted.as_ref());
    let ok = v.ok(require_signature);
    if json {
        let doc = serde_json::json!({
            "ok": ok,
            "verification": v,
            "problems": v.all_problems(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return if ok { 0 } else { 1 };
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
        0
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
        1
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

fn approve(dir: PathBuf, by: &str, key: Option<PathBuf>) -> i32 {
    let key = match key {
        Some(p) => keys::load(&p).map(Some),
        None => keys::load_default(),
    };
    let key = match key {
        Ok(Some(k)) => k,
        Ok(None) => {
            eprintln!(
                "error: no key to sign the approval with: pass --key personal.key (make one with \
                 `hilrig keygen --out personal.key`)"
            );
            return EXIT_ABORT;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    match crate::report::approval::approve(&dir, by, &key) {
        Ok(p) => {
            println!(
                "approved by {by}: {} (key {})",
                p.display(),
                keys::fingerprint(&key.verifying_key())
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn render(dir: PathBuf, out: Option<PathBuf>) -> i32 {
    // Rendering distrusts its input: a bundle whose files no longer match the manifest is
    // not rendered (the report would present tampered data as the run's).
    if let Err(problems) = crate::report::render_check(&dir) {
        eprintln!(
            "error: {} does not match its manifest; refusing to render it:\n{}",
            dir.display(),
            problems.join("\n")
        );
        return EXIT_ABORT;
    }
    let page = match html::render_dir(&dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let pdf = match crate::report::pdf::render_dir(&dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
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
                    eprintln!(
                        "error: the rebuilt report differs from the {name} this bundle's manifest covers \
                         (written by another hilrig version?); replacing it would break `hilrig report verify`. \
                         Pass --out FILE to write the rebuilt report elsewhere."
                    );
                    return EXIT_ABORT;
                }
            }
        }
    }
    for (_, target, bytes) in targets {
        if let Err(e) = std::fs::write(&target, bytes) {
            eprintln!("error: cannot write {}: {e}", target.display());
            return EXIT_ABORT;
        }
        println!("wrote {}", target.display());
    }
    0
}
