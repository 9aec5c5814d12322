//! What data preparation hands to training and evaluation.
//!
//! [`Example`] is one tokenized example; [`Batch`] is a padded group of them as tensors. Labels
//! follow the Hugging Face convention: aligned with `input_ids` (not shifted), with
//! [`IGNORE_INDEX`] where no loss is taken (padding, prompt tokens); the causal loss shifts them.

use candle_core::Tensor;

/// Label value for positions that take no loss (as PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// One tokenized example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// Token ids, special tokens included.
    pub input_ids: Vec<u32>,
    /// Per-token labels for causal LM loss, same length as `input_ids`; [`IGNORE_INDEX`] masks a
    /// position. Empty for classification examples.
    pub labels: Vec<i64>,
    /// Class index for classification; `None` for causal LM examples.
    pub class_label: Option<u32>,
}

/// A padded batch on a device.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[batch, seq]`, u32.
    pub input_ids: Tensor,
    /// `[batch, seq]`, u8: 1 for a real token, 0 for padding.
    pub attention_mask: Tensor,
    /// `[batch, seq]`, i64, causal LM only.
    pub labels: Option<Tensor>,
    /// `[batch]`, u32, classification only.
    pub class_labels: Option<Tensor>,
    /// Number of real (non-padding) tokens, for throughput figures.
    pub tokens: usize,
}
