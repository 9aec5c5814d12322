//! Losses on differentiable candle ops: causal LM (shifted, `-100` masked) and classification
//! cross-entropy. Each returns the summed loss and the number of terms, so the loop can form
//! the mean over a micro-batch or over a whole accumulation window (as the Hugging Face Trainer
//! does with `num_items_in_batch`). Must not use fused ops without backward.

use crate::runtime::batch::IGNORE_INDEX;
use crate::runtime::train::cross_entropy::TokenCrossEntropy;
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
/// left out. `logits`: `[b, s, v]`; `labels`: `[b, s]` i64. On the CPU with f32 logits it uses
/// the fused [`TokenCrossEntropy`]; elsewhere `log_softmax` + `gather`.
pub fn causal_lm_loss(logits: &Tensor, labels: &Tensor) -> Result<LossSum> {
    let (b, s, v) = logits.dims3()?;
    let targets = shifted_targets(labels, (b, s), v)?;
    let count = targets.iter().filter(|&&t| t != IGNORE_INDEX).count();
    let n = b * s;
    let flat = logits.reshape((n, v))?;
    if flat.device().is_cpu() && flat.dtype() == DType::F32 {
        let op = TokenCrossEntropy::new(targets);
        let sum = flat.contiguous()?.apply_op1(op)?.sum_all()?;
        return Ok(LossSum { sum, count });
    }
    let mask: Vec<f32> = targets
        .iter()
        .map(|&t| if t == IGNORE_INDEX { 0.0 } else { 1.0 })
        .collect();
    let idx: Vec<u32> = targets
        .iter()
        .map(|&t| if t == IGNORE_INDEX { 0 } else { t as u32 })
        .collect();
    let dev = flat.device();
    let mask = Tensor::from_vec(mask, n, dev)?;
    let idx = Tensor::from_vec(idx, (n, 1), dev)?;
    let logp = candle_nn::ops::log_softmax(&flat.to_dtype(DType::F32)?, D::Minus1)?;
    let picked = logp.gather(&idx, 1)?.reshape(n)?;
    let sum = (picked * mask)?.sum_all()?.neg()?;
    Ok(LossSum { sum, count })
}

/// One target per position of `[b, s]` labels: position `p` predicts label `p + 1`, each row's
/// last position predicts nothing (`-100`). An error for labels of another shape or outside a
/// vocabulary of `v`.
pub(crate) fn shifted_targets(
    labels: &Tensor,
    (b, s): (usize, usize),
    v: usize,
) -> Result<Vec<i64>> {
    let rows: Vec<Vec<i64>> = labels.to_dtype(DType::I64)?.to_vec2()?;
    let mut targets = Vec::with_capacity(b * s);
    for row in &rows {
        targets.extend(row.iter().skip(1).copied());
        targets.push(IGNORE_INDEX);
    }
    if targets.len() != b * s || rows.len() != b {
        candle_core::bail!(
            "labels {:?} do not match {b} x {s} positions",
            labels.dims()
        )
    }
    if let Some(bad) = targets
        .iter()
        .find(|&&t| t != IGNORE_INDEX && (t < 0 || t as usize >= v))
    {
        candle_core::bail!("label {bad} outside the vocabulary of {v}")
    }
    Ok(targets)
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
