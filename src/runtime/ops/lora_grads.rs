//! The gradients of a LoRA layer's factors, from the output gradient `g: [m, n]`, the kept
//! `t = x_d (s A)^T: [m, r]` and the layer input `x_d: [m, k]`:
//! - `u = g B` (`[m, r]`) and `dB = g^T t` (`[n, r]`) from one pass over `g`;
//! - `dA = s u^T x_d` (`[r, k]`) from one pass over `x_d`.
//!
//! With `r` far below `m`, `n` and `k` these products do a few multiply-adds per value they
//! read and run at the speed their big operand streams in: as whole-matrix products `g` was
//! read twice, and `dB`'s product (a narrow output summed over the tokens) ran at a fraction
//! of that speed. Here the tokens go in chunks of [`CHUNK`] rows or more (at most
//! [`MAX_CHUNKS`] chunks), each on one thread, and a chunk in blocks of [`BLOCK`] rows that
//! stay in the core's cache between the two products that read them; each chunk sums into
//! its own `dB` and `dA`, and the chunks' sums are added in chunk order, so the result does
//! not depend on the number of threads. Must stay the same products as
//! [`super::lora_linear`]'s composite form within rounding (its tests compare them).

use super::gemm::{gemm_strided, View};
use candle_core::{Result, WithDType};
use rayon::prelude::*;

/// Tokens per parallel task (its own partial sums), at least.
const CHUNK: usize = 256;
/// At most this many partial sums (longer chunks for more tokens): each holds a whole `dB`
/// or `dA` until they are added.
const MAX_CHUNKS: usize = 16;

/// Tokens per chunk for `m` tokens: a function of `m` alone, so that the sums do not depend
/// on the number of threads.
fn chunk(m: usize) -> usize {
    CHUNK.max(m.div_ceil(MAX_CHUNKS))
}
/// Tokens per pair of products within a chunk: a block of `g` (`BLOCK x n` values, 352 KiB
/// for `n` = 1,376 in f32) is read by the second product from the cache the first left it in.
const BLOCK: usize = 64;

/// `(u, dB)`: `u = g B` (`[m, r]`) and `dB = g^T t` (`[n, r]`) for `g: [m, n]`, `b: [n, r]`
/// and `t: [m, r]`.
pub(crate) fn u_and_db<T: WithDType>(
    g: &[T],
    b: &[T],
    t: &[T],
    (m, n, r): (usize, usize, usize),
) -> Result<(Vec<T>, Vec<T>)> {
    // SAFETY: `u_and_db_into` writes every value of `u` (`m` rows of `r`, `r` apart).
    let mut u = unsafe { super::uninit::<T>(m * r) };
    let db = u_and_db_into((&mut u, r), g, b, (t, r), (m, n, r))?;
    Ok((u, db))
}

/// `dB` as [`u_and_db`] computes it, with `u` written into `u: (values, row stride)` (its
/// `r` values of each row, the rest untouched) and `t: (values, row stride)`: `u` and `t`
/// may be column blocks of wider matrices (several layers' stacked).
pub(crate) fn u_and_db_into<T: WithDType>(
    (u, u_rs): (&mut [T], usize),
    g: &[T],
    b: &[T],
    (t, t_rs): (&[T], usize),
    (m, n, r): (usize, usize, usize),
) -> Result<Vec<T>> {
    let fits = |len: usize, rs: usize| rs >= r && (m == 0 || len >= (m - 1) * rs + r);
    if g.len() != m * n || b.len() != n * r || !fits(u.len(), u_rs) || !fits(t.len(), t_rs) {
        candle_core::bail!("lora-grads: g, B, t and u do not fit {m} tokens, {n} outputs, rank {r}")
    }
    if m == 0 || n == 0 || r == 0 {
        // An empty sum is zero.
        for row in u.chunks_mut(u_rs.max(1)).take(m) {
            row[..r].fill(T::from_f64(0.0));
        }
        return Ok(vec![T::from_f64(0.0); n * r]);
    }
    // Each chunk's `dB^T` (`[r, n]`): the output's long side along the kernels' vectors.
    let chunk = chunk(m);
    let partials = u
        .par_chunks_mut(chunk * u_rs)
        .enumerate()
        .map(|(c, u)| {
            let rows = c * chunk..(c * chunk + chunk).min(m);
            // SAFETY: the chunk's first product overwrites `dbt` (not accumulating).
            let mut dbt = unsafe { super::uninit::<T>(r * n) };
            for (i, s) in rows.clone().step_by(BLOCK).enumerate() {
                let e = (s + BLOCK).min(rows.end);
                let gb = View::new(&g[s * n..e * n], e - s, n)?;
                let tb = View::strided(&t[s * t_rs..], e - s, r, t_rs)?;
                let ub = &mut u[(s - rows.start) * u_rs..];
                gemm_strided(ub, u_rs, (gb, View::new(b, n, r)?), false, 1.0, false)?;
                gemm_strided(&mut dbt, n, (tb.t(), gb), i > 0, 1.0, false)?;
            }
            Ok(dbt)
        })
        .collect::<Result<Vec<_>>>()?;
    let dbt = sum_in_order(partials);
    // SAFETY: the loop below writes every value of `db` (`n x r` of them).
    let mut db = unsafe { super::uninit::<T>(n * r) };
    for (j, row) in dbt.chunks_exact(n).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            db[i * r + j] = v;
        }
    }
    Ok(db)
}

/// `dA = diag(s) u^T x_d` (`[r, k]`) for `u: (values, row stride)` holding `m` rows of `r`
/// values, `x_d: [m, k]` and a scale per row of `dA` (`scales`, `r` of them).
pub(crate) fn da<T: WithDType>(
    (u, u_rs): (&[T], usize),
    x: &[T],
    scales: &[f64],
    (m, k, r): (usize, usize, usize),
) -> Result<Vec<T>> {
    let fits = u_rs >= r && (m == 0 || u.len() >= (m - 1) * u_rs + r);
    if !fits || x.len() != m * k || scales.len() != r {
        candle_core::bail!("lora-grads: u and x do not fit {m} tokens, {k} inputs, rank {r}")
    }
    if m == 0 || k == 0 || r == 0 {
        return Ok(vec![T::from_f64(0.0); r * k]);
    }
    let chunk = chunk(m);
    let partials = (0..m.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let rows = c * chunk..(c * chunk + chunk).min(m);
            // SAFETY: the chunk's first product overwrites `part` (not accumulating).
            let mut part = unsafe { super::uninit::<T>(r * k) };
            for (i, s) in rows.clone().step_by(BLOCK).enumerate() {
                let e = (s + BLOCK).min(rows.end);
                let ub = View::strided(&u[s * u_rs..], e - s, r, u_rs)?;
                let xb = View::new(&x[s * k..e * k], e - s, k)?;
                gemm_strided(&mut part, k, (ub.t(), xb), i > 0, 1.0, false)?;
            }
            Ok(part)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut da = sum_in_order(partials);
    for (row, &s) in da.chunks_exact_mut(k).zip(scales) {
        let s = T::from_f64(s);
        for v in row {
            *v *= s;
        }
    }
    Ok(da)
}

/// The element-wise sum of equally long buffers, added in their order.
fn sum_in_order<T: WithDType>(parts: Vec<Vec<T>>) -> Vec<T> {
    let mut parts = parts.into_iter();
    let mut sum = parts.next().unwrap_or_default();
    for p in parts {
        for (a, &b) in sum.iter_mut().zip(&p) {
            *a += b;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect()
    }

    /// Plain triple loops, the definition.
    fn reference(
        g: &[f64],
        b: &[f64],
        t: &[f64],
        x: &[f64],
        s: f64,
        (m, n, r, k): (usize, usize, usize, usize),
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut u = vec![0.0; m * r];
        let mut db = vec![0.0; n * r];
        let mut da = vec![0.0; r * k];
        for i in 0..m {
            for j in 0..r {
                u[i * r + j] = (0..n).map(|l| g[i * n + l] * b[l * r + j]).sum();
            }
        }
        for l in 0..n {
            for j in 0..r {
                db[l * r + j] = (0..m).map(|i| g[i * n + l] * t[i * r + j]).sum();
            }
        }
        for j in 0..r {
            for c in 0..k {
                da[j * k + c] = s * (0..m).map(|i| u[i * r + j] * x[i * k + c]).sum::<f64>();
            }
        }
        (u, db, da)
    }

    #[test]
    fn chunked_products_equal_the_plain_sums_for_every_token_count() -> Result<()> {
        // Token counts below, at and across the block and chunk sizes, and ranks 1 and 5.
        for (m, n, r, k) in [
            (1, 3, 1, 2),
            (63, 7, 5, 9),
            (64, 8, 2, 3),
            (300, 5, 5, 4),
            (4200, 3, 2, 2),
        ] {
            let (g, b, t, x) = (
                values(m * n, 1),
                values(n * r, 2),
                values(m * r, 3),
                values(m * k, 4),
            );
            let (u, db) = u_and_db(&g, &b, &t, (m, n, r))?;
            let da = da((&u, r), &x, &vec![0.5; r], (m, k, r))?;
            let (ru, rdb, rda) = reference(&g, &b, &t, &x, 0.5, (m, n, r, k));
            for (got, want) in [(&u, &ru), (&db, &rdb), (&da, &rda)] {
                assert_eq!(got.len(), want.len());
                for (a, b) in got.iter().zip(want) {
                    assert!((a - b).abs() < 1e-12, "{a} vs {b} at m {m}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn the_result_does_not_depend_on_the_thread_count() -> Result<()> {
        let (m, n, r, k) = (700, 33, 4, 17);
        let (g, b, t, x) = (
            values(m * n, 5),
            values(n * r, 6),
            values(m * r, 7),
            values(m * k, 8),
        );
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            pool.install(|| -> Result<_> {
                let (u, db) = u_and_db(&g, &b, &t, (m, n, r))?;
                Ok((da((&u, r), &x, &vec![2.0; r], (m, k, r))?, u, db))
            })
        };
        assert_eq!(run(1)?, run(3)?);
        Ok(())
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        assert!(u_and_db(&[0f32; 6], &[0f32; 3], &[0f32; 2], (2, 3, 1)).is_ok());
        assert!(u_and_db(&[0f32; 5], &[0f32; 3], &[0f32; 2], (2, 3, 1)).is_err());
        assert!(da((&[0f32; 2], 1), &[0f32; 5], &[1.0], (2, 3, 1)).is_err());
        assert!(da((&[0f32; 2], 1), &[0f32; 6], &[1.0, 2.0], (2, 3, 1)).is_err());
    }
}
