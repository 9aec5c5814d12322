//! The causal LM loss over a frozen output layer as one op: hidden states in, per-row loss out,
//! without the `[tokens, vocab]` logits ever existing whole.
//!
//! With a 50k vocabulary the logits of a 4 x 256 batch are 200 MB, and the composite form
//! (output layer, reshape, [`TokenCrossEntropy`](super::cross_entropy::TokenCrossEntropy)) keeps
//! them for backward, makes a gradient of the same size, and candle zero-fills and adds a
//! further buffer per graph node on the way back. This op (as Liger-Kernel's fused linear
//! cross-entropy) takes the rows that have a target, a chunk at a time: logits of the chunk
//! into a scratch buffer, each row's log-sum-exp and loss, and, when the input needs a gradient,
//! `(softmax - onehot) W` for the chunk's rows right away (the backward pass then only scales
//! each row by its upstream gradient). The products are the composite form's forward and
//! backward ones; rows without a target (`-100`: prompt tokens, padding, each row's last
//! position) cost nothing at all.
//!
//! CPU, f32, a dense frozen `W: [vocab, hidden]`; the caller takes the composite form
//! otherwise. Kept between forward and backward: `[rows, hidden]` values. Must never return a
//! gradient for `W`.

use crate::runtime::batch::IGNORE_INDEX;
use crate::runtime::ops::gemm::{gemm_into, View};
use crate::runtime::ops::uninit;
use crate::runtime::ops::vexp;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Logits held at a time: rows per chunk are this many values over the vocabulary (32 MiB).
const CHUNK_VALUES: usize = 8 << 20;

/// Per-row loss of `x W^T` against one target per row.
#[derive(Debug)]
pub struct LinearCrossEntropy {
    /// `[vocab, hidden]`, contiguous f32.
    w: Tensor,
    targets: Arc<Vec<i64>>,
    /// Whether the forward pass computes the input gradient's rows.
    needs_grad: bool,
    /// `(softmax - onehot) W` per row, `[rows, hidden]` (zero for rows without a target).
    grad: Mutex<Vec<f32>>,
}

impl LinearCrossEntropy {
    /// The op for `w: [vocab, hidden]` and these targets; `needs_grad`: the hidden states need
    /// a gradient (a training step), so the forward pass prepares it.
    pub fn new(w: Tensor, targets: Vec<i64>, needs_grad: bool) -> Self {
        Self {
            w,
            targets: Arc::new(targets),
            needs_grad,
            grad: Mutex::new(Vec::new()),
        }
    }

    fn run(&self, x: &[f32], (n, h): (usize, usize)) -> Result<Vec<f32>> {
        let (v, wh) = self.w.dims2()?;
        if wh != h || self.targets.len() != n {
            candle_core::bail!(
                "linear cross-entropy: {n} x {h} hidden, W {v} x {wh}, {} targets",
                self.targets.len()
            )
        }
        let rows: Vec<usize> = (0..n)
            .filter(|&r| self.targets[r] != IGNORE_INDEX)
            .collect();
        if let Some(&r) = rows
            .iter()
            .find(|&&r| self.targets[r] < 0 || self.targets[r] as usize >= v)
        {
            candle_core::bail!("label {} outside the vocabulary of {v}", self.targets[r])
        }
        let mut loss = vec![0f32; n];
        let mut grad = if self.needs_grad {
            vec![0f32; n * h]
        } else {
            Vec::new()
        };
        let chunk = (CHUNK_VALUES / v.max(1)).clamp(1, rows.len().max(1));
        // SAFETY: each chunk of `c` rows reads only the first `c` rows of these buffers, after
        // writing them: `xc` by the row copies, `logits` and `dxc` by products that overwrite.
        let (mut xc, mut logits, mut dxc) = unsafe {
            (
                uninit::<f32>(chunk * h),
                uninit::<f32>(chunk * v),
                uninit::<f32>(if self.needs_grad { chunk * h } else { 0 }),
            )
        };
        crate::runtime::ops::with_cpu_slice::<f32, _>(&self.w, "linear cross-entropy", |w| {
            for part in rows.chunks(chunk) {
                let c = part.len();
                for (dst, &r) in xc.chunks_mut(h).zip(part) {
                    dst.copy_from_slice(&x[r * h..r * h + h]);
                }
                let lg = &mut logits[..c * v];
                gemm_into(
                    lg,
                    View::new(&xc[..c * h], c, h)?,
                    View::new(w, v, h)?.t(),
                    false,
                    1.0,
                )?;
                let needs_grad = self.needs_grad;
                let per_row: Vec<f32> = lg
                    .par_chunks_mut(v)
                    .zip(part.par_iter())
                    .map(|(row, &r)| {
                        let t = self.targets[r] as usize;
                        let lse = vexp::log_sum_exp(row);
                        let l = lse - row[t];
                        if needs_grad {
                            // softmax - onehot, in place
                            vexp::exp_sub_sum(row, lse);
                            row[t] -= 1.0;
                        }
                        l
                    })
                    .collect();
                for (&r, l) in part.iter().zip(per_row) {
                    loss[r] = l;
                }
                if self.needs_grad {
                    let d = &mut dxc[..c * h];
                    gemm_into(
                        d,
                        View::new(&logits[..c * v], c, v)?,
                        View::new(w, v, h)?,
                        false,
                        1.0,
                    )?;
                    for (src, &r) in d.chunks(h).zip(part) {
                        grad[r * h..r * h + h].copy_from_slice(src);
                    }
                }
            }
            Ok(())
        })?;
        if let Ok(mut g) = self.grad.lock() {
            *g = grad;
        }
        Ok(loss)
    }
}

impl CustomOp1 for LinearCrossEntropy {
    fn name(&self) -> &'static str {
        "linear-cross-entropy"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("linear cross-entropy: hidden states must be f32")
        };
        let (n, h) = layout.shape().dims2()?;
        let x = crate::runtime::ops::contiguous_slice(data, layout, "linear cross-entropy")?;
        let loss = self.run(x, (n, h))?;
        Ok((CpuStorage::F32(loss), Shape::from(n)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (n, h) = arg.dims2()?;
        let g: Vec<f32> = grad_res.to_dtype(DType::F32)?.to_vec1()?;
        let pre = match self.grad.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => Vec::new(),
        };
        if pre.len() != n * h || g.len() != n {
            candle_core::bail!("linear cross-entropy: backward without the forward pass's gradient")
        }
        let mut dx = pre;
        dx.par_chunks_mut(h.max(1))
            .zip(g.par_iter())
            .for_each(|(row, &gr)| {
                vexp::scale(row, gr);
            });
        Ok(Some(Tensor::from_vec(dx, (n, h), arg.device())?))
    }
}

/// Causal LM loss from hidden states `[b, s, h]` and a frozen output layer `w: [vocab, h]`:
/// position `p` predicts label `p + 1`, `-100` labels are left out, as
/// [`causal_lm_loss`](super::loss::causal_lm_loss) over `hidden W^T` computes.
pub fn causal_lm_loss_from_hidden(
    hidden: &Tensor,
    w: &Tensor,
    labels: &Tensor,
) -> Result<super::loss::LossSum> {
    if !applies(hidden.device(), hidden.dtype(), w) {
        candle_core::bail!(
            "linear cross-entropy: f32 hidden states and output layer on the CPU only"
        )
    }
    let (b, s, h) = hidden.dims3()?;
    let targets = super::loss::shifted_targets(labels, (b, s), w.dim(0)?)?;
    let count = targets.iter().filter(|&&t| t != IGNORE_INDEX).count();
    let op = LinearCrossEntropy::new(w.contiguous()?, targets, hidden.track_op());
    let sum = hidden
        .reshape((b * s, h))?
        .contiguous()?
        .apply_op1(op)?
        .sum_all()?;
    Ok(super::loss::LossSum { sum, count })
}

/// Whether [`causal_lm_loss_from_hidden`] takes the loss of hidden states of `dtype` on `device`
/// over `w`: f32 hidden states and a dense f32 output layer, both on the CPU. A model asks
/// before its forward pass, so that it never runs twice.
pub fn applies(device: &Device, dtype: DType, w: &Tensor) -> bool {
    device.is_cpu() && w.device().is_cpu() && dtype == DType::F32 && w.dtype() == DType::F32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::frozen_matmul::frozen_matmul;
    use crate::runtime::train::loss::causal_lm_loss;
    use candle_core::Var;

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
    }

    /// Against the composite form (output layer, then the token cross-entropy): the loss within
    /// 1e-5 relative and the hidden states' gradient within 1e-6, with ignored labels and
    /// several chunks (a large vocabulary makes the chunks small).
    #[test]
    fn loss_and_gradient_equal_the_composite_form() -> Result<()> {
        let dev = Device::Cpu;
        // 8 Mi values per chunk over a vocabulary of 600k: 13 rows per chunk, 3 chunks for 32.
        let (b, s, h, v) = (2usize, 16usize, 8usize, 600_000usize);
        let w = (Tensor::randn(0f32, 1.0, (v, h), &dev)? * 0.5)?;
        let hidden = Var::randn(0f32, 1.0, (b, s, h), &dev)?;
        let labels: Vec<i64> = (0..b * s)
            .map(|i| {
                if i % 5 == 2 {
                    -100
                } else {
                    ((i * 7919) % v) as i64
                }
            })
            .collect();
        let labels = Tensor::from_vec(labels, (b, s), &dev)?;
        let fused = causal_lm_loss_from_hidden(hidden.as_tensor(), &w, &labels)?;
        let logits = frozen_matmul(hidden.as_tensor(), &w)?;
        let plain = causal_lm_loss(&logits, &labels)?;
        assert_eq!(fused.count, plain.count);
        let (f, p) = (fused.sum.to_scalar::<f32>()?, plain.sum.to_scalar::<f32>()?);
        assert!((f - p).abs() <= 1e-5 * p.abs(), "{f} vs {p}");
        let gf = fused.sum.backward()?;
        let gp = plain.sum.backward()?;
        let (a, c) = (
            gf.get(&hidden).expect("grad"),
            gp.get(&hidden).expect("grad"),
        );
        assert!(max_diff(a, c)? < 1e-6, "{}", max_diff(a, c)?);
        Ok(())
    }

    #[test]
    fn without_a_gradient_only_the_loss_is_computed_and_bad_labels_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (11, 4), &dev)?;
        let hidden = Tensor::randn(0f32, 1.0, (1, 3, 4), &dev)?;
        let labels = Tensor::new(&[[1i64, 2, 3]], &dev)?;
        let fused = causal_lm_loss_from_hidden(&hidden, &w, &labels)?;
        let plain = causal_lm_loss(&frozen_matmul(&hidden, &w)?, &labels)?;
        let (f, p) = (fused.sum.to_scalar::<f32>()?, plain.sum.to_scalar::<f32>()?);
        assert!((f - p).abs() < 1e-5 * p.abs());
        let bad = Tensor::new(&[[1i64, 2, 11]], &dev)?;
        assert!(causal_lm_loss_from_hidden(&hidden, &w, &bad).is_err());
        let h64 = hidden.to_dtype(DType::F64)?;
        assert!(!applies(h64.device(), h64.dtype(), &w));
        assert!(causal_lm_loss_from_hidden(&h64, &w, &labels).is_err());
        Ok(())
    }
}
