//! GGML block formats (Q8_0, Q4_K, Q5_K, Q6_K) as frozen weights, on candle's `QTensor`.
//!
//! candle's `QMatMul` has no backward (`apply_op1_no_bwd`, candle PR #2729), so adapters below a
//! quantized layer would silently get a wrong gradient. [`GgmlWeight`] runs candle's quantized
//! kernel in the forward through a custom op whose backward returns `dL/dx = g W` only: from a
//! second quantized copy of `W^T` when one was made (fastest, more memory), else from a transient
//! dequantized `W`. Never a gradient for `W`.
//!
//! On a CUDA device the quantized blocks are copied to the device once and candle's CUDA kernels
//! for the format run the forward (and dequantize `W` for the backward) there.
//!
//! Note: candle's CPU kernels quantize the activations to 8 bits in the forward (about 0.5 % error
//! on top of the weight's own); the backward through a dequantized `W` is exact.

use crate::runtime::weight::FrozenWeight;
use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use std::sync::Arc;

/// The GGML formats offered as base-weight quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GgmlFormat {
    /// 8-bit, blocks of 32 with an f16 scale (8.5 bits per weight).
    Q8_0,
    /// 4-bit k-quant, super-blocks of 256 (4.5 bits per weight).
    Q4K,
    /// 5-bit k-quant (5.5 bits per weight).
    Q5K,
    /// 6-bit k-quant (6.56 bits per weight).
    Q6K,
}

impl GgmlFormat {
    /// candle's dtype.
    pub fn dtype(self) -> GgmlDType {
        match self {
            GgmlFormat::Q8_0 => GgmlDType::Q8_0,
            GgmlFormat::Q4K => GgmlDType::Q4K,
            GgmlFormat::Q5K => GgmlDType::Q5K,
            GgmlFormat::Q6K => GgmlDType::Q6K,
        }
    }

    /// Short name: `q8_0`, `q4k`, `q5k`, `q6k`.
    pub fn name(self) -> &'static str {
        match self {
            GgmlFormat::Q8_0 => "q8_0",
            GgmlFormat::Q4K => "q4k",
            GgmlFormat::Q5K => "q5k",
            GgmlFormat::Q6K => "q6k",
        }
    }

    /// Values per block: `in_features` must be a multiple.
    pub fn block_size(self) -> usize {
        self.dtype().block_size()
    }
}

/// How the backward gets `W`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GgmlConfig {
    /// Keep a second quantized copy of `W^T` (same format) for the backward: about twice the
    /// memory, backward about 3x faster than dequantize + f32 GEMM. Made only when `out_features`
    /// is a multiple of the block size.
    pub transposed_copy: bool,
}

/// A GGML-quantized frozen weight.
#[derive(Debug, Clone)]
pub struct GgmlWeight {
    format: GgmlFormat,
    w: Arc<QTensor>,
    wt: Option<Arc<QTensor>>,
    /// `w` and `wt` on the GPU, copied block for block on the first GPU forward (candle's
    /// CUDA quantized kernels then run there).
    on_gpu: Arc<std::sync::OnceLock<QPair>>,
}

type QPair = (Arc<QTensor>, Option<Arc<QTensor>>);

impl GgmlWeight {
    /// Quantizes a dense `[out, in]` tensor; `in` must be a multiple of the block size.
    pub fn quantize(w: &Tensor, format: GgmlFormat, cfg: GgmlConfig) -> Result<Self> {
        let (out, _) = w.dims2()?;
        let wf = w.to_dtype(DType::F32)?;
        let q = QTensor::quantize(&wf, format.dtype())?;
        let wt = if cfg.transposed_copy && out % format.block_size() == 0 {
            Some(Arc::new(QTensor::quantize(
                &wf.t()?.contiguous()?,
                format.dtype(),
            )?))
        } else {
            None
        };
        Ok(Self {
            format,
            w: Arc::new(q),
            wt,
            on_gpu: Default::default(),
        })
    }

    /// Wraps existing quantized tensors (`w: [out, in]`, `wt: [in, out]`).
    pub fn from_qtensors(format: GgmlFormat, w: Arc<QTensor>, wt: Option<Arc<QTensor>>) -> Self {
        Self {
            format,
            w,
            wt,
            on_gpu: Default::default(),
        }
    }

    /// `w` and `wt` on `device` (a GPU): as they are when already there, else copied block for
    /// block once (never dequantized on the way).
    fn on_device(&self, device: &Device) -> Result<QPair> {
        if self.w.device().same_device(device) {
            return Ok((self.w.clone(), self.wt.clone()));
        }
        if let Some(p) = self.on_gpu.get() {
            return Ok(p.clone());
        }
        let copy = |q: &QTensor| -> Result<Arc<QTensor>> {
            Ok(Arc::new(qtensor_from_ggml(
                q.dtype(),
                &q.data()?,
                q.shape().dims().to_vec(),
                device,
            )?))
        };
        let wt = match &self.wt {
            Some(t) => Some(copy(t)?),
            None => None,
        };
        let pair = (copy(&self.w)?, wt);
        Ok(self.on_gpu.get_or_init(|| pair).clone())
    }

    /// The whole weight dequantized on `device` by candle's kernel for the format (on a GPU:
    /// its CUDA kernel, from the device copy), as f32.
    pub fn dequantize_on(&self, device: &Device) -> Result<Tensor> {
        if device.is_cpu() {
            return self.w.dequantize(device);
        }
        self.on_device(device)?.0.dequantize(device)
    }

    /// The format.
    pub fn ggml_format(&self) -> GgmlFormat {
        self.format
    }

    /// The quantized `[out, in]` tensor.
    pub fn qtensor(&self) -> &Arc<QTensor> {
        &self.w
    }

    /// The quantized `[in, out]` copy, if kept.
    pub fn transposed(&self) -> Option<&Arc<QTensor>> {
        self.wt.as_ref()
    }
}

impl FrozenWeight for GgmlWeight {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        if x.device().is_metal() {
            let dense = self.w.dequantize(x.device())?.to_dtype(dtype)?;
            return x.broadcast_matmul(&dense.t()?);
        }
        if x.rank() == 1 {
            // candle's kernel wants a matrix.
            return self.forward(&x.unsqueeze(0)?)?.squeeze(0);
        }
        let xf = x.to_dtype(DType::F32)?.contiguous()?;
        let (w, wt) = if x.device().is_cpu() {
            (self.w.clone(), self.wt.clone())
        } else {
            self.on_device(x.device())?
        };
        let op = QFrozenMatmul { w, wt };
        xf.apply_op1(op)?.to_dtype(dtype)
    }

    fn dequantize(&self, dtype: DType) -> Result<Tensor> {
        self.w.dequantize(&self.w.device())?.to_dtype(dtype)
    }

    fn dims(&self) -> (usize, usize) {
        let d = self.w.shape().dims();
        (
            d.first().copied().unwrap_or(0),
            d.get(1).copied().unwrap_or(0),
        )
    }

    fn storage_bytes(&self) -> usize {
        self.w.storage_size_in_bytes() + self.wt.as_ref().map_or(0, |t| t.storage_size_in_bytes())
    }

    fn format(&self) -> &str {
        self.format.name()
    }
}

/// candle's quantized kernel forward, input-only backward.
struct QFrozenMatmul {
    w: Arc<QTensor>,
    wt: Option<Arc<QTensor>>,
}

impl CustomOp1 for QFrozenMatmul {
    fn name(&self) -> &'static str {
        "peftc-qfrozen-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        <QTensor as CustomOp1>::cpu_fwd(self.w.as_ref(), s, l)
    }

    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        <QTensor as CustomOp1>::cuda_fwd(self.w.as_ref(), s, l)
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let g = g.contiguous()?;
        let dx = match &self.wt {
            Some(wt) => g.apply_op1_no_bwd(wt.as_ref())?,
            None => g.broadcast_matmul(&self.w.dequantize(g.device())?)?,
        };
        Ok(Some(dx.reshape(x.shape())?))
    }
}
