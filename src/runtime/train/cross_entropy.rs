//! A fused, differentiable token cross-entropy for large vocabularies on the CPU.
//!
//! The composite form (`log_softmax` then `gather`) makes about six passes over the
//! `[tokens, vocab]` logits forward and as many backward; with a vocabulary of 8k-50k that is a
//! large share of a LoRA step. This op computes each row's `logsumexp - logit[target]` in one
//! pass and its gradient `(softmax - onehot) * grad` in one more, in parallel over rows.
//! Rows whose target is `-100` give 0 and no gradient. f32 on the CPU only; the caller uses
//! the composite form elsewhere. It must not be used where the logits are not a `[n, v]` f32
//! tensor.

use crate::runtime::batch::IGNORE_INDEX;
use crate::runtime::ops::vexp;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Per-row loss of `[n, v]` logits against `n` targets.
#[derive(Debug)]
pub struct TokenCrossEntropy {
    /// One target per row; [`IGNORE_INDEX`] skips the row.
    targets: Arc<Vec<i64>>,
    /// Each row's log-sum-exp from the forward pass, reused by the backward pass.
    lse: Mutex<Vec<f32>>,
}

impl TokenCrossEntropy {
    /// The op for these targets.
    pub fn new(targets: Vec<i64>) -> Self {
        Self {
            targets: Arc::new(targets),
            lse: Mutex::new(Vec::new()),
        }
    }
}

fn lse(row: &[f32]) -> f32 {
    vexp::log_sum_exp(row)
}

fn dims(layout: &Layout, targets: usize) -> Result<(usize, usize, usize)> {
    let (n, v) = layout.shape().dims2()?;
    if n != targets {
        candle_core::bail!("token cross-entropy: {n} rows for {targets} targets")
    }
    let Some((start, _)) = layout.contiguous_offsets() else {
        candle_core::bail!("token cross-entropy: logits must be contiguous")
    };
    Ok((n, v, start))
}

impl CustomOp1 for TokenCrossEntropy {
    fn name(&self) -> &'static str {
        "token-cross-entropy"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("token cross-entropy: logits must be f32")
        };
        let (n, v, start) = dims(layout, self.targets.len())?;
        let x = data
            .get(start..start + n * v)
            .ok_or_else(|| candle_core::Error::Msg("token cross-entropy: short storage".into()))?;
        let (out, lses): (Vec<f32>, Vec<f32>) = x
            .par_chunks(v.max(1))
            .zip(self.targets.par_iter())
            .map(|(row, &t)| {
                if t == IGNORE_INDEX {
                    (0.0, 0.0)
                } else {
                    let l = lse(row);
                    (l - row.get(t as usize).copied().unwrap_or(f32::NAN), l)
                }
            })
            .unzip();
        if let Ok(mut cache) = self.lse.lock() {
            *cache = lses;
        }
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g: Vec<f32> = grad_res.to_dtype(candle_core::DType::F32)?.to_vec1()?;
        let arg = arg.contiguous()?;
        let (storage, layout) = arg.storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
            candle_core::bail!("token cross-entropy: backward needs f32 logits on the CPU")
        };
        let (n, v, start) = dims(layout, self.targets.len())?;
        let x = data
            .get(start..start + n * v)
            .ok_or_else(|| candle_core::Error::Msg("token cross-entropy: short storage".into()))?;
        let cached: Vec<f32> = match self.lse.lock() {
            Ok(c) if c.len() == n => c.clone(),
            _ => x.par_chunks(v.max(1)).map(lse).collect(),
        };
        let mut out = vec![0f32; n * v];
        out.par_chunks_mut(v.max(1))
            .zip(x.par_chunks(v.max(1)))
            .zip(
                self.targets
                    .par_iter()
                    .zip(g.par_iter())
                    .zip(cached.par_iter()),
            )
            .for_each(|((o, row), ((&t, &gr), &l))| {
                if t == IGNORE_INDEX || gr == 0.0 {
                    return;
                }
                vexp::scaled_exp_sub(o, row, l, gr);
                if let Some(ot) = o.get_mut(t as usize) {
                    *ot -= gr;
                }
            });
        drop(storage);
        Ok(Some(Tensor::from_vec(out, (n, v), arg.device())?))
    }
}
