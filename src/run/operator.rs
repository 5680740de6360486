//! The operator's channels into a run: a stop with its cause (Ctrl-C, the live page's STOP),
//! and the answers to `prompt` steps, given at the terminal, on the live page, or taken
//! from the defaults when nobody can answer.
//!
//! A prompt is asked at the terminal when stdin is a terminal and on the live page when one
//! is served; the first complete answer wins. With neither (CI), every entry must have a
//! default, else the step is an error. While a prompt waits, the run's clock is held: the
//! wait is a blocking task, and tokio's paused clock (`--virtual-time`) does not jump ahead
//! while one runs, so virtual time does not run away while the operator reads.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::plan::model::Prompt;

/// Who answered a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredBy {
    /// Typed at the terminal running `hilrig run`.
    Terminal,
    /// Sent from the live page (`POST /prompt`).
    Page,
    /// Nobody could answer: every entry took its default.
    Default,
}

impl AnsweredBy {
    /// The word recorded in the results (`terminal`, `page`, `default`).
    pub fn word(self) -> &'static str {
        match self {
            AnsweredBy::Terminal => "terminal",
            AnsweredBy::Page => "page",
            AnsweredBy::Default => "default",
        }
    }
}

/// A prompt waiting for its answers (what the live page shows).
#[derive(Debug, Clone, Serialize)]
pub struct PendingPrompt {
    /// The step (`steps[2] prompt (plan.yaml:14)`).
    pub step: String,
    /// What the operator reads.
    pub text: String,
    /// (entry, default) in order.
    pub entries: Vec<(String, Option<String>)>,
}

/// A prompt's answers and where they came from.
#[derive(Debug, Clone)]
pub struct Answers {
    /// Entry name → value.
    pub values: BTreeMap<String, String>,
    /// Terminal, page or default.
    pub by: AnsweredBy,
}

enum Input {
    Line(String),
    Page(BTreeMap<String, String>),
}

struct Waiting {
    prompt: PendingPrompt,
    tx: mpsc::Sender<Input>,
}

/// The operator side of a run; cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct Operator {
    stopped_by: Arc<Mutex<Option<String>>>,
    waiting: Arc<Mutex<Option<Waiting>>>,
    terminal: bool,
    page: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("terminal", &self.terminal)
            .finish()
    }
}

impl Operator {
    /// Prompts are also answered by lines typed on stdin (call only when it is a terminal):
    /// starts the one thread that reads stdin.
    pub fn with_terminal(mut self) -> Self {
        self.terminal = true;
        let waiting = self.waiting.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                if let Some(w) = lock(&waiting).as_ref() {
                    let _ = w.tx.send(Input::Line(line));
                }
            }
        });
        self
    }

    /// Prompts are also answered on the live page (`answer_from_page`).
    pub fn with_page(self) -> Self {
        self.page.store(true, std::sync::atomic::Ordering::SeqCst);
        self
    }

    /// Stop the run as an operator abort (the same path as Ctrl-C); `by` says how
    /// (`STOP on the live page`) and is recorded as the abort's `stopped_by` (the first
    /// stop wins).
    pub fn stop(&self, cancel: &CancellationToken, by: &str) {
        lock(&self.stopped_by).get_or_insert_with(|| by.to_string());
        cancel.cancel();
    }

    /// How `stop` stopped the run, if it did.
    pub fn stopped_by(&self) -> Option<String> {
        lock(&self.stopped_by).clone()
    }

    /// The prompt now waiting for an answer, if any.
    pub fn pending(&self) -> Option<PendingPrompt> {
        lock(&self.waiting).as_ref().map(|w| w.prompt.clone())
    }

    /// Answer the waiting prompt from the live page; entries left out take their defaults.
    /// Err says why not (nothing waiting, an unknown entry, a missing value without default).
    pub fn answer_from_page(&self, values: BTreeMap<String, String>) -> Result<(), PromptError> {
        let w = lock(&self.waiting);
        let Some(w) = w.as_ref() else {
            return Err(PromptError("no prompt is waiting for an answer".into()));
        };
        let values = complete(&w.prompt.entries, values)?;
        w.tx.send(Input::Page(values))
            .map_err(|_| PromptError("the prompt is no longer waiting".into()))
    }

    /// Ask `prompt` (of step `step`) and wait for its answers. Without a terminal and a
    /// page, the defaults are taken, or Err when an entry has none.
    pub async fn ask(&self, step: &str, prompt: &Prompt) -> Result<Answers, PromptError> {
        let entries = prompt.fields();
        let page = self.page.load(std::sync::atomic::Ordering::SeqCst);
        if !self.terminal && !page {
            let missing: Vec<&str> = entries
                .iter()
                .filter(|(_, d)| d.is_none())
                .map(|(n, _)| n.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(PromptError(format!(
                    "prompt \"{}\": nobody can answer (no terminal, no live page) and {} \
                     ha{} no default",
                    prompt.text,
                    missing.join(", "),
                    if missing.len() == 1 { "s" } else { "ve" }
                )));
            }
            let values = entries
                .into_iter()
                .filter_map(|(n, d)| d.map(|d| (n, d)))
                .collect();
            return Ok(Answers {
                values,
                by: AnsweredBy::Default,
            });
        }
        let (tx, rx) = mpsc::channel();
        let pending = PendingPrompt {
            step: step.to_string(),
            text: prompt.text.clone(),
            entries: entries.clone(),
        };
        *lock(&self.waiting) = Some(Waiting {
            prompt: pending,
            tx,
        });
        // Cleared however this future ends (answered, or the run cancelled): the sender
        // goes with it, which ends the blocking wait below.
        let _clear = Clear(self.waiting.clone());
        let terminal = self.terminal;
        if terminal {
            eprintln!("PROMPT {}", prompt.text);
            ask_line(&entries, 0);
        }
        let wait = tokio::task::spawn_blocking(move || {
            let mut typed = BTreeMap::new();
            loop {
                match rx.recv() {
                    Err(_) => return None,
                    Ok(Input::Page(values)) => {
                        return Some(Answers {
                            values,
                            by: AnsweredBy::Page,
                        })
                    }
                    Ok(Input::Line(line)) => {
                        let (name, default) = &entries[typed.len()];
                        let line = line.trim();
                        match (line.is_empty(), default) {
                            (false, _) => {
                                typed.insert(name.clone(), line.to_string());
                            }
                            (true, Some(d)) => {
                                typed.insert(name.clone(), d.clone());
                            }
                            (true, None) => eprintln!("{name} has no default: type a value"),
                        }
                        if typed.len() == entries.len() {
                            return Some(Answers {
                                values: typed,
                                by: AnsweredBy::Terminal,
                            });
                        }
                        ask_line(&entries, typed.len());
                    }
                }
            }
        });
        match wait.await {
            Ok(Some(a)) => Ok(a),
            _ => Err(PromptError(format!(
                "prompt \"{}\": no answer",
                prompt.text
            ))),
        }
    }
}

/// Print the question for entry `i` at the terminal.
fn ask_line(entries: &[(String, Option<String>)], i: usize) {
    if let Some((name, default)) = entries.get(i) {
        match default {
            Some(d) => eprint!("  {name} [{d}]: "),
            None => eprint!("  {name}: "),
        }
    }
}

/// Fill in defaults; refuse unknown entries and entries without a value or default.
fn complete(
    entries: &[(String, Option<String>)],
    mut values: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, PromptError> {
    if let Some(unknown) = values
        .keys()
        .find(|k| !entries.iter().any(|(n, _)| n == *k))
    {
        return Err(PromptError(format!(
            "the prompt asks for no entry `{unknown}`"
        )));
    }
    let mut out = BTreeMap::new();
    for (name, default) in entries {
        let v = values
            .remove(name)
            .filter(|v| !v.trim().is_empty())
            .or_else(|| default.clone());
        match v {
            Some(v) => out.insert(name.clone(), v),
            None => {
                return Err(PromptError(format!(
                    "entry `{name}` has no value and no default"
                )))
            }
        };
    }
    Ok(out)
}

/// A prompt that cannot be asked or an answer that cannot be taken, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PromptError(pub String);

impl From<PromptError> for super::RunError {
    fn from(e: PromptError) -> Self {
        super::RunError::Operator(e.0)
    }
}

struct Clear(Arc<Mutex<Option<Waiting>>>);

impl Drop for Clear {
    fn drop(&mut self) {
        lock(&self.0).take();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn entries() -> Vec<(String, Option<String>)> {
        vec![
            ("dut_serial".into(), None),
            ("harness".into(), Some("H1".into())),
        ]
    }

    #[rstest]
    #[case(&[("dut_serial", "S1")], Ok(&[("dut_serial", "S1"), ("harness", "H1")][..]))]
    #[case(&[("dut_serial", "S1"), ("harness", "H2")], Ok(&[("dut_serial", "S1"), ("harness", "H2")][..]))]
    #[case(&[("harness", "H2")], Err("`dut_serial` has no value"))]
    #[case(&[("dut_serial", " ")], Err("`dut_serial` has no value"))]
    #[case(&[("dut_serial", "S1"), ("colour", "red")], Err("no entry `colour`"))]
    fn page_answers_are_completed(
        #[case] given: &[(&str, &str)],
        #[case] want: Result<&[(&str, &str)], &str>,
    ) {
        let given = given
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match (complete(&entries(), given), want) {
            (Ok(got), Ok(want)) => {
                let want: BTreeMap<String, String> = want
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                assert_eq!(got, want);
            }
            (Err(e), Err(w)) => assert!(e.0.contains(w), "{e}"),
            (got, want) => panic!("{got:?} vs {want:?}"),
        }
    }

    #[test]
    fn a_page_answer_without_a_waiting_prompt_is_refused() {
        let op = Operator::default().with_page();
        let e = op.answer_from_page(BTreeMap::new()).unwrap_err();
        assert!(e.0.contains("no prompt is waiting"), "{e}");
    }

    #[test]
    fn the_first_stop_cause_wins() {
        let op = Operator::default();
        let cancel = CancellationToken::new();
        op.stop(&cancel, "first");
        op.stop(&cancel, "second");
        assert!(cancel.is_cancelled());
        assert_eq!(op.stopped_by().as_deref(), Some("first"));
    }
}
