//! What a user declares as `quant`: a format plus its options ([`QuantSpec`]), and the weight it
//! produces ([`QuantizedWeight`], one type over every format so that it can be cached and merged).
//!
//! Must not read files: loading and caching live in [`super::source`] and [`super::cache`].

use super::blockwise4::Code4;
use super::error::QuantError;
use super::ggml::{GgmlConfig, GgmlFormat, GgmlWeight};
use super::int8::Int8Weight;
use super::nf4::{Nf4Weight, Packed4Config};
use super::tiled::DequantRows;
use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Result, Tensor};
use std::sync::Arc;

/// The storage format of a quantized base weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantFormat {
    /// NormalFloat4 (QLoRA / bitsandbytes).
    Nf4,
    /// bitsandbytes' FP4.
    Fp4,
    /// int8 with an absmax per output row.
    Int8,
    /// GGML Q8_0 (candle kernel).
    #[serde(rename = "q8_0")]
    Q8_0,
    /// GGML Q4_K.
    Q4k,
    /// GGML Q5_K.
    Q5k,
    /// GGML Q6_K.
    Q6k,
}

impl QuantFormat {
    /// The name used in `.peft` files and cache metadata.
    pub fn name(self) -> &'static str {
        match self {
            QuantFormat::Nf4 => "nf4",
            QuantFormat::Fp4 => "fp4",
            QuantFormat::Int8 => "int8",
            QuantFormat::Q8_0 => "q8_0",
            QuantFormat::Q4k => "q4k",
            QuantFormat::Q5k => "q5k",
            QuantFormat::Q6k => "q6k",
        }
    }

    /// Parses a name (`nf4`, `fp4`, `int8`, `q8_0`, `q4k`/`q4_k`, `q5k`, `q6k`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "nf4" => QuantFormat::Nf4,
            "fp4" => QuantFormat::Fp4,
            "int8" => QuantFormat::Int8,
            "q8_0" | "q8" => QuantFormat::Q8_0,
            "q4k" | "q4_k" => QuantFormat::Q4k,
            "q5k" | "q5_k" => QuantFormat::Q5k,
            "q6k" | "q6_k" => QuantFormat::Q6k,
            _ => return None,
        })
    }

    fn ggml(self) -> Option<GgmlFormat> {
        match self {
            QuantFormat::Q8_0 => Some(GgmlFormat::Q8_0),
            QuantFormat::Q4k => Some(GgmlFormat::Q4K),
            QuantFormat::Q5k => Some(GgmlFormat::Q5K),
            QuantFormat::Q6k => Some(GgmlFormat::Q6K),
            _ => None,
        }
    }
}

/// The dtype activations enter a quantized layer in. The CPU kernels dequantize into f32 and
/// multiply in f32 (candle's bf16 GEMM on CPU is slower than f32), casting in and out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDType {
    /// f32.
    F32,
    /// bf16.
    Bf16,
    /// f16.
    F16,
}

impl ComputeDType {
    /// candle's dtype.
    pub fn dtype(self) -> DType {
        match self {
            ComputeDType::F32 => DType::F32,
            ComputeDType::Bf16 => DType::BF16,
            ComputeDType::F16 => DType::F16,
        }
    }
}

/// A quantization declaration: `quant q4 = nf4 { double_quant = true, compute = bf16 }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct QuantSpec {
    /// Storage format.
    pub format: QuantFormat,
    /// NF4/FP4: values per block (bitsandbytes: 64). Ignored by the other formats.
    pub block_size: usize,
    /// NF4/FP4: store the block scales in 8 bits (double quantization).
    pub double_quant: bool,
    /// NF4/FP4: scales per double-quantization block (bitsandbytes: 256).
    pub double_quant_block: usize,
    /// Activation dtype of the layer.
    pub compute: ComputeDType,
    /// GGML formats: keep a quantized `W^T` for a faster backward (more memory).
    pub transposed_copy: bool,
}

impl QuantSpec {
    /// A format with its defaults: NF4/FP4 blocks of 64 with double quantization (blocks of
    /// 256), f32 compute, no transposed copy.
    pub fn new(format: QuantFormat) -> Self {
        Self {
            format,
            block_size: 64,
            double_quant: matches!(format, QuantFormat::Nf4 | QuantFormat::Fp4),
            double_quant_block: 256,
            compute: ComputeDType::F32,
            transposed_copy: false,
        }
    }

    /// QLoRA's setting: NF4, blocks of 64, double quantization.
    pub fn nf4() -> Self {
        Self::new(QuantFormat::Nf4)
    }

    /// Checks the options.
    pub fn validate(&self) -> std::result::Result<(), QuantError> {
        if matches!(self.format, QuantFormat::Nf4 | QuantFormat::Fp4) {
            if !(32..=4096).contains(&self.block_size) || !self.block_size.is_power_of_two() {
                return Err(QuantError::BadOption {
                    option: "block_size".into(),
                    message: format!("{} is not a power of two in 32..=4096", self.block_size),
                });
            }
            if self.double_quant && self.double_quant_block == 0 {
                return Err(QuantError::BadOption {
                    option: "double_quant_block".into(),
                    message: "must be positive".into(),
                });
            }
        }
        Ok(())
    }

    /// A stable one-line text of the options that matter for the stored bytes (for cache keys).
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Quantizes a dense `[out, in]` weight named `name` (the name is used in errors only).
    pub fn quantize(
        &self,
        name: &str,
        w: &Tensor,
    ) -> std::result::Result<QuantizedWeight, QuantError> {
        self.validate()?;
        let dims = w.dims().to_vec();
        if dims.len() != 2 {
            return Err(self.unsupported(name, &dims, "expected a 2-D [out, in] weight"));
        }
        let q = match self.format {
            QuantFormat::Nf4 | QuantFormat::Fp4 => {
                let cfg = Packed4Config {
                    code: if self.format == QuantFormat::Nf4 {
                        Code4::Nf4
                    } else {
                        Code4::Fp4
                    },
                    block: self.block_size,
                    double_quant_block: self.double_quant.then_some(self.double_quant_block),
                };
                QuantizedWeight::Nf4(Nf4Weight::quantize(w, cfg).map_err(QuantError::candle(name))?)
            }
            QuantFormat::Int8 => {
                QuantizedWeight::Int8(Int8Weight::quantize(w).map_err(QuantError::candle(name))?)
            }
            QuantFormat::Q8_0 | QuantFormat::Q4k | QuantFormat::Q5k | QuantFormat::Q6k => {
                let f = self
                    .ggml()
                    .ok_or_else(|| self.unsupported(name, &dims, "no ggml type"))?;
                let bs = f.block_size();
                if !dims[1].is_multiple_of(bs) {
                    return Err(self.unsupported(
                        name,
                        &dims,
                        &format!("in_features {} is not a multiple of {bs}", dims[1]),
                    ));
                }
                let cfg = GgmlConfig {
                    transposed_copy: self.transposed_copy,
                };
                QuantizedWeight::Ggml(
                    GgmlWeight::quantize(w, f, cfg).map_err(QuantError::candle(name))?,
                )
            }
        };
        Ok(q)
    }

    fn ggml(&self) -> Option<GgmlFormat> {
        self.format.ggml()
    }

    fn unsupported(&self, name: &str, shape: &[usize], message: &str) -> QuantError {
        QuantError::UnsupportedShape {
            name: name.to_string(),
            shape: shape.to_vec(),
            format: self.format.name().to_string(),
            message: message.to_string(),
        }
    }
}

/// A quantized frozen weight of any format.
#[derive(Debug, Clone)]
pub enum QuantizedWeight {
    /// NF4 or FP4.
    Nf4(Nf4Weight),
    /// int8, row-wise absmax.
    Int8(Int8Weight),
    /// Q8_0 / Q4_K / Q5_K / Q6_K.
    Ggml(GgmlWeight),
}

impl QuantizedWeight {
    fn inner(&self) -> &dyn FrozenWeight {
        match self {
            QuantizedWeight::Nf4(w) => w,
            QuantizedWeight::Int8(w) => w,
            QuantizedWeight::Ggml(w) => w,
        }
    }
}

impl FrozenWeight for QuantizedWeight {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner().forward(x)
    }

    fn dequantize(&self, dtype: DType) -> Result<Tensor> {
        self.inner().dequantize(dtype)
    }

    fn dims(&self) -> (usize, usize) {
        self.inner().dims()
    }

    fn storage_bytes(&self) -> usize {
        self.inner().storage_bytes()
    }

    fn format(&self) -> &str {
        self.inner().format()
    }

    fn dense(&self) -> Option<&Tensor> {
        self.inner().dense()
    }

    fn tiles(&self) -> Option<(&Arc<dyn DequantRows>, usize)> {
        self.inner().tiles()
    }
}
