//! OLoRA initialisation (Büyükakyüz, 2024), as PEFT's `olora_init`: the thin QR decomposition
//! `W = Q R` of the base weight `[out, in]`, `B = Q[:, :r]`, `A = R[:r, :]`, and the base keeps
//! the residual `W - s B A`.
//!
//! Only the first `r` columns of `Q` are needed: they are the modified Gram-Schmidt
//! orthonormalisation (done twice, for f64 round-off) of the first `r` columns of `W`, and
//! `R[:r, :] = Q[:, :r]^T W`. A column's sign may differ from LAPACK's Householder QR; the pair
//! (column of B, row of A) flips together, which leaves `B A`, every gradient step of AdamW and
//! so every trained output unchanged. Must not modify the base itself.

use crate::runtime::adapters::lora::{LoraAdapter, LoraSpec};
use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Result, Tensor, Var};

/// The adapter and the delta `s B A` to subtract from the base.
pub fn olora_adapter(base: &dyn FrozenWeight, spec: &LoraSpec) -> Result<(LoraAdapter, Tensor)> {
    let w = base.dequantize(DType::F64)?;
    let device = w.device().clone();
    let (out_f, in_f) = w.dims2()?;
    let r = spec.r;
    if r > out_f.min(in_f) {
        candle_core::bail!("OLoRA rank {r} exceeds min({out_f}, {in_f})");
    }
    let rows = w.to_vec2::<f64>()?;
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(r);
    for j in 0..r {
        let mut col: Vec<f64> = rows.iter().map(|row| row[j]).collect();
        for _ in 0..2 {
            for prev in &q {
                let dot: f64 = prev.iter().zip(&col).map(|(a, b)| a * b).sum();
                col.iter_mut().zip(prev).for_each(|(c, p)| *c -= dot * p);
            }
        }
        let norm = col.iter().map(|v| v * v).sum::<f64>().sqrt();
        let inv = if norm > 1e-300 { 1.0 / norm } else { 0.0 };
        col.iter_mut().for_each(|v| *v *= inv);
        q.push(col);
    }
    // B = Q_r: [out, r]; A = Q_r^T W: [r, in].
    let b_data: Vec<f64> = (0..out_f)
        .flat_map(|i| q.iter().map(move |c| c[i]))
        .collect();
    let b = Tensor::from_vec(b_data, (out_f, r), &device)?;
    let a = b.t()?.matmul(&w)?;
    let adapter = LoraAdapter {
        a: Var::from_tensor(&a.to_dtype(DType::F32)?)?,
        b: Var::from_tensor(&b.to_dtype(DType::F32)?)?,
        scale: spec.scale(),
        dropout: spec.dropout,
        magnitude: None,
        use_rslora: spec.use_rslora,
    };
    let delta = adapter.delta()?;
    Ok((adapter, delta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::dense::DenseWeight;
    use candle_core::Device;

    #[test]
    fn olora_is_the_thin_qr_of_the_weight() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (12, 10), &dev)?;
        let spec = LoraSpec {
            r: 10,
            alpha: 20.0,
            ..LoraSpec::default()
        };
        let (ad, delta) = olora_adapter(&DenseWeight::new(w.clone()), &spec)?;
        // Full rank r = in: B A = Q R = W, so the delta is s W and B has orthonormal columns.
        let err = ((delta / 2.0)? - &w)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(err < 1e-4, "{err}");
        let btb = ad.b.as_tensor().t()?.matmul(ad.b.as_tensor())?;
        let eye = Tensor::eye(10, DType::F32, &dev)?;
        let d = (btb - eye)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-5, "{d}");
        // A = R is upper triangular.
        let a = ad.a.as_tensor().to_vec2::<f32>()?;
        for (i, row) in a.iter().enumerate() {
            for v in row.iter().take(i) {
                assert!(v.abs() < 1e-5, "{v}");
            }
        }
        Ok(())
    }
}
