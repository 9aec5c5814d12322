//! The quantized frozen matmul on a CUDA device (CUDA builds only): the packed weight is copied
//! to the device once, and each forward dequantizes it there with the kernels of
//! [`super::kernels`] (compiled with NVRTC on first use) into a transient `[out, in]` buffer of the
//! input's dtype (f32 or bf16), multiplied with cuBLAS through candle's matmul. The backward
//! returns `dL/dx = g W` by dequantizing again on the device; never a gradient for `W`, never a
//! round trip through host memory.
//!
//! One CUDA device per process: the device copy is made on the device of the first input.

use super::codes::DYNAMIC_CODE;
use super::int8::Int8Rows;
use super::kernels::CUDA_SOURCE;
use super::nf4::{BlockScales, Packed4};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use std::sync::{Arc, OnceLock};

const MODULE: &str = "peftc_quant_kernels";

fn err(what: &str, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{what}: {e}"))
}

/// The PTX of [`CUDA_SOURCE`], compiled once per process.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        candle_core::cuda_backend::cudarc::nvrtc::compile_ptx(CUDA_SOURCE)
            .map(|p| p.to_src())
            .map_err(|e| format!("NVRTC could not compile the dequantization kernels: {e}"))
    })
    .as_ref()
    .map(String::as_str)
    .map_err(|e| candle_core::Error::Msg(e.clone()))
}

fn upload<T: candle_core::cuda_backend::cudarc::driver::DeviceRepr + Copy + Default + 'static>(
    dev: &CudaDevice,
    data: &[T],
) -> Result<CudaSlice<T>> {
    // A zero-length allocation is refused by the driver: unused arguments get one element.
    let one = [T::default()];
    let src = if data.is_empty() { &one[..] } else { data };
    let mut dst = unsafe { dev.alloc::<T>(src.len())? };
    dev.memcpy_htod(src, &mut dst)?;
    Ok(dst)
}

/// A frozen weight that can dequantize itself on a CUDA device.
pub trait DeviceDequant: Send + Sync {
    /// `(out_features, in_features)`.
    fn dims(&self) -> (usize, usize);
    /// The whole `[out, in]` weight, dequantized on `dev` into a new buffer of `dtype`
    /// (f32 or bf16).
    fn dequant(&self, dev: &CudaDevice, dtype: DType) -> Result<CudaStorage>;
}

/// A grid of 1024-thread blocks for `n` outputs (the kernels loop when `n` is larger).
fn grid(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(1024).clamp(1, 65_535) as u32, 1, 1),
        block_dim: (1024, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launches kernel `$name` over `$n` outputs of `$dtype` (f32 or bf16) with the arguments
/// `$arg..`, then the count and the new output buffer; evaluates to the output's storage.
macro_rules! launch {
    ($dev:expr, $name:expr, $n:expr, $dtype:expr, [$($arg:expr),*]) => {{
        let dev: &CudaDevice = $dev;
        let n: usize = $n;
        let func = dev.get_or_load_custom_func($name, MODULE, ptx()?)?;
        let n64 = n as u64;
        match $dtype {
            DType::F32 => {
                let mut out = unsafe { dev.alloc::<f32>(n.max(1))? };
                {
                    let mut b = func.builder();
                    $(b.arg($arg);)*
                    b.arg(&n64);
                    b.arg(&mut out);
                    unsafe { b.launch(grid(n)) }.map_err(|e| err($name, e))?;
                }
                Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
            }
            DType::BF16 => {
                let mut out = unsafe { dev.alloc::<half::bf16>(n.max(1))? };
                {
                    let mut b = func.builder();
                    $(b.arg($arg);)*
                    b.arg(&n64);
                    b.arg(&mut out);
                    unsafe { b.launch(grid(n)) }.map_err(|e| err($name, e))?;
                }
                Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
            }
            other => candle_core::bail!("quantized matmul on CUDA: {other:?} (f32 or bf16)"),
        }
    }};
}

/// A 4-bit (NF4/FP4) weight on the device.
pub struct Packed4Gpu {
    dims: (usize, usize),
    packed: CudaSlice<u8>,
    code: CudaSlice<f32>,
    absmax: CudaSlice<f32>,
    q2: CudaSlice<u8>,
    absmax2: CudaSlice<f32>,
    dyn_code: CudaSlice<f32>,
    offset: f32,
    double_quant: i32,
    block: u64,
    block2: u64,
}

impl Packed4Gpu {
    /// Copies the packed codes and scales to `dev` (once per weight).
    pub fn upload(p: &Packed4, dev: &CudaDevice) -> Result<Self> {
        let (absmax, q2, absmax2, offset, block2, dq): (&[f32], &[u8], &[f32], f32, u64, i32) =
            match &p.scales {
                BlockScales::F32(v) => (v, &[], &[], 0.0, 1, 0),
                BlockScales::Double(d) => (&[], &d.q, &d.absmax2, d.offset, d.block as u64, 1),
            };
        Ok(Self {
            dims: p.dims,
            packed: upload(dev, &p.packed)?,
            code: upload(dev, p.code.table())?,
            absmax: upload(dev, absmax)?,
            q2: upload(dev, q2)?,
            absmax2: upload(dev, absmax2)?,
            dyn_code: upload(dev, &DYNAMIC_CODE)?,
            offset,
            double_quant: dq,
            block: p.block.max(1) as u64,
            block2: block2.max(1),
        })
    }
}

impl DeviceDequant for Packed4Gpu {
    fn dims(&self) -> (usize, usize) {
        self.dims
    }

    fn dequant(&self, dev: &CudaDevice, dtype: DType) -> Result<CudaStorage> {
        let name = match dtype {
            DType::BF16 => "peftc_dequant4_bf16",
            _ => "peftc_dequant4_f32",
        };
        launch!(
            dev,
            name,
            self.dims.0 * self.dims.1,
            dtype,
            [
                &self.packed,
                &self.code,
                &self.absmax,
                &self.q2,
                &self.absmax2,
                &self.dyn_code,
                &self.offset,
                &self.double_quant,
                &self.block,
                &self.block2
            ]
        )
    }
}

/// A row-scaled int8 weight on the device.
pub struct Int8Gpu {
    dims: (usize, usize),
    q: CudaSlice<i8>,
    absmax: CudaSlice<f32>,
}

impl Int8Gpu {
    /// Copies the codes and row scales to `dev` (once per weight).
    pub fn upload(r: &Int8Rows, dev: &CudaDevice) -> Result<Self> {
        Ok(Self {
            dims: r.dims,
            q: upload(dev, &r.q)?,
            absmax: upload(dev, &r.absmax)?,
        })
    }
}

impl DeviceDequant for Int8Gpu {
    fn dims(&self) -> (usize, usize) {
        self.dims
    }

    fn dequant(&self, dev: &CudaDevice, dtype: DType) -> Result<CudaStorage> {
        let name = match dtype {
            DType::BF16 => "peftc_dequant_int8_bf16",
            _ => "peftc_dequant_int8_f32",
        };
        let inp = self.dims.1.max(1) as u64;
        launch!(
            dev,
            name,
            self.dims.0 * self.dims.1,
            dtype,
            [&self.q, &self.absmax, &inp]
        )
    }
}

/// The device copy of a weight, made on first use and shared by the weight's clones.
#[derive(Clone, Default)]
pub struct DeviceCopy(Arc<OnceLock<Arc<dyn DeviceDequant>>>);

impl std::fmt::Debug for DeviceCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.0.get().is_some() {
            "on the device"
        } else {
            "not copied"
        };
        write!(f, "DeviceCopy({state})")
    }
}

impl DeviceCopy {
    /// The device copy, made by `make` the first time.
    pub fn get_or_make(
        &self,
        dev: &CudaDevice,
        make: impl FnOnce(&CudaDevice) -> Result<Arc<dyn DeviceDequant>>,
    ) -> Result<Arc<dyn DeviceDequant>> {
        if let Some(w) = self.0.get() {
            return Ok(w.clone());
        }
        let made = make(dev)?;
        Ok(self.0.get_or_init(|| made).clone())
    }
}

/// The CUDA device of a tensor's storage.
pub fn cuda_device(x: &Tensor) -> Result<CudaDevice> {
    match x.device() {
        candle_core::Device::Cuda(d) => Ok(d.clone()),
        other => candle_core::bail!("expected a CUDA tensor, got one on {other:?}"),
    }
}

/// `x @ W^T` on the device of `x` (CUDA), differentiable with respect to `x` only. `make` builds
/// the device copy the first time. f32 and bf16 inputs compute in their own dtype (bf16 inputs
/// multiply a bf16 weight, as `compute = bf16` asks); other dtypes compute in f32.
pub fn frozen_forward_cuda(
    copy: &DeviceCopy,
    make: impl FnOnce(&CudaDevice) -> Result<Arc<dyn DeviceDequant>>,
    x: &Tensor,
) -> Result<Tensor> {
    let dev = cuda_device(x)?;
    let w = copy.get_or_make(&dev, make)?;
    let dtype = x.dtype();
    let compute = if dtype == DType::BF16 {
        DType::BF16
    } else {
        DType::F32
    };
    let xc = x.to_dtype(compute)?.contiguous()?;
    xc.apply_op1(DeviceFrozenMatmul { w })?.to_dtype(dtype)
}

/// The whole weight dequantized on `dev` as a `[out, in]` tensor of `dtype` (f32 or bf16).
pub fn dequant_tensor(w: &dyn DeviceDequant, dev: &CudaDevice, dtype: DType) -> Result<Tensor> {
    let storage = w.dequant(dev, dtype)?;
    let (out, inp) = w.dims();
    Ok(Tensor::from_storage(
        candle_core::Storage::Cuda(storage),
        (out, inp),
        candle_core::op::BackpropOp::none(),
        false,
    ))
}

struct DeviceFrozenMatmul {
    w: Arc<dyn DeviceDequant>,
}

impl CustomOp1 for DeviceFrozenMatmul {
    fn name(&self) -> &'static str {
        "peftc-cuda-frozen-matmul"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("the CUDA frozen matmul got a CPU tensor")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (out, inp) = self.w.dims();
        let dims = l.dims();
        let k = dims.last().copied().unwrap_or(0);
        if k != inp || !l.is_contiguous() {
            candle_core::bail!(
                "frozen matmul: input must be contiguous with {inp} features, got {dims:?}"
            );
        }
        let m = l.shape().elem_count() / k.max(1);
        let x_l = Layout::contiguous_with_offset((m, k), l.start_offset());
        let w = self.w.dequant(s.device(), s.dtype())?;
        let w_l = Layout::contiguous((out, inp)).transpose(0, 1)?;
        let y = s.matmul(&w, (1, m, out, k), &x_l, &w_l)?;
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = out;
        }
        Ok((y, Shape::from(shape)))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let g = g.to_dtype(x.dtype())?.contiguous()?;
        let dx = g.apply_op1_no_bwd(&DeviceInputGradient { w: self.w.clone() })?;
        Ok(Some(dx.reshape(x.shape())?))
    }
}

/// `dL/dx = g @ W` on the device, without recording a graph.
struct DeviceInputGradient {
    w: Arc<dyn DeviceDequant>,
}

impl CustomOp1 for DeviceInputGradient {
    fn name(&self) -> &'static str {
        "peftc-cuda-frozen-input-gradient"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("the CUDA frozen matmul backward got a CPU tensor")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (out, inp) = self.w.dims();
        let dims = l.dims();
        if dims.last().copied() != Some(out) || !l.is_contiguous() {
            candle_core::bail!("frozen matmul backward: gradient {dims:?} does not end in {out}");
        }
        let m = l.shape().elem_count() / out.max(1);
        let g_l = Layout::contiguous_with_offset((m, out), l.start_offset());
        let w = self.w.dequant(s.device(), s.dtype())?;
        let dx = s.matmul(&w, (1, m, inp, out), &g_l, &Layout::contiguous((out, inp)))?;
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = inp;
        }
        Ok((dx, Shape::from(shape)))
    }
}

/// Free and total memory of the CUDA device `dev`, in bytes (`cuMemGetInfo`).
pub fn mem_info(dev: &CudaDevice) -> Result<(u64, u64)> {
    let (free, total) = dev
        .cuda_stream()
        .context()
        .mem_get_info()
        .map_err(|e| err("cuMemGetInfo", e))?;
    Ok((free as u64, total as u64))
}
