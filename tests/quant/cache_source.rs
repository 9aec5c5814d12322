//! The quantizing source: linear weights come back quantized, everything else dense; the packed
//! form is cached on disk in one file per model + spec, and a second load reads it instead of
//! quantizing again.

use super::gradients::randn;
use candle_core::{DType, Tensor};
use peftc::runtime::dense::DenseWeight;
use peftc::runtime::models::source::{LoadError, TensorSource};
use peftc::runtime::quant::cache::{read_cache, write_cache};
use peftc::runtime::quant::{
    QuantCacheConfig, QuantError, QuantFormat, QuantSpec, QuantStats, QuantizingConfig,
    QuantizingSource,
};
use peftc::runtime::weight::FrozenWeight;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// An in-memory source of dense tensors.
struct MemSource(HashMap<String, Tensor>);

impl TensorSource for MemSource {
    fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
    fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError> {
        self.tensor(name, DType::F32).map(|t| t.dims().to_vec())
    }
    fn tensor(&self, name: &str, dtype: DType) -> Result<Tensor, LoadError> {
        let t = self.0.get(name).ok_or_else(|| LoadError::MissingTensor {
            name: name.into(),
            file: "memory".into(),
        })?;
        t.to_dtype(dtype).map_err(|e| LoadError::Other {
            file: "memory".into(),
            message: e.to_string(),
        })
    }
    fn linear(&self, name: &str, dtype: DType) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        Ok(Arc::new(DenseWeight::new(self.tensor(name, dtype)?)))
    }
}

const Q: &str = "model.layers.0.self_attn.q_proj.weight";
const NORM: &str = "model.layers.0.input_layernorm.weight";
const HEAD: &str = "lm_head.weight";

fn source() -> Arc<dyn TensorSource> {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut m = HashMap::new();
    m.insert(Q.to_string(), randn(&mut rng, &[64, 256], 0.05));
    m.insert(NORM.to_string(), randn(&mut rng, &[256], 1.0));
    m.insert(HEAD.to_string(), randn(&mut rng, &[32, 256], 0.05));
    Arc::new(MemSource(m))
}

fn config(dir: &std::path::Path) -> QuantizingConfig {
    QuantizingConfig {
        cache: Some(QuantCacheConfig {
            dir: dir.to_path_buf(),
            source_id: "mem-model@1".into(),
        }),
        keep_dense: vec!["lm_head".into()],
    }
}

fn values(w: &dyn FrozenWeight) -> Vec<f32> {
    w.dequantize(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn second_load_reads_the_cache_instead_of_quantizing() {
    let dir = tempfile::tempdir().unwrap();
    let inner = source();
    let first = QuantizingSource::new(inner.clone(), QuantSpec::nf4(), config(dir.path())).unwrap();
    let w1 = first.linear(Q, DType::F32).unwrap();
    assert_eq!(w1.format(), "nf4");
    assert_eq!(first.linear(HEAD, DType::F32).unwrap().format(), "f32");
    let norm = first.tensor(NORM, DType::F32).unwrap();
    assert_eq!(norm.dims(), [256]);
    assert_eq!(
        first.stats(),
        QuantStats {
            quantized: 1,
            from_cache: 0,
            dense: 1
        }
    );
    let path = first.flush().unwrap().expect("a file is written");
    assert!(path.to_string_lossy().ends_with(".nf4.safetensors"));
    assert_eq!(first.flush().unwrap(), None, "nothing new to write");
    drop(first);
    // Only the cache file is left: the temporary file was renamed into place.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files, vec![path.clone()]);

    let second =
        QuantizingSource::new(inner.clone(), QuantSpec::nf4(), config(dir.path())).unwrap();
    let w2 = second.linear(Q, DType::F32).unwrap();
    assert_eq!(
        second.stats(),
        QuantStats {
            quantized: 0,
            from_cache: 1,
            dense: 0
        }
    );
    assert_eq!(values(w1.as_ref()), values(w2.as_ref()));
    assert_eq!(w1.storage_bytes(), w2.storage_bytes());

    // Another spec has its own file and quantizes again.
    let fp4 =
        QuantizingSource::new(inner, QuantSpec::new(QuantFormat::Fp4), config(dir.path())).unwrap();
    fp4.linear(Q, DType::F32).unwrap();
    assert_eq!(fp4.stats().quantized, 1);
    assert_ne!(fp4.cache_file().unwrap(), path);
}

#[test]
fn a_broken_or_foreign_cache_file_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let src = QuantizingSource::new(source(), QuantSpec::nf4(), config(dir.path())).unwrap();
    let path = src.cache_file().unwrap();
    std::fs::write(&path, b"not a safetensors file").unwrap();
    let again = QuantizingSource::new(source(), QuantSpec::nf4(), config(dir.path())).unwrap();
    again.linear(Q, DType::F32).unwrap();
    assert_eq!(again.stats().quantized, 1);
    again.flush().unwrap();
    // Read with another source identity: a typed error naming the file.
    let err = read_cache(&path, &QuantSpec::nf4(), "other-model").unwrap_err();
    assert!(matches!(err, QuantError::BadCache { .. }));
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn every_format_round_trips_through_the_cache_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let w = randn(&mut rng, &[256, 512], 0.05);
    for (format, dq, transposed) in [
        (QuantFormat::Nf4, true, false),
        (QuantFormat::Nf4, false, false),
        (QuantFormat::Fp4, true, false),
        (QuantFormat::Int8, false, false),
        (QuantFormat::Q8_0, false, true),
        (QuantFormat::Q4k, false, false),
        (QuantFormat::Q6k, false, true),
    ] {
        let mut spec = QuantSpec::new(format);
        spec.double_quant = dq;
        spec.transposed_copy = transposed;
        let q = spec.quantize("w", &w).unwrap();
        let path = dir
            .path()
            .join(format!("{}-{dq}-{transposed}.safetensors", format.name()));
        let mut map = BTreeMap::new();
        map.insert("layer.w".to_string(), q.clone());
        write_cache(&path, &spec, "id", &map).unwrap();
        let back = read_cache(&path, &spec, "id").unwrap();
        let r = &back["layer.w"];
        assert_eq!(r.format(), q.format());
        assert_eq!(r.storage_bytes(), q.storage_bytes(), "{format:?}");
        assert_eq!(values(r), values(&q), "{format:?}");
        let file = std::fs::metadata(&path).unwrap().len() as usize;
        assert!(
            file < q.storage_bytes() + 4096,
            "{format:?}: file {file} bytes"
        );
    }
}
