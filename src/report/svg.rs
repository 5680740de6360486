//! Hand-written SVG line plots for the report: time on x, one unit on y, threshold lines,
//! event markers. Series are decimated to at most a minimum and a maximum per pixel column
//! (in the order they occur), so a plot's size depends on its width, not on the data; the
//! raw samples stay in `trace.csv`.
//!
//! The SVG is meant to be inlined into HTML: no `xmlns`, no external references.

use std::fmt::Write;

use super::html::esc;

/// Colours for series, chosen to stay distinct in print.
pub const PALETTE: [&str; 8] = [
    "#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285", "#5c3c00", "#495057",
];

/// One series to draw.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// Points (time, value), already decimated.
    pub points: Vec<(f64, f64)>,
    /// Draw as steps (hold each value until the next sample).
    pub step: bool,
    /// Dashed (for setpoints beside measured values).
    pub dashed: bool,
}

/// A horizontal line at a value (a limit or a declared level).
#[derive(Debug, Clone)]
pub struct HLine {
    /// Label drawn at the right end.
    pub label: String,
    /// The value.
    pub y: f64,
    /// Colour.
    pub color: &'static str,
}

/// A vertical marker at a time (stimulus start, trip observed).
#[derive(Debug, Clone)]
pub struct VLine {
    /// Label drawn at the top.
    pub label: String,
    /// The time.
    pub x: f64,
    /// Colour.
    pub color: &'static str,
    /// Dashed.
    pub dashed: bool,
}

/// A plot.
#[derive(Debug, Clone)]
pub struct Plot {
    /// Title above the plot.
    pub title: String,
    /// Unit of the y axis.
    pub unit: String,
    /// Width in px (the decimation resolution).
    pub width: u32,
    /// Height in px.
    pub height: u32,
    /// Time window shown.
    pub x0: f64,
    /// Time window shown.
    pub x1: f64,
    /// Series.
    pub lines: Vec<Line>,
    /// Threshold lines.
    pub hlines: Vec<HLine>,
    /// Event markers.
    pub vlines: Vec<VLine>,
    /// Every series is a yes/no flag (0 or 1): the y axis is fixed and labelled no and yes
    /// instead of spanning the data with fractional ticks.
    pub yes_no: bool,
}

/// Left and right margins of the plot area, px.
pub const MARGIN_LEFT: u32 = 64;
const MARGIN_RIGHT: u32 = 170;
const MARGIN_TOP: u32 = 26;
const MARGIN_BOTTOM: u32 = 30;

impl Plot {
    /// The number of pixel columns of the plot area (the decimation width).
    pub fn columns(&self) -> usize {
        self.width.saturating_sub(MARGIN_LEFT + MARGIN_RIGHT).max(1) as usize
    }

    /// Render as an inline `<svg>` element.
    pub fn render(&self) -> String {
        let (w, h) = (self.width as f64, self.height as f64);
        let (l, r, t, b) = (
            MARGIN_LEFT as f64,
            w - MARGIN_RIGHT as f64,
            MARGIN_TOP as f64,
            h - MARGIN_BOTTOM as f64,
        );
        let (x0, x1) = if self.x1 > self.x0 {
            (self.x0, self.x1)
        } else {
            (self.x0, self.x0 + 1.0)
        };
        // y range from data and lines, padded.
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for ln in &self.lines {
            for &(x, y) in &ln.points {
                if x >= x0 && x <= x1 && y.is_finite() {
                    lo = lo.min(y);
                    hi = hi.max(y);
                }
            }
        }
        for hl in &self.hlines {
            if hl.y.is_finite() {
                lo = lo.min(hl.y);
                hi = hi.max(hl.y);
            }
        }
        if !lo.is_finite() || !hi.is_finite() || self.yes_no {
            lo = 0.0;
            hi = 1.0;
        }
        if self.yes_no {
            lo = -0.15;
            hi = 1.15;
        } else if hi - lo < 1e-9 {
            let pad = if hi.abs() > 1e-9 {
                hi.abs() * 0.05
            } else {
                0.5
            };
            lo -= pad;
            hi += pad;
        } else {
            let pad = (hi - lo) * 0.08;
            lo -= pad;
            hi += pad;
        }
        let sx = |x: f64| l + (x - x0) / (x1 - x0) * (r - l);
        let sy = |y: f64| b - (y - lo) / (hi - lo) * (b - t);

        let mut s = String::with_capacity(16 * 1024);
        let _ = write!(
            s,
            r#"<svg class="plot" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}">"#,
            esc(&self.title)
        );
        let _ = write!(
            s,
            r#"<text x="{l}" y="16" class="pt">{} [{}]</text>"#,
            esc(&self.title),
            esc(&self.unit)
        );
        let _ = write!(
            s,
            r##"<rect x="{l}" y="{t}" width="{:.1}" height="{:.1}" fill="#fff" stroke="#888"/>"##,
            r - l,
            b - t
        );
        // Ticks.
        let yd = tick_step(lo, hi, 5).map_or(0, tick_decimals);
        let yticks: Vec<(f64, String)> = if self.yes_no {
            vec![(0.0, "no".into()), (1.0, "yes".into())]
        } else {
            nice_ticks(lo, hi, 5)
                .into_iter()
                .map(|v| (v, fmt_tick(v, yd)))
                .collect()
        };
        for (v, label) in yticks {
            let y = sy(v);
            let _ = write!(
                s,
                r##"<line x1="{l}" x2="{r:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e3e3"/><text x="{:.1}" y="{:.1}" class="tk" text-anchor="end">{}</text>"##,
                l - 4.0,
                y + 3.5,
                label
            );
        }
        let (xt, xd) = time_ticks(x0, x1, r - l);
        for v in xt {
            let x = sx(v);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{t}" y2="{b:.1}" stroke="#eeeeee"/><text x="{x:.1}" y="{:.1}" class="tk" text-anchor="middle">{}</text>"##,
                b + 13.0,
                fmt_tick(v, xd)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tk" text-anchor="end">t [s]</text>"#,
            r,
            h - 3.0
        );
        let _ = write!(
            s,
            r#"<clipPath id="c{}"><rect x="{l}" y="{t}" width="{:.1}" height="{:.1}"/></clipPath><g clip-path="url(#c{})">"#,
            clip_id(self),
            r - l,
            b - t,
            clip_id(self)
        );
        for hl in &self.hlines {
            let y = sy(hl.y);
            let _ = write!(
                s,
                r#"<line x1="{l}" x2="{r:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{}" stroke-width="1.2" stroke-dasharray="6 3"/>"#,
                hl.color
            );
        }
        for vl in &self.vlines {
            if vl.x < x0 || vl.x > x1 {
                continue;
            }
            let x = sx(vl.x);
            let _ = write!(
                s,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{t}" y2="{b:.1}" stroke="{}" stroke-width="1.4"{}/>"#,
                vl.color,
                if vl.dashed {
                    r#" stroke-dasharray="2 3""#
                } else {
                    ""
                }
            );
        }
        for (i, ln) in self.lines.iter().enumerate() {
            if ln.points.is_empty() {
                continue;
            }
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{}" stroke-width="{:.1}"{} points=""#,
                PALETTE[i % PALETTE.len()],
                // Earlier lines drawn wider, so lines lying on top of each other stay visible.
                (1.3 + 1.1 * (self.lines.len() - 1 - i) as f64).min(5.0),
                if ln.dashed {
                    r#" stroke-dasharray="5 2""#
                } else {
                    ""
                }
            );
            let mut prev: Option<f64> = None;
            for &(x, y) in &ln.points {
                if !y.is_finite() {
                    continue;
                }
                let (px, py) = (sx(x), sy(y));
                if ln.step {
                    if let Some(py0) = prev {
                        let _ = write!(s, "{px:.1},{py0:.1} ");
                    }
                }
                let _ = write!(s, "{px:.1},{py:.1} ");
                prev = Some(py);
            }
            s.push_str("\"/>");
        }
        s.push_str("</g>");
        // Labels outside the clip: threshold labels on the right, markers on top.
        // Threshold labels, pushed apart so close levels stay readable.
        let mut labels: Vec<(f64, &HLine)> = self
            .hlines
            .iter()
            .map(|hl| (sy(hl.y).clamp(t, b), hl))
            .collect();
        labels.sort_by(|a, b| a.0.total_cmp(&b.0));
        for i in 1..labels.len() {
            if labels[i].0 < labels[i - 1].0 + 11.0 {
                labels[i].0 = labels[i - 1].0 + 11.0;
            }
        }
        for (y, hl) in labels {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" class="lb" fill="{}"{}>{}</text>"#,
                r + 4.0,
                y + 3.5,
                hl.color,
                fit(&hl.label, MARGIN_RIGHT as f64 - 8.0),
                esc(&hl.label)
            );
        }
        for (x, y, end, vl) in marker_labels(&self.vlines, x0, x1, &sx, l, r, t) {
            let _ = write!(
                s,
                r#"<text x="{x:.1}" y="{y:.1}" class="lb" fill="{}"{}>{}</text>"#,
                vl.color,
                if end { r#" text-anchor="end""# } else { "" },
                esc(&vl.label)
            );
        }
        // Legend under the threshold labels.
        for (i, ln) in self.lines.iter().enumerate() {
            let y = b - 4.0 - 12.0 * (self.lines.len() - 1 - i) as f64;
            let _ = write!(
                s,
                r#"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"/><text x="{:.1}" y="{:.1}" class="lb"{}>{}</text>"#,
                r + 4.0,
                r + 16.0,
                y - 3.0,
                y - 3.0,
                PALETTE[i % PALETTE.len()],
                r + 19.0,
                y,
                fit(&ln.label, MARGIN_RIGHT as f64 - 23.0),
                esc(&ln.label)
            );
        }
        s.push_str("</svg>");
        s
    }
}

/// Approximate width of a label at the 10 px label size, px.
fn label_width(s: &str) -> f64 {
    s.chars().count() as f64 * 5.6
}

/// Where marker labels go: beside their line (to the left when they would run past the plot
/// area into the threshold labels), each in the highest row where it overlaps no label
/// already placed, so close markers ("trip observed" beside a "truth" event) stay readable.
/// Returns (x, baseline y, anchored at the end, marker).
fn marker_labels<'a>(
    vlines: &'a [VLine],
    x0: f64,
    x1: f64,
    sx: &dyn Fn(f64) -> f64,
    l: f64,
    r: f64,
    t: f64,
) -> Vec<(f64, f64, bool, &'a VLine)> {
    let mut shown: Vec<&VLine> = vlines
        .iter()
        .filter(|vl| vl.x >= x0 && vl.x <= x1 && !vl.label.is_empty())
        .collect();
    shown.sort_by(|a, b| a.x.total_cmp(&b.x));
    let mut rows: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut out = Vec::new();
    for vl in shown {
        let px = sx(vl.x);
        let w = label_width(&vl.label);
        let end = px + 3.0 + w > r && px - 3.0 - w >= l;
        let (a, b) = if end {
            (px - 3.0 - w, px - 3.0)
        } else {
            (px + 3.0, px + 3.0 + w)
        };
        let row = rows
            .iter()
            .position(|row| row.iter().all(|&(c, d)| b + 4.0 <= c || a >= d + 4.0))
            .unwrap_or(rows.len());
        if row == rows.len() {
            rows.push(Vec::new());
        }
        rows[row].push((a, b));
        out.push((
            if end { px - 3.0 } else { px + 3.0 },
            t + 10.0 + 11.0 * row as f64,
            end,
            vl,
        ));
    }
    out
}

/// Characters that fit the right margin at the label size.
const LABEL_CHARS: usize = 27;

/// The attributes that fit a label into `avail` px: a long label is compressed
/// (`textLength`), never cut, so names and values stay whole.
fn fit(s: &str, avail: f64) -> String {
    if s.chars().count() <= LABEL_CHARS {
        String::new()
    } else {
        format!(r#" textLength="{avail:.0}" lengthAdjust="spacingAndGlyphs""#)
    }
}

fn clip_id(p: &Plot) -> u64 {
    // Unique enough within one page: derived from the title and window.
    let mut h: u64 = 1469598103934665603;
    for b in p.title.bytes() {
        h = (h ^ b as u64).wrapping_mul(1099511628211);
    }
    h ^ p.x0.to_bits().rotate_left(7) ^ p.x1.to_bits()
}

/// Decimate samples inside `[x0, x1]` to at most two points (minimum and maximum, in the
/// order they occur) per pixel column; one sample either side of the window is kept so the
/// line reaches the plot's edges.
pub fn decimate(t: &[f64], v: &[f64], x0: f64, x1: f64, columns: usize) -> Vec<(f64, f64)> {
    let n = t.len().min(v.len());
    if n == 0 || columns == 0 || x1 <= x0 {
        return Vec::new();
    }
    let a = t[..n].partition_point(|&x| x < x0);
    let b = t[..n].partition_point(|&x| x <= x1);
    let mut out = Vec::with_capacity(2 * columns + 2);
    if a > 0 {
        out.push((t[a - 1], v[a - 1]));
    }
    let width = (x1 - x0) / columns as f64;
    let col_of = |x: f64| (((x - x0) / width) as usize).min(columns - 1);
    let mut i = a;
    while i < b {
        let col = col_of(t[i]);
        let (mut imin, mut imax) = (i, i);
        let mut j = i + 1;
        while j < b && col_of(t[j]) == col {
            if v[j] < v[imin] {
                imin = j;
            }
            if v[j] > v[imax] {
                imax = j;
            }
            j += 1;
        }
        let (p, q) = if imin <= imax {
            (imin, imax)
        } else {
            (imax, imin)
        };
        out.push((t[p], v[p]));
        if q != p {
            out.push((t[q], v[q]));
        }
        i = j;
    }
    if b < n {
        out.push((t[b], v[b]));
    }
    out
}

/// Decimate for a step plot: per column, the value at the column's start and every change
/// (kept as min and max), so edges are not lost.
pub fn decimate_steps(t: &[f64], v: &[f64], x0: f64, x1: f64, columns: usize) -> Vec<(f64, f64)> {
    // Only changes matter for a step signal; drop repeats first, then decimate.
    let n = t.len().min(v.len());
    let mut tt = Vec::new();
    let mut vv = Vec::new();
    for i in 0..n {
        if i == 0 || v[i] != v[i - 1] || i == n - 1 {
            tt.push(t[i]);
            vv.push(v[i]);
        }
    }
    decimate(&tt, &vv, x0, x1, columns)
}

/// About `n` round tick values covering `[lo, hi]`: of the round steps (1, 2, 2.5 and 5
/// times a power of ten) the one whose tick count comes closest to `n`, so a narrow range
/// still gets several labelled ticks rather than two.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    match tick_step(lo, hi, n) {
        Some(step) => ticks_at(lo, hi, step),
        None => Vec::new(),
    }
}

/// The round step `nice_ticks` uses, if the range can carry ticks.
fn tick_step(lo: f64, hi: f64, n: usize) -> Option<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater)
        || !lo.is_finite()
        || !hi.is_finite()
        || n == 0
    {
        return None;
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let count = |step: f64| ((hi / step).floor() - (lo / step).ceil() + 1.0).max(0.0);
    // Steps of 2.5 read less easily than 1, 2 and 5: taken only when clearly closer to `n`.
    let score =
        |(m, step): (f64, f64)| (count(step) - n as f64).abs() + if m == 2.5 { 1.5 } else { 0.0 };
    [0.1, 1.0, 10.0]
        .iter()
        .flat_map(|p| [1.0, 2.0, 2.5, 5.0].map(|m| (m, m * p * mag)))
        .filter(|(_, s)| count(*s) >= 2.0 && count(*s) <= 50.0)
        .min_by(|a, b| {
            // Ties go to the coarser step.
            score(*a).total_cmp(&score(*b)).then(b.1.total_cmp(&a.1))
        })
        .map(|(_, s)| s)
}

fn ticks_at(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .take(50)
        .map(|k| {
            let v = k as f64 * step;
            if v.abs() < step * 1e-9 {
                0.0
            } else {
                v
            }
        })
        .collect()
}

/// Decimals that show every multiple of `step` exactly (and so tell neighbouring ticks apart).
fn tick_decimals(step: f64) -> usize {
    (0..=9usize)
        .find(|d| {
            let scaled = step * 10f64.powi(*d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(9)
}

/// Tick labels at `decimals`, trailing zeros kept so one axis reads evenly.
fn fmt_tick(v: f64, decimals: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    format!("{v:.decimals$}")
}

/// Ticks of the time axis whose labels (about 6 px per character at the tick font size, plus
/// a gap) fit between their neighbours: fewer ticks rather than overlapping labels.
fn time_ticks(x0: f64, x1: f64, px: f64) -> (Vec<f64>, usize) {
    for n in (2..=8).rev() {
        let Some(step) = tick_step(x0, x1, n) else {
            return (Vec::new(), 0);
        };
        let d = tick_decimals(step);
        let ticks = ticks_at(x0, x1, step);
        let widest = ticks
            .iter()
            .map(|v| fmt_tick(*v, d).chars().count())
            .max()
            .unwrap_or(0) as f64;
        let spacing = step / (x1 - x0) * px;
        if spacing >= widest * 6.0 + 8.0 || n == 2 {
            return (ticks, d);
        }
    }
    (Vec::new(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_extremes_and_bounds_the_size() {
        let t: Vec<f64> = (0..100_000).map(|i| i as f64 * 0.001).collect();
        let mut v: Vec<f64> = t.iter().map(|x| (x * 3.0).sin()).collect();
        v[54_321] = 9.0; // a spike must survive
        v[7_777] = -9.0;
        let d = decimate(&t, &v, 0.0, 100.0, 500);
        assert!(d.len() <= 2 * 500 + 2, "{}", d.len());
        assert!(d.iter().any(|p| p.1 == 9.0));
        assert!(d.iter().any(|p| p.1 == -9.0));
        assert!(d.windows(2).all(|w| w[0].0 <= w[1].0), "time order");
    }

    #[test]
    fn decimation_edges_and_empty() {
        assert!(decimate(&[], &[], 0.0, 1.0, 10).is_empty());
        let t = [0.0, 1.0, 2.0, 3.0];
        let v = [1.0, 2.0, 3.0, 4.0];
        // Window [1.5, 2.5]: one sample inside plus one neighbour each side.
        assert_eq!(
            decimate(&t, &v, 1.5, 2.5, 10),
            vec![(1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]
        );
        let steps = decimate_steps(&[0.0, 1.0, 2.0, 3.0], &[0.0, 0.0, 1.0, 1.0], 0.0, 3.0, 10);
        assert!(steps.contains(&(2.0, 1.0)));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        assert!(nice_ticks(1.0, 1.0, 5).is_empty());
    }

    /// The `class="tk"` labels of a rendered plot with their x positions.
    fn tick_labels(svg: &str) -> Vec<(f64, String)> {
        svg.split("<text x=\"")
            .skip(1)
            .filter(|p| p.contains(r#"class="tk" text-anchor="middle""#))
            .map(|p| {
                let x: f64 = p[..p.find('"').unwrap()].parse().unwrap();
                let label = p[p.find('>').unwrap() + 1..p.find('<').unwrap()].to_string();
                (x, label)
            })
            .collect()
    }

    fn plot(x0: f64, x1: f64, points: Vec<(f64, f64)>) -> Plot {
        Plot {
            title: "Stimulus".into(),
            unit: "V".into(),
            width: 760,
            height: 210,
            x0,
            x1,
            lines: vec![Line {
                label: "cells.cell[5].v_set".into(),
                points,
                step: true,
                dashed: false,
            }],
            hlines: vec![],
            vlines: vec![],
            yes_no: false,
        }
    }

    #[test]
    fn close_marker_labels_do_not_overlap_each_other_or_the_threshold_labels() {
        let mut p = plot(5.3, 14.0, vec![(5.3, 3.6), (14.0, 3.7)]);
        p.hlines.push(HLine {
            label: "3.7000 V ov_threshold high".into(),
            y: 3.7,
            color: "#c00",
        });
        for (label, x) in [
            ("stimulus", 6.3),
            ("trip observed", 13.9),
            ("truth: chg_fet_open", 13.85),
            ("truth: dsg_fet_open", 13.95),
        ] {
            p.vlines.push(VLine {
                label: label.into(),
                x,
                color: "#0b7285",
                dashed: false,
            });
        }
        let svg = p.render();
        let r = 760.0 - MARGIN_RIGHT as f64;
        // Boxes of the marker labels: [left, right] x and baseline y.
        let boxes: Vec<(f64, f64, f64, String)> = svg
            .split("<text x=\"")
            .skip(1)
            .filter(|q| q.contains(r##"fill="#0b7285""##))
            .map(|q| {
                let num = |key: &str| -> f64 {
                    let i = q.find(key).unwrap() + key.len();
                    q[i..i + q[i..].find('"').unwrap()].parse().unwrap()
                };
                let x: f64 = q[..q.find('"').unwrap()].parse().unwrap();
                let y = num("y=\"");
                let label = q[q.find('>').unwrap() + 1..q.find('<').unwrap()].to_string();
                let w = label_width(&label);
                let head = &q[..q.find('>').unwrap()];
                let (a, b) = if head.contains("text-anchor=\"end\"") {
                    (x - w, x)
                } else {
                    (x, x + w)
                };
                (a, b, y, label)
            })
            .collect();
        assert_eq!(boxes.len(), 4, "{boxes:?}");
        for (i, p) in boxes.iter().enumerate() {
            assert!(
                p.1 <= r,
                "{} runs into the threshold labels: {boxes:?}",
                p.3
            );
            for q in &boxes[i + 1..] {
                let apart = p.1 <= q.0 || q.1 <= p.0 || (p.2 - q.2).abs() >= 10.0;
                assert!(apart, "{} overlaps {}: {boxes:?}", p.3, q.3);
            }
        }
    }

    /// The labels of the value axis.
    fn value_labels(svg: &str) -> Vec<String> {
        svg.split(r#"class="tk" text-anchor="end">"#)
            .skip(1)
            .map(|p| p[..p.find('<').unwrap()].to_string())
            .filter(|l| l != "t [s]")
            .collect()
    }

    #[test]
    fn yes_no_flags_get_a_no_yes_axis() {
        let mut p = plot(0.0, 2.0, vec![(0.0, 0.0), (1.0, 1.0), (2.0, 1.0)]);
        p.unit = "no/yes".into();
        p.yes_no = true;
        assert_eq!(value_labels(&p.render()), vec!["no", "yes"]);
        // The same data as numbers keeps a numeric axis.
        p.yes_no = false;
        assert!(value_labels(&p.render()).len() > 2);
    }

    #[rstest::rstest]
    #[case::short_window_late_in_a_run(1000.0, 1000.06)]
    #[case::tenths_past_ten_seconds(10.0, 10.6)]
    #[case::long_run(0.0, 7300.0)]
    #[case::pre_step_hold(5.3, 14.0)]
    fn stimulus_axis_tick_labels_are_distinct_and_do_not_overlap(#[case] x0: f64, #[case] x1: f64) {
        let svg = plot(x0, x1, vec![(x0, 3.6), (x1, 3.7)]).render();
        let ticks = tick_labels(&svg);
        assert!(ticks.len() >= 2, "{ticks:?}");
        for w in ticks.windows(2) {
            assert_ne!(w[0].1, w[1].1, "duplicate tick label in {ticks:?}");
            // Half of each centred label (6 px a character) must fit between the two.
            let need = 3.0 * (w[0].1.len() + w[1].1.len()) as f64;
            assert!(w[1].0 - w[0].0 > need, "overlapping tick labels {ticks:?}");
        }
    }

    #[test]
    fn narrow_value_axis_gets_more_than_two_distinct_ticks() {
        let svg = plot(0.0, 1.0, vec![(0.0, 3.65101), (1.0, 3.65108)]).render();
        let labels: Vec<&str> = svg
            .split(r#"class="tk" text-anchor="end">"#)
            .skip(1)
            .map(|p| &p[..p.find('<').unwrap()])
            .filter(|l| *l != "t [s]")
            .collect();
        assert!(labels.len() >= 3, "{labels:?}");
        let mut distinct = labels.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), labels.len(), "{labels:?}");
    }

    #[test]
    fn svg_has_no_namespace_or_external_reference() {
        let p = Plot {
            title: "t <&>".into(),
            unit: "V".into(),
            width: 700,
            height: 200,
            x0: 0.0,
            x1: 1.0,
            lines: vec![Line {
                label: "a".into(),
                points: vec![(0.0, 1.0), (1.0, 2.0)],
                step: true,
                dashed: false,
            }],
            hlines: vec![HLine {
                label: "limit".into(),
                y: 1.5,
                color: "#c00",
            }],
            vlines: vec![],
            yes_no: false,
        };
        let s = p.render();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(!s.contains("http") && !s.contains("xmlns"));
        assert!(s.contains("t &lt;&amp;&gt;"));
    }
}
