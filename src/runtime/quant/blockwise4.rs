//! The 4-bit blockwise codec of bitsandbytes (NF4, FP4) on plain slices.
//!
//! `quantize_4bit` follows bitsandbytes 0.50's CPU path step by step (`backends/default/ops.py`):
//! per block the absmax, `scaled = clamp(x * (1 / max(absmax, 1e-38)), -1, 1)` (a ragged last
//! block divides by its clamped absmax instead), the code is the bucket of `scaled` among the
//! midpoints of the sorted code table (`torch.bucketize`, `right=False`), and two codes share a
//! byte with the first one in the high nibble; an odd count is padded with the code of 0.0.
//! Dequantization is `code[q] * absmax[block]` in f32.
//!
//! Must not allocate per element or know about tensors; the weight type builds on it.

use super::codes::{FP4_CODE, NF4_CODE};
use rayon::prelude::*;

/// Which 16-value code table a 4-bit weight uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Code4 {
    /// NormalFloat4: quantiles of a normal distribution (QLoRA).
    Nf4,
    /// bitsandbytes' 4-bit float (1 sign, 2 exponent, 1 mantissa bit).
    Fp4,
}

/// bitsandbytes' `torch.argsort(fp4_code)`: the code indices in ascending value order.
const FP4_ORDER: [u8; 16] = [11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3];
const NF4_ORDER: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

impl Code4 {
    /// The 16 code values, indexed by the stored nibble.
    pub fn table(self) -> &'static [f32; 16] {
        match self {
            Code4::Nf4 => &NF4_CODE,
            Code4::Fp4 => &FP4_CODE,
        }
    }

    fn order(self) -> &'static [u8; 16] {
        match self {
            Code4::Nf4 => &NF4_ORDER,
            Code4::Fp4 => &FP4_ORDER,
        }
    }

    /// Short name: `nf4` or `fp4`.
    pub fn name(self) -> &'static str {
        match self {
            Code4::Nf4 => "nf4",
            Code4::Fp4 => "fp4",
        }
    }

    /// The 15 midpoints between neighbouring sorted code values, computed in f32 as
    /// bitsandbytes does.
    fn bounds(self) -> [f32; 15] {
        let (t, o) = (self.table(), self.order());
        let mut b = [0f32; 15];
        for (i, v) in b.iter_mut().enumerate() {
            *v = (t[o[i] as usize] + t[o[i + 1] as usize]) / 2.0;
        }
        b
    }

    /// A 256-entry table: byte -> (value of the high nibble, value of the low nibble).
    pub fn pair_table(self) -> [[f32; 2]; 256] {
        let t = self.table();
        let mut p = [[0f32; 2]; 256];
        for (b, v) in p.iter_mut().enumerate() {
            *v = [t[b >> 4], t[b & 15]];
        }
        p
    }
}

/// `torch.bucketize(v, bounds, right=False)`: the number of bounds strictly below `v`.
fn bucket(v: f32, bounds: &[f32; 15]) -> u8 {
    let mut i = 0u8;
    for b in bounds {
        i += u8::from(*b < v);
    }
    i
}

fn absmax(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// Quantizes `x` (flattened, row-major) in blocks of `block` values. Returns the packed codes
/// (`ceil(n / 2)` bytes) and one absmax per block (`ceil(n / block)` values).
pub fn quantize_4bit(x: &[f32], block: usize, code: Code4) -> (Vec<u8>, Vec<f32>) {
    let block = block.max(1);
    let bounds = code.bounds();
    let order = code.order();
    let n = x.len();
    let full = n - n % block;
    let mut scales: Vec<f32> = x[..full].par_chunks(block).map(absmax).collect();
    let mut scaled = vec![0f32; n + n % 2];
    scaled[..full]
        .par_chunks_mut(block)
        .zip(x[..full].par_chunks(block))
        .zip(scales.par_iter())
        .for_each(|((dst, src), am)| {
            let inv = 1.0f32 / am.max(1e-38);
            for (d, s) in dst.iter_mut().zip(src) {
                *d = (s * inv).clamp(-1.0, 1.0);
            }
        });
    if full < n {
        let am = absmax(&x[full..]).max(1e-38);
        scales.push(am);
        for (d, s) in scaled[full..n].iter_mut().zip(&x[full..]) {
            *d = (s / am).clamp(-1.0, 1.0);
        }
    }
    let packed = scaled
        .par_chunks(2)
        .map(|p| {
            let hi = order[bucket(p[0], &bounds) as usize];
            let lo = order[bucket(p.get(1).copied().unwrap_or(0.0), &bounds) as usize];
            (hi << 4) | lo
        })
        .collect();
    (packed, scales)
}

/// Writes the values `start .. start + out.len()` of a 4-bit tensor into `out`.
///
/// `scale(b)` gives the absmax of block `b`. The inner loop decodes a whole byte (two values)
/// per step through a 256-entry pair table and one multiply each, which the compiler vectorises.
pub fn dequantize_range(
    packed: &[u8],
    pairs: &[[f32; 2]; 256],
    block: usize,
    scale: &(impl Fn(usize) -> f32 + Sync),
    start: usize,
    out: &mut [f32],
) {
    let block = block.max(1);
    let mut pos = start;
    let mut rest = out;
    while !rest.is_empty() {
        let b = pos / block;
        let seg_len = ((b + 1) * block - pos).min(rest.len());
        let (seg, tail) = rest.split_at_mut(seg_len);
        decode_segment(packed, pairs, scale(b), pos, seg);
        pos += seg_len;
        rest = tail;
    }
}

/// Decodes `out.len()` values starting at element `pos`, all with the same scale.
fn decode_segment(packed: &[u8], pairs: &[[f32; 2]; 256], s: f32, pos: usize, out: &mut [f32]) {
    let mut o = out;
    let mut p = pos;
    if p % 2 == 1 && !o.is_empty() {
        let byte = packed.get(p / 2).copied().unwrap_or(0);
        o[0] = pairs[byte as usize][1] * s;
        o = &mut o[1..];
        p += 1;
    }
    let whole = o.len() / 2;
    let bytes = packed.get(p / 2..p / 2 + whole).unwrap_or(&[]);
    let (body, last) = o.split_at_mut(2 * bytes.len());
    for (dst, byte) in body.chunks_exact_mut(2).zip(bytes) {
        let v = pairs[*byte as usize];
        dst[0] = v[0] * s;
        dst[1] = v[1] * s;
    }
    if let Some(d) = last.first_mut() {
        let byte = packed.get((p + 2 * bytes.len()) / 2).copied().unwrap_or(0);
        *d = pairs[byte as usize][0] * s;
    }
}

/// Dequantizes a whole flattened 4-bit tensor of `n` values in parallel (chunks of 64 blocks).
pub fn dequantize_all(
    packed: &[u8],
    code: Code4,
    block: usize,
    scale: &(impl Fn(usize) -> f32 + Sync),
    n: usize,
) -> Vec<f32> {
    let pairs = code.pair_table();
    let mut out = vec![0f32; n];
    let chunk = block.max(2) * 64;
    out.par_chunks_mut(chunk).enumerate().for_each(|(i, o)| {
        dequantize_range(packed, &pairs, block, scale, i * chunk, o);
    });
    out
}
