//! What `peftc serve` serves and within which limits: the base model, the adapters known at
//! start, the address and the bounds of the batch, the queue, `max_tokens` and the adapter
//! cache. Plain data: must not load anything.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the base model comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum BaseSource {
    /// A Hugging Face folder (`config.json`, safetensors, `tokenizer.json`).
    Folder(PathBuf),
    /// A GGUF file (its weights stay quantized; tokenizer and chat template from its metadata).
    Gguf(PathBuf),
}

impl BaseSource {
    /// A folder, or a GGUF file by its extension.
    pub fn from_path(path: PathBuf) -> Self {
        let gguf = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        if gguf {
            BaseSource::Gguf(path)
        } else {
            BaseSource::Folder(path)
        }
    }

    /// The path as given.
    pub fn path(&self) -> &std::path::Path {
        match self {
            BaseSource::Folder(p) | BaseSource::Gguf(p) => p,
        }
    }
}

/// The base model: where it is, the name clients use for it, and its quantization.
#[derive(Clone, Debug, PartialEq)]
pub struct BaseSpec {
    pub source: BaseSource,
    /// The `model` value that selects the base without an adapter.
    pub name: String,
    /// Quantize a folder's linear weights at load (`nf4`, `int8`, `q8_0`, `q4k`), as a
    /// pipeline's `model = m quantized q` does.
    pub quant: Option<crate::runtime::quant::QuantSpec>,
}

/// One adapter known at start (loaded on its first request).
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterSpec {
    /// The `model` value that selects it.
    pub name: String,
    /// A PEFT folder (`adapter_config.json`, `adapter_model.safetensors`).
    pub path: PathBuf,
}

/// Bounds of the server.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Requests decoded together in one forward pass.
    pub max_batch: usize,
    /// Requests accepted but not yet decoding; one more is answered 429.
    pub max_queue: usize,
    /// The largest `max_tokens` a request may ask for (larger: 400).
    pub max_tokens: usize,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: usize,
    /// Bytes of adapter weights kept in memory; the least recently used unused adapter is
    /// dropped to make room.
    pub adapter_cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_batch: 32,
            max_queue: 256,
            max_tokens: 2048,
            default_max_tokens: 16,
            adapter_cache_bytes: 1 << 30,
        }
    }
}

/// Everything a server needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeConfig {
    pub base: BaseSpec,
    pub adapters: Vec<AdapterSpec>,
    pub addr: SocketAddr,
    pub limits: Limits,
}
