//! [`QuantizingSource`]: a [`TensorSource`] that quantizes the linear weights of another source at
//! load time (norms, embeddings and biases stay dense) and caches the result on disk, so that a
//! second load reads the packed form instead of quantizing again.
//!
//! Must not know architectures: which tensors are linear is decided by the model code calling
//! [`TensorSource::linear`].

use super::cache::{cache_path, read_cache, write_cache};
use super::error::QuantError;
use super::spec::{QuantSpec, QuantizedWeight};
use crate::runtime::models::source::{LoadError, TensorSource};
use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where and under which identity the quantized form is cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantCacheConfig {
    /// Folder of cache files (e.g. `.peft/cache/quant`).
    pub dir: PathBuf,
    /// Identity of the unquantized weights (model id + revision or content hash): a different
    /// identity never reuses a file.
    pub source_id: String,
}

/// Options of a [`QuantizingSource`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuantizingConfig {
    /// Cache on disk; `None` quantizes on every load.
    pub cache: Option<QuantCacheConfig>,
    /// Linear weights whose name contains one of these stay dense (e.g. `lm_head`).
    pub keep_dense: Vec<String>,
}

/// How many linear weights were quantized now and how many came from the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuantStats {
    /// Quantized during this load.
    pub quantized: usize,
    /// Read from the cache file.
    pub from_cache: usize,
    /// Kept dense (by `keep_dense` or because the format cannot store the shape).
    pub dense: usize,
}

#[derive(Default)]
struct State {
    weights: BTreeMap<String, QuantizedWeight>,
    cached: BTreeMap<String, ()>,
    dirty: bool,
    stats: QuantStats,
}

/// A source whose linear weights come back quantized.
pub struct QuantizingSource {
    inner: Arc<dyn TensorSource>,
    spec: QuantSpec,
    config: QuantizingConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for QuantizingSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantizingSource")
            .field("spec", &self.spec)
            .field("config", &self.config)
            .finish()
    }
}

impl QuantizingSource {
    /// Wraps `inner`. Reads the cache file for (`source_id`, `spec`) if one exists; an
    /// unreadable or foreign file is ignored (and overwritten by the next [`flush`](Self::flush)).
    pub fn new(
        inner: Arc<dyn TensorSource>,
        spec: QuantSpec,
        config: QuantizingConfig,
    ) -> Result<Self, QuantError> {
        spec.validate()?;
        let mut state = State::default();
        if let Some(c) = &config.cache {
            let path = cache_path(&c.dir, &spec, &c.source_id);
            if path.exists() {
                match read_cache(&path, &spec, &c.source_id) {
                    Ok(w) => {
                        state.cached = w.keys().map(|k| (k.clone(), ())).collect();
                        state.weights = w;
                    }
                    Err(e) => tracing::warn!("ignoring quantized cache: {e}"),
                }
            }
        }
        Ok(Self {
            inner,
            spec,
            config,
            state: Mutex::new(state),
        })
    }

    /// The spec.
    pub fn spec(&self) -> &QuantSpec {
        &self.spec
    }

    /// The cache file of this source and spec, if caching is on.
    pub fn cache_file(&self) -> Option<PathBuf> {
        self.config
            .cache
            .as_ref()
            .map(|c| cache_path(&c.dir, &self.spec, &c.source_id))
    }

    /// Counts of this load so far.
    pub fn stats(&self) -> QuantStats {
        self.state.lock().map(|s| s.stats).unwrap_or_default()
    }

    /// Writes the cache file if weights were quantized since it was read. Returns the path
    /// written, if any. Called by `Drop` too (errors are then only logged).
    pub fn flush(&self) -> Result<Option<PathBuf>, QuantError> {
        let (Some(c), Some(path)) = (&self.config.cache, self.cache_file()) else {
            return Ok(None);
        };
        let mut st = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if !st.dirty {
            return Ok(None);
        }
        write_cache(&path, &self.spec, &c.source_id, &st.weights)?;
        st.dirty = false;
        Ok(Some(path))
    }

    fn keep_dense(&self, name: &str) -> bool {
        self.config
            .keep_dense
            .iter()
            .any(|k| name.contains(k.as_str()))
    }

    fn load_error(&self, name: &str, e: QuantError) -> LoadError {
        LoadError::Other {
            file: self
                .cache_file()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "quantizing source".into()),
            message: format!("quantizing `{name}`: {e}"),
        }
    }
}

impl Drop for QuantizingSource {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("could not write the quantized cache: {e}");
        }
    }
}

impl TensorSource for QuantizingSource {
    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name)
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError> {
        self.inner.shape(name)
    }

    fn tensor(&self, name: &str, dtype: DType) -> Result<Tensor, LoadError> {
        self.inner.tensor(name, dtype)
    }

    fn linear(&self, name: &str, dtype: DType) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        self.quantized(name, &|| self.inner.linear(name, dtype))
    }

    fn conv1d(&self, name: &str, dtype: DType) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        self.quantized(name, &|| self.inner.conv1d(name, dtype))
    }
}

impl QuantizingSource {
    /// The quantized form of weight `name` (from memory, the disk cache, or quantized now from
    /// `dense`, the inner source's `[out, in]` weight); `dense` itself for layers kept dense.
    fn quantized(
        &self,
        name: &str,
        dense: &dyn Fn() -> Result<Arc<dyn FrozenWeight>, LoadError>,
    ) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        let poisoned = |_| LoadError::Other {
            file: "quantizing source".into(),
            message: "state lock poisoned".into(),
        };
        if self.keep_dense(name) {
            self.state.lock().map_err(poisoned)?.stats.dense += 1;
            return dense();
        }
        {
            let mut st = self.state.lock().map_err(poisoned)?;
            if let Some(w) = st.weights.get(name).cloned() {
                if st.cached.contains_key(name) {
                    st.stats.from_cache += 1;
                }
                return Ok(Arc::new(w));
            }
        }
        let dense = dense()?;
        let w = dense
            .dequantize(DType::F32)
            .map_err(|e| self.load_error(name, QuantError::candle(name)(e)))?;
        match self.spec.quantize(name, &w) {
            Ok(q) => {
                let mut st = self.state.lock().map_err(poisoned)?;
                st.weights.insert(name.to_string(), q.clone());
                st.dirty = true;
                st.stats.quantized += 1;
                Ok(Arc::new(q))
            }
            Err(QuantError::UnsupportedShape { message, .. }) => {
                tracing::warn!("`{name}` stays dense: {message}");
                self.state.lock().map_err(poisoned)?.stats.dense += 1;
                Ok(dense)
            }
            Err(e) => Err(self.load_error(name, e)),
        }
    }
}
