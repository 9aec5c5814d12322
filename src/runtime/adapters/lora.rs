//! One LoRA (or DoRA) adapter of one linear layer: its trainable matrices, scale and dropout,
//! and how they are initialised.
//!
//! `A: [r, in]`, `B: [out, r]`, scale `alpha / r` (rsLoRA: `alpha / sqrt(r)`); DoRA adds a
//! trainable magnitude vector `[out]`. Inits follow PEFT: Kaiming-uniform A (a = sqrt 5, i.e.
//! `U(-1/sqrt(in), 1/sqrt(in))`) with zero B; gaussian A `N(0, 1/r)` with zero B; PiSSA from the
//! base weight's top singular vectors (see [`super::pissa`]); OLoRA from its QR decomposition
//! (see [`super::olora`]). Must not touch the base weight
//! except through the PiSSA residual the caller installs.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a new adapter's matrices start.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum LoraInit {
    /// PEFT's default: Kaiming-uniform A, zero B (the model starts equal to the base).
    #[default]
    KaimingUniform,
    /// Gaussian A with std `1/r`, zero B.
    Gaussian,
    /// PiSSA: A and B from the top-r singular triplets of W; the base keeps the residual.
    Pissa,
    /// OLoRA: A and B from the QR decomposition of W; the base keeps the residual.
    Olora,
    /// A and B both random (tests and benchmarks): std of the normal distribution.
    RandomBoth { std: f64 },
}

/// Scale, rank and dropout of one adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraSpec {
    /// Rank `r`.
    pub r: usize,
    /// `lora_alpha`.
    pub alpha: f64,
    /// rsLoRA: scale `alpha / sqrt(r)` instead of `alpha / r`.
    pub use_rslora: bool,
    /// DoRA: a trainable magnitude vector.
    pub use_dora: bool,
    /// Dropout probability on the adapter path (training only).
    pub dropout: f32,
    /// How the matrices start.
    pub init: LoraInit,
    /// Seed of the initialisation.
    pub seed: u64,
}

impl Default for LoraSpec {
    fn default() -> Self {
        Self {
            r: 8,
            alpha: 8.0,
            use_rslora: false,
            use_dora: false,
            dropout: 0.0,
            init: LoraInit::KaimingUniform,
            seed: 0,
        }
    }
}

impl LoraSpec {
    /// `alpha / r`, or `alpha / sqrt(r)` with rsLoRA.
    pub fn scale(&self) -> f64 {
        let r = self.r.max(1) as f64;
        if self.use_rslora {
            self.alpha / r.sqrt()
        } else {
            self.alpha / r
        }
    }
}

/// The trainable parts of one adapter on one layer.
#[derive(Clone, Debug)]
pub struct LoraAdapter {
    /// `[r, in]`.
    pub a: Var,
    /// `[out, r]`.
    pub b: Var,
    /// Multiplies `B A`.
    pub scale: f64,
    /// Dropout probability on the adapter input (training only).
    pub dropout: f32,
    /// DoRA magnitude `[out]`.
    pub magnitude: Option<Var>,
    /// Whether the scale came from rsLoRA (kept for weighted combinations, as PEFT does).
    pub use_rslora: bool,
}

impl LoraAdapter {
    /// Rank.
    pub fn rank(&self) -> usize {
        self.a.dims().first().copied().unwrap_or(0)
    }

    /// `scale * B @ A`, `[out, in]`, f32, detached.
    pub fn delta(&self) -> Result<Tensor> {
        let a = self.a.as_tensor().to_dtype(DType::F32)?;
        let b = self.b.as_tensor().to_dtype(DType::F32)?;
        (b.matmul(&a)? * self.scale)?.detach().contiguous()
    }

    /// A new adapter for an `[out, in]` layer with Kaiming-uniform, gaussian or random init
    /// (PiSSA and OLoRA are built from the base weight by [`super::pissa::pissa_adapter`] and
    /// [`super::olora::olora_adapter`]).
    pub fn init(spec: &LoraSpec, out_f: usize, in_f: usize, device: &Device) -> Result<Self> {
        let r = spec.r;
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let (a, b): (Vec<f32>, Vec<f32>) = match spec.init {
            LoraInit::KaimingUniform | LoraInit::Pissa | LoraInit::Olora => {
                let bound = 1.0 / (in_f.max(1) as f32).sqrt();
                let a = (0..r * in_f)
                    .map(|_| rng.gen_range(-bound..bound))
                    .collect();
                (a, vec![0.0; out_f * r])
            }
            LoraInit::Gaussian => {
                let std = 1.0 / r.max(1) as f32;
                let a = (0..r * in_f).map(|_| std * normal(&mut rng)).collect();
                (a, vec![0.0; out_f * r])
            }
            LoraInit::RandomBoth { std } => {
                let std = std as f32;
                let a = (0..r * in_f).map(|_| std * normal(&mut rng)).collect();
                let b = (0..out_f * r).map(|_| std * normal(&mut rng)).collect();
                (a, b)
            }
        };
        Ok(Self {
            a: Var::from_tensor(&Tensor::from_vec(a, (r, in_f), device)?)?,
            b: Var::from_tensor(&Tensor::from_vec(b, (out_f, r), device)?)?,
            scale: spec.scale(),
            dropout: spec.dropout,
            magnitude: None,
            use_rslora: spec.use_rslora,
        })
    }
}

impl LoraInit {
    /// Whether the init moves part of the base weight into the adapter (PiSSA, OLoRA): the
    /// trained adapter is only valid on the residual base until converted to a plain LoRA
    /// ([`super::convert::to_plain_lora`]).
    pub fn mutates_base(&self) -> bool {
        matches!(self, LoraInit::Pissa | LoraInit::Olora)
    }
}

/// A standard normal sample (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// Row norms `||W[i, :]||` of an `[out, in]` matrix, `[out]` (DoRA's column norm in PEFT terms).
pub fn row_norms(w: &Tensor) -> Result<Tensor> {
    w.sqr()?.sum(1)?.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaiming_and_gaussian_inits_follow_peft() -> Result<()> {
        let dev = Device::Cpu;
        let spec = LoraSpec {
            r: 4,
            alpha: 16.0,
            ..LoraSpec::default()
        };
        assert_eq!(spec.scale(), 4.0);
        assert_eq!(
            LoraSpec {
                use_rslora: true,
                ..spec.clone()
            }
            .scale(),
            8.0
        );
        let ad = LoraAdapter::init(&spec, 10, 64, &dev)?;
        let a = ad.a.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        // Kaiming-uniform with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in)) = U(-0.125, 0.125).
        assert!(a.iter().all(|v| v.abs() <= 0.125));
        assert!(a.iter().any(|v| v.abs() > 0.1));
        assert_eq!(ad.b.as_tensor().abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
        assert_eq!(ad.delta()?.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
        let g = LoraAdapter::init(
            &LoraSpec {
                init: LoraInit::Gaussian,
                r: 4,
                ..spec
            },
            10,
            4000,
            &dev,
        )?;
        let v = g.a.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        assert!((std - 0.25).abs() < 0.01, "std {std}");
        Ok(())
    }
}
