//! Seeded dropout, the only dropout of the runtime (models, LoRA and bottleneck adapters).
//!
//! candle cannot seed its CPU RNG, so nothing calls `candle_nn::ops::dropout`: masks come from a
//! per-thread ChaCha8 stream that the training loop seeds, saves in checkpoints and restores on
//! resume, so two runs of one config train the same weights and a resumed run draws the same
//! masks. Per thread, so concurrent runs and tests do not disturb each other. Outside a training
//! loop the stream starts from seed 0. Must not be used for anything but dropout masks (other
//! draws would shift the stream).

use candle_core::{DType, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

thread_local! {
    static RNG: RefCell<ChaCha8Rng> = RefCell::new(ChaCha8Rng::seed_from_u64(0));
}

/// The position of this thread's dropout stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The ChaCha8 seed (32 bytes, hex).
    pub seed: String,
    /// Words consumed so far (a u128 as decimal text, JSON has no u128).
    pub word_pos: String,
}

/// Reseeds this thread's dropout stream.
pub fn seed(seed: u64) {
    RNG.with(|r| *r.borrow_mut() = ChaCha8Rng::seed_from_u64(seed));
}

/// The stream's current position.
pub fn state() -> RngState {
    RNG.with(|r| {
        let r = r.borrow();
        RngState {
            seed: r.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            word_pos: r.get_word_pos().to_string(),
        }
    })
}

/// Puts the stream back where [`state`] found it. `Err` names what is malformed.
pub fn restore(state: &RngState) -> std::result::Result<(), String> {
    if state.seed.len() != 64 {
        return Err(format!("rng seed `{}` is not 32 hex bytes", state.seed));
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        let hex = state.seed.get(2 * i..2 * i + 2).unwrap_or("");
        *b = u8::from_str_radix(hex, 16).map_err(|e| format!("rng seed: {e}"))?;
    }
    let pos: u128 = state
        .word_pos
        .parse()
        .map_err(|e| format!("rng word_pos `{}`: {e}", state.word_pos))?;
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_word_pos(pos);
    RNG.with(|r| *r.borrow_mut() = rng);
    Ok(())
}

/// Inverted dropout: zeroes each element with probability `p` and scales the rest by
/// `1 / (1 - p)`. `p = 0` returns the input unchanged and draws nothing.
///
/// On the CPU for f32 the mask lives inside the op as one byte per element ([`DropoutOp`]), so
/// the gradient graph holds neither an f32 mask tensor nor a gradient for it (candle's backward
/// of `x * mask` computes and keeps a full-size gradient for the constant mask); elsewhere
/// `x * mask`. Both draw the same stream and give the same values.
pub fn dropout(xs: &Tensor, p: f32) -> Result<Tensor> {
    if p == 0.0 {
        return Ok(xs.clone());
    }
    if !(0.0..1.0).contains(&p) {
        candle_core::bail!("dropout probability has to be in [0, 1), got {p}")
    }
    let scale = 1.0 / (1.0 - p);
    let keep = draw_keep(xs.elem_count(), p);
    if xs.device().is_cpu() && xs.dtype() == DType::F32 {
        return xs.contiguous()?.apply_op1(DropoutOp {
            keep: std::sync::Arc::new(keep),
            scale,
        });
    }
    let mask: Vec<f32> = keep.iter().map(|&k| if k { scale } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?;
    let mask = if xs.dtype() == DType::F32 {
        mask
    } else {
        mask.to_dtype(xs.dtype())?
    };
    xs * mask
}

/// `n` keep flags from this thread's stream, each kept with probability `1 - p`: the draws
/// [`dropout`] makes for a tensor of `n` elements (ops that apply dropout inside themselves use
/// this, so they draw the same stream). The stream's words are taken in block fills of 64 Ki
/// words and turned into flags on rayon's threads; each flag is what `gen::<f32>() >= p` gives for its
/// word (rand's 24-bit float), so the flags and the stream's position are those of drawing one
/// float per element.
pub fn draw_keep(n: usize, p: f32) -> Vec<bool> {
    /// Words drawn per block fill (the scratch for them stays small).
    const BLOCK: usize = 1 << 16;
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    let mut keep = vec![false; n];
    let mut words = vec![0u32; n.min(BLOCK)];
    RNG.with(|r| {
        let mut r = r.borrow_mut();
        for flags in keep.chunks_mut(BLOCK) {
            let words = &mut words[..flags.len()];
            r.fill(&mut words[..]);
            flags
                .par_iter_mut()
                .zip(words.par_iter())
                .with_min_len(1 << 13)
                .for_each(|(k, &w)| *k = (w >> 8) as f32 * SCALE >= p);
        }
    });
    keep
}

/// `x * mask * scale` with the mask kept as bytes; its backward is `grad * mask * scale`.
#[derive(Debug, Clone)]
pub struct DropoutOp {
    keep: std::sync::Arc<Vec<bool>>,
    scale: f32,
}

impl DropoutOp {
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let scale = self.scale;
        x.par_iter()
            .zip(self.keep.par_iter())
            .with_min_len(1 << 14)
            .map(|(&v, &k)| if k { v * scale } else { 0.0 })
            .collect()
    }
}

impl candle_core::CustomOp1 for DropoutOp {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let x = match s {
            candle_core::CpuStorage::F32(v) => v,
            _ => candle_core::bail!("dropout: f32 input expected"),
        };
        let x = match l.contiguous_offsets() {
            Some((a, b)) if b - a == self.keep.len() => x.get(a..b).unwrap_or(&[]),
            _ => candle_core::bail!("dropout: contiguous input of the mask's size expected"),
        };
        Ok((
            candle_core::CpuStorage::F32(self.apply(x)),
            l.shape().clone(),
        ))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.to_dtype(DType::F32)?.contiguous()?;
        let out = super::with_cpu_slice::<f32, _>(&g, "dropout", |v| {
            if v.len() != self.keep.len() {
                candle_core::bail!("dropout: gradient of the wrong size")
            }
            Ok(self.apply(v))
        })?;
        let out = Tensor::from_vec(out, grad.shape(), grad.device())?;
        Ok(Some(out.to_dtype(grad.dtype())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn block_drawn_flags_equal_one_float_per_element() {
        for (n, p) in [
            (0usize, 0.1f32),
            (1, 0.5),
            (7, 0.1),
            (100_003, 0.1),
            (200_000, 0.3),
            (40_000, 0.9),
        ] {
            seed(11);
            let _ = draw_keep(3, 0.5);
            let fast = draw_keep(n, p);
            let after = state();
            seed(11);
            let _ = draw_keep(3, 0.5);
            let slow: Vec<bool> = RNG.with(|r| {
                let mut r = r.borrow_mut();
                (0..n).map(|_| r.gen::<f32>() >= p).collect()
            });
            assert_eq!(fast, slow, "n {n} p {p}");
            assert_eq!(state(), after, "n {n}: the stream's position");
        }
    }

    #[test]
    fn dropout_is_seeded_restorable_and_keeps_the_expectation() -> Result<()> {
        let x = Tensor::ones((100, 100), DType::F32, &Device::Cpu)?;
        seed(7);
        let a = dropout(&x, 0.25)?.to_vec2::<f32>()?;
        let after_one = state();
        let b = dropout(&x, 0.25)?.to_vec2::<f32>()?;
        assert_ne!(a, b, "the stream moves on");
        seed(7);
        assert_eq!(
            dropout(&x, 0.25)?.to_vec2::<f32>()?,
            a,
            "same seed, same mask"
        );
        restore(&after_one).map_err(candle_core::Error::Msg)?;
        assert_eq!(dropout(&x, 0.25)?.to_vec2::<f32>()?, b, "restored position");
        let flat: Vec<f32> = a.into_iter().flatten().collect();
        let mean = flat.iter().sum::<f32>() / flat.len() as f32;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        let zeros = flat.iter().filter(|v| **v == 0.0).count();
        assert!((2200..2800).contains(&zeros), "{zeros}");
        Ok(())
    }

    #[test]
    fn gradient_is_the_mask_and_equals_the_f64_path() -> Result<()> {
        let dev = Device::Cpu;
        let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, (8, 16), &dev)?)?;
        seed(3);
        let y = dropout(x.as_tensor(), 0.5)?;
        let g = y.sum_all()?.backward()?;
        let grad = g
            .get(x.as_tensor())
            .expect("gradient of x")
            .to_vec2::<f32>()?;
        let (yv, xv) = (y.to_vec2::<f32>()?, x.as_tensor().to_vec2::<f32>()?);
        for ((gr, yr), xr) in grad.iter().zip(&yv).zip(&xv) {
            for ((g, y), x) in gr.iter().zip(yr).zip(xr) {
                let expected = if *y == 0.0 { 0.0 } else { 2.0 };
                assert_eq!(*g, expected, "x {x} y {y}");
                assert!(*y == 0.0 || (*y - 2.0 * x).abs() < 1e-6);
            }
        }
        // The tensor path (other dtypes and devices) draws the same mask.
        seed(3);
        let y64 = dropout(&x.as_tensor().to_dtype(DType::F64)?, 0.5)?;
        let diff = (y64.to_dtype(DType::F32)? - y)?.abs()?.max_all()?;
        assert!(diff.to_scalar::<f32>()? < 1e-6);
        Ok(())
    }
}
