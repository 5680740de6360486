//! `results page`: one self-contained HTML page of trends (inline SVG, no scripts, no
//! external files): per criterion, each run's value with its expanded uncertainty, one
//! series per firmware version (or bench), the acceptance limits as lines.

use std::fmt::Write;

use super::query::{Trend, TrendBy};
use super::{trend, ResultsError, Store};
use crate::report::html::esc;
use crate::report::svg::{HLine, Line, Plot, PALETTE};

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

/// The plot of one trend: x is the run's place in time order (1 = oldest).
pub fn plot(t: &Trend) -> Plot {
    let mut runs: Vec<&str> = t
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.started.as_str()))
        .collect();
    runs.sort();
    runs.dedup();
    let x = |started: &str| runs.binary_search(&started).unwrap_or(0) as f64 + 1.0;
    let mut lines = Vec::new();
    let mut limits: Vec<f64> = Vec::new();
    for s in &t.series {
        let pts = |f: &dyn Fn(f64, f64) -> f64| -> Vec<(f64, f64)> {
            s.points
                .iter()
                .filter_map(|p| {
                    p.point
                        .value
                        .map(|v| (x(&p.started), f(v, p.point.uncertainty)))
                })
                .collect()
        };
        lines.push(Line {
            label: s.key.clone(),
            points: pts(&|v, _| v),
            step: false,
            dashed: false,
        });
        lines.push(Line {
            label: format!("{} + U", s.key),
            points: pts(&|v, u| v + u),
            step: false,
            dashed: true,
        });
        lines.push(Line {
            label: format!("{} − U", s.key),
            points: pts(&|v, u| v - u),
            step: false,
            dashed: true,
        });
        for p in &s.points {
            limits.extend(p.point.limit_low);
            limits.extend(p.point.limit_high);
        }
    }
    limits.sort_by(f64::total_cmp);
    limits.dedup();
    Plot {
        title: format!("{} by {}", t.criterion, t.by),
        unit: t.unit.clone().unwrap_or_default(),
        width: 900,
        height: 260,
        x0: 0.5,
        x1: runs.len() as f64 + 0.5,
        lines,
        hlines: limits
            .into_iter()
            .map(|y| HLine {
                label: format!("limit {y}"),
                y,
                color: PALETTE[4],
            })
            .collect(),
        vlines: Vec::new(),
        yes_no: false,
        x_label: "run (oldest = 1)",
    }
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
        body.push_str(&plot(&t).render());
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
         .pt{{font-weight:bold}}.tk{{font-size:11px}}</style></head><body>\
         <h1>Trends</h1><p>Store: {} · {} criteria · dashed lines: value ± expanded \
         uncertainty U as stated in each run</p>{body}</body></html>",
        esc(store.url()),
        names.len()
    ))
}
