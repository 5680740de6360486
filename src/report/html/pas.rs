//! The PAS 63100-style section: warning outputs, the declared energy against the installation
//! cap, and the installation location.

use std::fmt::Write;

use super::{esc, verdict_class, ReportData, PAS_CAP_INDOOR_WH, PAS_CAP_OUTDOOR_WH};
use crate::report::inputs::{spec_for, TestSpec};
use crate::report::{RunResults, TestResult};

/// Whether the run claims `standard`: in the plan's requirements, a test's requirements,
/// or a criterion's provenance.
pub fn claims_standard(r: &RunResults, standard: &str) -> bool {
    r.requirements.iter().any(|q| q.contains(standard))
        || r.tests.iter().any(|t| {
            t.requirements.iter().any(|q| q.contains(standard))
                || t.measurements
                    .iter()
                    .any(|m| m.provenance.source.contains(standard))
        })
}

pub(super) fn pas_section(h: &mut String, d: &ReportData, r: &RunResults, specs: &[TestSpec]) {
    h.push_str("<h2>PAS 63100-style checks</h2><p class=\"small\">PAS 63100:2024 sets no BMS thresholds; it asks for BMS protection that acts on detected failures (the tests above), visual and audible warnings of a battery fault for systems inside a dwelling, and limits the installed energy (at most 40 kWh, or 80 kWh outdoors or in a detached, fire-separated building). Summary from public material, not the licensed text.</p>");
    h.push_str("<table><tr><th>Check</th><th>Result</th></tr>");
    // Warning output.
    let warning_tests: Vec<&TestResult> = r
        .tests
        .iter()
        .filter(|t| {
            spec_for(specs, &t.test, &t.name).is_some_and(|s| {
                s.detect_signals
                    .iter()
                    .any(|x| x.to_ascii_lowercase().contains("warn"))
            })
        })
        .collect();
    let warn_cell = if warning_tests.is_empty() {
        let seen = d
            .traces
            .channels
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase().contains("warn"))
            .map(|(k, c)| {
                let max = c.v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                format!("{k} highest value {max}")
            })
            .collect::<Vec<_>>();
        format!(
            "<span class=\"v-inc\">NOT TESTED</span> in this run: no test's detect condition or expectation reads a warning signal.{}",
            if seen.is_empty() {
                String::new()
            } else {
                format!(
                    " Observed, not judged: {}.",
                    esc(&seen.join("; "))
                )
            }
        )
    } else {
        warning_tests
            .iter()
            .map(|t| {
                format!(
                    "<span class=\"v-{}\">{}</span> {}",
                    verdict_class(t.verdict),
                    t.verdict.word(),
                    esc(&t.name)
                )
            })
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let _ = write!(
        h,
        "<tr><td>A fault raises the warning output</td><td>{warn_cell}</td></tr>"
    );
    // Energy.
    let fx = d.fixture.as_ref();
    let energy = fx.and_then(|f| f.energy_wh());
    let location = fx.and_then(|f| f.location.clone());
    let cap = location.as_deref().map(|l| {
        let l = l.to_ascii_lowercase();
        if l.contains("outdoor") || l.contains("detached") || l.contains("outside") {
            Some(PAS_CAP_OUTDOOR_WH)
        } else if l.contains("indoor")
            || l.contains("dwelling")
            || l.contains("inside")
            || l.contains("garage")
        {
            Some(PAS_CAP_INDOOR_WH)
        } else {
            None
        }
    });
    let kwh = |wh: f64| format!("{:.2} kWh", wh / 1000.0);
    let energy_cell = match (energy, &location, cap) {
        (None, _, _) => "<span class=\"v-inc\">NOT DECLARED</span>: the fixture declares no <span class=\"mono\">energy:</span>".to_string(),
        (Some(e), Some(loc), Some(Some(c))) => format!(
            "<span class=\"v-{}\">{}</span> declared {} for location “{}”; cap {}",
            if e <= c { "pass" } else { "fail" },
            if e <= c { "WITHIN CAP" } else { "ABOVE CAP" },
            kwh(e),
            esc(loc),
            kwh(c)
        ),
        (Some(e), loc, _) => {
            let loc_text = match loc {
                Some(l) => format!("location “{}” not recognised (use indoor, outdoor or detached)", esc(l)),
                None => "location not declared".to_string(),
            };
            if e <= PAS_CAP_INDOOR_WH {
                format!(
                    "<span class=\"v-pass\">WITHIN CAP</span> declared {}: at most {} whatever the location ({loc_text})",
                    kwh(e),
                    kwh(PAS_CAP_INDOOR_WH)
                )
            } else if e <= PAS_CAP_OUTDOOR_WH {
                format!(
                    "<span class=\"v-inc\">DEPENDS ON LOCATION</span> declared {}: above the {} indoor cap, within the {} outdoor/detached cap ({loc_text})",
                    kwh(e),
                    kwh(PAS_CAP_INDOOR_WH),
                    kwh(PAS_CAP_OUTDOOR_WH)
                )
            } else {
                format!(
                    "<span class=\"v-fail\">ABOVE CAP</span> declared {}: above both caps ({loc_text})",
                    kwh(e)
                )
            }
        }
    };
    let _ = write!(
        h,
        "<tr><td>Declared energy against the installation cap</td><td>{energy_cell}</td></tr><tr><td>Installation location</td><td>{}</td></tr></table>",
        esc(location.as_deref().unwrap_or("not declared"))
    );
}
