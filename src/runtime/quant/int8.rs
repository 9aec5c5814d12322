//! int8 frozen weights with one absmax scale per output row (LLM.int8()'s weight format without
//! the outlier decomposition): `q = round(w * 127 / absmax_row)`, `w ~ q * absmax_row / 127`.
//!
//! Forward and backward go through [`super::tiled`]; nothing dequantized is kept.

use super::tiled::{dequant_all, frozen_forward, DequantRows, DEFAULT_TILE_BYTES};
use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// Row-wise int8 data of a `[out, in]` weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Rows {
    /// `(out_features, in_features)`.
    pub dims: (usize, usize),
    /// `out * in` codes, row-major.
    pub q: Vec<i8>,
    /// One absmax per row.
    pub absmax: Vec<f32>,
}

impl Int8Rows {
    /// Quantizes a row-major `[out, in]` slice.
    pub fn quantize(w: &[f32], dims: (usize, usize)) -> Self {
        let inp = dims.1.max(1);
        let absmax: Vec<f32> = w
            .par_chunks(inp)
            .map(|r| r.iter().fold(0f32, |m, v| m.max(v.abs())))
            .collect();
        let mut q = vec![0i8; w.len()];
        q.par_chunks_mut(inp)
            .zip(w.par_chunks(inp))
            .zip(absmax.par_iter())
            .for_each(|((dst, src), am)| {
                let s = if *am > 0.0 { 127.0 / am } else { 0.0 };
                for (d, v) in dst.iter_mut().zip(src) {
                    *d = (v * s).round().clamp(-127.0, 127.0) as i8;
                }
            });
        Self { dims, q, absmax }
    }
}

impl DequantRows for Int8Rows {
    fn dims(&self) -> (usize, usize) {
        self.dims
    }

    fn dequant_rows(&self, row0: usize, out: &mut [f32]) {
        let inp = self.dims.1.max(1);
        let q = self.q.get(row0 * inp..).unwrap_or(&[]);
        out.par_chunks_mut(inp)
            .zip(q.par_chunks(inp))
            .enumerate()
            .for_each(|(r, (dst, src))| {
                let s = self.absmax.get(row0 + r).copied().unwrap_or(0.0) / 127.0;
                for (d, v) in dst.iter_mut().zip(src) {
                    *d = f32::from(*v) * s;
                }
            });
    }
}

/// An int8 (row-wise absmax) frozen weight.
#[derive(Debug, Clone)]
pub struct Int8Weight {
    inner: Arc<Int8Rows>,
    rows: Arc<dyn DequantRows>,
    tile_bytes: usize,
    /// The packed data on the CUDA device, copied on the first CUDA forward.
    #[cfg(feature = "cuda")]
    gpu: super::cuda::DeviceCopy,
}

impl Int8Weight {
    /// Wraps quantized rows.
    pub fn new(rows: Int8Rows) -> Self {
        let inner = Arc::new(rows);
        Self {
            rows: inner.clone(),
            inner,
            tile_bytes: DEFAULT_TILE_BYTES,
            #[cfg(feature = "cuda")]
            gpu: Default::default(),
        }
    }

    /// Quantizes a dense `[out, in]` tensor.
    pub fn quantize(w: &Tensor) -> Result<Self> {
        let (out, inp) = w.dims2()?;
        let data = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self::new(Int8Rows::quantize(&data, (out, inp))))
    }

    /// The quantized rows.
    pub fn rows(&self) -> &Int8Rows {
        &self.inner
    }
}

#[cfg(feature = "cuda")]
impl Int8Weight {
    fn upload(
        &self,
        dev: &candle_core::cuda_backend::CudaDevice,
    ) -> Result<Arc<dyn super::cuda::DeviceDequant>> {
        Ok(Arc::new(super::cuda::Int8Gpu::upload(&self.inner, dev)?))
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

impl FrozenWeight for Int8Weight {
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
        self.inner.q.len() + 4 * self.inner.absmax.len()
    }

    fn format(&self) -> &str {
        "int8"
    }
}
