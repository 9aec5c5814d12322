//! NF4 / FP4 frozen weights (QLoRA): 4-bit codes in blocks with an absmax each, the absmax
//! optionally double-quantized to 8 bits.
//!
//! Layout and arithmetic are bitsandbytes' (see [`super::blockwise4`]): the `[out, in]` weight is
//! flattened row-major, cut into blocks of `block` values, two codes per byte (high nibble first).
//! The forward and backward go through [`super::tiled`]; nothing dequantized is kept.

use super::blockwise4::{dequantize_range, quantize_4bit, Code4};
use super::dynamic8::DoubleQuantScales;
use super::tiled::{dequant_all, frozen_forward, DequantRows, DEFAULT_TILE_BYTES};
use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// The per-block absmax scales of a 4-bit weight.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockScales {
    /// One f32 per block.
    F32(Vec<f32>),
    /// Double quantization: one byte per block plus an f32 per 256 blocks and an offset.
    Double(DoubleQuantScales),
}

/// How to quantize a weight to 4 bits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packed4Config {
    /// NF4 or FP4 code table.
    pub code: Code4,
    /// Values per block (bitsandbytes default 64).
    pub block: usize,
    /// Scales per second-level block when double-quantizing (bitsandbytes: 256); `None` keeps
    /// f32 scales.
    pub double_quant_block: Option<usize>,
}

impl Default for Packed4Config {
    fn default() -> Self {
        Self {
            code: Code4::Nf4,
            block: 64,
            double_quant_block: Some(256),
        }
    }
}

/// A packed 4-bit `[out, in]` weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed4 {
    /// Code table.
    pub code: Code4,
    /// Values per block.
    pub block: usize,
    /// `(out_features, in_features)`.
    pub dims: (usize, usize),
    /// `ceil(out * in / 2)` bytes.
    pub packed: Vec<u8>,
    /// `ceil(out * in / block)` scales.
    pub scales: BlockScales,
}

impl Packed4 {
    /// Quantizes a row-major `[out, in]` f32 slice.
    pub fn quantize(w: &[f32], dims: (usize, usize), cfg: Packed4Config) -> Self {
        let (packed, absmax) = quantize_4bit(w, cfg.block, cfg.code);
        let scales = match cfg.double_quant_block {
            Some(b2) => BlockScales::Double(DoubleQuantScales::quantize(&absmax, b2)),
            None => BlockScales::F32(absmax),
        };
        Self {
            code: cfg.code,
            block: cfg.block.max(1),
            dims,
            packed,
            scales,
        }
    }

    /// The f32 absmax of block `b` (dequantized if double-quantized).
    #[inline]
    pub fn scale(&self, b: usize) -> f32 {
        match &self.scales {
            BlockScales::F32(v) => v.get(b).copied().unwrap_or(0.0),
            BlockScales::Double(d) => d.get(b),
        }
    }

    /// Bytes of codes plus scales.
    pub fn storage_bytes(&self) -> usize {
        self.packed.len()
            + match &self.scales {
                BlockScales::F32(v) => 4 * v.len(),
                BlockScales::Double(d) => d.storage_bytes(),
            }
    }

    /// Writes values `start .. start + out.len()` of the flattened weight into `out`, in parallel.
    pub fn dequant_flat(&self, start: usize, out: &mut [f32]) {
        let pairs = self.code.pair_table();
        let chunk = self.block * 64;
        let scale = |b: usize| self.scale(b);
        out.par_chunks_mut(chunk).enumerate().for_each(|(i, o)| {
            dequantize_range(
                &self.packed,
                &pairs,
                self.block,
                &scale,
                start + i * chunk,
                o,
            );
        });
    }
}

impl DequantRows for Packed4 {
    fn dims(&self) -> (usize, usize) {
        self.dims
    }

    fn dequant_rows(&self, row0: usize, out: &mut [f32]) {
        self.dequant_flat(row0 * self.dims.1, out);
    }
}

/// An NF4 (or FP4) frozen weight.
#[derive(Debug, Clone)]
pub struct Nf4Weight {
    inner: Arc<Packed4>,
    rows: Arc<dyn DequantRows>,
    tile_bytes: usize,
    /// The packed data on the CUDA device, copied on the first CUDA forward.
    #[cfg(feature = "cuda")]
    gpu: super::cuda::DeviceCopy,
}

impl Nf4Weight {
    /// Wraps packed data.
    pub fn new(packed: Packed4) -> Self {
        let inner = Arc::new(packed);
        Self {
            rows: inner.clone(),
            inner,
            tile_bytes: DEFAULT_TILE_BYTES,
            #[cfg(feature = "cuda")]
            gpu: Default::default(),
        }
    }

    /// Quantizes a dense `[out, in]` tensor (any float dtype, any device).
    pub fn quantize(w: &Tensor, cfg: Packed4Config) -> Result<Self> {
        let (out, inp) = w.dims2()?;
        let data = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self::new(Packed4::quantize(&data, (out, inp), cfg)))
    }

    /// Sets the largest transient dequantized tile in bytes.
    pub fn with_tile_bytes(mut self, bytes: usize) -> Self {
        self.tile_bytes = bytes.max(4);
        self
    }

    /// The packed data.
    pub fn packed(&self) -> &Packed4 {
        &self.inner
    }
}

#[cfg(feature = "cuda")]
impl Nf4Weight {
    fn upload(
        &self,
        dev: &candle_core::cuda_backend::CudaDevice,
    ) -> Result<Arc<dyn super::cuda::DeviceDequant>> {
        Ok(Arc::new(super::cuda::Packed4Gpu::upload(&self.inner, dev)?))
    }

    /// The whole weight dequantized by the CUDA kernel on `dev` (f32 or bf16), for comparisons
    /// with [`FrozenWeight::dequantize`].
    pub fn dequantize_cuda(
        &self,
        dev: &candle_core::cuda_backend::CudaDevice,
        dtype: DType,
    ) -> Result<Tensor> {
        let w = self.gpu.get_or_make(dev, |d| self.upload(d))?;
        super::cuda::dequant_tensor(w.as_ref(), dev, dtype)
    }
}

impl FrozenWeight for Nf4Weight {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            return super::cuda::frozen_forward_cuda(&self.gpu, |d| self.upload(d), x);
        }
        frozen_forward(&self.rows, x, self.tile_bytes)
    }

    fn dequantize(&self, dtype: DType) -> Result<Tensor> {
        dequant_all(self.inner.as_ref())?.to_dtype(dtype)
    }

    fn tiles(&self) -> Option<(&Arc<dyn DequantRows>, usize)> {
        Some((&self.rows, self.tile_bytes))
    }

    fn dims(&self) -> (usize, usize) {
        self.inner.dims
    }

    fn storage_bytes(&self) -> usize {
        self.inner.storage_bytes()
    }

    fn format(&self) -> &str {
        self.inner.code.name()
    }
}
