//! `report.pdf`: the paginated report of a run, for printing and signing with the bundle.
//! The HTML report stays for screens.
//!
//! Written with `pdf-writer` (the typst project's PDF writer: small, pure Rust, no system
//! library). `printpdf` pulls in a layout engine, `krilla` and `genpdf` need a font file to
//! embed; the report needs neither, since it uses the PDF standard fonts Helvetica and
//! Helvetica-Bold (WinAnsi encoding, so `°`, `±`, `µ`, `×` print as such) and lays out its
//! own simple pages with the Helvetica metrics below. Plots are vector paths.
//!
//! Every page carries the report id and "Page x of N"; a heading is never left at the bottom
//! of a page without the start of its table.

use std::path::Path;

use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str};

use super::html::ReportData;
use super::suite::outcome_word;
use super::{Outcome, ReportError, RunResults};
use crate::units::display_unit;
use crate::verdict::{Limit, Verdict};

/// File name of the PDF report in a bundle.
pub const REPORT_PDF: &str = "report.pdf";

const W: f32 = 595.0;
const H: f32 = 842.0;
const LEFT: f32 = 42.0;
const RIGHT: f32 = W - 42.0;
const TOP: f32 = H - 56.0;
const BOTTOM: f32 = 60.0;

type Rgb = (f32, f32, f32);
const BLACK: Rgb = (0.07, 0.07, 0.07);
const GREY: Rgb = (0.45, 0.45, 0.45);
const GREEN: Rgb = (0.09, 0.42, 0.17);
const RED: Rgb = (0.69, 0.0, 0.13);
const AMBER: Rgb = (0.54, 0.35, 0.0);
const BLUE: Rgb = (0.1, 0.3, 0.7);

enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        rgb: Rgb,
        text: String,
    },
    Path {
        points: Vec<(f32, f32)>,
        width: f32,
        rgb: Rgb,
        dashed: bool,
    },
    Fill {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        rgb: Rgb,
    },
}

/// Helvetica advance widths (1/1000 em) for ASCII 32..=126, from the Adobe AFM.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667,
    611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500,
    222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];

/// Width of `text` in points at `size` (bold runs about 6 % wider).
fn text_width(text: &str, size: f32, bold: bool) -> f32 {
    let units: u32 = winansi(text)
        .iter()
        .map(|&b| match b {
            32..=126 => HELVETICA[(b - 32) as usize] as u32,
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0 * if bold { 1.06 } else { 1.0 }
}

/// Text in WinAnsi (the standard fonts' encoding); characters it lacks are spelled out.
fn winansi(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match c {
            ' '..='~' => out.push(c as u8),
            '°' => out.push(0xB0),
            '±' => out.push(0xB1),
            'µ' | 'μ' => out.push(0xB5),
            '·' => out.push(0xB7),
            '×' => out.push(0xD7),
            '—' => out.push(0x97),
            '–' => out.push(0x96),
            '…' => out.push(0x85),
            '≤' => out.extend_from_slice(b"<="),
            '≥' => out.extend_from_slice(b">="),
            '→' => out.extend_from_slice(b"->"),
            'Δ' => out.extend_from_slice(b"delta "),
            '√' => out.extend_from_slice(b"sqrt"),
            '\n' | '\t' => out.push(b' '),
            _ => out.push(b'?'),
        }
    }
    out
}

/// Split `text` into lines no wider than `width`.
fn wrap(text: &str, size: f32, bold: bool, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let cand = if cur.is_empty() {
            word.to_string()
        } else {
            format!("{cur} {word}")
        };
        if text_width(&cand, size, bold) <= width || cur.is_empty() {
            cur = cand;
        } else {
            lines.push(std::mem::take(&mut cur));
            cur = word.to_string();
        }
        // A single word wider than the column is cut.
        while text_width(&cur, size, bold) > width && cur.chars().count() > 1 {
            let n = cur.chars().count();
            let mut k = n;
            while k > 1 && text_width(&cur.chars().take(k).collect::<String>(), size, bold) > width
            {
                k -= 1;
            }
            lines.push(cur.chars().take(k).collect());
            cur = cur.chars().skip(k).collect();
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

struct Doc {
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl Doc {
    fn new() -> Self {
        Doc {
            pages: vec![Vec::new()],
            y: TOP,
        }
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        self.pages.last_mut().expect("a page")
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    /// Start a new page unless `h` points fit.
    fn ensure(&mut self, h: f32) {
        if self.y - h < BOTTOM {
            self.new_page();
        }
    }

    fn text(&mut self, x: f32, y: f32, size: f32, bold: bool, rgb: Rgb, text: &str) {
        self.ops().push(Op::Text {
            x,
            y,
            size,
            bold,
            rgb,
            text: text.to_string(),
        });
    }

    /// A paragraph, wrapped to the text width.
    fn para(&mut self, text: &str, size: f32, bold: bool, rgb: Rgb) {
        for line in wrap(text, size, bold, RIGHT - LEFT) {
            self.ensure(size * 1.35);
            self.y -= size * 1.35;
            let y = self.y;
            self.text(LEFT, y, size, bold, rgb, &line);
        }
    }

    /// A heading kept with the `keep` points that follow it.
    fn heading(&mut self, text: &str, keep: f32) {
        self.ensure(30.0 + keep);
        self.y -= 10.0;
        self.para(text, 13.0, true, BLACK);
        self.y -= 3.0;
    }

    /// A table: column widths in points, a header row, rows of cells (wrapped); `color`
    /// picks a cell's colour.
    fn table(
        &mut self,
        widths: &[f32],
        header: &[&str],
        rows: &[Vec<String>],
        color: &dyn Fn(usize, &str) -> Rgb,
    ) {
        let size = 8.0;
        let lead = size * 1.3;
        let draw_header = |d: &mut Doc| {
            d.y -= lead + 2.0;
            let y = d.y;
            d.ops().push(Op::Fill {
                x: LEFT,
                y: y - 3.0,
                w: widths.iter().sum(),
                h: lead + 2.0,
                rgb: (0.92, 0.92, 0.92),
            });
            let mut x = LEFT + 2.0;
            for (i, h) in header.iter().enumerate() {
                d.text(x, y, size, true, BLACK, h);
                x += widths[i];
            }
        };
        self.ensure(2.0 * lead + 6.0);
        draw_header(self);
        for row in rows {
            let cells: Vec<Vec<String>> = row
                .iter()
                .enumerate()
                .map(|(i, c)| wrap(c, size, false, widths[i] - 4.0))
                .collect();
            let n = cells.iter().map(Vec::len).max().unwrap_or(1) as f32;
            if self.y - n * lead - 3.0 < BOTTOM {
                self.new_page();
                draw_header(self);
            }
            let top = self.y;
            let mut x = LEFT + 2.0;
            for (i, lines) in cells.iter().enumerate() {
                let rgb = color(i, &row[i]);
                for (k, l) in lines.iter().enumerate() {
                    self.text(x, top - lead * (k as f32 + 1.0), size, false, rgb, l);
                }
                x += widths[i];
            }
            self.y = top - n * lead - 3.0;
            let y = self.y + 1.0;
            let total: f32 = widths.iter().sum();
            self.ops().push(Op::Path {
                points: vec![(LEFT, y), (LEFT + total, y)],
                width: 0.3,
                rgb: (0.75, 0.75, 0.75),
                dashed: false,
            });
        }
    }

    /// Key-value rows (the cover).
    fn kv(&mut self, rows: &[(&str, String)]) {
        let size = 9.0;
        let lead = size * 1.35;
        for (k, v) in rows {
            let lines = wrap(v, size, false, RIGHT - LEFT - 150.0);
            self.ensure(lead * lines.len() as f32 + 2.0);
            let top = self.y;
            self.text(LEFT, top - lead, size, true, BLACK, k);
            for (i, l) in lines.iter().enumerate() {
                self.text(
                    LEFT + 150.0,
                    top - lead * (i as f32 + 1.0),
                    size,
                    false,
                    BLACK,
                    l,
                );
            }
            self.y = top - lead * lines.len() as f32 - 2.0;
        }
    }
}

fn verdict_rgb(word: &str) -> Rgb {
    let w = word.to_ascii_lowercase();
    if w.starts_with("pass") || w == "valid" || w == "done" || w == "confirmed" || w == "yes" {
        GREEN
    } else if w.starts_with("fail") || w.contains("expired") || w.starts_with("no record") {
        RED
    } else if w.starts_with("inconclusive") || w.contains("due soon") || w.contains("not confirmed")
    {
        AMBER
    } else {
        BLACK
    }
}

/// Whether a measurement is a yes/no check (a `holds` criterion: 1 held, 0 did not).
pub fn is_yes_no(quantity: &str, unit: &str, value: f64) -> bool {
    unit.is_empty() && quantity == "holds" && (value == 0.0 || value == 1.0)
}

fn limit_text(l: &Limit, unit: &str) -> String {
    super::junit::limit_text(l, unit)
}

/// The coverage factor of a measurement or of the run, when results.json states one.
fn coverage_factor(raw: &serde_json::Value, test: usize, meas: usize) -> Option<f64> {
    raw["tests"][test]["measurements"][meas]["coverage_factor"]
        .as_f64()
        .or_else(|| raw["coverage_factor"].as_f64())
}

/// Render the PDF report of the data read from a run directory (`raw`: results.json as
/// JSON, for fields this version does not model).
pub fn render(d: &ReportData, raw: &serde_json::Value) -> Vec<u8> {
    let mut doc = Doc::new();
    let Some(r) = &d.results else {
        doc.para("No results.", 12.0, true, RED);
        return finish(doc, "unknown");
    };
    cover(&mut doc, d, r);
    instruments(&mut doc, r);
    results_table(&mut doc, r, raw);
    statistics(&mut doc, r);
    plots(&mut doc, d, r);
    safe_state(&mut doc, r);
    finish(doc, &r.run_id)
}

fn cover(doc: &mut Doc, d: &ReportData, r: &RunResults) {
    let c = &r.context;
    doc.para(&format!("Test report: {}", r.title), 17.0, true, BLACK);
    doc.para(&format!("Report id {}", r.run_id), 10.0, false, GREY);
    doc.y -= 6.0;
    // The overall verdict, as a coloured band.
    doc.ensure(30.0);
    doc.y -= 26.0;
    let y = doc.y;
    let (word, rgb) = (
        outcome_word(r.outcome),
        match r.outcome {
            Outcome::Passed => GREEN,
            Outcome::Inconclusive => AMBER,
            _ => RED,
        },
    );
    doc.ops().push(Op::Fill {
        x: LEFT,
        y: y - 6.0,
        w: RIGHT - LEFT,
        h: 24.0,
        rgb,
    });
    let mut verdict = format!("Overall verdict: {word}");
    if c.traceable == Some(false) {
        verdict.push_str(" - NOT TRACEABLE");
    }
    doc.text(LEFT + 8.0, y, 13.0, true, (1.0, 1.0, 1.0), &verdict);
    doc.y -= 8.0;
    if c.simulated {
        doc.para(
            "SIMULATED BENCH — not a physical test: instruments and BMS are simulated; these \
             results are not evidence about a physical product.",
            9.5,
            true,
            RED,
        );
    }
    if c.virtual_time {
        doc.para(
            "VIRTUAL TIME: the run ran on a paused clock; its times are simulated seconds.",
            9.5,
            true,
            RED,
        );
    }
    for why in &c.not_traceable_because {
        doc.para(&format!("Not traceable: {why}"), 9.5, true, RED);
    }
    doc.y -= 6.0;
    let fw = match &r.firmware {
        Some(f) => format!(
            "{} version {}, SHA-256 {}{}",
            f.id,
            f.version,
            f.sha256,
            c.firmware_source
                .as_ref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        ),
        None => "not recorded".into(),
    };
    let count = |v| r.tests.iter().filter(|t| t.verdict == v).count();
    let rule = match r.decision_rule {
        crate::verdict::DecisionRule::Simple => {
            "simple acceptance (ILAC-G8:09/2019): the measured value against the limit; the \
             risk of a false accept near the limit is not bounded by the uncertainty"
        }
        crate::verdict::DecisionRule::Guarded => {
            "guarded acceptance (ILAC-G8:09/2019, guard band w = U): pass only when value +/- U \
             lies inside the limit, fail when it lies wholly outside, otherwise inconclusive"
        }
    };
    let rows: Vec<(&str, String)> = vec![
        ("Item tested (DUT)", r.dut.clone()),
        ("DUT serial number", c.dut_serial_text()),
        ("Firmware", fw),
        ("Station", r.station.clone()),
        ("Tests selected", c.selection_text()),
        ("Tested by (operator)", c.operator_text()),
        (
            "Approved by",
            "signed approvals are kept in approvals/ of the bundle; `hilrig report verify` lists \
             and checks them"
                .into(),
        ),
        ("Test date (run start, UTC)", r.clock_anchor.clone()),
        ("Duration", format!("{:.1} s", r.duration_s)),
        (
            "Report issued",
            d.issued.clone().unwrap_or_else(|| "not recorded".into()),
        ),
        ("Ambient", c.ambient_text()),
        (
            "Bench",
            if c.simulated {
                "built-in simulated bench".into()
            } else {
                "physical instruments".into()
            },
        ),
        (
            "Clock",
            if c.virtual_time {
                "virtual (paused clock)".into()
            } else {
                "real time".into()
            },
        ),
        ("Requirements", r.requirements.join("; ")),
        ("Limit profile", r.limit_profile.clone()),
        ("Decision rule", rule.into()),
        ("Traceability", c.traceable_text().into()),
        (
            "Results",
            format!(
                "{} test(s): {} passed, {} failed, {} inconclusive",
                r.tests.len(),
                count(Verdict::Pass),
                count(Verdict::Fail),
                count(Verdict::Inconclusive)
            ),
        ),
        (
            "Safe state at the end",
            if r.safe_state_reached {
                "reached (every action confirmed)".into()
            } else {
                "NOT reached".into()
            },
        ),
    ];
    doc.kv(&rows);
    if let Some(a) = &r.abort {
        doc.y -= 4.0;
        doc.para(
            &format!(
                "Run aborted at t = {:.3} s{}: {}",
                a.at_s,
                a.during
                    .as_ref()
                    .map(|x| format!(" during {x}"))
                    .unwrap_or_default(),
                a.cause
            ),
            9.0,
            true,
            RED,
        );
    }
}

fn instruments(doc: &mut Doc, r: &RunResults) {
    doc.heading("Instruments and calibration", 40.0);
    let idn = |id: &str| {
        r.instruments
            .iter()
            .find(|i| i.id == id)
            .map(|i| format!("{} {}", i.manufacturer, i.model))
            .unwrap_or_default()
    };
    let rows: Vec<Vec<String>> = r
        .context
        .calibration
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                c.role.clone(),
                idn(&c.id),
                c.serial.clone().unwrap_or_else(|| "-".into()),
                c.due.clone().unwrap_or_else(|| "-".into()),
                c.status.word().to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        doc.para(
            "No calibration records are stored with these results.",
            9.0,
            false,
            BLACK,
        );
        return;
    }
    doc.table(
        &[60.0, 55.0, 150.0, 90.0, 70.0, 86.0],
        &["Id", "Role", "Identity (*IDN?)", "Serial", "Due", "Status"],
        &rows,
        &|i, t| if i == 5 { verdict_rgb(t) } else { BLACK },
    );
}

fn results_table(doc: &mut Doc, r: &RunResults, raw: &serde_json::Value) {
    doc.heading("Results", 40.0);
    let mut ks: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for (ti, t) in r.tests.iter().enumerate() {
        if t.measurements.is_empty() {
            rows.push(vec![
                t.name.clone(),
                "-".into(),
                t.message.clone().unwrap_or_default(),
                "-".into(),
                "-".into(),
                t.verdict.word().into(),
            ]);
        }
        for (mi, m) in t.measurements.iter().enumerate() {
            let k = coverage_factor(raw, ti, mi);
            let k_text = k.map(|k| format!("{k}")).unwrap_or_else(|| "?".into());
            if !ks.contains(&k_text) {
                ks.push(k_text.clone());
            }
            let (value, u, limit) = if is_yes_no(&m.quantity, &m.unit, m.value) {
                (
                    if m.value == 1.0 { "yes" } else { "no" }.to_string(),
                    "-".to_string(),
                    "must hold (yes)".to_string(),
                )
            } else {
                (
                    display_unit(m.value, &m.unit),
                    format!("{} (k = {k_text})", display_unit(m.uncertainty, &m.unit)),
                    limit_text(&m.limit, &m.unit),
                )
            };
            rows.push(vec![
                t.name.clone(),
                m.criterion.clone(),
                value,
                u,
                limit,
                m.verdict.word().into(),
            ]);
        }
    }
    doc.table(
        &[90.0, 140.0, 58.0, 82.0, 90.0, 51.0],
        &[
            "Test",
            "Criterion",
            "Measured",
            "Expanded U",
            "Limit",
            "Verdict",
        ],
        &rows,
        &|i, t| if i == 5 { verdict_rgb(t) } else { BLACK },
    );
    let k_note = if ks.iter().all(|k| k == "?") {
        "The results do not state a coverage factor (k = ?): the uncertainty column is the \
         half-width recorded with each measurement."
            .to_string()
    } else {
        format!(
            "U is the expanded uncertainty, U = k u_c, with the coverage factor k stated per \
             value (k = {}).",
            ks.join(", ")
        )
    };
    doc.y -= 4.0;
    doc.para(&k_note, 8.0, false, GREY);
}

fn statistics(doc: &mut Doc, r: &RunResults) {
    let rows: Vec<Vec<String>> = r
        .statistics
        .iter()
        .filter(|s| s.n > 1 && !s.unit.is_empty())
        .map(|s| {
            vec![
                s.test.clone(),
                s.criterion.clone(),
                s.n.to_string(),
                display_unit(s.min, &s.unit),
                display_unit(s.mean, &s.unit),
                display_unit(s.max, &s.unit),
            ]
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    doc.heading("Repeats: min / mean / max", 40.0);
    doc.table(
        &[120.0, 130.0, 30.0, 70.0, 70.0, 91.0],
        &["Test", "Criterion", "n", "min", "mean", "max"],
        &rows,
        &|_, _| BLACK,
    );
}

fn plots(doc: &mut Doc, d: &ReportData, r: &RunResults) {
    let specs = d.plan.as_ref().map(|p| p.tests()).unwrap_or_default();
    let mut first = true;
    for (i, t) in r.tests.iter().enumerate() {
        let Some(spec) = specs.iter().find(|s| s.name == t.test || s.name == t.name) else {
            continue;
        };
        let Some(ch_name) = spec.stimulus_channel.as_deref() else {
            continue;
        };
        let Some(ch) = d.traces.get(ch_name) else {
            continue;
        };
        let t0 = t.started_s - 1.0;
        // The window ends before the next repeat starts.
        let mut t1 = t.detected_s.unwrap_or(t.started_s + 5.0) + 3.0;
        if let Some(n) = r.tests.get(i + 1) {
            if n.started_s > t.started_s {
                t1 = t1.min(n.started_s);
            }
        }
        let idx = ch.window(t0, t1);
        if idx.len() < 2 {
            continue;
        }
        if first {
            doc.heading("Plots", 200.0);
            first = false;
        }
        plot(doc, t, ch_name, ch, idx, t0, t1);
    }
}

fn plot(
    doc: &mut Doc,
    t: &super::TestResult,
    name: &str,
    ch: &super::series::Channel,
    idx: std::ops::Range<usize>,
    t0: f64,
    t1: f64,
) {
    let (pw, ph) = (RIGHT - LEFT - 50.0, 140.0);
    doc.ensure(ph + 50.0);
    doc.para(
        &format!("{} - {} [{}]", t.name, name, ch.unit),
        9.5,
        true,
        BLACK,
    );
    let x0 = LEFT + 45.0;
    let y0 = doc.y - ph - 8.0;
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for &v in &ch.v[idx.clone()] {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let limits: Vec<(f64, String)> = t
        .measurements
        .iter()
        .filter(|m| m.unit == ch.unit || (m.unit == "V" && ch.unit == "V"))
        .flat_map(|m| {
            [m.limit.low, m.limit.high]
                .into_iter()
                .flatten()
                .map(move |v| (v, format!("{} {}", m.criterion, display_unit(v, &m.unit))))
        })
        .filter(|(v, _)| (*v - (lo + hi) / 2.0).abs() < (hi - lo).max(1e-9) * 3.0)
        .collect();
    for (v, _) in &limits {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let (lo, hi) = (lo - pad, hi + pad);
    let sx = |t: f64| x0 + ((t - t0) / (t1 - t0)) as f32 * pw;
    let sy = |v: f64| y0 + ((v - lo) / (hi - lo)) as f32 * ph;
    // Frame and axis labels.
    doc.ops().push(Op::Path {
        points: vec![
            (x0, y0),
            (x0 + pw, y0),
            (x0 + pw, y0 + ph),
            (x0, y0 + ph),
            (x0, y0),
        ],
        width: 0.5,
        rgb: GREY,
        dashed: false,
    });
    for (v, y) in [(lo + pad, sy(lo + pad)), (hi - pad, sy(hi - pad))] {
        doc.text(LEFT, y - 3.0, 7.0, false, GREY, &display_unit(v, &ch.unit));
    }
    for k in 0..=4 {
        let tt = t0 + (t1 - t0) * k as f64 / 4.0;
        let label = format!("{tt:.1} s");
        let x = sx(tt) - text_width(&label, 7.0, false) / 2.0;
        doc.text(x, y0 - 10.0, 7.0, false, GREY, &label);
    }
    // The trace, reduced to min/max per point column.
    let cols = pw as usize;
    let mut pts: Vec<(f32, f32)> = Vec::new();
    let col_of = |tt: f64| (((tt - t0) / (t1 - t0)) * cols as f64) as usize;
    let mut cur: Option<(usize, f64, f64, f64)> = None;
    for k in idx {
        if !(t0..=t1).contains(&ch.t[k]) {
            continue;
        }
        let c = col_of(ch.t[k]);
        let v = ch.v[k];
        match &mut cur {
            Some((cc, mn, mx, _)) if *cc == c => {
                *mn = mn.min(v);
                *mx = mx.max(v);
            }
            _ => {
                if let Some((_, mn, mx, tt)) = cur {
                    pts.push((sx(tt), sy(mn)));
                    pts.push((sx(tt), sy(mx)));
                }
                cur = Some((c, v, v, ch.t[k]));
            }
        }
    }
    if let Some((_, mn, mx, tt)) = cur {
        pts.push((sx(tt), sy(mn)));
        pts.push((sx(tt), sy(mx)));
    }
    doc.ops().push(Op::Path {
        points: pts,
        width: 0.8,
        rgb: BLUE,
        dashed: false,
    });
    // Limit lines with their values.
    for (n, (v, label)) in limits.iter().enumerate() {
        let y = sy(*v);
        // Labels alternate between the left and right ends so close limits stay readable.
        let lx = if n % 2 == 0 {
            x0 + 3.0
        } else {
            x0 + pw - 3.0 - text_width(label, 6.5, false)
        };
        doc.ops().push(Op::Path {
            points: vec![(x0, y), (x0 + pw, y)],
            width: 0.6,
            rgb: RED,
            dashed: true,
        });
        doc.text(lx, y + 2.0, 6.5, false, RED, label);
    }
    // The stimulus start and the trip observation.
    for (tt, label, rgb) in [
        (Some(t.started_s), "stimulus", GREY),
        (t.detected_s, "trip observed", GREEN),
    ] {
        if let Some(tt) = tt.filter(|tt| (t0..=t1).contains(tt)) {
            let x = sx(tt);
            doc.ops().push(Op::Path {
                points: vec![(x, y0), (x, y0 + ph)],
                width: 0.6,
                rgb,
                dashed: true,
            });
            let lx = if x + 2.0 + text_width(label, 6.5, false) > x0 + pw {
                x - 2.0 - text_width(label, 6.5, false)
            } else {
                x + 2.0
            };
            doc.text(lx, y0 + 3.0, 6.5, false, rgb, label);
        }
    }
    doc.y = y0 - 22.0;
}

fn safe_state(doc: &mut Doc, r: &RunResults) {
    doc.heading("Safe state at the end of the run", 40.0);
    let rows: Vec<Vec<String>> = r
        .safe_state
        .iter()
        .map(|s| vec![s.instrument.clone(), s.action.clone(), s.outcome_text()])
        .collect();
    doc.table(
        &[80.0, 300.0, 131.0],
        &["Instrument", "Action", "Result"],
        &rows,
        &|i, t| if i == 2 { verdict_rgb(t) } else { BLACK },
    );
    doc.y -= 8.0;
    doc.para(
        "The standards are summarised, not quoted; check each limit's provenance against your \
         licensed copy. This report is part of a signed evidence bundle: check it with \
         `hilrig report verify DIR`.",
        8.0,
        false,
        GREY,
    );
}

fn finish(doc: Doc, report_id: &str) -> Vec<u8> {
    let n = doc.pages.len();
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let page_ids: Vec<Ref> = (0..n).map(|i| Ref::new(10 + 2 * i as i32)).collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(n as i32);
    for (id, name) in [(regular, "Helvetica"), (bold, "Helvetica-Bold")] {
        pdf.type1_font(id)
            .base_font(Name(name.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (i, ops) in doc.pages.iter().enumerate() {
        let mut c = Content::new();
        let footer = format!("Report {report_id} - Page {} of {n}", i + 1);
        let mut all: Vec<&Op> = ops.iter().collect();
        let header = Op::Text {
            x: LEFT,
            y: H - 30.0,
            size: 7.5,
            bold: false,
            rgb: GREY,
            text: format!("hilrig test report {report_id}"),
        };
        let foot = Op::Text {
            x: RIGHT - text_width(&footer, 8.0, false),
            y: 30.0,
            size: 8.0,
            bold: false,
            rgb: BLACK,
            text: footer.clone(),
        };
        all.push(&header);
        all.push(&foot);
        for op in all {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    bold,
                    rgb,
                    text,
                } => {
                    c.set_fill_rgb(rgb.0, rgb.1, rgb.2);
                    c.begin_text();
                    c.set_font(Name(if *bold { b"F2" } else { b"F1" }), *size);
                    c.next_line(*x, *y);
                    c.show(Str(&winansi(text)));
                    c.end_text();
                }
                Op::Path {
                    points,
                    width,
                    rgb,
                    dashed,
                } => {
                    if points.len() < 2 {
                        continue;
                    }
                    c.save_state();
                    c.set_stroke_rgb(rgb.0, rgb.1, rgb.2);
                    c.set_line_width(*width);
                    if *dashed {
                        c.set_dash_pattern([3.0, 2.0], 0.0);
                    }
                    c.move_to(points[0].0, points[0].1);
                    for p in &points[1..] {
                        c.line_to(p.0, p.1);
                    }
                    c.stroke();
                    c.restore_state();
                }
                Op::Fill { x, y, w, h, rgb } => {
                    c.set_fill_rgb(rgb.0, rgb.1, rgb.2);
                    c.rect(*x, *y, *w, *h);
                    c.fill_nonzero();
                }
            }
        }
        let content_id = Ref::new(11 + 2 * i as i32);
        let mut page = pdf.page(page_ids[i]);
        page.media_box(Rect::new(0.0, 0.0, W, H))
            .parent(tree)
            .contents(content_id);
        {
            let mut res = page.resources();
            let mut fonts = res.fonts();
            fonts.pair(Name(b"F1"), regular);
            fonts.pair(Name(b"F2"), bold);
        }
        drop(page);
        pdf.stream(content_id, &c.finish());
    }
    let mut info = pdf.document_info(Ref::new(5));
    info.title(pdf_writer::TextStr(&format!(
        "hilrig test report {report_id}"
    )));
    info.producer(pdf_writer::TextStr(&format!(
        "hilrig {}",
        env!("CARGO_PKG_VERSION")
    )));
    drop(info);
    pdf.finish()
}

/// Render `report.pdf` for the run (or re-judged result) in `dir` and return its bytes.
pub fn render_dir(dir: &Path) -> Result<Vec<u8>, ReportError> {
    let d = super::html::load(dir)?;
    let path = dir.join("results.json");
    let raw: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    // A re-judged result keeps its results under `results`.
    let raw = if raw.get("results").is_some() {
        raw["results"].clone()
    } else {
        raw
    };
    Ok(render(&d, &raw))
}

/// Write `report.pdf` into `dir`.
pub fn write_dir(dir: &Path) -> Result<(), ReportError> {
    let bytes = render_dir(dir)?;
    let p = dir.join(REPORT_PDF);
    crate::durable::write(&p, bytes).map_err(|e| ReportError::io(&p, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The cover's banner is there for a simulated bench only; the selection is named.
    #[rstest::rstest]
    #[case::simulated(true, true)]
    #[case::physical(false, false)]
    fn the_cover_marks_a_simulated_bench(#[case] simulated: bool, #[case] banner: bool) {
        let r = crate::report::test_support::results(simulated, &["OV cell 5"]);
        let raw = serde_json::to_value(&r).unwrap();
        let d = crate::report::html::ReportData {
            results: Some(r),
            ..Default::default()
        };
        let pdf = String::from_utf8_lossy(&super::render(&d, &raw)).into_owned();
        // A string with a byte outside ASCII (the dash) is written in hex.
        let hex = hex::encode_upper("SIMULATED BENCH");
        assert_eq!(
            pdf.contains("SIMULATED BENCH") || pdf.contains(&hex),
            banner
        );
        assert!(pdf.contains("only OV cell 5"), "no selection on the cover");
    }
}
