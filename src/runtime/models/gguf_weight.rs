//! A frozen quantized weight (any GGML type candle supports) as a [`FrozenWeight`]: the forward
//! runs candle's quantized matmul kernel, the backward returns `grad @ dequantize(W)` to the input
//! only. candle's own `QMatMul` has no backward and would silently cut the graph.
//!
//! Must never give the weight a gradient. The forward delegates to candle's kernel on every
//! backend (CPU, and CUDA / Metal when built with those features; only CPU is tested here).

use crate::runtime::weight::FrozenWeight;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use std::sync::Arc;

/// A frozen quantized `[out, in]` weight.
#[derive(Debug, Clone)]
pub struct QuantizedWeight {
    q: Arc<QTensor>,
}

impl QuantizedWeight {
    /// Wraps a quantized `[out, in]` tensor.
    pub fn new(q: Arc<QTensor>) -> Self {
        Self { q }
    }

    /// The quantized tensor.
    pub fn qtensor(&self) -> &Arc<QTensor> {
        &self.q
    }
}

/// `y = x W^T` on candle's quantized kernel with a backward that returns only `grad @ W`.
struct QFrozen {
    w: Arc<QTensor>,
}

impl CustomOp1 for QFrozen {
    fn name(&self) -> &'static str {
        "qfrozen-matmul"
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

    fn metal_fwd(
        &self,
        s: &candle_core::MetalStorage,
        l: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        <QTensor as CustomOp1>::metal_fwd(self.w.as_ref(), s, l)
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let g = g.contiguous()?;
        let w = self.w.dequantize(g.device())?.to_dtype(g.dtype())?;
        Ok(Some(g.broadcast_matmul(&w)?))
    }
}

impl FrozenWeight for QuantizedWeight {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x32 = x.to_dtype(DType::F32)?.contiguous()?;
        let y = x32.apply_op1(QFrozen { w: self.q.clone() })?;
        y.to_dtype(dtype)
    }

    fn dequantize(&self, dtype: DType) -> Result<Tensor> {
        self.q.dequantize(&self.q.device())?.to_dtype(dtype)
    }

    fn dims(&self) -> (usize, usize) {
        let d = self.q.shape().dims();
        (
            d.first().copied().unwrap_or(0),
            d.get(1).copied().unwrap_or(0),
        )
    }

    fn storage_bytes(&self) -> usize {
        self.q.storage_size_in_bytes()
    }

    fn format(&self) -> &str {
        ggml_name(self.q.dtype())
    }
}

/// Short lower-case name of a GGML type.
pub fn ggml_name(t: GgmlDType) -> &'static str {
    match t {
        GgmlDType::F32 => "f32",
        GgmlDType::F16 => "f16",
        GgmlDType::BF16 => "bf16",
        GgmlDType::Q4_0 => "q4_0",
        GgmlDType::Q4_1 => "q4_1",
        GgmlDType::Q5_0 => "q5_0",
        GgmlDType::Q5_1 => "q5_1",
        GgmlDType::Q8_0 => "q8_0",
        GgmlDType::Q8_1 => "q8_1",
        GgmlDType::Q2K => "q2k",
        GgmlDType::Q3K => "q3k",
        GgmlDType::Q4K => "q4k",
        GgmlDType::Q5K => "q5k",
        GgmlDType::Q6K => "q6k",
        GgmlDType::Q8K => "q8k",
    }
}
