//! Scaled dot-product attention with an additive bias, optional rotary embedding (decoders) and
//! optional dropout of the probabilities (BERT in training), for grouped-query (GQA) heads, as
//! one op with a hand-written backward pass. Inputs are the projections as they come out of the
//! query, key and value layers (`[b, s, heads * d]`), the output is the context in the layout
//! the output layer takes (`[b, s, heads * d]`).
//!
//! The composite form (reshape, transpose, RoPE, copies, repeat of key/value heads, `q k^T`,
//! scale, bias, softmax, dropout, `p v`, transpose, reshape) is about fifteen graph nodes a
//! layer, each with its zero-filled gradient buffer and add in candle's backward, and it keeps
//! the scores four times over plus a gradient for the constant bias. This op keeps its inputs,
//! its output and (with dropout) a one-byte mask per probability: the backward recomputes the
//! rotated heads and the probabilities (a few percent of the layer's products) and, per head `h`
//! of a key/value group `g`, with `P = softmax(S)`, `S = scale q_h k_g^T + bias`, `D` the
//! dropout mask times `1 / (1 - p)` (all ones without dropout):
//! - `dv_g += (P D)^T dO_h`, `dP = (dO_h v_g^T) D`, `dS = P * (dP - rowsum(dP * P))`;
//! - `dq_h = scale dS k_g`, `dk_g += scale dS^T q_h`, both rotated back (RoPE is a rotation:
//!   its gradient is the rotation by `-sin`).
//!
//! Rows of the batch run in parallel on rayon's threads. Within a row, queries go in blocks of
//! 32 that compute only the key columns up to the last one any of them sees: a causal mask
//! skips about half of the products, a padded row its padding. The skipped probabilities are
//! exactly 0 in the full computation; what changes is the work and, in the last bits, the
//! rounding of the smaller products. CPU, f32 and f64 ([`applies`]); the caller takes the
//! composite form elsewhere. Tests compare both forms and the gradients with
//! finite differences. Must not give the bias or the rotary tables a gradient, and must draw
//! dropout masks as the composite form does (the caller draws them, [`AttentionDropout`]).

use super::contiguous_slice;
use super::gemm::{gemm_strided, View};
use super::vexp;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// Head counts and sizes.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    /// Query heads.
    pub q: usize,
    /// Key/value heads (divides `q`).
    pub kv: usize,
    /// Size of one head.
    pub dim: usize,
}

/// Dropout of the probabilities: one keep flag per element of `[b, heads, s, s]` (the order of
/// the composite form's draws) and what kept values are multiplied by.
#[derive(Debug, Clone)]
pub struct AttentionDropout {
    /// Keep flags.
    pub keep: std::sync::Arc<Vec<bool>>,
    /// `1 / (1 - p)`.
    pub scale: f64,
}

/// The op; use it through [`fused_attention`] (or on slices inside another op,
/// [`super::lora_attention`]).
#[derive(Debug, Clone)]
pub(crate) struct FusedAttention {
    /// RoPE `cos` and `sin`, `[b, s, dim / 2]` each, contiguous, the activations' dtype.
    rope: Option<(Tensor, Tensor)>,
    /// `[b or 1, 1, s or 1, s]`, contiguous, the activations' dtype.
    bias: Tensor,
    heads: Heads,
    scale: f64,
    dropout: Option<AttentionDropout>,
}

/// The slices one batch row works on.
struct Row<'a, T> {
    /// The row's index in the batch.
    index: usize,
    q: &'a [T],
    k: &'a [T],
    v: &'a [T],
    rope: Option<(&'a [T], &'a [T])>,
    /// `[s, s]`, or `[1, s]` for a bias shared by every query.
    bias: &'a [T],
}

/// Head `h` of `x: [s, width]` into the `[s, d]` buffer `out` (every value written), rotated by
/// RoPE when there are tables (`inverse`: by `-sin`).
fn rotate_into<T: Float>(
    out: &mut [T],
    x: &[T],
    (s, width, d): (usize, usize, usize),
    h: usize,
    rope: Option<(&[T], &[T])>,
    inverse: bool,
) {
    match rope {
        Some((cos, sin)) => T::rope_head(out, x, [s, width, d, h], (cos, sin), inverse),
        None => {
            for t in 0..s {
                out[t * d..t * d + d].copy_from_slice(&x[t * width + h * d..t * width + h * d + d]);
            }
        }
    }
}

/// [`Float::rope_head`]: head `h` of `x: [s, width]` rotated into `out: [s, d]`, the halves
/// zipped (no index checks, so the loops vectorise).
#[inline(always)]
fn rope_head<T: WithDType>(
    out: &mut [T],
    x: &[T],
    [s, width, d, h]: [usize; 4],
    (cos, sin): (&[T], &[T]),
    inverse: bool,
) {
    let half = d / 2;
    for t in 0..s {
        let src = &x[t * width + h * d..t * width + h * d + d];
        let dst = &mut out[t * d..t * d + d];
        let (c, sn) = (
            &cos[t * half..t * half + half],
            &sin[t * half..t * half + half],
        );
        let (x1s, rest) = src.split_at(half);
        let x2s = &rest[..half];
        let (d1, rest) = dst.split_at_mut(half);
        let d2 = &mut rest[..half];
        let pairs = x1s.iter().zip(x2s).zip(c.iter().zip(sn));
        if inverse {
            for ((o1, o2), ((&x1, &x2), (&c, &sn))) in d1.iter_mut().zip(d2.iter_mut()).zip(pairs) {
                *o1 = x1 * c + x2 * sn;
                *o2 = x2 * c - x1 * sn;
            }
        } else {
            for ((o1, o2), ((&x1, &x2), (&c, &sn))) in d1.iter_mut().zip(d2.iter_mut()).zip(pairs) {
                *o1 = x1 * c - x2 * sn;
                *o2 = x1 * sn + x2 * c;
            }
        }
        // An odd head size leaves its last value unrotated (as candle's kernel does not
        // allow); head sizes are even in every supported model.
        dst[2 * half..d].copy_from_slice(&src[2 * half..d]);
    }
}

vexp::simd! {
    /// [`rope_head`] for f32, compiled for the CPU's widest vectors (the same products and
    /// sums, so the same bits on every CPU).
    pub fn rope_head_f32(out: &mut [f32], x: &[f32], dims: [usize; 4], cos: &[f32], sin: &[f32], inverse: bool) {
        rope_head(out, x, dims, (cos, sin), inverse)
    }
}

/// Query rows `rows` of a batch row and the key columns they see: every column from `cols`
/// on is masked for each of them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    rows: std::ops::Range<usize>,
    cols: usize,
}

/// Query rows per [`Block`].
const BLOCK_ROWS: usize = 32;

/// A bias at or below this masks its column (decoders' masks write [`super::mask::MASKED`],
/// BERT's key mask -1e9): next to any score of a column the row sees, its softmax term is
/// exactly 0 (f32's exp flushes below -87, f64's underflows below -745).
const MASKED_BELOW: f64 = -1e8;

/// The query rows of a `[s, s]` (or shared `[1, s]`) bias in blocks of [`BLOCK_ROWS`], each with
/// the columns it must compute: up to the last column one of its rows sees (a causal mask
/// halves the work, a padded batch row skips its padding). A row that sees no column at all
/// keeps every column (its softmax is then over the masked scores, as in the composite form).
/// The skipped columns' probabilities are exactly 0 either way.
fn blocks<T: WithDType>(bias: &[T], s: usize) -> Vec<Block> {
    let shared = bias.len() == s;
    let limit = |t: usize| {
        let row = if shared {
            bias
        } else {
            &bias[t * s..t * s + s]
        };
        match row.iter().rposition(|b| b.to_f64() > MASKED_BELOW) {
            Some(j) => j + 1,
            None => s,
        }
    };
    let mut out: Vec<Block> = Vec::new();
    for start in (0..s).step_by(BLOCK_ROWS) {
        let rows = start..(start + BLOCK_ROWS).min(s);
        let cols = rows.clone().map(limit).max().unwrap_or(s);
        match out.last_mut() {
            // Blocks that see the same columns are one product.
            Some(last) if last.cols == cols && last.rows.end == rows.start => {
                last.rows.end = rows.end
            }
            _ => out.push(Block { rows, cols }),
        }
    }
    out
}

/// Rows of a block.
type Range = std::ops::Range<usize>;

/// `xt: [d, s]` (every value written): the transpose of `s` rows of `d` values, `rs` apart in
/// `x`, as the products with keys and values read them (a transposed view would be copied
/// into `gemm`'s packed layout at every product).
fn transpose_into<T: Copy>(xt: &mut [T], x: &[T], (s, d, rs): (usize, usize, usize)) {
    for t in 0..s {
        for (j, &v) in x[t * rs..t * rs + d].iter().enumerate() {
            xt[j * s + t] = v;
        }
    }
}

/// The element types of the op.
pub(crate) trait Float: WithDType + Send + Sync {
    /// Softmax of one row in place, shifted by the row's maximum as candle's
    /// `softmax_last_dim` is.
    fn softmax_row(row: &mut [Self]);
    /// `ds = p * (ds - <ds, p>)`: the gradient of the scores from that of the probabilities.
    fn softmax_backward_row(ds: &mut [Self], p: &[Self]);
    /// [`Self::softmax_row`] of rows `rows` of `p` (`s` apart), each over its first `cols`
    /// values after adding its bias (`[s]` shared by every row, or `[s, s]`).
    fn biased_softmax_rows(p: &mut [Self], bias: &[Self], s: usize, rows: Range, cols: usize) {
        let shared = bias.len() == s;
        for t in rows {
            let b = if shared {
                bias
            } else {
                &bias[t * s..t * s + s]
            };
            let row = &mut p[t * s..t * s + cols];
            for (v, &b) in row.iter_mut().zip(b) {
                *v += b;
            }
            Self::softmax_row(row);
        }
    }
    /// [`Self::softmax_backward_row`] of rows `rows` of `ds` and `p` (`s` apart), each over its
    /// first `cols` values.
    fn softmax_backward_rows(ds: &mut [Self], p: &[Self], s: usize, rows: Range, cols: usize) {
        for t in rows {
            Self::softmax_backward_row(&mut ds[t * s..t * s + cols], &p[t * s..t * s + cols]);
        }
    }
    /// RoPE on head `h` of `x: [s, width]` into `out: [s, d]` (`dims`: `[s, width, d, h]`):
    /// `o1 = x1 c - x2 s`, `o2 = x1 s + x2 c` on the halves (`inverse`: by `-s`).
    fn rope_head(
        out: &mut [Self],
        x: &[Self],
        dims: [usize; 4],
        cs: (&[Self], &[Self]),
        inverse: bool,
    ) {
        rope_head(out, x, dims, cs, inverse)
    }
}

impl Float for f32 {
    fn softmax_row(row: &mut [f32]) {
        vexp::softmax_in_place(row)
    }
    fn softmax_backward_row(ds: &mut [f32], p: &[f32]) {
        vexp::softmax_backward_row(ds, p)
    }
    fn biased_softmax_rows(p: &mut [f32], bias: &[f32], s: usize, rows: Range, cols: usize) {
        vexp::biased_softmax_rows(p, bias, s, rows, cols)
    }
    fn softmax_backward_rows(ds: &mut [f32], p: &[f32], s: usize, rows: Range, cols: usize) {
        vexp::softmax_backward_rows(ds, p, s, rows, cols)
    }
    fn rope_head(
        out: &mut [f32],
        x: &[f32],
        dims: [usize; 4],
        (c, s): (&[f32], &[f32]),
        inverse: bool,
    ) {
        rope_head_f32(out, x, dims, c, s, inverse)
    }
}

impl Float for f64 {
    fn softmax_row(row: &mut [f64]) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
    fn softmax_backward_row(ds: &mut [f64], p: &[f64]) {
        let dot: f64 = ds.iter().zip(p).map(|(&a, &b)| a * b).sum();
        for (a, &b) in ds.iter_mut().zip(p) {
            *a = b * (*a - dot);
        }
    }
}

impl FusedAttention {
    fn dims(&self, q: &[usize], k: &[usize], v: &[usize]) -> Result<(usize, usize)> {
        let Heads { q: hq, kv, dim } = self.heads;
        match (q, k, v) {
            (&[b, s, wq], &[bk, sk, wk], &[bv, sv, wv])
                if wq == hq * dim
                    && wk == kv * dim
                    && wv == kv * dim
                    && (bk, sk) == (b, s)
                    && (bv, sv) == (b, s)
                    && kv > 0
                    && hq % kv == 0 =>
            {
                Ok((b, s))
            }
            _ => candle_core::bail!(
                "fused-attention: q {q:?}, k {k:?}, v {v:?} do not fit {hq} heads / {kv} kv heads of {dim}"
            ),
        }
    }

    /// Probabilities `[s, s]` of query head `h` against the (rotated) keys of its group,
    /// transposed (`kt: [d, s]`), into `p`, and `P D` (`None` without dropout). Only each block's visible columns are
    /// computed ([`blocks`]); the rest of `p` is left as it is: zero, as their softmax gives
    /// exactly, when `p` starts zeroed and is reused only with the same blocks (a batch row's
    /// heads).
    fn probs_into<T: Float>(
        &self,
        p: &mut [T],
        row: &Row<'_, T>,
        (s, h): (usize, usize),
        (qh, kt): (&[T], &[T]),
        blocks: &[Block],
    ) -> Result<Option<Vec<T>>> {
        let d = self.heads.dim;
        if p.len() != s * s {
            candle_core::bail!(
                "fused-attention: a probability buffer of {} values for {s}",
                p.len()
            )
        }
        for Block { rows, cols } in blocks.iter().cloned() {
            let q_rows = &qh[rows.start * d..rows.end * d];
            gemm_strided(
                &mut p[rows.start * s..],
                s,
                (
                    View::new(q_rows, rows.len(), d)?,
                    View::strided(kt, d, cols, s)?,
                ),
                false,
                self.scale,
                false,
            )?;
            T::biased_softmax_rows(p, row.bias, s, rows, cols);
        }
        let dropped = self.dropout.as_ref().map(|dr| {
            let start = (row.index * self.heads.q + h) * s * s;
            let keep = &dr.keep[start..start + s * s];
            let scale = T::from_f64(dr.scale);
            p.iter()
                .zip(keep)
                .map(|(&v, &k)| if k { v * scale } else { T::from_f64(0.0) })
                .collect()
        });
        Ok(dropped)
    }

    fn forward_row<T: Float>(&self, row: Row<'_, T>, s: usize, out: &mut [T]) -> Result<()> {
        let Heads { q: hq, kv, dim: d } = self.heads;
        let rep = hq / kv;
        let blocks = blocks(row.bias, s);
        // Scratch of the row's heads, allocated once (see `probs_into` for `p`).
        let zero = T::from_f64(0.0);
        let (mut k, mut qh, mut p) = (vec![zero; s * d], vec![zero; s * d], vec![zero; s * s]);
        let mut kt = vec![zero; d * s];
        for g in 0..kv {
            rotate_into(&mut k, row.k, (s, kv * d, d), g, row.rope, false);
            transpose_into(&mut kt, &k, (s, d, d));
            for h in g * rep..(g + 1) * rep {
                rotate_into(&mut qh, row.q, (s, hq * d, d), h, row.rope, false);
                let dropped = self.probs_into(&mut p, &row, (s, h), (&qh, &kt), &blocks)?;
                let pd = dropped.as_deref().unwrap_or(&p);
                for Block { rows, cols } in blocks.iter().cloned() {
                    let v = View::strided(&row.v[g * d..], cols, d, kv * d)?;
                    let p_rows = View::strided(&pd[rows.start * s..], rows.len(), cols, s)?;
                    gemm_strided(
                        &mut out[rows.start * hq * d + h * d..],
                        hq * d,
                        (p_rows, v),
                        false,
                        1.0,
                        false,
                    )?;
                }
            }
        }
        Ok(())
    }

    fn backward_row<T: Float>(
        &self,
        row: Row<'_, T>,
        s: usize,
        grad: &[T],
        (dq, dk, dv): (&mut [T], &mut [T], &mut [T]),
    ) -> Result<()> {
        let Heads { q: hq, kv, dim: d } = self.heads;
        let rep = hq / kv;
        let zero = T::from_f64(0.0);
        let blocks = blocks(row.bias, s);
        // Scratch of the row's heads, allocated once. `p` and `ds` are written in the blocks'
        // visible columns only, the same for every head, so the rest stays zero; `qh`, `k`,
        // `dq_rot` and `back` are overwritten in full each time.
        let (mut k, mut qh, mut p) = (vec![zero; s * d], vec![zero; s * d], vec![zero; s * s]);
        let (mut ds, mut dq_rot) = (vec![zero; s * s], vec![zero; s * d]);
        let (mut dk_rot, mut back) = (vec![zero; s * d], vec![zero; s * d]);
        let (mut kt, mut vt) = (vec![zero; d * s], vec![zero; d * s]);
        for g in 0..kv {
            rotate_into(&mut k, row.k, (s, kv * d, d), g, row.rope, false);
            transpose_into(&mut kt, &k, (s, d, d));
            transpose_into(&mut vt, &row.v[g * d..], (s, d, kv * d));
            dk_rot.fill(zero);
            for h in g * rep..(g + 1) * rep {
                rotate_into(&mut qh, row.q, (s, hq * d, d), h, row.rope, false);
                let dropped = self.probs_into(&mut p, &row, (s, h), (&qh, &kt), &blocks)?;
                let pd = dropped.as_deref().unwrap_or(&p);
                for Block { rows, cols } in blocks.iter().cloned() {
                    let go =
                        View::strided(&grad[rows.start * hq * d + h * d..], rows.len(), d, hq * d)?;
                    let vt = View::strided(&vt, d, cols, s)?;
                    let p_rows = View::strided(&pd[rows.start * s..], rows.len(), cols, s)?;
                    gemm_strided(&mut dv[g * d..], kv * d, (p_rows.t(), go), true, 1.0, false)?;
                    gemm_strided(&mut ds[rows.start * s..], s, (go, vt), false, 1.0, false)?;
                }
                if let Some(dr) = &self.dropout {
                    let start = (row.index * hq + h) * s * s;
                    let scale = T::from_f64(dr.scale);
                    for (x, &keep) in ds.iter_mut().zip(&dr.keep[start..start + s * s]) {
                        *x = if keep { *x * scale } else { zero };
                    }
                }
                for Block { rows, cols } in blocks.iter().cloned() {
                    T::softmax_backward_rows(&mut ds, &p, s, rows.clone(), cols);
                    let ds_rows = View::strided(&ds[rows.start * s..], rows.len(), cols, s)?;
                    gemm_strided(
                        &mut dq_rot[rows.start * d..],
                        d,
                        (ds_rows, View::new(&k, cols, d)?),
                        false,
                        self.scale,
                        false,
                    )?;
                    gemm_strided(
                        &mut dk_rot,
                        d,
                        (
                            ds_rows.t(),
                            View::new(&qh[rows.start * d..rows.end * d], rows.len(), d)?,
                        ),
                        true,
                        self.scale,
                        false,
                    )?;
                }
                rotate_into(&mut back, &dq_rot, (s, d, d), 0, row.rope, true);
                for t in 0..s {
                    dq[t * hq * d + h * d..t * hq * d + h * d + d]
                        .copy_from_slice(&back[t * d..t * d + d]);
                }
            }
            rotate_into(&mut back, &dk_rot, (s, d, d), 0, row.rope, true);
            for t in 0..s {
                dk[t * kv * d + g * d..t * kv * d + g * d + d]
                    .copy_from_slice(&back[t * d..t * d + d]);
            }
        }
        Ok(())
    }

    /// The batch rows of `q`, `k`, `v` with their tables and bias.
    #[allow(clippy::type_complexity)]
    fn rows<'a, T: WithDType>(
        &self,
        (q, k, v): (&'a [T], &'a [T], &'a [T]),
        (rope, bias): (Option<(&'a [T], &'a [T])>, &'a [T]),
        (b, s): (usize, usize),
    ) -> Result<Vec<Row<'a, T>>> {
        let Heads { q: hq, kv, dim: d } = self.heads;
        let half = d / 2;
        let (bias_b, bias_q) = match *self.bias.dims() {
            [bb, 1, bq, bk] if (bb == b || bb == 1) && (bq == s || bq == 1) && bk == s => (bb, bq),
            ref other => {
                candle_core::bail!("fused-attention: bias {other:?} does not fit {b} x {s}")
            }
        };
        let per_bias = bias_q * s;
        if let Some((cos, sin)) = rope {
            if cos.len() != b * s * half || sin.len() != cos.len() {
                candle_core::bail!("fused-attention: rotary tables do not fit {b} rows of {s}")
            }
        }
        let mask_fits = self
            .dropout
            .as_ref()
            .is_none_or(|dr| dr.keep.len() == b * hq * s * s);
        if bias.len() != bias_b * per_bias || !mask_fits {
            candle_core::bail!("fused-attention: bias or dropout mask do not fit {b} rows of {s}")
        }
        Ok((0..b)
            .map(|i| Row {
                index: i,
                q: &q[i * s * hq * d..(i + 1) * s * hq * d],
                k: &k[i * s * kv * d..(i + 1) * s * kv * d],
                v: &v[i * s * kv * d..(i + 1) * s * kv * d],
                rope: rope.map(|(cos, sin)| {
                    (
                        &cos[i * s * half..(i + 1) * s * half],
                        &sin[i * s * half..(i + 1) * s * half],
                    )
                }),
                bias: &bias[(i % bias_b) * per_bias..(i % bias_b + 1) * per_bias],
            })
            .collect())
    }
}

impl FusedAttention {
    /// The op for activations of `dtype` (tables and bias converted to it); see
    /// [`fused_attention`] for the shapes.
    pub(crate) fn new(
        rope: Option<(&Tensor, &Tensor)>,
        bias: &Tensor,
        (heads, scale): (Heads, f64),
        dropout: Option<AttentionDropout>,
        dtype: DType,
    ) -> Result<Self> {
        let table = |t: &Tensor| t.to_dtype(dtype)?.contiguous();
        let rope = match rope {
            Some((cos, sin)) => Some((table(cos)?, table(sin)?)),
            None => None,
        };
        Ok(Self {
            rope,
            bias: table(bias)?,
            heads,
            scale,
            dropout,
        })
    }

    /// `(query width, key/value width)`: `heads * dim` of each.
    pub(crate) fn widths(&self) -> (usize, usize) {
        let Heads { q, kv, dim } = self.heads;
        (q * dim, kv * dim)
    }

    /// The context `[b, s, q width]` from contiguous `q`, `k`, `v` of `b` rows of `s`.
    pub(crate) fn forward_slices<T: Float>(
        &self,
        (q, k, v): (&[T], &[T], &[T]),
        (b, s): (usize, usize),
    ) -> Result<Vec<T>> {
        let (wq, wk) = self.widths();
        if q.len() != b * s * wq || k.len() != b * s * wk || v.len() != k.len() {
            candle_core::bail!("fused-attention: q, k, v do not hold {b} rows of {s}")
        }
        let mut out = super::zeroed::<T>(b * s * wq);
        with_tables::<T, _>(&self.rope, |rope| {
            with_slice::<T, _>(&self.bias, |bias| {
                let rows = self.rows((q, k, v), (rope, bias), (b, s))?;
                out.par_chunks_mut((s * wq).max(1))
                    .zip(rows)
                    .try_for_each(|(o, row)| self.forward_row(row, s, o))
            })
        })?;
        Ok(out)
    }

    /// `(dq, dk, dv)` from the context's gradient `grad`.
    #[allow(clippy::type_complexity)]
    pub(crate) fn backward_slices<T: Float>(
        &self,
        (q, k, v): (&[T], &[T], &[T]),
        grad: &[T],
        (b, s): (usize, usize),
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
        let (wq, wk) = self.widths();
        if q.len() != b * s * wq
            || k.len() != b * s * wk
            || v.len() != k.len()
            || grad.len() != q.len()
        {
            candle_core::bail!("fused-attention: q, k, v, grad do not hold {b} rows of {s}")
        }
        let mut dq = super::zeroed::<T>(b * s * wq);
        let mut dk = super::zeroed::<T>(b * s * wk);
        let mut dv = super::zeroed::<T>(b * s * wk);
        let (rq, rk) = ((s * wq).max(1), (s * wk).max(1));
        with_tables::<T, _>(&self.rope, |rope| {
            with_slice::<T, _>(&self.bias, |bias| {
                let rows = self.rows((q, k, v), (rope, bias), (b, s))?;
                dq.par_chunks_mut(rq)
                    .zip(dk.par_chunks_mut(rk))
                    .zip(dv.par_chunks_mut(rk))
                    .zip(grad.par_chunks(rq))
                    .zip(rows)
                    .try_for_each(|((((dq, dk), dv), g), row)| {
                        self.backward_row(row, s, g, (dq, dk, dv))
                    })
            })
        })?;
        Ok((dq, dk, dv))
    }
}

/// Runs `f` on the rotary tables' values, when there are tables.
fn with_tables<T: WithDType, R>(
    rope: &Option<(Tensor, Tensor)>,
    f: impl FnOnce(Option<(&[T], &[T])>) -> Result<R>,
) -> Result<R> {
    match rope {
        None => f(None),
        Some((cos, sin)) => with_slice::<T, _>(cos, |cos| {
            with_slice::<T, _>(sin, |sin| f(Some((cos, sin))))
        }),
    }
}

/// The values of a contiguous CPU tensor of type `T`, with the storage kept locked by `f`.
fn with_slice<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
    super::with_cpu_slice(t, "fused-attention", f)
}

impl CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, s) = self.dims(l1.dims(), l2.dims(), l3.dims())?;
        fn run<T: Float>(
            op: &FusedAttention,
            inputs: [(&CpuStorage, &Layout); 3],
            (b, s): (usize, usize),
        ) -> Result<CpuStorage> {
            let [q, k, v] = inputs.map(|(st, l)| {
                T::cpu_storage_as_slice(st).and_then(|v| contiguous_slice(v, l, "fused-attention"))
            });
            let out = op.forward_slices((q?, k?, v?), (b, s))?;
            Ok(T::to_cpu_storage_owned(out))
        }
        let inputs = [(s1, l1), (s2, l2), (s3, l3)];
        let out = match s1 {
            CpuStorage::F32(_) => run::<f32>(self, inputs, (b, s))?,
            CpuStorage::F64(_) => run::<f64>(self, inputs, (b, s))?,
            _ => candle_core::bail!("fused-attention: f32 or f64 only"),
        };
        Ok((out, Shape::from((b, s, self.heads.q * self.heads.dim))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, s) = self.dims(q.dims(), k.dims(), v.dims())?;
        let [q, k, v, grad] = [q, k, v, grad].map(|t| t.contiguous());
        let (q, k, v, grad) = (q?, k?, v?, grad?);
        fn run<T: Float>(
            op: &FusedAttention,
            [q, k, v, grad]: [&Tensor; 4],
            (b, s): (usize, usize),
        ) -> Result<(Tensor, Tensor, Tensor)> {
            let (dq, dk, dv) = with_slice::<T, _>(q, |qs| {
                with_slice::<T, _>(k, |ks| {
                    with_slice::<T, _>(v, |vs| {
                        with_slice::<T, _>(grad, |gs| op.backward_slices((qs, ks, vs), gs, (b, s)))
                    })
                })
            })?;
            Ok((
                Tensor::from_vec(dq, q.shape(), q.device())?,
                Tensor::from_vec(dk, k.shape(), k.device())?,
                Tensor::from_vec(dv, v.shape(), v.device())?,
            ))
        }
        let (dq, dk, dv) = match q.dtype() {
            DType::F32 => run::<f32>(self, [&q, &k, &v, &grad], (b, s))?,
            DType::F64 => run::<f64>(self, [&q, &k, &v, &grad], (b, s))?,
            d => candle_core::bail!("fused-attention: f32 or f64 only, not {d:?}"),
        };
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// Whether [`fused_attention`] computes this attention: CPU tensors, f32 or f64, one dtype.
pub fn applies(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    let dtype = q.dtype();
    [q, k, v]
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == dtype)
        && matches!(dtype, DType::F32 | DType::F64)
}

/// `dropout(softmax(scale rope(q) rope(k)^T + bias)) v` per head for `q: [b, s, heads.q * dim]`,
/// `k`, `v`: `[b, s, heads.kv * dim]`, optional rotary tables `[b, s, dim / 2]` and `bias:
/// [b or 1, 1, s or 1, s]`; returns `[b, s, heads.q * dim]`. An error unless [`applies`].
pub fn fused_attention(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    rope: Option<(&Tensor, &Tensor)>,
    bias: &Tensor,
    (heads, scale): (Heads, f64),
    dropout: Option<AttentionDropout>,
) -> Result<Tensor> {
    if !applies(q, k, v) {
        candle_core::bail!("fused-attention: CPU tensors of one dtype, f32 or f64, only")
    }
    let op = FusedAttention::new(rope, bias, (heads, scale), dropout, q.dtype())?;
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::attention::{attention, Kernels};
    use crate::runtime::ops::gradcheck::check_grad;
    use crate::runtime::ops::mask::{attention_bias, MaskKind, MaskSpec};
    use crate::runtime::ops::rope::{apply_rotary, RopeScaling, RopeTables, Rotary};
    use candle_core::{Device, Var};

    const B: usize = 2;
    const S: usize = 5;

    fn heads() -> Heads {
        Heads {
            q: 4,
            kv: 2,
            dim: 6,
        }
    }

    fn setup(dtype: DType) -> Result<(RopeTables, Tensor)> {
        // Right padding on the second row (a query that sees no key at all has a gradient that
        // finite differences cannot see: its scores sit at -1e30).
        setup_with(dtype, S, [5, 3])
    }

    /// Rotary tables and a causal bias for `B` rows of `s` tokens, row `i` padded after
    /// `valid[i]` tokens.
    fn setup_with(dtype: DType, s: usize, valid: [usize; B]) -> Result<(RopeTables, Tensor)> {
        let dev = Device::Cpu;
        let rot = Rotary::new(heads().dim, 10000.0, &RopeScaling::None);
        let pos = Rotary::positions(B, s, 0, &dev)?;
        let tables = RopeTables::new(&rot, &pos, dtype)?;
        let m: Vec<u8> = (0..B * s).map(|i| u8::from(i % s < valid[i / s])).collect();
        let m = Tensor::from_vec(m, (B, s), &dev)?;
        let spec = MaskSpec {
            batch: B,
            q_len: s,
            k_len: s,
            offset: 0,
            kind: MaskKind::Causal,
            window: None,
        };
        Ok((tables, attention_bias(Some(&m), spec, dtype, &dev)?))
    }

    /// The model's composite path: reshape, transpose, RoPE, attention, back.
    fn composite(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        t: &RopeTables,
        bias: &Tensor,
    ) -> Result<Tensor> {
        let h = heads();
        let (b, s, _) = q.dims3()?;
        let split = |x: &Tensor, n: usize| x.reshape((b, s, n, h.dim))?.transpose(1, 2);
        let q = apply_rotary(&split(q, h.q)?, t)?;
        let k = apply_rotary(&split(k, h.kv)?, t)?;
        let v = split(v, h.kv)?;
        let scale = 1.0 / (h.dim as f64).sqrt();
        attention(&q, &k, &v, bias, scale, Kernels::Differentiable)?
            .transpose(1, 2)?
            .reshape((b, s, h.q * h.dim))
    }

    fn fused(q: &Tensor, k: &Tensor, v: &Tensor, t: &RopeTables, bias: &Tensor) -> Result<Tensor> {
        let scale = 1.0 / (heads().dim as f64).sqrt();
        let rope = Some((&t.cos_half, &t.sin_half));
        fused_attention((q, k, v), rope, bias, (heads(), scale), None)
    }

    /// `a` (fused) and `c` (composite) agree within 1e-5, and so do the gradients of
    /// `sum(out * probe)` for each of `vars`.
    fn assert_same_values_and_gradients(a: &Tensor, c: &Tensor, vars: [&Var; 3]) -> Result<()> {
        let diff = |x: &Tensor, y: &Tensor| -> Result<f32> {
            (x - y)?.abs()?.max_all()?.to_scalar::<f32>()
        };
        assert!(diff(a, c)? < 1e-5, "{}", diff(a, c)?);
        let probe = Tensor::randn(0f32, 1.0, a.shape(), &Device::Cpu)?;
        let ga = (a * &probe)?.sum_all()?.backward()?;
        let gc = (c * &probe)?.sum_all()?.backward()?;
        for x in vars {
            let (gx, cx) = (ga.get(x).expect("fused grad"), gc.get(x).expect("grad"));
            assert!(diff(gx, cx)? < 1e-5, "{}", diff(gx, cx)?);
        }
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences_for_q_k_and_v() -> Result<()> {
        let dev = Device::Cpu;
        let (t, bias) = setup(DType::F64)?;
        let h = heads();
        let q = Tensor::randn(0f64, 1.0, (B, S, h.q * h.dim), &dev)?;
        let k = Tensor::randn(0f64, 1.0, (B, S, h.kv * h.dim), &dev)?;
        let v = Tensor::randn(0f64, 1.0, (B, S, h.kv * h.dim), &dev)?;
        check_grad(&[B, S, h.q * h.dim], |q| fused(q, &k, &v, &t, &bias))?;
        check_grad(&[B, S, h.kv * h.dim], |k| fused(&q, k, &v, &t, &bias))?;
        check_grad(&[B, S, h.kv * h.dim], |v| fused(&q, &k, v, &t, &bias))
    }

    #[test]
    fn masked_trailing_columns_are_skipped_with_the_same_results() -> Result<()> {
        let dev = Device::Cpu;
        let s = 70;
        let (t, bias) = setup_with(DType::F32, s, [70, 41])?;
        let bias_rows = bias.flatten_all()?.to_vec1::<f32>()?;
        let blocks_of = |i: usize| blocks(&bias_rows[i * s * s..(i + 1) * s * s], s);
        let block = |rows: std::ops::Range<usize>, cols| Block { rows, cols };
        // Causal: each block of queries sees up to its last row; the padded row's queries
        // see its 41 tokens at most.
        assert_eq!(
            blocks_of(0),
            [block(0..32, 32), block(32..64, 64), block(64..70, 70)]
        );
        assert_eq!(blocks_of(1), [block(0..32, 32), block(32..70, 41)]);
        let h = heads();
        let q = Var::randn(0f32, 1.0, (B, s, h.q * h.dim), &dev)?;
        let k = Var::randn(0f32, 1.0, (B, s, h.kv * h.dim), &dev)?;
        let v = Var::randn(0f32, 1.0, (B, s, h.kv * h.dim), &dev)?;
        let (qt, kt, vt) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
        let a = fused(qt, kt, vt, &t, &bias)?;
        let c = composite(qt, kt, vt, &t, &bias)?;
        assert_same_values_and_gradients(&a, &c, [&q, &k, &v])
    }

    #[test]
    fn a_shared_key_mask_or_no_mask_keeps_the_columns_rows_see() {
        let s = 40;
        let mut key_mask = vec![0f32; s];
        key_mask[35..].fill(-1e9);
        assert_eq!(
            blocks(&key_mask, s),
            [Block {
                rows: 0..40,
                cols: 35
            }]
        );
        assert_eq!(
            blocks(&vec![0f64; s], s),
            [Block {
                rows: 0..40,
                cols: 40
            }]
        );
        // Rows that see nothing keep every column.
        assert_eq!(
            blocks(&vec![-1e30f32; s], s),
            [Block {
                rows: 0..40,
                cols: 40
            }]
        );
    }

    #[test]
    fn forward_and_backward_equal_the_composite_form() -> Result<()> {
        let dev = Device::Cpu;
        let (t, bias) = setup(DType::F32)?;
        let h = heads();
        let q = Var::randn(0f32, 1.0, (B, S, h.q * h.dim), &dev)?;
        let k = Var::randn(0f32, 1.0, (B, S, h.kv * h.dim), &dev)?;
        let v = Var::randn(0f32, 1.0, (B, S, h.kv * h.dim), &dev)?;
        let a = fused(&q, &k, &v, &t, &bias)?;
        let c = composite(&q, &k, &v, &t, &bias)?;
        assert_same_values_and_gradients(&a, &c, [&q, &k, &v])
    }

    /// BERT's form: no rotary embedding, a key-padding bias `[b, 1, 1, s]`, dropout of the
    /// probabilities with the mask `keep` (`[b, h, s, s]`).
    fn bert_composite(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let h = heads();
        let split =
            |x: &Tensor, n: usize| x.reshape((B, S, n, h.dim))?.transpose(1, 2)?.contiguous();
        let (q, k, v) = (split(q, h.q)?, split(k, h.q)?, split(v, h.q)?);
        let scores = (q.matmul(&k.t()?)? / (h.dim as f64).sqrt())?.broadcast_add(bias)?;
        let probs = (crate::runtime::ops::softmax::softmax(&scores)? * mask)?;
        probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((B, S, h.q * h.dim))
    }

    fn bert_inputs(dtype: DType) -> Result<(Tensor, AttentionDropout, Tensor)> {
        let dev = Device::Cpu;
        let m = Tensor::new(&[[1f32, 1., 1., 1., 1.], [1., 1., 1., 0., 0.]], &dev)?;
        let bias = ((m - 1.0)? * 1e9)?.reshape((B, 1, 1, S))?.to_dtype(dtype)?;
        let h = heads();
        let keep: Vec<bool> = (0..B * h.q * S * S).map(|i| (i * 7) % 10 != 3).collect();
        let scale = 1.0 / (1.0 - 0.1f32);
        let mask: Vec<f32> = keep.iter().map(|&k| if k { scale } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (B, h.q, S, S), &dev)?.to_dtype(dtype)?;
        let dropout = AttentionDropout {
            keep: std::sync::Arc::new(keep),
            scale: f64::from(scale),
        };
        Ok((bias, dropout, mask))
    }

    #[test]
    fn bert_form_with_dropout_equals_the_composite_and_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let h = heads();
        let mha = Heads {
            q: h.q,
            kv: h.q,
            dim: h.dim,
        };
        let scale = 1.0 / (h.dim as f64).sqrt();
        let shape = (B, S, h.q * h.dim);
        let (bias, dropout, mask) = bert_inputs(DType::F32)?;
        let [q, k, v] = [0, 1, 2].map(|_| Var::randn(0f32, 1.0, shape, &dev));
        let (q, k, v) = (q?, k?, v?);
        let a = fused_attention((&q, &k, &v), None, &bias, (mha, scale), Some(dropout))?;
        let c = bert_composite(&q, &k, &v, &bias, &mask)?;
        assert_same_values_and_gradients(&a, &c, [&q, &k, &v])?;
        let (bias, dropout, _) = bert_inputs(DType::F64)?;
        let q = Tensor::randn(0f64, 1.0, shape, &dev)?;
        let f = |q: &Tensor, k: &Tensor| {
            fused_attention((q, k, k), None, &bias, (mha, scale), Some(dropout.clone()))
        };
        check_grad(&[B, S, h.q * h.dim], |k| f(&q, k))?;
        check_grad(&[B, S, h.q * h.dim], |q| f(q, &q.clone()))
    }

    #[test]
    fn no_gradient_reaches_the_bias_or_the_tables() -> Result<()> {
        let dev = Device::Cpu;
        let h = heads();
        let (t, bias) = setup(DType::F32)?;
        let bias = Var::from_tensor(&bias)?;
        let q = Var::randn(0f32, 1.0, (B, S, h.q * h.dim), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (B, S, h.kv * h.dim), &dev)?;
        let y = fused(&q, &k, &k, &t, &bias)?;
        let grads = y.sum_all()?.backward()?;
        assert!(grads.get(&bias).is_none() && grads.get(&q).is_some());
        assert!(!applies(&q.to_dtype(DType::BF16)?, &k, &k));
        Ok(())
    }
}
