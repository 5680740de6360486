//! The progress of `hilrig flash` on the console: progress bars on a terminal, plain lines
//! otherwise, nothing with `--json`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{FlashEvent, Phase, ProgressSink};

/// Progress bars on a terminal, plain lines otherwise, nothing with --json.
pub struct Display {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<Phase, ProgressBar>>,
}

impl Display {
    /// The sink for `flash_on_rig` (`json`: none).
    pub fn sink(json: bool) -> ProgressSink {
        if json {
            return crate::flash::no_progress();
        }
        let d = Arc::new(Display {
            multi: std::io::stderr().is_terminal().then(MultiProgress::new),
            bars: Mutex::new(HashMap::new()),
        });
        Arc::new(move |e| d.event(e))
    }

    fn line(&self, text: &str) {
        match &self.multi {
            Some(m) => {
                if m.println(text).is_err() {
                    eprintln!("{text}");
                }
            }
            None => eprintln!("{text}"),
        }
    }

    fn event(&self, e: FlashEvent) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            FlashEvent::Attached { probe, chip } => {
                self.line(&format!("attached: {chip} via {probe}"))
            }
            FlashEvent::Layout(plan) => {
                for r in &plan.regions {
                    self.line(&format!(
                        "layout: {} {:#010x}..{:#010x}: {} bytes, {} sector(s) erased ({:#010x}..{:#010x})",
                        r.name, r.start, r.end, r.bytes, r.sectors, r.erase_start, r.erase_end
                    ));
                }
            }
            FlashEvent::Planned { phase, total } => {
                if let Some(m) = &self.multi {
                    let bar = m.add(ProgressBar::new(total.unwrap_or(0)));
                    let style = ProgressStyle::with_template(
                        "{prefix:>8} [{bar:40}] {bytes}/{total_bytes} {msg}",
                    )
                    .map(|s| s.progress_chars("=> "))
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                    bar.set_style(style);
                    bar.set_prefix(phase.name());
                    bars.insert(phase, bar);
                }
            }
            FlashEvent::Started(_) => {}
            FlashEvent::Progress { phase, bytes } => {
                if let Some(b) = bars.get(&phase) {
                    b.inc(bytes);
                }
            }
            FlashEvent::Finished(phase) => match bars.remove(&phase) {
                Some(b) => b.finish_with_message("done"),
                None => self.line(&format!("{}: done", phase.name())),
            },
            FlashEvent::Failed(phase) => match bars.remove(&phase) {
                Some(b) => b.abandon_with_message("FAILED"),
                None => self.line(&format!("{}: FAILED", phase.name())),
            },
            FlashEvent::Running => self.line("reset: the target runs the new image"),
            FlashEvent::Message(m) => self.line(&format!("flash algorithm: {m}")),
        }
    }
}
