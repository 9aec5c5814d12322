//! Pads a group of [`Example`]s into a [`Batch`] (right padding, attention mask, `-100` labels
//! on padding). The loop takes any [`Collate`], so the data part's collator can replace
//! [`PadCollator`] without touching the loop. Must not tokenize or read files.

use crate::runtime::batch::{Batch, Example, IGNORE_INDEX};
use candle_core::{Device, Result, Tensor};

/// Turns examples into a batch on a device.
pub trait Collate {
    /// Pads `examples` into one batch on `device`.
    fn collate(&self, examples: &[&Example], device: &Device) -> Result<Batch>;
}

/// Right padding with `pad_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PadCollator {
    /// Token id written into padding positions.
    pub pad_id: u32,
}

impl Collate for PadCollator {
    fn collate(&self, examples: &[&Example], device: &Device) -> Result<Batch> {
        pad_examples(examples, self.pad_id, device)
    }
}

/// Pads `examples` with `pad_id` into a batch on `device`.
pub fn collate(examples: &[Example], pad_id: u32, device: &Device) -> Result<Batch> {
    let refs: Vec<&Example> = examples.iter().collect();
    pad_examples(&refs, pad_id, device)
}

fn pad_examples(examples: &[&Example], pad_id: u32, device: &Device) -> Result<Batch> {
    let b = examples.len();
    if b == 0 {
        candle_core::bail!("cannot collate an empty batch")
    }
    let s = examples
        .iter()
        .map(|e| e.input_ids.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let with_labels = examples.iter().any(|e| !e.labels.is_empty());
    let with_class = examples.iter().any(|e| e.class_label.is_some());
    let mut ids = Vec::with_capacity(b * s);
    let mut mask = Vec::with_capacity(b * s);
    let mut labels = Vec::with_capacity(if with_labels { b * s } else { 0 });
    let mut classes = Vec::with_capacity(b);
    let mut tokens = 0;
    for (i, e) in examples.iter().enumerate() {
        let n = e.input_ids.len();
        tokens += n;
        ids.extend_from_slice(&e.input_ids);
        ids.extend(std::iter::repeat_n(pad_id, s - n));
        mask.extend(e.mask_row());
        mask.extend(std::iter::repeat_n(0u8, s - n));
        if with_labels {
            if e.labels.len() != n {
                candle_core::bail!(
                    "example {i} of the batch has {} labels for {n} tokens",
                    e.labels.len()
                )
            }
            labels.extend_from_slice(&e.labels);
            labels.extend(std::iter::repeat_n(IGNORE_INDEX, s - n));
        }
        if with_class {
            match e.class_label {
                Some(c) => classes.push(c),
                None => candle_core::bail!("example {i} of the batch has no class label"),
            }
        }
    }
    Ok(Batch {
        input_ids: Tensor::from_vec(ids, (b, s), device)?,
        attention_mask: Tensor::from_vec(mask, (b, s), device)?,
        labels: if with_labels {
            Some(Tensor::from_vec(labels, (b, s), device)?)
        } else {
            None
        },
        class_labels: if with_class {
            Some(Tensor::from_vec(classes, b, device)?)
        } else {
            None
        },
        tokens,
    })
}
