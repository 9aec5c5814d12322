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
    /// For a packed sequence, the lengths of the examples packed into it, in order (their sum is
    /// the length of `input_ids`); empty for a single example.
    pub packed: Vec<u32>,
}

impl Example {
    /// The attention-mask row of this example: for a packed sequence each token carries its
    /// example's number (1, 2, ..), so attention stays inside each packed example; otherwise 1.
    pub fn mask_row(&self) -> Vec<u8> {
        if self.packed.len() < 2 {
            return vec![1; self.input_ids.len()];
        }
        let mut row = Vec::with_capacity(self.input_ids.len());
        for (i, &len) in self.packed.iter().enumerate() {
            let segment = u8::try_from(i % 255 + 1).unwrap_or(u8::MAX);
            row.extend(std::iter::repeat_n(segment, len as usize));
        }
        row.resize(self.input_ids.len(), row.last().copied().unwrap_or(1));
        row
    }
}

/// A padded batch on a device.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[batch, seq]`, u32.
    pub input_ids: Tensor,
    /// `[batch, seq]`, u8: 0 for padding; otherwise 1, or for packed sequences the number of the
    /// packed example the token belongs to (attention does not cross examples).
    pub attention_mask: Tensor,
    /// `[batch, seq]`, i64, causal LM only.
    pub labels: Option<Tensor>,
    /// `[batch]`, u32, classification only.
    pub class_labels: Option<Tensor>,
    /// Number of real (non-padding) tokens, for throughput figures.
    pub tokens: usize,
}
