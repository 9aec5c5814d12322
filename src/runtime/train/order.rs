//! The data order: which examples each micro-batch and each optimizer step take.
//!
//! The order of epoch `e` is a pure function of `(seed, e)` (a seeded shuffle, or identity), so a
//! cursor `(epoch, position)` is all a checkpoint needs to continue it. An optimizer step takes
//! up to `accumulate` micro-batches and never crosses an epoch boundary; the last micro-batch of
//! an epoch may be short (as a PyTorch `DataLoader` with `drop_last=False`).

use crate::runtime::train::config::TrainLength;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The permutation of `0..n` used in `epoch`.
pub fn epoch_order(seed: u64, epoch: u64, n: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        let mixed = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mixed));
    }
    order
}

/// Where the loop is in the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// 0-based epoch.
    pub epoch: u64,
    /// Examples of this epoch already consumed.
    pub position: usize,
}

/// Fixed facts about the data stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepPlan {
    /// Number of examples.
    pub examples: usize,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per step.
    pub accumulate: usize,
    /// Optimizer steps in one epoch.
    pub steps_per_epoch: u64,
    /// Optimizer steps in the run.
    pub total_steps: u64,
}

impl StepPlan {
    /// The plan for `examples` examples (all arguments positive).
    pub fn new(examples: usize, batch_size: usize, accumulate: usize, length: TrainLength) -> Self {
        let micro = examples.div_ceil(batch_size.max(1));
        let steps_per_epoch = micro.div_ceil(accumulate.max(1)) as u64;
        let total_steps = match length {
            TrainLength::Epochs(e) => e * steps_per_epoch,
            TrainLength::Steps(s) => s,
        };
        Self {
            examples,
            batch_size,
            accumulate,
            steps_per_epoch,
            total_steps,
        }
    }

    /// The micro-batches (ranges into the epoch's order) of the step starting at `cursor`, and
    /// the cursor after it.
    pub fn next_step(&self, cursor: Cursor) -> (Vec<std::ops::Range<usize>>, Cursor) {
        let mut cursor = cursor;
        if cursor.position >= self.examples {
            cursor = Cursor {
                epoch: cursor.epoch + 1,
                position: 0,
            };
        }
        let mut ranges = Vec::with_capacity(self.accumulate);
        let mut pos = cursor.position;
        while ranges.len() < self.accumulate && pos < self.examples {
            let end = (pos + self.batch_size).min(self.examples);
            ranges.push(pos..end);
            pos = end;
        }
        (
            ranges,
            Cursor {
                epoch: cursor.epoch,
                position: pos,
            },
        )
    }
}
