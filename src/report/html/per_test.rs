//! The per-test part of the page: the overview plot, then for each test its plots, measured
//! values with their uncertainty budget against each limit, and the watchdog record.

use std::fmt::Write;

use super::{
    esc, measured_counterpart, measured_text, unit_norm, verdict_class, ReportData, PLOT_HEIGHT,
    PLOT_WIDTH, POST_S, PRE_S,
};
use crate::report::inputs::{quantity, TestSpec};
use crate::report::junit::limit_text;
use crate::report::svg::{decimate, decimate_steps, HLine, Line, Plot, VLine};
use crate::report::{MeasurementResult, RunResults, TestResult};
use crate::units::display_unit;

pub(super) fn overview(h: &mut String, d: &ReportData, r: &RunResults, specs: &[TestSpec]) {
    let mut chans: Vec<String> = Vec::new();
    for s in specs {
        if let Some(c) = &s.stimulus_channel {
            if d.traces.get(c).is_some() && !chans.contains(c) {
                chans.push(c.clone());
            }
        }
    }
    if chans.is_empty() {
        return;
    }
    let x1 = r.duration_s.max(
        chans
            .iter()
            .filter_map(|c| d.traces.get(c).and_then(|c| c.t.last().copied()))
            .fold(0.0, f64::max),
    );
    let mut plot = Plot {
        title: "Whole run: stimulus".into(),
        unit: d
            .traces
            .get(&chans[0])
            .map(|c| unit_norm(&c.unit).to_string())
            .unwrap_or_default(),
        width: PLOT_WIDTH,
        height: PLOT_HEIGHT,
        x0: 0.0,
        x1,
        lines: Vec::new(),
        hlines: Vec::new(),
        vlines: Vec::new(),
        yes_no: false,
    };
    let cols = plot.columns();
    for c in chans.iter().take(6) {
        if let Some(ch) = d.traces.get(c) {
            plot.lines.push(Line {
                label: c.clone(),
                points: decimate(&ch.t, &ch.v, 0.0, x1, cols),
                step: false,
                dashed: false,
            });
        }
    }
    for t in &r.tests {
        if let Some(td) = t.detected_s {
            plot.vlines.push(VLine {
                label: String::new(),
                x: td,
                color: "#c92a2a",
                dashed: false,
            });
        }
    }
    let _ = write!(
        h,
        "<h2>Run overview</h2><div class=\"avoid\">{}</div><p class=\"small\">Red lines: trips observed.</p>",
        plot.render()
    );
}

/// The GUM budget of a measurement as a small table: each contribution with its stated
/// value, distribution and standard uncertainty, then `u_c`, `k` and `U`; or why the value
/// is not determinable.
pub(super) fn budget_table(m: &MeasurementResult) -> String {
    let mut h = String::new();
    if let Some(r) = &m.not_determinable {
        let _ = write!(h, "<br><b>Not determinable:</b> {}", esc(r));
    }
    if m.budget.is_empty() {
        return h;
    }
    let g = |x: f64| format!("{x:.3e} {}", m.unit);
    h.push_str("<table class=\"small\"><tr><th>contribution</th><th>value</th><th>distribution</th><th>standard uncertainty</th></tr>");
    for c in &m.budget {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{:?}</td><td class=\"num\">{}</td></tr>",
            esc(&c.name),
            esc(&g(c.value)),
            c.distribution,
            esc(&g(c.standard_uncertainty))
        );
    }
    let _ = write!(
        h,
        "<tr><td colspan=\"3\">combined standard uncertainty u<sub>c</sub> (root sum of squares); expanded U = k·u<sub>c</sub> with k = {}</td><td class=\"num\">{} ; U = {}</td></tr></table>",
        m.coverage_factor,
        esc(&g(m.combined_standard_uncertainty)),
        esc(&g(m.uncertainty))
    );
    h
}

pub(super) fn limit_lines(ms: &[MeasurementResult], unit: &str, out: &mut Vec<HLine>) {
    for m in ms {
        if unit_norm(&m.unit) != unit {
            continue;
        }
        let name = &m.criterion;
        match m.quantity.as_str() {
            "threshold" | "release" => {
                if let Some(lo) = m.limit.low {
                    out.push(HLine {
                        label: format!("{} {name} low", display_unit(lo, &m.unit)),
                        y: lo,
                        color: "#c92a2a",
                    });
                }
                if let Some(hi) = m.limit.high {
                    out.push(HLine {
                        label: format!("{} {name} high", display_unit(hi, &m.unit)),
                        y: hi,
                        color: "#c92a2a",
                    });
                }
                out.push(HLine {
                    label: format!("{} measured {}", display_unit(m.value, &m.unit), m.quantity),
                    y: m.value,
                    color: "#2b8a3e",
                });
            }
            "trip_time" => {}
            _ => {
                for (b, which) in [(m.limit.low, "min"), (m.limit.high, "max")] {
                    if let Some(y) = b {
                        out.push(HLine {
                            label: format!("{} {name} {which}", display_unit(y, &m.unit)),
                            y,
                            color: "#862e9c",
                        });
                    }
                }
            }
        }
    }
}

pub(super) fn test_section(
    h: &mut String,
    d: &ReportData,
    r: &RunResults,
    t: &TestResult,
    spec: Option<&TestSpec>,
    next_start: Option<f64>,
) {
    let _ = write!(
        h,
        "<section class=\"test\"><h2>{} <span class=\"badge {}\">{}</span></h2>",
        esc(&t.name),
        verdict_class(t.verdict),
        t.verdict.word()
    );
    let mut facts = vec![format!("repeat {}", t.repeat)];
    if let Some(s) = spec {
        if let Some(p) = &s.protection {
            facts.push(format!("protection <b>{}</b>", esc(p)));
        }
        if let Some(c) = &s.condition {
            facts.push(format!("detect <span class=\"mono\">{}</span>", esc(c)));
        }
    }
    facts.push(format!("stimulus from t = {:.3} s", t.started_s));
    facts.push(match t.detected_s {
        Some(x) => format!("observed at t = {x:.3} s"),
        None => "not observed".into(),
    });
    if !t.requirements.is_empty() {
        facts.push(format!("requirements: {}", esc(&t.requirements.join("; "))));
    }
    let _ = write!(h, "<p class=\"small\">{}</p>", facts.join(" · "));
    if let Some(m) = &t.message {
        let _ = write!(h, "<div class=\"note\">{}</div>", esc(m));
    }

    // Measurements.
    if !t.measurements.is_empty() {
        h.push_str("<h3>Measured values against limits</h3><table class=\"meas\"><tr><th>Criterion</th><th>Quantity</th><th>Measured ± U</th><th>Limit</th><th>Verdict</th></tr>");
        for m in &t.measurements {
            let p = &m.provenance;
            let _ = write!(
                h,
                "<tr class=\"m\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"v-{}\">{}</td></tr><tr><td colspan=\"5\" class=\"small\"><b>Limit from:</b> {}{}: {} <i>(confidence: {})</i><br><b>Uncertainty</b> (expanded, half-width): {}{}</td></tr>",
                esc(&m.criterion),
                esc(&m.quantity),
                esc(&measured_text(m)),
                esc(&if crate::report::pdf::is_yes_no(&m.quantity, &m.unit, m.value) {
                    "must hold (yes)".to_string()
                } else {
                    limit_text(&m.limit, &m.unit)
                }),
                verdict_class(m.verdict),
                m.verdict.word(),
                esc(&p.source),
                p.clause
                    .as_ref()
                    .map(|c| format!(" {}", esc(c)))
                    .unwrap_or_default(),
                esc(&p.basis),
                esc(&p.confidence),
                esc(&m.uncertainty_budget),
                budget_table(m)
            );
        }
        h.push_str("</table>");
    }

    // Window.
    let x0 = t.started_s - PRE_S;
    let x1 = match t.detected_s {
        // Never into the next repeat.
        Some(x) => match next_start.filter(|n| *n > x) {
            Some(n) => (x + POST_S).min(n),
            None => x + POST_S,
        },
        None => next_start.unwrap_or(r.duration_s).max(t.started_s + 1.0),
    };
    let mut markers = vec![VLine {
        label: "stimulus".into(),
        x: stimulus_marker_time(
            spec.and_then(|s| s.stimulus_kind.as_deref()),
            spec.and_then(|s| s.stimulus_channel.as_deref())
                .and_then(|c| d.traces.get(c)),
            t.started_s,
            t.detected_s.unwrap_or(x1),
        ),
        color: "#495057",
        dashed: true,
    }];
    if let Some(x) = t.detected_s {
        markers.push(VLine {
            label: "trip observed".into(),
            x,
            color: "#c92a2a",
            dashed: false,
        });
    }
    for e in d.truth.iter().filter(|e| e.t >= t.started_s && e.t <= x1) {
        if e.kind.ends_with("_open") {
            markers.push(VLine {
                label: format!("truth: {}", e.kind),
                x: e.t,
                color: "#0b7285",
                dashed: true,
            });
        }
    }
    let proto = spec.and_then(|s| s.protection.clone());
    let declared = proto
        .as_ref()
        .and_then(|p| d.fixture.as_ref()?.protections.get(p).cloned());

    // 1. Stimulus.
    let mut stim: Vec<String> = spec
        .and_then(|s| s.stimulus_channel.clone())
        .filter(|c| d.traces.get(c).is_some())
        .into_iter()
        .collect();
    if stim.is_empty() {
        // Whatever setpoint moved during the test.
        for (name, c) in &d.traces.channels {
            if name.ends_with("_set") {
                let w = c.window(t.started_s, x1);
                let vs = &c.v[w];
                if vs.iter().any(|v| *v != vs[0]) && stim.len() < 3 {
                    stim.push(name.clone());
                }
            }
        }
    }
    if let Some(first) = stim.first() {
        let unit = d
            .traces
            .get(first)
            .map(|c| unit_norm(&c.unit).to_string())
            .unwrap_or_default();
        let mut plot = new_plot("Stimulus", &unit, x0, x1, markers.clone());
        let cols = plot.columns();
        for c in &stim {
            if let Some(ch) = d.traces.get(c) {
                plot.lines.push(Line {
                    label: format!("{c} (applied)"),
                    points: decimate(&ch.t, &ch.v, x0, x1, cols),
                    step: true,
                    dashed: false,
                });
            }
            if let Some(m) =
                measured_counterpart(c).and_then(|m| d.traces.get(&m).map(|ch| (m, ch)))
            {
                plot.lines.push(Line {
                    label: format!("{} (BMS)", m.0),
                    points: decimate(&m.1.t, &m.1.v, x0, x1, cols),
                    step: true,
                    dashed: true,
                });
            }
        }
        limit_lines(&t.measurements, &unit, &mut plot.hlines);
        if let Some(p) = &declared {
            let release_measured = t.measurements.iter().any(|m| m.quantity == "release");
            for (what, txt) in [("declared trip", &p.trip), ("declared release", &p.release)] {
                if what == "declared release" && !release_measured {
                    continue;
                }
                if let Some(q) = quantity(txt.as_deref()) {
                    if q.dim.unit() == unit || (unit == "°C" && q.dim.unit() == "°C") {
                        plot.hlines.push(HLine {
                            label: what.into(),
                            y: q.value,
                            color: "#1f5fbf",
                        });
                    }
                }
            }
        }
        h.push_str(&plot.render());
    }

    // 2. Detect signal and status flags that changed.
    let mut det: Vec<String> = spec
        .map(|s| s.detect_signals.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| d.traces.get(c).is_some())
        .collect();
    for (name, c) in &d.traces.channels {
        if det.len() >= 5 || det.contains(name) || !name.starts_with("bms.") || !c.unit.is_empty() {
            continue;
        }
        let w = c.window(x0, x1);
        let vs = &c.v[w];
        // Flags only (0/1): enumerations such as the BMS state would swamp the scale.
        if vs.iter().any(|v| *v != vs[0]) && vs.iter().all(|v| *v == 0.0 || *v == 1.0) {
            det.push(name.clone());
        }
    }
    if !det.is_empty() {
        let mut plot = new_plot(
            "Detect signal and BMS flags",
            "state",
            x0,
            x1,
            markers.clone(),
        );
        // Flags only: a no/yes axis rather than fractional ticks between 0 and 1.
        plot.yes_no = det.iter().all(|c| {
            d.traces.get(c).is_some_and(|ch| {
                ch.v[ch.window(x0, x1)]
                    .iter()
                    .all(|v| *v == 0.0 || *v == 1.0)
            })
        });
        if plot.yes_no {
            plot.unit = "no/yes".into();
        }
        let cols = plot.columns();
        for c in &det {
            if let Some(ch) = d.traces.get(c) {
                plot.lines.push(Line {
                    label: c.clone(),
                    points: decimate_steps(&ch.t, &ch.v, x0, x1, cols),
                    step: true,
                    dashed: false,
                });
            }
        }
        h.push_str(&plot.render());
    }

    // 3. Currents.
    let cur: Vec<&str> = ["supply.i", "load.i", "bms.pack.i"]
        .into_iter()
        .filter(|c| {
            d.traces
                .get(c)
                .is_some_and(|ch| !ch.window(x0, x1).is_empty())
        })
        .collect();
    if !cur.is_empty() {
        let mut plot = new_plot("Supply and load current", "A", x0, x1, markers.clone());
        let cols = plot.columns();
        for c in &cur {
            if let Some(ch) = d.traces.get(c) {
                plot.lines.push(Line {
                    label: c.to_string(),
                    points: decimate(&ch.t, &ch.v, x0, x1, cols),
                    step: false,
                    dashed: false,
                });
            }
        }
        limit_lines(&t.measurements, "A", &mut plot.hlines);
        add_declared(&mut plot, &declared, "A");
        h.push_str(&plot.render());
    }

    // 4. Temperatures.
    let temps: Vec<&String> = d
        .traces
        .channels
        .iter()
        .filter(|(_, c)| unit_norm(&c.unit) == "°C" && !c.window(x0, x1).is_empty())
        .map(|(k, _)| k)
        .take(8)
        .collect();
    if !temps.is_empty() {
        let mut plot = new_plot("Temperatures", "°C", x0, x1, markers);
        let cols = plot.columns();
        for c in temps {
            if let Some(ch) = d.traces.get(c) {
                plot.lines.push(Line {
                    label: c.clone(),
                    points: decimate(&ch.t, &ch.v, x0, x1, cols),
                    step: false,
                    dashed: c.ends_with("_set"),
                });
            }
        }
        limit_lines(&t.measurements, "°C", &mut plot.hlines);
        add_declared(&mut plot, &declared, "°C");
        h.push_str(&plot.render());
    }
    h.push_str("</section>");
}

/// Where the stimulus marker goes: for a step stimulus, at the step itself (the first change
/// of the setpoint after the pre-step hold that starts the test, before `until`); for other
/// stimuli (and when the trace does not show the step) at the test's start.
pub(super) fn stimulus_marker_time(
    kind: Option<&str>,
    channel: Option<&crate::report::series::Channel>,
    started: f64,
    until: f64,
) -> f64 {
    let (Some("step"), Some(ch)) = (kind, channel) else {
        return started;
    };
    let at = ch.t.partition_point(|&x| x <= started);
    let Some(hold) = at.checked_sub(1).map(|i| ch.v[i]) else {
        return started;
    };
    ch.t[at..]
        .iter()
        .zip(&ch.v[at..])
        .take_while(|(x, _)| **x <= until)
        .find(|(_, v)| **v != hold)
        .map_or(started, |(x, _)| *x)
}

pub(super) fn add_declared(
    plot: &mut Plot,
    declared: &Option<crate::report::inputs::ProtectionView>,
    unit: &str,
) {
    if let Some(p) = declared {
        if let Some(q) = quantity(p.trip.as_deref()) {
            if q.dim.unit() == unit {
                plot.hlines.push(HLine {
                    label: "declared trip".into(),
                    y: q.value,
                    color: "#1f5fbf",
                });
            }
        }
    }
}

pub(super) fn new_plot(title: &str, unit: &str, x0: f64, x1: f64, vlines: Vec<VLine>) -> Plot {
    Plot {
        title: title.into(),
        unit: unit.into(),
        width: PLOT_WIDTH,
        height: PLOT_HEIGHT,
        x0,
        x1,
        lines: Vec::new(),
        hlines: Vec::new(),
        vlines,
        yes_no: false,
    }
}

/// The supply's I/O watchdog over the run, under the safe-state table.
pub(super) fn watchdog_paragraph(w: &crate::report::WatchdogRecord) -> String {
    format!(
        "<p>I/O watchdog of supply <span class=\"mono\">{}</span>: armed ({} s) for the run; {}</p>",
        esc(&w.instrument),
        w.armed_s,
        match &w.left_armed {
            None => "disarmed at the end.".to_string(),
            Some(why) => format!("<span class=\"v-inc\">left armed</span>: {}.", esc(why)),
        }
    )
}
