//! Progress reporting: the [`Reporter`] trait the scheduler calls with [`StageEvent`]s, a
//! [`PlainReporter`] (one line per event, for logs and pipes), a [`TerminalReporter`] (indicatif
//! bars, one per stage) and [`ProgressHandle`], through which a stage reports inner progress.
//! It must not decide anything: it only displays.

use crate::plan::StageId;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Something that happened to a stage.
#[derive(Clone, Debug, PartialEq)]
pub enum StageEvent {
    /// Waiting for another run that holds this stage's cache entry.
    WaitingForLock,
    /// The stage's result came from the cache.
    Cached,
    /// The stage was submitted to a job system as job `job` (it runs when the job starts).
    Submitted { job: String },
    /// The stage started executing.
    Running,
    /// Inner progress: `pos` of `len` (0 = unknown length), with a short message.
    Progress { pos: u64, len: u64, message: String },
    /// The stage finished executing.
    Done { seconds: f64 },
    /// The stage failed.
    Failed { error: String },
    /// The stage's gate failed.
    GateFailed { message: String },
    /// The stage did not run because an input did not succeed.
    Skipped { because: StageId },
    /// The stage was cancelled or not started because of Ctrl-C.
    Cancelled,
    /// A warning (e.g. a corrupt cache entry was removed).
    Warning { message: String },
    /// Something the user should know that is not a problem (e.g. training resumed).
    Note { message: String },
}

/// Receives stage events; called from worker threads.
pub trait Reporter: Send + Sync {
    fn event(&self, id: &StageId, name: &str, event: &StageEvent);
}

/// Discards everything.
#[derive(Debug, Default)]
pub struct NullReporter;

impl Reporter for NullReporter {
    fn event(&self, _: &StageId, _: &str, _: &StageEvent) {}
}

/// The reporter for stderr: bars on a terminal, plain lines otherwise.
pub fn stderr_reporter() -> Arc<dyn Reporter> {
    if std::io::stderr().is_terminal() {
        Arc::new(TerminalReporter::new())
    } else {
        Arc::new(PlainReporter::new(std::io::stderr()))
    }
}

/// One line per state change; inner progress only every 10%.
pub struct PlainReporter {
    out: Mutex<Box<dyn Write + Send>>,
    last_decile: Mutex<HashMap<StageId, u64>>,
}

impl PlainReporter {
    pub fn new(out: impl Write + Send + 'static) -> Self {
        PlainReporter {
            out: Mutex::new(Box::new(out)),
            last_decile: Mutex::new(HashMap::new()),
        }
    }
}

/// The plain line for an event, or `None` for progress that need not be printed.
pub fn plain_line(name: &str, event: &StageEvent) -> String {
    match event {
        StageEvent::WaitingForLock => format!("[wait]    {name}: another run is building it"),
        StageEvent::Cached => format!("[cached]  {name}"),
        StageEvent::Submitted { job } => format!("[submit]  {name}: job {job}"),
        StageEvent::Running => format!("[run]     {name}"),
        StageEvent::Progress { pos, len, message } if *len > 0 => {
            format!("[..]      {name}: {pos}/{len} {message}")
        }
        StageEvent::Progress { pos, message, .. } => format!("[..]      {name}: {pos} {message}"),
        StageEvent::Done { seconds } => format!("[done]    {name} ({seconds:.1}s)"),
        StageEvent::Failed { error } => format!("[failed]  {name}: {error}"),
        StageEvent::GateFailed { message } => format!("[gate]    {name}: FAILED {message}"),
        StageEvent::Skipped { because } => {
            format!("[skipped] {name}: input {because} did not succeed")
        }
        StageEvent::Cancelled => format!("[stopped] {name}"),
        StageEvent::Warning { message } => format!("[warning] {name}: {message}"),
        StageEvent::Note { message } => format!("[note]    {name}: {message}"),
    }
}

impl Reporter for PlainReporter {
    fn event(&self, id: &StageId, name: &str, event: &StageEvent) {
        if let StageEvent::Progress { pos, len, .. } = event {
            let decile = if *len > 0 {
                pos.saturating_mul(10) / len
            } else {
                *pos
            };
            let Ok(mut last) = self.last_decile.lock() else {
                return;
            };
            if last.get(id) == Some(&decile) {
                return;
            }
            last.insert(id.clone(), decile);
        }
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{}", plain_line(name, event));
            let _ = out.flush();
        }
    }
}

/// indicatif bars: one line per stage showing its state, a bar while it reports progress.
pub struct TerminalReporter {
    multi: MultiProgress,
    bars: Mutex<HashMap<StageId, ProgressBar>>,
}

impl TerminalReporter {
    pub fn new() -> Self {
        TerminalReporter {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, id: &StageId, name: &str) -> Option<ProgressBar> {
        let mut bars = self.bars.lock().ok()?;
        let bar = bars.entry(id.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{prefix:>24} {spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_owned());
            bar
        });
        Some(bar.clone())
    }
}

impl Default for TerminalReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for TerminalReporter {
    fn event(&self, id: &StageId, name: &str, event: &StageEvent) {
        let Some(bar) = self.bar(id, name) else {
            return;
        };
        match event {
            StageEvent::Running => {
                bar.set_message("running");
                bar.enable_steady_tick(Duration::from_millis(120));
            }
            StageEvent::Progress { pos, len, message } => {
                if *len > 0 && bar.length() != Some(*len) {
                    bar.set_length(*len);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix:>24} [{bar:30}] {pos}/{len} {msg} ({eta})",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                }
                bar.set_position(*pos);
                bar.set_message(message.clone());
            }
            StageEvent::WaitingForLock => bar.set_message("waiting for another run"),
            StageEvent::Submitted { job } => bar.set_message(format!("queued as job {job}")),
            StageEvent::Warning { message } => {
                let _ = self.multi.println(format!("warning: {name}: {message}"));
            }
            StageEvent::Note { message } => {
                let _ = self.multi.println(format!("{name}: {message}"));
            }
            other => {
                let line = plain_line(name, other);
                let word = line
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let rest = line
                    .split_once(':')
                    .map(|x| x.1)
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>24} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.finish_with_message(if rest.is_empty() {
                    word
                } else {
                    format!("{word} {rest}")
                });
            }
        }
    }
}

/// A stage's handle for inner progress.
#[derive(Clone)]
pub struct ProgressHandle {
    id: StageId,
    name: String,
    reporter: Arc<dyn Reporter>,
}

impl std::fmt::Debug for ProgressHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressHandle")
            .field("id", &self.id)
            .finish()
    }
}

impl ProgressHandle {
    pub fn new(id: StageId, name: String, reporter: Arc<dyn Reporter>) -> Self {
        ProgressHandle { id, name, reporter }
    }
    /// Reports `pos` of `len` steps (0 = unknown length) with a short message (e.g. `loss 0.41`).
    pub fn set(&self, pos: u64, len: u64, message: impl Into<String>) {
        let event = StageEvent::Progress {
            pos,
            len,
            message: message.into(),
        };
        self.reporter.event(&self.id, &self.name, &event);
    }
    /// Reports a note for this stage (not a problem; e.g. where training resumed).
    pub fn note(&self, message: impl Into<String>) {
        self.reporter.event(
            &self.id,
            &self.name,
            &StageEvent::Note {
                message: message.into(),
            },
        );
    }
    /// Reports a warning for this stage.
    pub fn warn(&self, message: impl Into<String>) {
        self.reporter.event(
            &self.id,
            &self.name,
            &StageEvent::Warning {
                message: message.into(),
            },
        );
    }
}
