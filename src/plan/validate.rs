//! `hilrig validate FILES...`: the run's own pre-flight, file by file.
//!
//! A plan or suite is checked exactly as `hilrig run` checks it before it switches anything
//! on, against the rig run would use, and a rig gets run's checks too. A rig, a DUT fixture
//! or a limit profile given on its own is recognised by its top-level keys, a DBC by its
//! `VERSION`/`NS_ :`/`BO_` lines (loaded with its strict checks, warnings and notes
//! printed) and a Modbus register map by `map:` and `registers:`; each `ok:` line says what
//! the file was taken for. Problems go to stderr with their locations.

use std::path::{Path, PathBuf};

use crate::exit::{Failure, EXIT_ABORT};
use crate::plan::load::{load_fixture, load_limits, load_rig_all, relative};
use crate::plan::preflight::FileKind;
use crate::plan::{load_plan, load_plan_with, load_suite, signal_map, InputError};
use crate::stdio;

/// Validate every file against the rig at `rig_path`, a rig file's envelope also with
/// `coverage` (false: something would refuse a run); exit 0 when all are valid, 2
/// otherwise.
pub fn validate(
    files: &[PathBuf],
    rig_path: &Path,
    coverage: impl Fn(&Path, &crate::rig::Rig) -> bool,
) -> Result<i32, Failure> {
    let rig = match load_rig_all(rig_path) {
        Ok(r) => r,
        Err(errors) => {
            for e in errors {
                stdio::eprint(&format!("{e}\n"));
            }
            return Err(Failure::printed(EXIT_ABORT));
        }
    };
    let mut bad = 0;
    for f in files {
        let text = match std::fs::read(f) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                bad += 1;
                stdio::eprint(&format!(
                    "{}\n",
                    InputError::file(f, format!("cannot read file: {e}"))
                ));
                continue;
            }
        };
        let kind = FileKind::of_text(&text).unwrap_or(FileKind::Plan);
        let mut coverage_ok = true;
        let errors: Vec<InputError> = match kind {
            FileKind::Rig => match load_rig_all(f) {
                Ok(rig) => {
                    coverage_ok = coverage(f, &rig.value);
                    Vec::new()
                }
                Err(e) => e,
            },
            FileKind::Fixture => match load_fixture(f) {
                Err(e) => e,
                Ok(_) => match signal_map::check_fixture_file(f) {
                    Ok(report) => {
                        report
                            .notes
                            .iter()
                            .for_each(|n| stdio::eprint(&format!("{n}\n")));
                        Vec::new()
                    }
                    Err(e) => e,
                },
            },
            FileKind::LimitProfile => load_limits(f).err().unwrap_or_default(),
            FileKind::Dbc => match crate::dbc::Dbc::from_file(f) {
                Ok(dbc) => {
                    let warnings = dbc.warnings().iter().map(|w| format!("warning: {w}"));
                    let notes = dbc.notes().iter().map(|n| format!("note: {n}"));
                    warnings
                        .chain(notes)
                        .for_each(|l| stdio::eprint(&format!("{l}\n")));
                    Vec::new()
                }
                Err(e) => vec![InputError::file(f, e.to_string())],
            },
            FileKind::RegisterMap => match crate::modbus::RegisterMap::load(f) {
                Ok(_) => Vec::new(),
                Err(e) => vec![InputError::file(f, e.to_string())],
            },
            FileKind::Suite => match load_suite(f) {
                Err(e) => vec![e],
                Ok(s) => s
                    .value
                    .plans
                    .iter()
                    .flat_map(|p| {
                        match load_plan_with(&relative(f, &p.plan), Some(&rig.value), &p.parameters)
                        {
                            Ok(p) => {
                                for w in crate::plan::warnings::unjudged_checks(&p) {
                                    stdio::eprint(&format!("{w}\n"));
                                }
                                Vec::new()
                            }
                            Err(e) => e,
                        }
                    })
                    .collect(),
            },
            FileKind::Plan => match load_plan(f, Some(&rig.value)) {
                Ok(p) => {
                    for w in crate::plan::warnings::unjudged_checks(&p) {
                        stdio::eprint(&format!("{w}\n"));
                    }
                    Vec::new()
                }
                Err(e) => e,
            },
        };
        if !coverage_ok {
            bad += 1;
        } else if errors.is_empty() {
            let against = match kind {
                FileKind::Plan | FileKind::Suite => {
                    format!(" (checked against rig {})", rig_path.display())
                }
                _ => String::new(),
            };
            if !stdio::print(&format!("ok: {} ({}){against}", f.display(), kind.name())) {
                return Err(Failure::printed(EXIT_ABORT));
            }
        } else {
            bad += 1;
            for e in errors {
                stdio::eprint(&format!("{e}\n"));
            }
        }
    }
    Ok(if bad == 0 { 0 } else { EXIT_ABORT })
}
