//! Test helpers: an in-memory TensorSource over safetensors files, fixture paths, comparisons.

use candle_core::{DType, Device, Tensor};
use peftc::runtime::dense::DenseWeight;
use peftc::runtime::models::bert::{BertLoadConfig, BertModel};
use peftc::runtime::models::bert_config::BertConfig;
use peftc::runtime::models::source::{LoadError, TensorSource};
use peftc::runtime::weight::FrozenWeight;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tensors by name, as a `TensorSource`.
pub struct MapSource {
    pub file: String,
    pub tensors: HashMap<String, Tensor>,
}

impl MapSource {
    pub fn from_safetensors(path: &Path) -> MapSource {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
        MapSource {
            file: path.display().to_string(),
            tensors,
        }
    }
}

impl TensorSource for MapSource {
    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
    fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError> {
        self.tensors
            .get(name)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| LoadError::MissingTensor {
                name: name.into(),
                file: self.file.clone(),
            })
    }
    fn tensor(&self, name: &str, dtype: DType) -> Result<Tensor, LoadError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| LoadError::MissingTensor {
                name: name.into(),
                file: self.file.clone(),
            })?;
        t.to_dtype(dtype).map_err(|e| LoadError::Other {
            file: self.file.clone(),
            message: e.to_string(),
        })
    }
    fn linear(&self, name: &str, dtype: DType) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        Ok(Arc::new(DenseWeight::new(self.tensor(name, dtype)?)))
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bert_fixtures() -> PathBuf {
    repo().join("tests/fixtures/parity/bert")
}

/// `$PEFTC_TEST_ASSETS`, default `<repo>/target/assets`.
pub fn assets() -> PathBuf {
    std::env::var_os("PEFTC_TEST_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/assets"))
}

pub fn reference() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(bert_fixtures().join("reference.safetensors"), &Device::Cpu)
        .unwrap()
}

pub fn tiny_config() -> BertConfig {
    BertConfig::from_file(&bert_fixtures().join("base/config.json")).unwrap()
}

pub fn tiny_source() -> MapSource {
    MapSource::from_safetensors(&bert_fixtures().join("base/model.safetensors"))
}

pub fn tiny_bert() -> BertModel {
    BertModel::load(&tiny_source(), &tiny_config(), BertLoadConfig::default()).unwrap()
}

/// The reference batch: ids, mask, token types as u32 / u8 / u32.
pub fn batch(r: &HashMap<String, Tensor>) -> (Tensor, Tensor, Tensor) {
    let ids = r["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = r["attention_mask"].to_dtype(DType::U8).unwrap();
    let types = r["token_type_ids"].to_dtype(DType::U32).unwrap();
    (ids, mask, types)
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
