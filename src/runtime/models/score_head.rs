//! The sequence-classification head of the decoder architectures, as transformers'
//! `LlamaForSequenceClassification` (also Mistral, Qwen2) and `GPT2ForSequenceClassification`
//! build it: a `score` linear layer without bias, `[num_labels, hidden]`, applied to the final
//! hidden state of each row's last non-padding token.
//!
//! transformers finds that token as the last position whose id is not `pad_token_id`; here it is
//! the last position whose attention mask is 1, which is the same token whenever padding is the
//! only place the pad id occurs (the batches peftc builds) and also works for models without a
//! pad token. Must not read files: the weight comes from a [`WeightReader`].

use crate::runtime::adapters::linear::AdaptableLinear;
use crate::runtime::models::error::ModelError;
use crate::runtime::models::reader::WeightReader;
use candle_core::{Result, Tensor};

/// The module path of the head (PEFT's `modules_to_save = ["score"]`).
pub const SCORE: &str = "score";

/// Reads `score.weight` `[num_labels, hidden]` as the head.
pub fn load_score(
    w: &WeightReader,
    num_labels: usize,
    hidden: usize,
) -> std::result::Result<AdaptableLinear, ModelError> {
    let weight = w.linear(&format!("{SCORE}.weight"), num_labels, hidden)?;
    Ok(AdaptableLinear::new(SCORE, weight, None))
}

/// The hidden state `[b, h]` of each row's last position with mask 1, from `x: [b, s, h]` and
/// `mask: [b, s]`. A row without any mask-1 position pools its first token. Differentiable
/// with respect to `x` (an `index_select`).
pub fn pool_last(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (b, s, h) = x.dims3()?;
    let rows: Vec<Vec<u8>> = mask.to_dtype(candle_core::DType::U8)?.to_vec2()?;
    let index: Vec<u32> = rows
        .iter()
        .enumerate()
        .map(|(r, m)| {
            let last = m.iter().rposition(|&v| v != 0).unwrap_or(0);
            (r * s + last) as u32
        })
        .collect();
    let index = Tensor::from_vec(index, b, x.device())?;
    x.reshape((b * s, h))?.index_select(&index, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn pools_the_last_unmasked_position_of_each_row() -> Result<()> {
        let x = Tensor::arange(0f32, 24.0, &Device::Cpu)?.reshape((2, 4, 3))?;
        let mask = Tensor::new(&[[1u8, 1, 1, 0], [0, 1, 1, 1]], &Device::Cpu)?;
        let p = pool_last(&x, &mask)?.to_vec2::<f32>()?;
        assert_eq!(p, vec![vec![6.0, 7.0, 8.0], vec![21.0, 22.0, 23.0]]);
        Ok(())
    }
}
