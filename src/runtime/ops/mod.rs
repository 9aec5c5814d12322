//! Differentiable tensor ops for the training path.
//!
//! candle's fused kernels (`softmax_last_dim`, `rms_norm`, `layer_norm`, `rope`, `sdpa`) return
//! tensors without a backward pass and silently cut the gradient graph, so the training path
//! uses only the composite forms here. [`frozen_matmul::FrozenMatmul`] multiplies by a frozen
//! weight and returns only the input gradient; [`swiglu::swiglu`] is llama's `silu(gate) * up`
//! and [`gelu::gelu_erf`] the exact GELU, each in one pass each way; [`lora_linear::lora_linear`]
//! is a whole LoRA layer over a dense base (one graph node instead of about eight), and
//! `lora_attention` / `lora_mlp` a block's whole attention and feed-forward parts. Every op has a
//! finite-difference gradient test.
//! Must not use candle's `*_no_bwd` ops on a forward path (a backward pass may: its results are
//! gradients, never differentiated again).

pub mod attention;
pub mod dropout;
pub mod frozen_matmul;
pub mod fused;
pub mod fused_attention;
pub mod gelu;
pub(crate) mod gemm;
pub(crate) mod lora_attention;
mod lora_grads;
pub(crate) mod lora_group;
pub mod lora_linear;
pub(crate) mod lora_mlp;
mod lora_stack;
pub mod mask;
pub mod no_grad;
pub mod norm;
mod norm_rows;
pub mod rope;
pub mod softmax;
pub mod swiglu;
mod verf;
pub mod vexp;

#[cfg(test)]
pub(crate) mod gradcheck;

/// The contiguous slice of a CPU storage's values that `l` describes; `op` names the op in
/// the error.
pub(crate) fn contiguous_slice<'a, T: candle_core::WithDType>(
    v: &'a [T],
    l: &candle_core::Layout,
    op: &str,
) -> candle_core::Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: inputs must be contiguous")))?;
    v.get(a..b)
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: layout out of range")))
}

/// Runs `f` on the values of a contiguous CPU tensor of type `T` (the storage stays locked while
/// it runs); `op` names the op in errors.
pub(crate) fn with_cpu_slice<T: candle_core::WithDType, R>(
    t: &candle_core::Tensor,
    op: &str,
    f: impl FnOnce(&[T]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("{op}: CPU tensors only")
    };
    f(contiguous_slice(T::cpu_storage_as_slice(cpu)?, layout, op)?)
}

/// `n` values as the allocator hands them out, for a buffer the caller overwrites whole before
/// reading any of it: the destination of a product that does not accumulate (`gemm` writes it
/// without reading it, zeros included when the inner dimension is 0) or of an elementwise pass
/// over every value. Saves [`zeroed`]'s pass over memory that is written again at once (about
/// 1.5% of a tiny-llama LoRA step's samples).
///
/// # Safety
/// Every value must be written before any is read, on every path (errors included: a buffer
/// an error leaves half-written must be dropped unread).
#[allow(clippy::uninit_vec)]
pub(crate) unsafe fn uninit<T: candle_core::WithDType>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: `T` is a plain number type, and the caller writes every value before reading.
    unsafe { v.set_len(n) };
    v
}

/// `n` zeros, written by rayon's threads when `n` is large. A freed heap block that is reused
/// for a buffer must be cleared; on one thread that clearing (and the page faults of fresh
/// pages) was a serial stretch of every fused op's forward and backward pass.
pub(crate) fn zeroed<T: candle_core::WithDType>(n: usize) -> Vec<T> {
    use rayon::iter::ParallelExtend;
    const SERIAL_BELOW: usize = 1 << 16;
    if n < SERIAL_BELOW {
        return vec![T::from_f64(0.0); n];
    }
    let mut v = Vec::with_capacity(n);
    v.par_extend(rayon::iter::repeat_n(T::from_f64(0.0), n));
    v
}
