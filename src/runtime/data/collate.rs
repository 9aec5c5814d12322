//! Collation: a slice of [`Example`]s becomes one padded [`Batch`] on a device, with the
//! attention mask, labels padded with [`IGNORE_INDEX`], and class labels.
//!
//! Must not reorder, truncate or drop examples.

use candle_core::{Device, Tensor};
use miette::Diagnostic;
use thiserror::Error;

use crate::runtime::batch::{Batch, Example, IGNORE_INDEX};

/// Which side padding goes on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PaddingSide {
    #[default]
    Right,
    Left,
}

/// How to pad a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollateConfig {
    /// The id written into padding positions (see [`super::ModelTokenizer::pad_id`]).
    pub pad_id: u32,
    /// Round the padded length up to a multiple of this (`None` or 1: the longest example).
    pub pad_to_multiple_of: Option<usize>,
    pub side: PaddingSide,
}

impl CollateConfig {
    pub fn new(pad_id: u32) -> Self {
        CollateConfig {
            pad_id,
            pad_to_multiple_of: None,
            side: PaddingSide::Right,
        }
    }
}

/// Why a batch could not be made.
#[derive(Debug, Error, Diagnostic)]
pub enum CollateError {
    /// No examples.
    #[error("cannot collate an empty batch")]
    #[diagnostic(code(peftc::data::collate_empty))]
    Empty,
    /// Classification and causal LM examples in one batch.
    #[error("example {index} is {found} but example 0 is {expected}")]
    #[diagnostic(code(peftc::data::collate_mixed))]
    Mixed {
        index: usize,
        expected: &'static str,
        found: &'static str,
    },
    /// An example's labels are not as long as its tokens.
    #[error("example {index} has {ids} tokens but {labels} labels")]
    #[diagnostic(code(peftc::data::collate_labels))]
    LabelLength {
        index: usize,
        ids: usize,
        labels: usize,
    },
    /// The tensors could not be built.
    #[error("building batch tensors: {0}")]
    #[diagnostic(code(peftc::data::collate_tensor))]
    Tensor(#[from] candle_core::Error),
}

fn kind(e: &Example) -> &'static str {
    if e.class_label.is_some() {
        "a classification example"
    } else {
        "a causal LM example"
    }
}

/// Pad `examples` into a [`Batch`] on `device`.
pub fn collate(
    examples: &[Example],
    cfg: &CollateConfig,
    device: &Device,
) -> Result<Batch, CollateError> {
    let first = examples.first().ok_or(CollateError::Empty)?;
    let classify = first.class_label.is_some();
    for (index, e) in examples.iter().enumerate() {
        if e.class_label.is_some() != classify {
            return Err(CollateError::Mixed {
                index,
                expected: kind(first),
                found: kind(e),
            });
        }
        if !classify && e.labels.len() != e.input_ids.len() {
            return Err(CollateError::LabelLength {
                index,
                ids: e.input_ids.len(),
                labels: e.labels.len(),
            });
        }
    }
    let longest = examples
        .iter()
        .map(|e| e.input_ids.len())
        .max()
        .unwrap_or(0);
    let seq = match cfg.pad_to_multiple_of {
        Some(m) if m > 1 => longest.div_ceil(m) * m,
        _ => longest,
    };
    let b = examples.len();
    let mut ids = Vec::with_capacity(b * seq);
    let mut mask = Vec::with_capacity(b * seq);
    let mut labels = Vec::with_capacity(if classify { 0 } else { b * seq });
    let mut tokens = 0;
    for e in examples {
        let n = e.input_ids.len();
        let pad = seq - n;
        tokens += n;
        let row = |ids: &mut Vec<u32>, mask: &mut Vec<u8>, labels: &mut Vec<i64>, real| {
            if real {
                ids.extend_from_slice(&e.input_ids);
                mask.extend(e.mask_row());
                if !classify {
                    labels.extend_from_slice(&e.labels);
                }
            } else {
                ids.extend(std::iter::repeat_n(cfg.pad_id, pad));
                mask.extend(std::iter::repeat_n(0u8, pad));
                if !classify {
                    labels.extend(std::iter::repeat_n(IGNORE_INDEX, pad));
                }
            }
        };
        match cfg.side {
            PaddingSide::Right => {
                row(&mut ids, &mut mask, &mut labels, true);
                row(&mut ids, &mut mask, &mut labels, false);
            }
            PaddingSide::Left => {
                row(&mut ids, &mut mask, &mut labels, false);
                row(&mut ids, &mut mask, &mut labels, true);
            }
        }
    }
    let class_labels = if classify {
        let v: Vec<u32> = examples.iter().filter_map(|e| e.class_label).collect();
        Some(Tensor::from_vec(v, b, device)?)
    } else {
        None
    };
    Ok(Batch {
        input_ids: Tensor::from_vec(ids, (b, seq), device)?,
        attention_mask: Tensor::from_vec(mask, (b, seq), device)?,
        labels: if classify {
            None
        } else {
            Some(Tensor::from_vec(labels, (b, seq), device)?)
        },
        class_labels,
        tokens,
    })
}
