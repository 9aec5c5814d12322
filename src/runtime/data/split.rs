//! Deterministic shuffling and split sizes.
//!
//! The generator is SplitMix64 (Steele, Lea & Flood 2014), written out here so that a seed gives
//! the same order on every machine and with every dependency version. Fisher–Yates draws
//! `j` in `0..=i` as the high 64 bits of `next() * (i + 1)` (bias below 2^-40 for any realistic
//! dataset size).

use super::error::DataError;
use super::spec::{SplitPart, SplitSize};

/// SplitMix64.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// `0..n` in the order a seed gives.
pub fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        idx.swap(i, j);
    }
    idx
}

/// Row counts for `parts` out of `n` rows. Counts are exact; a percentage is rounded to the
/// nearest row, and when the percentages add up to 100% the last percentage part takes every
/// row left, so no row is lost to rounding.
pub fn split_sizes(parts: &[SplitPart], n: usize) -> Result<Vec<usize>, DataError> {
    let total_pct: f64 = parts
        .iter()
        .map(|p| match p.size {
            SplitSize::Percent(x) => x,
            SplitSize::Count(_) => 0.0,
        })
        .sum();
    let counted: usize = parts
        .iter()
        .map(|p| match p.size {
            SplitSize::Count(c) => c,
            SplitSize::Percent(_) => 0,
        })
        .sum();
    let asked = || {
        parts
            .iter()
            .map(|p| match p.size {
                SplitSize::Percent(x) => format!("{} = {x}%", p.name),
                SplitSize::Count(c) => format!("{} = {c}", p.name),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if total_pct > 100.0 + 1e-9
        || counted > n
        || parts
            .iter()
            .any(|p| matches!(p.size, SplitSize::Percent(x) if x < 0.0))
    {
        return Err(DataError::SplitTooLarge {
            asked: asked(),
            total: n,
        });
    }
    let last_pct = parts
        .iter()
        .rposition(|p| matches!(p.size, SplitSize::Percent(_)));
    let mut sizes: Vec<usize> = parts
        .iter()
        .map(|p| match p.size {
            SplitSize::Count(c) => c,
            SplitSize::Percent(x) => (n as f64 * x / 100.0).round() as usize,
        })
        .collect();
    if let Some(last) = last_pct {
        if (total_pct - 100.0).abs() < 1e-9 {
            let others: usize = sizes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != last)
                .map(|(_, s)| *s)
                .sum();
            if let Some(s) = sizes.get_mut(last) {
                *s = n.saturating_sub(others);
            }
        }
    }
    if sizes.iter().sum::<usize>() > n {
        return Err(DataError::SplitTooLarge {
            asked: asked(),
            total: n,
        });
    }
    Ok(sizes)
}
