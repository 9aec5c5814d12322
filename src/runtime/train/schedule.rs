//! Learning-rate multipliers, identical to transformers'
//! `get_{constant,linear,cosine}_schedule_with_warmup` (a `LambdaLR` over optimizer steps).
//!
//! Step `k` (0-based) of the optimizer uses `lr * factor(k)`. Pure arithmetic in f64, as Python.

use crate::runtime::train::config::{ScheduleConfig, ScheduleKind, Warmup};

/// A schedule resolved against the total number of optimizer steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    kind: ScheduleKind,
    warmup_steps: u64,
    total_steps: u64,
}

impl Schedule {
    /// Resolves the warmup (`ceil(total * fraction)` for a fraction, as `TrainingArguments`).
    pub fn new(config: &ScheduleConfig, total_steps: u64) -> Self {
        Self {
            kind: config.kind,
            warmup_steps: warmup_steps(config.warmup, total_steps),
            total_steps,
        }
    }

    /// Warmup steps after resolution.
    pub fn warmup_steps(&self) -> u64 {
        self.warmup_steps
    }

    /// The multiplier at optimizer step `step` (0-based).
    pub fn factor(&self, step: u64) -> f64 {
        let s = step as f64;
        let w = self.warmup_steps;
        if step < w {
            return s / (w.max(1) as f64);
        }
        let t = self.total_steps;
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => {
                let num = t as f64 - s;
                let den = (t.saturating_sub(w)).max(1) as f64;
                (num / den).max(0.0)
            }
            ScheduleKind::Cosine => {
                let progress = (s - w as f64) / ((t.saturating_sub(w)).max(1) as f64);
                (0.5 * (1.0 + (std::f64::consts::PI * 0.5 * 2.0 * progress).cos())).max(0.0)
            }
        }
    }
}

/// Warmup steps for a total (`int(w)` for steps, `ceil(total * w)` for a fraction).
pub fn warmup_steps(warmup: Warmup, total_steps: u64) -> u64 {
    match warmup {
        Warmup::Steps(s) => s,
        Warmup::Fraction(f) => (total_steps as f64 * f).ceil().max(0.0) as u64,
    }
}
