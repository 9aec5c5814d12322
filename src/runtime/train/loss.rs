//! Losses on differentiable candle ops: causal LM (shifted, `-100` masked) and classification
//! cross-entropy. Each returns the summed loss and the number of terms, so the loop can form
//! the mean over a micro-batch or over a whole accumulation window (as the Hugging Face Trainer
//! does with `num_items_in_batch`). Must not use fused ops without backward.

use crate::runtime::batch::IGNORE_INDEX;
use candle_core::{DType, Result, Tensor, D};

/// A summed loss and how many terms it sums.
#[derive(Clone, Debug)]
pub struct LossSum {
    /// Scalar, differentiable.
    pub sum: Tensor,
    /// Counted tokens (causal) or examples (classification).
    pub count: usize,
}

impl LossSum {
    /// The mean (`sum / count`; 0 terms gives 0, as nothing is learned from them).
    pub fn mean(&self) -> Result<Tensor> {
        self.sum.affine(1.0 / self.count.max(1) as f64, 0.0)
    }
}

/// Causal LM loss: `logits[:, :-1]` predicts `labels[:, 1:]`; positions labelled `-100` are
/// left out. `logits`: `[b, s, v]`; `labels`: `[b, s]` i64.
pub fn causal_lm_loss(logits: &Tensor, labels: &Tensor) -> Result<LossSum> {
    let (b, s, v) = logits.dims3()?;
    if s < 2 {
        return Ok(LossSum {
            sum: logits.sum_all()?.affine(0.0, 0.0)?,
            count: 0,
        });
    }
    let n = b * (s - 1);
    let logits = logits
        .to_dtype(DType::F32)?
        .narrow(1, 0, s - 1)?
        .reshape((n, v))?;
    let targets = labels
        .narrow(1, 1, s - 1)?
        .reshape(n)?
        .to_dtype(DType::I64)?;
    let host: Vec<i64> = targets.to_vec1()?;
    let count = host.iter().filter(|&&t| t != IGNORE_INDEX).count();
    let mask: Vec<f32> = host
        .iter()
        .map(|&t| if t == IGNORE_INDEX { 0.0 } else { 1.0 })
        .collect();
    let idx: Vec<u32> = host
        .iter()
        .map(|&t| if t == IGNORE_INDEX { 0 } else { t as u32 })
        .collect();
    if let Some(bad) = host
        .iter()
        .find(|&&t| t != IGNORE_INDEX && (t < 0 || t as usize >= v))
    {
        candle_core::bail!("label {bad} outside the vocabulary of {v}")
    }
    let dev = logits.device();
    let mask = Tensor::from_vec(mask, n, dev)?;
    let idx = Tensor::from_vec(idx, (n, 1), dev)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let picked = logp.gather(&idx, 1)?.reshape(n)?;
    let sum = (picked * mask)?.sum_all()?.neg()?;
    Ok(LossSum { sum, count })
}

/// Classification cross-entropy: `logits`: `[b, c]`; `labels`: `[b]` u32.
pub fn classification_loss(logits: &Tensor, labels: &Tensor) -> Result<LossSum> {
    let (b, c) = logits.dims2()?;
    let labels = labels.to_dtype(DType::U32)?;
    let host: Vec<u32> = labels.to_vec1()?;
    if let Some(bad) = host.iter().find(|&&t| t as usize >= c) {
        candle_core::bail!("class label {bad} outside the {c} labels of the head")
    }
    let logp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let sum = logp.gather(&labels.reshape((b, 1))?, 1)?.sum_all()?.neg()?;
    Ok(LossSum { sum, count: b })
}
