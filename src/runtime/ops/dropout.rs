//! Seeded, differentiable dropout.
//!
//! candle's `ops::dropout` draws from an unseeded generator, so two runs differ; training must be
//! deterministic on CPU and resumable. Masks here come from a ChaCha generator seeded by a
//! per-thread seed and call counter (per thread, so concurrent runs and tests do not disturb
//! each other); the trainer sets the seed ([`seed_dropout`]) on the thread that runs the
//! forward passes and saves / restores the counter with its checkpoints ([`dropout_counter`],
//! [`set_dropout_counter`]). The mask is a constant, so the op is `x * mask / (1 - p)`.

use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::Cell;

thread_local! {
    static SEED: Cell<u64> = const { Cell::new(0) };
    static COUNTER: Cell<u64> = const { Cell::new(0) };
}

/// Sets this thread's dropout seed and restarts its call counter.
pub fn seed_dropout(seed: u64) {
    SEED.with(|s| s.set(seed));
    COUNTER.with(|c| c.set(0));
}

/// Number of dropout masks this thread drew since [`seed_dropout`] (save it in checkpoints).
pub fn dropout_counter() -> u64 {
    COUNTER.with(Cell::get)
}

/// Restores this thread's counter from a checkpoint.
pub fn set_dropout_counter(n: u64) {
    COUNTER.with(|c| c.set(n));
}

/// `x * mask / (1 - p)` with `mask ~ Bernoulli(1 - p)`; identity for `p <= 0`.
pub fn dropout(x: &Tensor, p: f32) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return x.zeros_like();
    }
    let call = COUNTER.with(|c| {
        let n = c.get();
        c.set(n + 1);
        n
    });
    let seed = SEED.with(Cell::get) ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.gen::<f32>() < p { 0.0 } else { keep })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x * mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn dropout_is_seeded_and_keeps_the_expectation() -> Result<()> {
        let x = Tensor::ones((100, 100), candle_core::DType::F32, &Device::Cpu)?;
        seed_dropout(7);
        let a = dropout(&x, 0.25)?;
        let after_one = dropout_counter();
        seed_dropout(7);
        let b = dropout(&x, 0.25)?;
        assert_eq!(after_one, 1);
        assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
        let c = dropout(&x, 0.25)?;
        assert_ne!(a.to_vec2::<f32>()?, c.to_vec2::<f32>()?);
        let mean = a.mean_all()?.to_scalar::<f32>()?;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        let zeros = a
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .filter(|v| **v == 0.0)
            .count();
        assert!((2200..2800).contains(&zeros), "{zeros}");
        Ok(())
    }
}
