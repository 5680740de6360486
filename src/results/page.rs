//! `results page`: one self-contained HTML page of trends (inline SVG, no scripts, no
//! external files): per criterion, each run's value with a bar of its expanded uncertainty,
//! one colour per firmware version (or bench), the acceptance limits as lines.

use std::fmt::Write;

use super::query::{Trend, TrendBy};
use super::{trend, ResultsError, Store};
use crate::report::html::esc;
use crate::report::svg::{nice_ticks, PALETTE};
use crate::verdict::gum::stated;

/// The criteria in the store, sorted.
pub async fn criteria(store: &Store) -> Result<Vec<String>, ResultsError> {
    use sqlx::Row;
    let rows = store
        .rows(
            "SELECT DISTINCT criterion FROM measurement ORDER BY criterion",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("criterion"))
        .collect::<Result<_, _>>()
        .map_err(|e| store.err("reading criteria", e))
}

/// An inline SVG of one trend: x is the run's place in time order (1 = oldest), each
/// value a dot with a bar of ± its expanded uncertainty, one colour per series (repeats
/// within a run side by side), the acceptance limits as dashed lines.
pub fn chart(t: &Trend) -> String {
    let (w, h, l, r, top, b) = (900.0, 280.0, 72.0, 16.0, 12.0, 36.0);
    let mut runs: Vec<&str> = t
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.started.as_str()))
        .collect();
    runs.sort();
    runs.dedup();
    let mut ys: Vec<f64> = Vec::new();
    let mut limits: Vec<f64> = Vec::new();
    for p in t.series.iter().flat_map(|s| &s.points) {
        if let Some(v) = p.point.value {
            ys.extend([v - p.point.uncertainty, v + p.point.uncertainty]);
        }
        limits.extend(p.point.limit_low.iter().chain(&p.point.limit_high));
    }
    limits.sort_by(f64::total_cmp);
    limits.dedup();
    ys.extend(&limits);
    let (mut lo, mut hi) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs().max(1e-9) * 1e-6);
    (lo, hi) = (lo - pad, hi + pad);
    let n = runs.len().max(1) as f64;
    let x = |i: usize| l + (i as f64 + 0.5) / n * (w - l - r);
    let y = |v: f64| top + (hi - v) / (hi - lo) * (h - top - b);
    let mut s = format!(
        r##"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><rect x="{l}" y="{top}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        w - l - r,
        h - top - b
    );
    let ticks = nice_ticks(lo, hi, 5);
    let step = ticks.windows(2).map(|p| p[1] - p[0]).next().unwrap_or(1.0);
    let decimals = (-step.log10()).ceil().max(0.0) as usize;
    for v in &ticks {
        let _ = write!(
            s,
            r##"<line x1="{l}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{v:.decimals$}</text>"##,
            w - r,
            l - 4.0,
            y(*v) + 4.0,
            y = y(*v)
        );
    }
    let every = runs.len().div_ceil(12).max(1);
    for i in (0..runs.len()).step_by(every) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
            x(i),
            h - b + 14.0,
            i + 1
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="end">run (oldest = 1) · {}</text>"#,
        w - r,
        h - 4.0,
        esc(t.unit.as_deref().unwrap_or(""))
    );
    for v in &limits {
        let _ = write!(
            s,
            r##"<line x1="{l}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#c92a2a" stroke-dasharray="5 4"/><text x="{}" y="{:.1}" font-size="10" fill="#c92a2a" text-anchor="end">limit {v}</text>"##,
            w - r,
            w - r - 2.0,
            y(*v) - 3.0,
            y = y(*v)
        );
    }
    for (k, series) in t.series.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let mut in_run: std::collections::HashMap<&str, usize> = Default::default();
        for p in &series.points {
            let nth = in_run.entry(p.started.as_str()).or_default();
            let Some(v) = p.point.value else { continue };
            let i = runs.binary_search(&p.started.as_str()).unwrap_or(0);
            let cx = x(i) + (*nth as f64 - 2.0) * 2.5 + k as f64 * 1.5;
            *nth += 1;
            let u = p.point.uncertainty;
            let _ = write!(
                s,
                r#"<line x1="{cx:.1}" x2="{cx:.1}" y1="{:.1}" y2="{:.1}" stroke="{color}"/><circle cx="{cx:.1}" cy="{:.1}" r="2.5" fill="{color}"><title>{}: {} {}</title></circle>"#,
                y(v - u),
                y(v + u),
                y(v),
                esc(&p.run_id),
                esc(&p.test),
                esc(&stated(v, u, &p.point.unit))
            );
        }
    }
    s.push_str("</svg><p class=\"legend\">");
    for (k, series) in t.series.iter().enumerate() {
        let _ = write!(
            s,
            r#"<span style="color:{}">● {}</span> "#,
            PALETTE[k % PALETTE.len()],
            esc(&series.key)
        );
    }
    s.push_str("</p>");
    s
}

/// The page for `criteria` (every criterion in the store when empty).
pub async fn render(
    store: &Store,
    criteria_wanted: &[String],
    by: TrendBy,
) -> Result<String, ResultsError> {
    let names = if criteria_wanted.is_empty() {
        criteria(store).await?
    } else {
        criteria_wanted.to_vec()
    };
    let mut body = String::new();
    for name in &names {
        let t = trend(store, name, by, None).await?;
        let _ = write!(body, "<section><h2>{}</h2>", esc(name));
        if t.series.is_empty() {
            body.push_str("<p>No values stored.</p></section>");
            continue;
        }
        body.push_str(&chart(&t));
        body.push_str(
            "<table><tr><th>series</th><th>values</th><th>mean</th><th>min</th><th>max</th>\
             <th>s</th></tr>",
        );
        let f = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.6}"));
        for s in &t.series {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.key),
                s.n,
                f(s.mean),
                f(s.min),
                f(s.max),
                f(s.std_dev)
            );
        }
        body.push_str("</table></section>");
    }
    Ok(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>hilrig trends</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}\
         .legend span{{margin-right:1em}}</style></head><body>\
         <h1>Trends</h1><p>Store: {} · {} criteria · each value with a bar of ± its \
         expanded uncertainty U as stated in its run; dashed: acceptance limits</p>{body}</body></html>",
        esc(store.url()),
        names.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::query::{Point, Series, TrendPoint};

    fn point(started: &str, value: Option<f64>) -> TrendPoint {
        TrendPoint {
            run_id: format!("run-{started}"),
            started: started.into(),
            station: "bench-1".into(),
            firmware_version: Some("1.0.0".into()),
            firmware_id: None,
            test: "OV #1".into(),
            point: Point {
                criterion: "ov_threshold".into(),
                quantity: "threshold".into(),
                value,
                uncertainty: 0.002,
                k: 2.0,
                unit: "V".into(),
                limit_low: Some(3.6),
                limit_high: Some(3.7),
                verdict: "pass".into(),
            },
        }
    }

    #[test]
    fn each_determinable_value_is_a_dot_with_its_uncertainty_bar() {
        let t = Trend {
            criterion: "ov_threshold".into(),
            by: "firmware".into(),
            unit: Some("V".into()),
            series: vec![Series {
                key: "1.0.0 <fw>".into(),
                points: vec![
                    point("2026-01-01", Some(3.65)),
                    point("2026-01-02", None),
                    point("2026-01-03", Some(3.66)),
                ],
                n: 2,
                mean: Some(3.655),
                min: Some(3.65),
                max: Some(3.66),
                std_dev: None,
            }],
        };
        let svg = chart(&t);
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(svg.contains("3.6500 ± 0.0020 V"), "{svg}");
        assert!(svg.contains("limit 3.6") && svg.contains("limit 3.7"));
        // Three runs on the x axis, the not-determinable one kept as a place.
        assert!(svg.contains(">3</text>"), "{svg}");
        assert!(svg.contains("1.0.0 &lt;fw&gt;") && !svg.contains("<fw>"));
    }
}
