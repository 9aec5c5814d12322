//! Rotary position embeddings in the "rotate half" layout of Hugging Face llama / mistral /
//! qwen2, with the default, linear and llama3 frequency schedules.
//!
//! [`apply_rotary`] is differentiable: on CPU candle's fused kernel wrapped with our backward
//! ([`RopeWithGrad`]), elsewhere the composite form (narrow, neg, cat, mul, add). Must not call
//! bare `candle_nn::rotary_emb::rope` on the training path (no backward).

use crate::runtime::ops::fused::RopeWithGrad;
use candle_core::{DType, Device, Result, Tensor, D};

/// How rope frequencies are rescaled for long contexts (`rope_scaling` in `config.json`).
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain `theta^(-2i/d)`.
    None,
    /// Frequencies divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3's piecewise schedule.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

/// Inverse frequencies of a rotary embedding over `head_dim`.
#[derive(Clone, Debug)]
pub struct Rotary {
    inv_freq: Vec<f32>,
}

impl Rotary {
    /// As transformers' `_compute_default_rope_parameters` and `_compute_llama3_parameters`.
    pub fn new(head_dim: usize, theta: f64, scaling: &RopeScaling) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| {
                // transformers computes theta ** (arange(0, d, 2).float() / d) in f32.
                let exp = (2 * i) as f32 / head_dim as f32;
                let f = 1.0f32 / (theta as f32).powf(exp);
                match *scaling {
                    RopeScaling::None => f,
                    RopeScaling::Linear { factor } => f / factor as f32,
                    RopeScaling::Llama3 {
                        factor,
                        low_freq_factor,
                        high_freq_factor,
                        original_max_position_embeddings: old,
                    } => {
                        let (factor, lo, hi, old) = (
                            factor as f32,
                            low_freq_factor as f32,
                            high_freq_factor as f32,
                            old as f32,
                        );
                        let low_wavelen = old / lo;
                        let high_wavelen = old / hi;
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        let scaled = if wavelen > low_wavelen { f / factor } else { f };
                        let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
                        if medium {
                            let smooth = (old / wavelen - lo) / (hi - lo);
                            (1.0 - smooth) * scaled / factor + smooth * scaled
                        } else {
                            scaled
                        }
                    }
                }
            })
            .collect();
        Self { inv_freq }
    }

    /// `cos` and `sin` of shape `[b, 1, s, head_dim]` for per-row positions `[b, s]` (u32/i64).
    pub fn cos_sin(&self, positions: &Tensor, dtype: DType) -> Result<(Tensor, Tensor)> {
        let device = positions.device();
        let half = self.inv_freq.len();
        let inv = Tensor::from_vec(self.inv_freq.clone(), (1, 1, half), device)?;
        let pos = positions.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
        let freqs = pos.broadcast_mul(&inv)?;
        let emb = Tensor::cat(&[&freqs, &freqs], D::Minus1)?.unsqueeze(1)?;
        Ok((emb.cos()?.to_dtype(dtype)?, emb.sin()?.to_dtype(dtype)?))
    }

    /// `cos` and `sin` of shape `[b, s, head_dim / 2]` (contiguous), for the fused kernel.
    pub fn cos_sin_half(&self, positions: &Tensor, dtype: DType) -> Result<(Tensor, Tensor)> {
        let device = positions.device();
        let half = self.inv_freq.len();
        let inv = Tensor::from_vec(self.inv_freq.clone(), (1, 1, half), device)?;
        let freqs = positions
            .to_dtype(DType::F32)?
            .unsqueeze(D::Minus1)?
            .broadcast_mul(&inv)?;
        Ok((
            freqs.cos()?.to_dtype(dtype)?.contiguous()?,
            freqs.sin()?.to_dtype(dtype)?.contiguous()?,
        ))
    }

    /// Positions `offset .. offset + s` for every row.
    pub fn positions(batch: usize, seq: usize, offset: usize, device: &Device) -> Result<Tensor> {
        let start = u32::try_from(offset).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let end =
            u32::try_from(offset + seq).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Tensor::arange(start, end, device)?
            .unsqueeze(0)?
            .repeat((batch, 1))
    }
}

/// Precomputed `cos` / `sin` for one forward pass.
#[derive(Clone, Debug)]
pub struct RopeTables {
    /// `[b, s, d/2]`, for the fused kernel.
    pub cos_half: Tensor,
    /// `[b, s, d/2]`.
    pub sin_half: Tensor,
}

impl RopeTables {
    /// Tables for per-row positions `[b, s]`.
    pub fn new(rotary: &Rotary, positions: &Tensor, dtype: DType) -> Result<Self> {
        let (cos_half, sin_half) = rotary.cos_sin_half(positions, dtype)?;
        Ok(Self { cos_half, sin_half })
    }
}

/// Rotary embedding of `x: [b, h, s, d]`, differentiable: fused with a backward pass on CPU
/// ([`RopeWithGrad`]), composite elsewhere.
pub fn apply_rotary(x: &Tensor, t: &RopeTables) -> Result<Tensor> {
    if x.device().is_cpu() {
        x.contiguous()?
            .apply_op3(&t.cos_half, &t.sin_half, RopeWithGrad)
    } else {
        let full = |h: &Tensor| -> Result<Tensor> { Tensor::cat(&[h, h], D::Minus1)?.unsqueeze(1) };
        apply_rotary_composite(x, &full(&t.cos_half)?, &full(&t.sin_half)?)
    }
}

/// `x * cos + rotate_half(x) * sin` for `x: [b, h, s, d]`, `cos`/`sin`: `[b, 1, s, d]`.
pub fn apply_rotary_composite(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d - d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::gradcheck::check_grad;

    #[test]
    fn rotary_at_position_zero_is_identity_and_norm_preserving() -> Result<()> {
        let dev = Device::Cpu;
        let rot = Rotary::new(8, 10000.0, &RopeScaling::None);
        let pos = Rotary::positions(1, 3, 0, &dev)?;
        let (cos, sin) = rot.cos_sin(&pos, DType::F64)?;
        let x = Tensor::randn(0f64, 1.0, (1, 2, 3, 8), &dev)?;
        let y = apply_rotary_composite(&x, &cos, &sin)?;
        let first = (y.narrow(2, 0, 1)? - x.narrow(2, 0, 1)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f64>()?;
        assert!(first < 1e-12);
        let nx = x.sqr()?.sum_all()?.to_scalar::<f64>()?;
        let ny = y.sqr()?.sum_all()?.to_scalar::<f64>()?;
        assert!((nx - ny).abs() < 1e-5 * nx);
        check_grad(&[1, 2, 3, 8], |x| apply_rotary_composite(x, &cos, &sin))?;
        let tables = RopeTables::new(&rot, &pos, DType::F64)?;
        check_grad(&[1, 2, 3, 8], |x| apply_rotary(x, &tables))
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let scaling = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64.0,
        };
        let plain = Rotary::new(8, 10000.0, &RopeScaling::None);
        let scaled = Rotary::new(8, 10000.0, &scaling);
        // wavelength 2*pi < 64/4: unchanged; the lowest frequency (wavelength 6283 > 64): / 8.
        assert_eq!(plain.inv_freq[0], scaled.inv_freq[0]);
        assert!((scaled.inv_freq[3] - plain.inv_freq[3] / 8.0).abs() < 1e-9);
    }
}
