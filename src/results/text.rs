//! The results store's answers as text for people (`hilrig results list|show|trend|compare|
//! flaky|import`); `--json` prints the same values serialised instead.

use super::query::{self, Comparison, Flaky, RunDetail, RunRow, Trend};
use super::ImportReport;

/// The firmware of a run as one name.
fn fw(r: &RunRow) -> String {
    query::firmware_key(r.firmware_id.as_deref(), r.firmware_version.as_deref())
}

/// `3.6508 ± 0.0019 V`, or "not determinable".
fn stated(v: Option<f64>, u: f64, unit: &str) -> String {
    v.map_or("not determinable".into(), |v| {
        crate::verdict::gum::stated(v, u, unit)
    })
}

fn num(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.6}"))
}

/// One line per imported bundle, then the totals (store `url`).
pub fn import(all: &ImportReport, url: &str) -> String {
    let new = all.imported.iter().filter(|i| i.new).count();
    let mut lines = Vec::new();
    for i in &all.imported {
        lines.push(format!(
            "{} {} ({} tests, {} measurements, {})",
            if i.new { "stored " } else { "present" },
            i.run_id,
            i.tests,
            i.measurements,
            i.signed_by
                .as_deref()
                .map_or("unsigned".to_string(), |f| format!("signed {f}"))
        ));
    }
    lines.push(format!(
        "{} bundle(s): {new} stored, {} already present, {} refused; store {url}",
        all.imported.len() + all.refused.len(),
        all.imported.len() - new,
        all.refused.len(),
    ));
    lines.join("\n")
}

/// One line per run, then the count.
pub fn list(runs: &[RunRow]) -> String {
    let mut text = String::new();
    for r in runs {
        text.push_str(&format!(
            "{}  {:<8} {:<12} {:<18} {:<36} {}{}\n",
            &r.bundle_sha256[..12.min(r.bundle_sha256.len())],
            r.outcome,
            r.station,
            r.plan,
            fw(r),
            r.started,
            if r.simulated { "  SIMULATED" } else { "" }
        ));
    }
    text.push_str(&format!("{} run(s)", runs.len()));
    text.trim_end().to_string()
}

/// One run: its tests and measurements.
pub fn show(d: &RunDetail) -> String {
    let r = &d.run;
    let mut text = format!(
        "run {}\n  bundle {}\n  plan {} on {} · dut {} {}\n  firmware {} {}\n  \
         started {} · {:.1} s · {}{}\n  operator {} · {}\n",
        r.run_id,
        r.bundle_sha256,
        r.plan,
        r.station,
        r.dut,
        r.dut_serial.as_deref().unwrap_or("(serial not recorded)"),
        fw(r),
        r.firmware_sha256.as_deref().unwrap_or(""),
        r.started,
        r.duration_s,
        r.outcome,
        if r.simulated { " · SIMULATED" } else { "" },
        r.operator.as_deref().unwrap_or("not recorded"),
        r.signed_by
            .as_deref()
            .map_or("unsigned".to_string(), |f| format!("signed {f}"))
    );
    for t in &d.tests {
        text.push_str(&format!("  {:<6} {}\n", t.verdict, t.name));
        for m in &t.measurements {
            text.push_str(&format!(
                "           {} {} = {} (k = {})\n",
                m.criterion,
                m.quantity,
                stated(m.value, m.uncertainty, &m.unit),
                m.k
            ));
        }
        if let Some(msg) = &t.message {
            text.push_str(&format!("           {msg}\n"));
        }
    }
    text.trim_end().to_string()
}

/// A criterion's series, point by point.
pub fn trend(criterion: &str, t: &Trend) -> String {
    let unit = t.unit.clone().unwrap_or_default();
    let mut text = format!("{criterion} by {}\n", t.by);
    for s in &t.series {
        text.push_str(&format!(
            "  {}: {} value(s), mean {} {unit}, min {}, max {}, s {}\n",
            s.key,
            s.n,
            num(s.mean),
            num(s.min),
            num(s.max),
            num(s.std_dev)
        ));
        for p in &s.points {
            text.push_str(&format!(
                "    {} {:<30} {} (k = {}) {}\n",
                p.started,
                p.test,
                stated(p.point.value, p.point.uncertainty, &unit),
                p.point.k,
                p.point.verdict
            ));
        }
    }
    text.trim_end().to_string()
}

/// Two runs measurement by measurement; `moved` of them beyond their uncertainty.
pub fn compare(c: &Comparison, moved: usize) -> String {
    let mut text = format!(
        "A {} (fw {})\nB {} (fw {})\n",
        c.a.run_id,
        fw(&c.a),
        c.b.run_id,
        fw(&c.b)
    );
    for d in &c.differences {
        text.push_str(&format!(
            "  {} {:<40} {} {}: B - A = {} {} (U = {:.6}, k = {}){}\n",
            if d.moved { "MOVED" } else { "     " },
            d.test,
            d.criterion,
            d.quantity,
            num(d.difference),
            d.unit,
            d.uncertainty,
            query::COMPARE_K,
            if d.verdicts.0 != d.verdicts.1 {
                format!(" verdict {} -> {}", d.verdicts.0, d.verdicts.1)
            } else {
                String::new()
            }
        ));
    }
    for k in &c.only_a {
        text.push_str(&format!("  only in A: {k}\n"));
    }
    for k in &c.only_b {
        text.push_str(&format!("  only in B: {k}\n"));
    }
    text.push_str(&format!(
        "{moved} of {} shared measurement(s) moved beyond their uncertainty\n",
        c.differences.len()
    ));
    text.trim_end().to_string()
}

/// The flaky tests, then their count.
pub fn flaky(f: &[Flaky]) -> String {
    let mut text = String::new();
    for g in f {
        let counts: Vec<String> = g.verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
        text.push_str(&format!(
            "{} / {} on {} fw {}: {}\n",
            g.plan,
            g.test,
            g.station,
            g.firmware,
            counts.join(", ")
        ));
    }
    text.push_str(&format!("{} flaky test(s)\n", f.len()));
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_answers_still_say_how_many() {
        assert_eq!(super::list(&[]), "0 run(s)");
        assert_eq!(super::flaky(&[]), "0 flaky test(s)");
        let none = super::ImportReport::default();
        assert_eq!(
            super::import(&none, "sqlite://x.db"),
            "0 bundle(s): 0 stored, 0 already present, 0 refused; store sqlite://x.db"
        );
    }
}
