//! Tokenization: [`Rendered`] rows become [`Example`]s with the model's special tokens, loss
//! labels masked outside the trained byte ranges ([`IGNORE_INDEX`]), and `max_len` applied.
//!
//! Rows are encoded in chunks with `Tokenizer::encode_batch` (parallel over rows).

use tokenizers::{EncodeInput, Encoding, Tokenizer, TruncationDirection, TruncationParams};

use super::render::Rendered;
use super::spec::Truncation;
use super::tokenizer::ModelTokenizer;
use crate::runtime::batch::{Example, IGNORE_INDEX};

/// Length settings for encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeConfig {
    pub max_len: Option<usize>,
    pub truncation: Truncation,
}

/// The outcome for one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encoded {
    /// An example; `truncated` when `max_len` cut it.
    Example { example: Example, truncated: bool },
    /// Longer than `max_len` under [`Truncation::Drop`]: the full length.
    TooLong(usize),
    /// No tokens at all.
    Empty,
}

/// Encodes rendered rows with one tokenizer.
pub struct Encoder {
    plain: Tokenizer,
    /// The tokenizer with truncation set, for classification (keeps `[SEP]` and the like).
    truncating: Option<Tokenizer>,
    eos: Option<u32>,
    cfg: EncodeConfig,
}

impl Encoder {
    pub fn new(tok: &ModelTokenizer, cfg: EncodeConfig) -> Result<Self, String> {
        let mut plain = tok.tokenizer().clone();
        plain.with_truncation(None).map_err(|e| e.to_string())?;
        plain.with_padding(None);
        let truncating = match (cfg.max_len, cfg.truncation) {
            (Some(max_length), Truncation::Right | Truncation::Left) => {
                let mut t = plain.clone();
                t.with_truncation(Some(TruncationParams {
                    max_length,
                    direction: if cfg.truncation == Truncation::Left {
                        TruncationDirection::Left
                    } else {
                        TruncationDirection::Right
                    },
                    ..TruncationParams::default()
                }))
                .map_err(|e| e.to_string())?;
                Some(t)
            }
            _ => None,
        };
        Ok(Encoder {
            plain,
            truncating,
            eos: tok.eos_id(),
            cfg,
        })
    }

    /// Encode a chunk of rows (all from one renderer, so they agree on special tokens).
    pub fn encode(&self, rows: &[Rendered]) -> Result<Vec<Encoded>, String> {
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let classify = first.class_label.is_some();
        let tok = match (&self.truncating, classify) {
            (Some(t), true) => t,
            _ => &self.plain,
        };
        let inputs: Vec<EncodeInput> = rows
            .iter()
            .map(|r| match &r.pair {
                Some(p) => EncodeInput::from((r.text.as_str(), p.as_str())),
                None => EncodeInput::from(r.text.as_str()),
            })
            .collect();
        let encodings = tok
            .encode_batch(inputs, first.add_special_tokens)
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .zip(encodings)
            .map(|(r, enc)| self.finish(r, &enc, classify))
            .collect())
    }

    fn finish(&self, r: &Rendered, enc: &Encoding, classify: bool) -> Encoded {
        let mut ids: Vec<u32> = enc.get_ids().to_vec();
        if ids.is_empty() {
            return Encoded::Empty;
        }
        let mut labels: Vec<i64> = Vec::new();
        if !classify {
            labels = match &r.trained {
                None => ids.iter().map(|&i| i64::from(i)).collect(),
                Some(ranges) => ids
                    .iter()
                    .zip(enc.get_offsets())
                    .map(|(&id, &(s, e))| {
                        let hit = e > s && ranges.iter().any(|g| s < g.end && e > g.start);
                        if hit {
                            i64::from(id)
                        } else {
                            IGNORE_INDEX
                        }
                    })
                    .collect(),
            };
            if let Some(eos) = self.eos.filter(|_| r.append_eos) {
                if ids.last() != Some(&eos) {
                    let trained = match &r.trained {
                        None => true,
                        Some(ranges) => ranges.iter().any(|g| g.end >= r.text.len()),
                    };
                    ids.push(eos);
                    labels.push(if trained {
                        i64::from(eos)
                    } else {
                        IGNORE_INDEX
                    });
                }
            }
        }
        let mut truncated = false;
        if let Some(max) = self.cfg.max_len {
            if ids.len() > max {
                match self.cfg.truncation {
                    Truncation::Drop => return Encoded::TooLong(ids.len()),
                    Truncation::Right => {
                        ids.truncate(max);
                        labels.truncate(max);
                    }
                    Truncation::Left => {
                        let cut = ids.len() - max;
                        ids.drain(..cut);
                        if !labels.is_empty() {
                            labels.drain(..cut);
                        }
                    }
                }
                truncated = true;
            } else if classify && !enc.get_overflowing().is_empty() {
                truncated = true;
            }
        }
        Encoded::Example {
            example: Example {
                input_ids: ids,
                labels,
                class_label: r.class_label,
                packed: Vec::new(),
            },
            truncated,
        }
    }
}
