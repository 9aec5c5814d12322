//! A [`TensorSource`] over a Hugging Face folder's safetensors files, memory-mapped.
//!
//! One `model.safetensors`, or shards listed in `model.safetensors.index.json`; f32, f16 and
//! bf16 tensors. The headers are parsed once; tensor bytes are read from the map when asked
//! for (never copied twice: bytes go straight into the candle tensor). Pickled `.bin`
//! checkpoints are refused. Every error names the file and the tensor; nothing panics on a bad
//! file.

use crate::runtime::dense::DenseWeight;
use crate::runtime::models::source::{LoadError, TensorSource};
use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::layout::{weight_layout, WeightLayout};
use std::sync::Arc;

struct Shard {
    path: PathBuf,
    map: Mmap,
}

/// Memory-mapped safetensors files with a name -> shard index.
pub struct SafetensorsSource {
    shards: Vec<Shard>,
    index: HashMap<String, usize>,
    device: Device,
    describe: String,
}

impl std::fmt::Debug for SafetensorsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SafetensorsSource({})", self.describe)
    }
}

fn other(file: &Path, message: impl Into<String>) -> LoadError {
    LoadError::Other {
        file: file.display().to_string(),
        message: message.into(),
    }
}

impl SafetensorsSource {
    /// Opens the weights of a model folder: `model.safetensors`, or the shards named in
    /// `model.safetensors.index.json`. A folder with only `pytorch_model.bin` (or any `.bin`)
    /// is refused.
    pub fn from_folder(folder: &Path, device: &Device) -> Result<Self, LoadError> {
        let entries: Vec<PathBuf> = std::fs::read_dir(folder)
            .map_err(|e| other(folder, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        match weight_layout(folder, &entries) {
            WeightLayout::Index(index) => {
                let text = crate::safe_fs::read_text_limited(&index, crate::safe_fs::JSON_LIMIT)
                    .map_err(|e| other(&index, e.to_string()))?;
                let json: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| other(&index, format!("invalid JSON: {e}")))?;
                let map = json
                    .get("weight_map")
                    .and_then(|m| m.as_object())
                    .ok_or_else(|| other(&index, "no `weight_map` object"))?;
                let mut files: Vec<PathBuf> = Vec::new();
                for v in map.values() {
                    let f = v
                        .as_str()
                        .ok_or_else(|| other(&index, "a `weight_map` value is not a string"))?;
                    let p = folder.join(f);
                    if !files.contains(&p) {
                        files.push(p);
                    }
                }
                files.sort();
                Self::from_files(&files, device)
            }
            WeightLayout::Single(single) => Self::from_files(&[single], device),
            WeightLayout::Shards(shards) => Self::from_files(&shards, device),
            WeightLayout::Pickled(bin) => Err(LoadError::Other {
                file: bin.display().to_string(),
                message: "pickled PyTorch checkpoints can run arbitrary code and are not loaded; convert \
                          the model to safetensors (e.g. `model.save_pretrained(dir, safe_serialization=True)`)"
                    .into(),
            }),
            WeightLayout::Missing => Err(other(
                folder,
                "no model.safetensors (or sharded safetensors with an index) in this folder",
            )),
        }
    }

    /// Opens explicit safetensors files.
    pub fn from_files(files: &[PathBuf], device: &Device) -> Result<Self, LoadError> {
        let mut shards = Vec::new();
        let mut index = HashMap::new();
        for (i, path) in files.iter().enumerate() {
            if path.extension().is_some_and(|e| e == "bin") {
                return Err(other(
                    path,
                    "pickled `.bin` checkpoints are refused; use safetensors",
                ));
            }
            let (file, _) =
                crate::safe_fs::open_regular(path).map_err(|e| other(path, e.to_string()))?;
            // Safety: the file is opened read-only; peftc never writes model files in place
            // (cache writes go to a temporary folder and are renamed).
            let map = unsafe { Mmap::map(&file) }.map_err(|e| other(path, e.to_string()))?;
            let st = SafeTensors::deserialize(&map).map_err(|e| {
                other(
                    path,
                    format!("not a valid safetensors file (truncated or corrupt?): {e}"),
                )
            })?;
            for name in st.names() {
                index.insert(name.to_string(), i);
            }
            shards.push(Shard {
                path: path.clone(),
                map,
            });
        }
        let describe = files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self {
            shards,
            index,
            device: device.clone(),
            describe,
        })
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.index.keys().cloned().collect();
        v.sort();
        v
    }

    /// The file(s) this source reads, for messages.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The files this source reads.
    pub fn files(&self) -> Vec<PathBuf> {
        self.shards.iter().map(|s| s.path.clone()).collect()
    }

    /// The tensor in its stored dtype.
    pub fn raw(&self, name: &str) -> Result<Tensor, LoadError> {
        let shard = self.shard(name)?;
        let st =
            SafeTensors::deserialize(&shard.map).map_err(|e| other(&shard.path, e.to_string()))?;
        let view = st
            .tensor(name)
            .map_err(|e| other(&shard.path, e.to_string()))?;
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::F64 => DType::F64,
            Dtype::I64 => DType::I64,
            Dtype::U32 => DType::U32,
            Dtype::U8 => DType::U8,
            d => {
                return Err(other(
                    &shard.path,
                    format!("tensor `{name}` has unsupported dtype {d:?}"),
                ));
            }
        };
        Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &self.device)
            .map_err(|e| other(&shard.path, format!("tensor `{name}`: {e}")))
    }

    fn shard(&self, name: &str) -> Result<&Shard, LoadError> {
        self.index
            .get(name)
            .and_then(|&i| self.shards.get(i))
            .ok_or_else(|| LoadError::MissingTensor {
                name: name.to_string(),
                file: self.describe.clone(),
            })
    }
}

impl TensorSource for SafetensorsSource {
    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError> {
        let shard = self.shard(name)?;
        let st =
            SafeTensors::deserialize(&shard.map).map_err(|e| other(&shard.path, e.to_string()))?;
        let view = st
            .tensor(name)
            .map_err(|e| other(&shard.path, e.to_string()))?;
        Ok(view.shape().to_vec())
    }

    fn tensor(&self, name: &str, dtype: DType) -> Result<Tensor, LoadError> {
        let t = self.raw(name)?;
        let path = &self.shard(name)?.path;
        t.to_dtype(dtype)
            .map_err(|e| other(path, format!("tensor `{name}`: {e}")))
    }

    fn linear(&self, name: &str, dtype: DType) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        let t = self.tensor(name, dtype)?;
        if t.rank() != 2 {
            return Err(LoadError::ShapeMismatch {
                name: name.to_string(),
                file: self.shard(name)?.path.display().to_string(),
                expected: vec![0, 0],
                found: t.dims().to_vec(),
            });
        }
        Ok(Arc::new(DenseWeight::new(t)))
    }
}
