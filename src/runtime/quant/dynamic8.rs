//! 8-bit blockwise quantization with bitsandbytes' dynamic map, used for double quantization of
//! the NF4/FP4 block scales (QLoRA §3: "Double Quantization").
//!
//! The scales minus their mean are quantized in blocks of 256 with one f32 absmax each; the code
//! of a value is the nearest entry of [`DYNAMIC_CODE`] to `value / absmax` (ties: lower index).
//! Must stay a pure slice codec.

use super::codes::DYNAMIC_CODE;

/// NF4/FP4 block scales stored in 8 bits (double quantization).
#[derive(Debug, Clone, PartialEq)]
pub struct DoubleQuantScales {
    /// One byte per block scale: an index into [`DYNAMIC_CODE`].
    pub q: Vec<u8>,
    /// One absmax per `block` scales.
    pub absmax2: Vec<f32>,
    /// The mean of the scales, subtracted before quantizing and added back after.
    pub offset: f32,
    /// Scales per second-level block (bitsandbytes: 256).
    pub block: usize,
}

impl DoubleQuantScales {
    /// Quantizes f32 block scales: `offset = mean(scales)`, then 8-bit blockwise of
    /// `scales - offset`.
    pub fn quantize(scales: &[f32], block: usize) -> Self {
        let block = block.max(1);
        let offset = mean_f32(scales);
        let centred: Vec<f32> = scales.iter().map(|s| s - offset).collect();
        let (q, absmax2) = quantize_dynamic(&centred, block);
        Self {
            q,
            absmax2,
            offset,
            block,
        }
    }

    /// The f32 scale of first-level block `b`: `code[q[b]] * absmax2[b / block] + offset`.
    #[inline]
    pub fn get(&self, b: usize) -> f32 {
        let q = self.q.get(b).copied().unwrap_or(0);
        let a = self.absmax2.get(b / self.block).copied().unwrap_or(0.0);
        DYNAMIC_CODE[q as usize] * a + self.offset
    }

    /// All first-level scales in f32.
    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.q.len()).map(|b| self.get(b)).collect()
    }

    /// Bytes this representation occupies (codes + second-level absmax + offset).
    pub fn storage_bytes(&self) -> usize {
        self.q.len() + 4 * self.absmax2.len() + 4
    }
}

/// The mean in f64, rounded to f32. (PyTorch's f32 `mean` sums in a different order, so the
/// offset can differ from bitsandbytes' by one unit in the last place.)
fn mean_f32(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|v| f64::from(*v)).sum::<f64>() / x.len() as f64) as f32
}

/// Index of the code value nearest to `v` (ties: the lower index).
#[inline]
fn nearest(v: f32) -> u8 {
    let hi = DYNAMIC_CODE.partition_point(|c| *c <= v);
    let idx = hi.saturating_sub(1).min(255);
    if idx < 255 {
        let left = (v - DYNAMIC_CODE[idx]).abs();
        let right = (v - DYNAMIC_CODE[idx + 1]).abs();
        if right < left {
            return (idx + 1) as u8;
        }
    }
    idx as u8
}

/// 8-bit blockwise quantization with the dynamic map: returns one code per value and one absmax
/// per block of `block` values.
pub fn quantize_dynamic(x: &[f32], block: usize) -> (Vec<u8>, Vec<f32>) {
    let block = block.max(1);
    let mut q = Vec::with_capacity(x.len());
    let mut absmax = Vec::with_capacity(x.len().div_ceil(block));
    for chunk in x.chunks(block) {
        let am = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        absmax.push(am);
        q.extend(chunk.iter().map(|v| nearest(v / am)));
    }
    (q, absmax)
}
