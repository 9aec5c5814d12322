//! PiSSA initialisation (Meng et al., 2024): A and B from the top-r singular triplets of the
//! base weight, `A = sqrt(S_r / s) V_r^T`, `B = U_r sqrt(S_r / s)`, so that `s B A` is the best
//! rank-r approximation of `W` and the base keeps the residual `W - s B A`.
//!
//! The SVD is exact, as PEFT's `init_lora_weights = "pissa"` (`torch.linalg.svd`), when the
//! smaller side of `W` is at most [`EXACT_LIMIT`]: the Gram matrix of the whole range of `W` is
//! eigen-decomposed in f64. Above it, randomized subspace iteration (PEFT's `pissa_niter_8`
//! variant) keeps the cost down; it is exact for matrices of rank <= r + 8. A singular pair's
//! sign is arbitrary (as LAPACK's): a column of B and the row of A flip together, which leaves
//! `B A` and every AdamW step unchanged. Must not modify the base itself.

use crate::runtime::adapters::lora::{LoraAdapter, LoraSpec};
use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Result, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Up to this many rows or columns, the SVD is exact (PEFT's `"pissa"`).
pub const EXACT_LIMIT: usize = 384;

/// The adapter and the delta `s B A` to subtract from the base.
// Index loops mirror the linear-algebra formulas.
#[allow(clippy::needless_range_loop)]
pub fn pissa_adapter(base: &dyn FrozenWeight, spec: &LoraSpec) -> Result<(LoraAdapter, Tensor)> {
    let w = base.dequantize(DType::F64)?;
    let device = w.device().clone();
    let (out_f, in_f) = w.dims2()?;
    let r = spec.r;
    let exact = out_f.min(in_f) <= EXACT_LIMIT;
    let k = if exact {
        out_f.min(in_f)
    } else {
        (r + 8).min(out_f.min(in_f))
    };
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let omega: Vec<f64> = (0..in_f * k).map(|_| rand_distr_normal(&mut rng)).collect();
    // Exact: k random directions span the whole range of W (almost surely), one pass suffices;
    // a second orthonormalisation against W's range removes round-off.
    let mut q = orthonormal(&w.matmul(&Tensor::from_vec(omega, (in_f, k), &device)?)?)?;
    let iterations = if exact { 1 } else { 8 };
    for _ in 0..iterations {
        let z = orthonormal(&w.t()?.matmul(&q)?)?;
        q = orthonormal(&w.matmul(&z)?)?;
    }
    // Small problem: M = Q^T W (k x in); eigen-decompose M M^T (k x k) with Jacobi.
    let m = q.t()?.matmul(&w)?;
    let mmt = m.matmul(&m.t()?)?.to_vec2::<f64>()?;
    let (evals, evecs) = jacobi_eigen(mmt);
    let mut order: Vec<usize> = (0..evals.len()).collect();
    order.sort_by(|&a, &b| evals[b].total_cmp(&evals[a]));
    let scale = spec.scale();
    let mut a_rows = Vec::with_capacity(r * in_f);
    let mut b_cols = vec![0f64; out_f * r];
    let qv = q.to_vec2::<f64>()?;
    let mv = m.to_vec2::<f64>()?;
    for (j, &idx) in order.iter().take(r).enumerate() {
        let sigma = evals[idx].max(0.0).sqrt();
        let u_small: Vec<f64> = (0..k).map(|i| evecs[i][idx]).collect();
        // v^T = u_small^T M / sigma; u = Q u_small.
        let root = (sigma / scale).sqrt();
        for c in 0..in_f {
            let v: f64 = (0..k).map(|i| u_small[i] * mv[i][c]).sum::<f64>();
            let v = if sigma > 0.0 { v / sigma } else { 0.0 };
            a_rows.push(root * v);
        }
        for (row, qrow) in qv.iter().enumerate() {
            let u: f64 = (0..k).map(|i| qrow[i] * u_small[i]).sum();
            b_cols[row * r + j] = root * u;
        }
    }
    let a = Tensor::from_vec(a_rows, (r, in_f), &device)?.to_dtype(DType::F32)?;
    let b = Tensor::from_vec(b_cols, (out_f, r), &device)?.to_dtype(DType::F32)?;
    let adapter = LoraAdapter {
        a: Var::from_tensor(&a)?,
        b: Var::from_tensor(&b)?,
        scale,
        dropout: spec.dropout,
        magnitude: None,
        use_rslora: spec.use_rslora,
    };
    let delta = adapter.delta()?;
    Ok((adapter, delta))
}

fn rand_distr_normal(rng: &mut ChaCha8Rng) -> f64 {
    use rand::Rng;
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Orthonormal columns of `[n, k]` by modified Gram-Schmidt (zero columns stay zero).
#[allow(clippy::needless_range_loop)]
fn orthonormal(y: &Tensor) -> Result<Tensor> {
    let (n, k) = y.dims2()?;
    let rows = y.to_vec2::<f64>()?;
    let mut cols: Vec<Vec<f64>> = (0..k)
        .map(|j| rows.iter().map(|r| r[j]).collect())
        .collect();
    for j in 0..k {
        for i in 0..j {
            let dot: f64 = (0..n).map(|t| cols[i][t] * cols[j][t]).sum();
            for t in 0..n {
                cols[j][t] -= dot * cols[i][t];
            }
        }
        let norm: f64 = cols[j].iter().map(|v| v * v).sum::<f64>().sqrt();
        let inv = if norm > 1e-12 { 1.0 / norm } else { 0.0 };
        cols[j].iter_mut().for_each(|v| *v *= inv);
    }
    let data: Vec<f64> = (0..n)
        .flat_map(|t| cols.iter().map(move |c| c[t]))
        .collect();
    Tensor::from_vec(data, (n, k), y.device())
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix, cyclic Jacobi.
#[allow(clippy::needless_range_loop)]
fn jacobi_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut v: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-24 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::dense::DenseWeight;
    use candle_core::Device;

    #[test]
    fn pissa_recovers_a_low_rank_weight() -> Result<()> {
        let dev = Device::Cpu;
        // W of rank 3: the rank-3 PiSSA adapter must reproduce it and leave a zero residual.
        let u = Tensor::randn(0f32, 1.0, (12, 3), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (3, 10), &dev)?;
        let w = u.matmul(&v)?;
        let spec = LoraSpec {
            r: 3,
            alpha: 6.0,
            ..LoraSpec::default()
        };
        let (ad, delta) = pissa_adapter(&DenseWeight::new(w.clone()), &spec)?;
        let err = (delta - &w)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(err < 1e-4, "{err}");
        // Symmetric split: A A^T and B^T B have the same diagonal (both S_r / s).
        let aat = ad.a.as_tensor().matmul(&ad.a.as_tensor().t()?)?;
        let btb = ad.b.as_tensor().t()?.matmul(ad.b.as_tensor())?;
        let d = (aat - btb)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-3, "{d}");
        Ok(())
    }
}
