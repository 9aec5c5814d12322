//! Progress reporting: a small trait the loop calls after each optimizer step, with an
//! indicatif bar for terminals, plain lines for logs and CI, and a silent one for tests.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::io::Write;

/// Receives the loop's progress.
pub trait Progress {
    /// After optimizer step `step` (1-based) of `total`.
    fn on_step(&mut self, step: u64, total: u64, loss: f64, tokens_per_s: f64);
    /// When the loop continues from the checkpoint in `checkpoint`, written after step `step`
    /// of `total`, before any further step.
    fn on_resume(&mut self, step: u64, total: u64, checkpoint: &std::path::Path) {
        let _ = (step, total, checkpoint);
    }
    /// When the loop ends (normally or not).
    fn on_finish(&mut self) {}
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn on_step(&mut self, _: u64, _: u64, _: f64, _: f64) {}
}

/// A plain line on stderr every `every` steps and at the last step.
#[derive(Clone, Copy, Debug)]
pub struct LineProgress {
    /// Print every this many steps.
    pub every: u64,
}

impl Progress for LineProgress {
    fn on_step(&mut self, step: u64, total: u64, loss: f64, tokens_per_s: f64) {
        if step.is_multiple_of(self.every.max(1)) || step == total {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "step {step}/{total} loss {loss:.4} {tokens_per_s:.0} tok/s"
            );
        }
    }
}

/// An indicatif bar: step, loss, tokens/s and ETA.
#[derive(Debug)]
pub struct BarProgress {
    bar: Option<ProgressBar>,
}

impl BarProgress {
    /// A bar drawn on stderr once the total is known.
    pub fn new() -> Self {
        Self { bar: None }
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for BarProgress {
    fn on_step(&mut self, step: u64, total: u64, loss: f64, tokens_per_s: f64) {
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} eta {eta}")
            {
                bar.set_style(style);
            }
            bar
        });
        bar.set_position(step);
        bar.set_message(format!("loss {loss:.4} {tokens_per_s:.0} tok/s"));
    }

    fn on_finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// A bar when stderr is a terminal, plain lines every 10 steps otherwise.
pub fn progress_for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(BarProgress::new())
    } else {
        Box::new(LineProgress { every: 10 })
    }
}
