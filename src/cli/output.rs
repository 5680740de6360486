//! Operator output for `hilrig run`: a progress line on a terminal, plain lines otherwise,
//! JSON lines with `--json`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::report::junit::limit_text;
use crate::report::TestResult;
use crate::run::Event;

/// Where operator output goes.
pub struct Output {
    json: bool,
    bar: Option<ProgressBar>,
    started: Instant,
    plan: Mutex<String>,
    step: Mutex<String>,
    /// The live page's events (`--serve`): every JSON object, in JSON mode or not.
    live: Option<std::sync::Arc<crate::serve::Hub>>,
}

impl Output {
    /// JSON lines, a progress line on a terminal, or plain lines.
    pub fn new(json: bool) -> Self {
        let bar = (!json && std::io::stdout().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            json,
            bar,
            started: Instant::now(),
            plan: Mutex::new(String::new()),
            step: Mutex::new(String::new()),
            live: None,
        }
    }

    /// Also publish every JSON object to the live page's event stream.
    pub fn with_live(mut self, hub: std::sync::Arc<crate::serve::Hub>) -> Self {
        self.live = Some(hub);
        self
    }

    /// A line for people (not printed in JSON mode).
    pub fn line(&self, text: &str) {
        if self.json {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(text),
            None => say(text),
        }
    }

    /// A JSON object for machines (printed only in JSON mode).
    pub fn json(&self, value: serde_json::Value) {
        if !self.json && self.live.is_none() {
            return;
        }
        let text = value.to_string();
        if let Some(hub) = &self.live {
            hub.publish(text.clone());
        }
        if self.json {
            say(&text);
        }
    }

    /// A plan starts.
    pub fn plan(&self, id: &str, title: &str, repeats: u32, station: &str, rule: &str) {
        *self.plan.lock().unwrap_or_else(|e| e.into_inner()) = id.to_string();
        self.line(&format!(
            "hilrig: {id} ({title}) on {station} — {repeats} repeat(s), decision rule {rule}"
        ));
        self.json(json!({"event": "plan", "plan": id, "title": title, "repeat": repeats, "station": station, "decision_rule": rule}));
    }

    /// A runner event.
    pub fn event(&self, e: &Event) {
        self.json(e.to_json());
        if self.json {
            return;
        }
        match e {
            Event::Step {
                phase,
                index,
                repeat,
                kind,
            } => {
                let plan = self.plan.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let msg = if *repeat > 0 {
                    format!("{plan}: repeat {repeat}, {phase}[{index}] {kind}")
                } else {
                    format!("{plan}: {phase}[{index}] {kind}")
                };
                match &self.bar {
                    Some(bar) => bar.set_message(msg.clone()),
                    None => tracing::info!("{msg}"),
                }
                *self.step.lock().unwrap_or_else(|e| e.into_inner()) = msg;
            }
            Event::Signals { values } => {
                if let Some(bar) = &self.bar {
                    let step = self.step.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let live: Vec<String> =
                        values.iter().map(|(n, v)| format!("{n} {v:.4}")).collect();
                    bar.set_message(format!("{step} | {}", live.join(", ")));
                }
            }
            Event::Test(t) => self.line(&test_lines(t)),
            Event::TestRevised(t) => self.line(&format!(
                "revised after the plan's delay check:\n{}",
                test_lines(t)
            )),
            Event::Aborting { cause } => match &self.bar {
                Some(bar) => bar.println(format!("ABORT {cause}")),
                None => eprintln!("ABORT {cause}"),
            },
            // The question itself is asked on stderr by the prompt.
            Event::Prompt(_) => {}
            Event::PromptAnswered(p) => {
                let a: Vec<String> = p.answers.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.line(&format!("answered ({}): {}", p.answered_by, a.join(", ")));
            }
        }
    }

    /// Stop the progress line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        tracing::debug!(
            "output finished after {:.1} s",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Print a line; a closed stdout (a pipe whose reader went away) must not stop a run.
fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// A finished test as lines: verdict and name, then each measurement against its limit.
pub fn test_lines(t: &TestResult) -> String {
    let mut out = format!("{:<5} {}", t.verdict.word(), t.name);
    if let Some(m) = &t.message {
        out.push_str(&format!("\n      {m}"));
    }
    for m in &t.measurements {
        out.push_str(&format!(
            "\n      {:<30} {:<14} {:>24} (k = {}) limit {:<26} {}",
            m.criterion,
            m.quantity,
            crate::verdict::gum::stated(m.value, m.uncertainty, &m.unit),
            m.coverage_factor,
            limit_text(&m.limit, &m.unit),
            m.verdict.word()
        ));
    }
    out
}
