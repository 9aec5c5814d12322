//! Additive attention biases: causal and padding masks as `[b, 1, q, k]` tensors of 0 and a
//! large negative number.
//!
//! A constant (never needs a gradient). Query `i` sits at absolute position `offset + i`; with
//! `causal` it sees keys `j <= offset + i`, with a sliding `window` only the last `window` of
//! them; a key with `attention_mask == 0` is never seen. Packed sequences number their examples
//! in the mask (1, 2, ..): a query then sees only keys of its own example.

use candle_core::{DType, Device, Result, Tensor};

/// Added to masked scores. Finite so that a fully masked row gives a uniform softmax, not NaN.
pub const MASKED: f32 = -1e30;

/// Which positions a query may attend to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskKind {
    /// Decoder: keys up to the query's own position.
    Causal,
    /// Encoder: every (unpadded) key.
    Bidirectional,
}

/// The geometry of an attention bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaskSpec {
    /// Batch size (used when there is no attention mask).
    pub batch: usize,
    /// Number of queries.
    pub q_len: usize,
    /// Number of keys (cached + new).
    pub k_len: usize,
    /// Absolute position of the first query.
    pub offset: usize,
    /// Causal or bidirectional.
    pub kind: MaskKind,
    /// Sliding window: a query at position `p` sees only keys `j > p - window`.
    pub window: Option<usize>,
}

/// The bias for `q_len` queries starting at `offset` over `k_len` keys.
/// `attention_mask`: `[b, k_len]` (any integer or float dtype; nonzero = real token) or `None`
/// (no padding).
pub fn attention_bias(
    attention_mask: Option<&Tensor>,
    spec: MaskSpec,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let MaskSpec {
        batch,
        q_len,
        k_len,
        offset,
        kind,
        window,
    } = spec;
    let pad: Vec<Vec<f32>> = match attention_mask {
        Some(m) => m.to_dtype(DType::F32)?.to_vec2::<f32>()?,
        None => vec![vec![1.0; k_len]; batch],
    };
    let b = pad.len();
    let mut data = Vec::with_capacity(b * q_len * k_len);
    for row in &pad {
        if row.len() != k_len {
            candle_core::bail!("attention mask has {} columns, expected {k_len}", row.len())
        }
        for i in 0..q_len {
            let q = offset + i;
            // The query's own example; a query past the mask (or on padding) has none.
            let own = row.get(q).copied().filter(|&v| v != 0.0);
            for (j, &keep) in row.iter().enumerate() {
                let visible = keep != 0.0
                    && (kind == MaskKind::Bidirectional || j <= q)
                    && window.is_none_or(|w| j + w > q)
                    && own.is_none_or(|o| o == keep);
                data.push(if visible { 0.0 } else { MASKED });
            }
        }
    }
    Tensor::from_vec(data, (b, 1, q_len, k_len), device)?.to_dtype(dtype)
}

/// Positions `[b, s]` (u32) that restart at every packed example, when `attention_mask` numbers
/// packed examples (any value above 1); `None` for ordinary masks.
pub fn packed_positions(attention_mask: &Tensor) -> Result<Option<Tensor>> {
    let rows = attention_mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    if !rows.iter().flatten().any(|&v| v > 1.0) {
        return Ok(None);
    }
    let (b, s) = (rows.len(), rows.first().map_or(0, Vec::len));
    let mut pos = Vec::with_capacity(b * s);
    for row in &rows {
        let mut prev = f32::NAN;
        let mut p = 0u32;
        for &v in row {
            if v != prev {
                p = 0;
                prev = v;
            }
            pos.push(p);
            p += 1;
        }
    }
    Ok(Some(Tensor::from_vec(
        pos,
        (b, s),
        attention_mask.device(),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_and_padding_combine() -> Result<()> {
        let dev = Device::Cpu;
        let m = Tensor::new(&[[1u8, 1, 0]], &dev)?;
        let spec = MaskSpec {
            batch: 1,
            q_len: 3,
            k_len: 3,
            offset: 0,
            kind: MaskKind::Causal,
            window: None,
        };
        let b = attention_bias(Some(&m), spec, DType::F32, &dev)?;
        let v = b.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?;
        assert_eq!(v[0], vec![0.0, MASKED, MASKED]);
        assert_eq!(v[1], vec![0.0, 0.0, MASKED]);
        assert_eq!(v[2], vec![0.0, 0.0, MASKED]);
        let spec = MaskSpec {
            batch: 1,
            q_len: 1,
            k_len: 3,
            offset: 2,
            kind: MaskKind::Bidirectional,
            window: None,
        };
        let e = attention_bias(Some(&m), spec, DType::F32, &dev)?;
        assert_eq!(e.flatten_all()?.to_vec1::<f32>()?, vec![0.0, 0.0, MASKED]);
        Ok(())
    }
}
