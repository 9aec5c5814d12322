//! A GGUF file (llama.cpp's format) as a base-model [`TensorSource`] with Hugging Face llama
//! names (and GPT-2 names, mapped in [`crate::runtime::models::gguf_gpt2`]).
//!
//! - Names: `blk.N.attn_q.weight` → `model.layers.N.self_attn.q_proj.weight` and so on
//!   ([`hf_name_to_gguf`]).
//! - llama.cpp stores Q and K rows permuted for its interleaved RoPE; this source undoes it
//!   (`(heads, d/2, 2, in) → swap(1, 2) → (d, in)`) on the raw quantized rows, so linear weights
//!   stay in their stored quantized type ([`QuantizedWeight`]).
//! - Linear weights are a [`FrozenWeight`] whose forward runs candle's quantized kernel and whose
//!   backward returns `grad @ dequantize(W)` (a custom op: candle's `QMatMul` has no backward and
//!   would silently cut the graph). Norms and embeddings are dequantized to dense tensors.
//! - [`GgufModel::config_json`] builds the llama `config.json` equivalent from the metadata;
//!   the tokenizer lives in [`crate::runtime::models::gguf_tokenizer`].
//!
//! Must not change the weights' values beyond dequantization or an explicitly requested
//! re-quantization ([`LinearFormat`]).

use crate::runtime::models::gguf_gpt2::{gpt2_name_to_gguf, is_conv1d, Gpt2Meta};
pub use crate::runtime::models::gguf_weight::{ggml_name, QuantizedWeight};
use crate::runtime::models::source::{LoadError, TensorSource};
use crate::runtime::weight::FrozenWeight;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How linear weights are held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearFormat {
    /// In the file's stored type (Q4_1 for SmolLM2).
    Stored,
    /// Re-quantized to another type at load (e.g. `Q8_0`, whose CPU kernel is faster).
    Requantize(GgmlDType),
    /// Dequantized to a dense f32 weight.
    Dense,
}

/// How to open a GGUF file.
#[derive(Clone, Copy, Debug)]
pub struct GgufLoadConfig {
    /// How linear weights are held.
    pub linear_format: LinearFormat,
}

impl Default for GgufLoadConfig {
    fn default() -> Self {
        Self {
            linear_format: LinearFormat::Stored,
        }
    }
}

/// The GGUF name of a Hugging Face llama tensor name, and whether (and with how many heads) its
/// rows are permuted by llama.cpp. `None` when the name has no GGUF counterpart.
pub fn hf_name_to_gguf(name: &str) -> Option<(String, RowOrder)> {
    let top = match name {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(t) = top {
        return Some((t.to_string(), RowOrder::Plain));
    }
    if let Some(g) = gpt2_name_to_gguf(name) {
        return Some((g, RowOrder::Plain));
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    layer.parse::<usize>().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let (g, order) = match module {
        "input_layernorm" => ("attn_norm", RowOrder::Plain),
        "post_attention_layernorm" => ("ffn_norm", RowOrder::Plain),
        "self_attn.q_proj" => ("attn_q", RowOrder::PermutedQ),
        "self_attn.k_proj" => ("attn_k", RowOrder::PermutedK),
        "self_attn.v_proj" => ("attn_v", RowOrder::Plain),
        "self_attn.o_proj" => ("attn_output", RowOrder::Plain),
        "mlp.gate_proj" => ("ffn_gate", RowOrder::Plain),
        "mlp.up_proj" => ("ffn_up", RowOrder::Plain),
        "mlp.down_proj" => ("ffn_down", RowOrder::Plain),
        _ => return None,
    };
    Some((format!("blk.{layer}.{g}.{kind}"), order))
}

/// Whether a tensor's rows carry llama.cpp's RoPE permutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowOrder {
    /// Stored as in Hugging Face.
    Plain,
    /// Query rows, permuted per attention head.
    PermutedQ,
    /// Key rows, permuted per key/value head.
    PermutedK,
}

/// For output row `r` in HF order, the stored (llama.cpp) row: within each head of width `hd`,
/// HF row `j * hd/2 + i` is stored at `2 * i + j`.
pub fn stored_row(r: usize, head_dim: usize) -> usize {
    let half = head_dim / 2;
    let (h, within) = (r / head_dim, r % head_dim);
    let (j, i) = (within / half, within % half);
    h * head_dim + 2 * i + j
}

/// An open GGUF file with its metadata; tensors are read from a memory map.
pub struct GgufModel {
    path: PathBuf,
    content: Content,
    mmap: memmap2::Mmap,
    device: Device,
    opts: GgufLoadConfig,
}

impl std::fmt::Debug for GgufModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufModel")
            .field("path", &self.path)
            .finish()
    }
}

impl GgufModel {
    /// Opens `path` (memory-mapped) and reads its header.
    pub fn open(
        path: &Path,
        device: &Device,
        opts: GgufLoadConfig,
    ) -> std::result::Result<Self, LoadError> {
        let file_name = path.display().to_string();
        let other = |message: String| LoadError::Other {
            file: file_name.clone(),
            message,
        };
        let (file, _) = crate::safe_fs::open_regular(path).map_err(|e| other(e.to_string()))?;
        // SAFETY: the file is opened read-only and the map is never written; a concurrent
        // truncation by another process is outside what any reader can defend against.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| other(e.to_string()))?;
        let mut cursor = std::io::Cursor::new(&mmap[..]);
        let content = Content::read(&mut cursor)
            .map_err(|e| other(format!("not a readable GGUF file: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            content,
            mmap,
            device: device.clone(),
            opts,
        })
    }

    pub(crate) fn file(&self) -> String {
        self.path.display().to_string()
    }

    /// A metadata value.
    pub fn metadata(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn meta_u64(&self, key: &str) -> std::result::Result<u64, LoadError> {
        let v = self.metadata(key).ok_or_else(|| LoadError::Other {
            file: self.file(),
            message: format!("metadata `{key}` is missing"),
        })?;
        v.to_u64()
            .or_else(|_| v.to_u32().map(u64::from))
            .or_else(|_| v.to_i32().map(|x| x.max(0) as u64))
            .map_err(|e| LoadError::Other {
                file: self.file(),
                message: format!("metadata `{key}`: {e}"),
            })
    }

    fn meta_f64(&self, key: &str) -> Option<f64> {
        let v = self.metadata(key)?;
        v.to_f32().map(f64::from).or_else(|_| v.to_f64()).ok()
    }

    /// `general.architecture` (e.g. `llama`).
    pub fn architecture(&self) -> std::result::Result<String, LoadError> {
        match self.metadata("general.architecture").map(|v| v.to_string()) {
            Some(Ok(s)) => Ok(s.clone()),
            _ => Err(LoadError::Other {
                file: self.file(),
                message: "metadata `general.architecture` is missing".into(),
            }),
        }
    }

    /// The names of the GGUF tensors.
    pub fn gguf_tensor_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.content.tensor_infos.keys().cloned().collect();
        v.sort();
        v
    }

    /// The Hugging Face llama `config.json` equivalent of the metadata.
    pub fn config_json(&self) -> std::result::Result<serde_json::Value, LoadError> {
        let arch = self.architecture()?;
        if arch == "gpt2" {
            return self.gpt2_config_json();
        }
        if !matches!(arch.as_str(), "llama" | "mistral" | "qwen2") {
            return Err(LoadError::Other {
                file: self.file(),
                message: format!(
                    "unknown GGUF architecture `{arch}` (expected llama, mistral, qwen2 or gpt2)"
                ),
            });
        }
        let k = |s: &str| format!("{arch}.{s}");
        let n_head = self.meta_u64(&k("attention.head_count"))?;
        let n_kv = self
            .meta_u64(&k("attention.head_count_kv"))
            .unwrap_or(n_head);
        let vocab = match self.meta_u64(&k("vocab_size")) {
            Ok(v) => v,
            Err(_) => self.token_embd_rows()? as u64,
        };
        let tied = !self.content.tensor_infos.contains_key("output.weight");
        let tok = |key: &str| self.meta_u64(&format!("tokenizer.ggml.{key}")).ok();
        let (model_type, class) = match arch.as_str() {
            "qwen2" => ("qwen2", "Qwen2ForCausalLM"),
            "mistral" => ("mistral", "MistralForCausalLM"),
            _ => ("llama", "LlamaForCausalLM"),
        };
        let mut cfg = serde_json::json!({
            "architectures": [class],
            "model_type": model_type,
            "hidden_size": self.meta_u64(&k("embedding_length"))?,
            "intermediate_size": self.meta_u64(&k("feed_forward_length"))?,
            "num_hidden_layers": self.meta_u64(&k("block_count"))?,
            "num_attention_heads": n_head,
            "num_key_value_heads": n_kv,
            "max_position_embeddings": self.meta_u64(&k("context_length")).unwrap_or(2048),
            "rms_norm_eps": self.meta_f64(&k("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
            "rope_theta": self.meta_f64(&k("rope.freq_base")).unwrap_or(10000.0),
            "vocab_size": vocab,
            "tie_word_embeddings": tied,
            "hidden_act": "silu",
            "bos_token_id": tok("bos_token_id"),
            "eos_token_id": tok("eos_token_id"),
            "pad_token_id": tok("padding_token_id"),
            "torch_dtype": "float32",
        });
        if let (Some(kind), Some(factor)) = (
            self.metadata(&k("rope.scaling.type"))
                .and_then(|v| v.to_string().ok()),
            self.meta_f64(&k("rope.scaling.factor")),
        ) {
            if kind != "none" {
                cfg["rope_scaling"] = serde_json::json!({"rope_type": kind, "factor": factor});
            }
        }
        Ok(cfg)
    }

    /// The GPT-2 `config.json` equivalent of the metadata (`n_positions` from the position
    /// table, which transformers requires to be GPT2Config's 1024 rows).
    fn gpt2_config_json(&self) -> std::result::Result<serde_json::Value, LoadError> {
        let k = |s: &str| format!("gpt2.{s}");
        let n_embd = self.meta_u64(&k("embedding_length"))?;
        let positions = self.info("position_embd.weight", "wpe.weight")?;
        let vocab = match self.meta_u64(&k("vocab_size")) {
            Ok(v) => v,
            Err(_) => self.token_embd_rows()? as u64,
        };
        let tok = |key: &str| self.meta_u64(&format!("tokenizer.ggml.{key}")).ok();
        Ok(Gpt2Meta {
            n_embd,
            n_layer: self.meta_u64(&k("block_count"))?,
            n_head: self.meta_u64(&k("attention.head_count"))?,
            n_positions: positions.shape.dims().first().copied().unwrap_or(0) as u64,
            n_inner: 4 * n_embd,
            layer_norm_epsilon: self
                .meta_f64(&k("attention.layer_norm_epsilon"))
                .unwrap_or(1e-5),
            vocab_size: vocab,
            bos: tok("bos_token_id"),
            eos: tok("eos_token_id"),
            tied: !self.content.tensor_infos.contains_key("output.weight"),
        }
        .config_json())
    }

    /// Writes the Hugging Face metadata files of this model into `dir`: `config.json` always,
    /// `tokenizer.json` and `tokenizer_config.json` when the metadata carries a supported
    /// tokenizer. Weights are not written.
    pub fn write_hf_files(&self, dir: &Path) -> std::result::Result<(), LoadError> {
        let io = |p: &Path, e: &dyn std::fmt::Display| LoadError::Other {
            file: p.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
        let mut files = vec![("config.json", self.config_json()?)];
        if self.metadata("tokenizer.ggml.tokens").is_some() {
            files.push(("tokenizer.json", self.tokenizer_json()?));
            files.push(("tokenizer_config.json", self.tokenizer_config()?.to_json()));
        }
        for (name, value) in files {
            let path = dir.join(name);
            let text = serde_json::to_string_pretty(&value).map_err(|e| io(&path, &e))?;
            std::fs::write(&path, text).map_err(|e| io(&path, &e))?;
        }
        Ok(())
    }

    fn token_embd_rows(&self) -> std::result::Result<usize, LoadError> {
        let info = self.info("token_embd.weight", "model.embed_tokens.weight")?;
        Ok(info.shape.dims().first().copied().unwrap_or(0))
    }

    fn info(
        &self,
        gguf: &str,
        hf: &str,
    ) -> std::result::Result<&candle_core::quantized::gguf_file::TensorInfo, LoadError> {
        self.content
            .tensor_infos
            .get(gguf)
            .ok_or_else(|| LoadError::MissingTensor {
                name: format!("{hf} (GGUF `{gguf}`)"),
                file: self.file(),
            })
    }

    /// Whether this file's Q/K rows carry llama.cpp's RoPE permutation (llama, mistral).
    pub fn permutes_qk(&self) -> std::result::Result<bool, LoadError> {
        Ok(matches!(self.architecture()?.as_str(), "llama" | "mistral"))
    }

    fn head_counts(&self) -> std::result::Result<(usize, usize), LoadError> {
        let arch = self.architecture()?;
        let n_head = self.meta_u64(&format!("{arch}.attention.head_count"))? as usize;
        let n_kv = self
            .meta_u64(&format!("{arch}.attention.head_count_kv"))
            .map(|v| v as usize)
            .unwrap_or(n_head);
        Ok((n_head, n_kv))
    }

    /// Reads a tensor by its HF name, in its stored type, rows un-permuted where llama.cpp
    /// permuted them.
    pub fn qtensor(&self, hf: &str) -> std::result::Result<QTensor, LoadError> {
        let (gguf, order) = hf_name_to_gguf(hf).ok_or_else(|| LoadError::MissingTensor {
            name: hf.to_string(),
            file: self.file(),
        })?;
        let info = self.info(&gguf, hf)?;
        let err = |e: candle_core::Error| LoadError::Other {
            file: self.file(),
            message: format!("tensor `{hf}` (GGUF `{gguf}`): {e}"),
        };
        let dims = info.shape.dims().to_vec();
        let elems: usize = dims.iter().product();
        let bs = info.ggml_dtype.block_size();
        let bytes = elems / bs * info.ggml_dtype.type_size();
        let start = (self.content.tensor_data_offset + info.offset) as usize;
        let raw = self
            .mmap
            .get(start..start + bytes)
            .ok_or_else(|| LoadError::Other {
                file: self.file(),
                message: format!(
                    "tensor `{hf}` (GGUF `{gguf}`) runs past the end of the file (truncated?)"
                ),
            })?;
        // llama.cpp's converter permutes Q/K only for llama-style (GPT-J rope) models; qwen2
        // uses NeoX rope and is stored in HF order.
        let order = if self.permutes_qk()? {
            order
        } else {
            RowOrder::Plain
        };
        let heads = match order {
            RowOrder::Plain => None,
            RowOrder::PermutedQ => Some(self.head_counts()?.0),
            RowOrder::PermutedK => Some(self.head_counts()?.1),
        };
        let Some(heads) = heads else {
            return qtensor_from_ggml(info.ggml_dtype, raw, dims, &self.device).map_err(err);
        };
        let rows = dims.first().copied().unwrap_or(0);
        if heads == 0 || rows % heads != 0 || (rows / heads) % 2 != 0 {
            return Err(LoadError::Other {
                file: self.file(),
                message: format!(
                    "tensor `{hf}`: {rows} rows do not split into {heads} heads of even width"
                ),
            });
        }
        let head_dim = rows / heads;
        let row_bytes = bytes / rows.max(1);
        if dims.len() == 1 {
            // A bias: one element per row; dequantize, permute, keep as f32.
            let t = qtensor_from_ggml(info.ggml_dtype, raw, dims.clone(), &Device::Cpu)
                .and_then(|q| q.dequantize(&Device::Cpu))
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(err)?;
            let v: Vec<f32> = (0..rows).map(|r| t[stored_row(r, head_dim)]).collect();
            let t = Tensor::from_vec(v, rows, &self.device).map_err(err)?;
            return QTensor::quantize(&t, GgmlDType::F32).map_err(err);
        }
        let mut out = Vec::with_capacity(bytes);
        for r in 0..rows {
            let s = stored_row(r, head_dim) * row_bytes;
            out.extend_from_slice(&raw[s..s + row_bytes]);
        }
        qtensor_from_ggml(info.ggml_dtype, &out, dims, &self.device).map_err(err)
    }
}

impl TensorSource for GgufModel {
    fn contains(&self, name: &str) -> bool {
        hf_name_to_gguf(name)
            .map(|(g, _)| self.content.tensor_infos.contains_key(&g))
            .unwrap_or(false)
    }

    fn shape(&self, name: &str) -> std::result::Result<Vec<usize>, LoadError> {
        let (g, _) = hf_name_to_gguf(name).ok_or_else(|| LoadError::MissingTensor {
            name: name.to_string(),
            file: self.file(),
        })?;
        let mut dims = self.info(&g, name)?.shape.dims().to_vec();
        // Stored `[out, in]`; a `Conv1D` weight is `[in, out]` in Hugging Face.
        if is_conv1d(name) {
            dims.reverse();
        }
        Ok(dims)
    }

    /// GPT-2's `Conv1D` weights are stored as `[out, in]` linear weights already.
    fn conv1d(
        &self,
        name: &str,
        dtype: DType,
    ) -> std::result::Result<Arc<dyn FrozenWeight>, LoadError> {
        self.linear(name, dtype)
    }

    fn tensor(&self, name: &str, dtype: DType) -> std::result::Result<Tensor, LoadError> {
        let q = self.qtensor(name)?;
        q.dequantize(&self.device)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(|e| LoadError::Other {
                file: self.file(),
                message: format!("tensor `{name}`: {e}"),
            })
    }

    fn linear(
        &self,
        name: &str,
        dtype: DType,
    ) -> std::result::Result<Arc<dyn FrozenWeight>, LoadError> {
        let q = self.qtensor(name)?;
        let err = |e: candle_core::Error| LoadError::Other {
            file: self.file(),
            message: format!("tensor `{name}`: {e}"),
        };
        let float = matches!(q.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
        match self.opts.linear_format {
            LinearFormat::Dense => {
                let t = q
                    .dequantize(&self.device)
                    .and_then(|t| t.to_dtype(dtype))
                    .map_err(err)?;
                Ok(Arc::new(crate::runtime::dense::DenseWeight::new(t)))
            }
            _ if float => {
                let t = q
                    .dequantize(&self.device)
                    .and_then(|t| t.to_dtype(dtype))
                    .map_err(err)?;
                Ok(Arc::new(crate::runtime::dense::DenseWeight::new(t)))
            }
            LinearFormat::Stored => Ok(Arc::new(QuantizedWeight::new(Arc::new(q)))),
            LinearFormat::Requantize(t) if t == q.dtype() => {
                Ok(Arc::new(QuantizedWeight::new(Arc::new(q))))
            }
            LinearFormat::Requantize(t) => {
                let dense = q.dequantize(&self.device).map_err(err)?;
                let rq = QTensor::quantize(&dense, t).map_err(err)?;
                Ok(Arc::new(QuantizedWeight::new(Arc::new(rq))))
            }
        }
    }
}
