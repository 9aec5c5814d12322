//! The on-disk cache of a quantized model: one self-describing safetensors file per model + spec.
//!
//! File `<dir>/<blake3(version, source_id, spec)[..16]>.<format>.safetensors`, written atomically
//! (a temporary file in the same folder, fsync, then rename) and read through a memory map. Header metadata (`__metadata__`):
//! `format = "peftc-quant"`, `version = "1"`, `spec` (the spec's canonical JSON), `source` (the
//! caller's identity of the unquantized weights) and `weights` (JSON: name -> `{kind, dims,
//! block, dq_block}`). Tensors, per weight `N`:
//! - nf4 / fp4: `N::packed` U8 `[ceil(out*in/2)]` (high nibble first) and either `N::absmax` F32
//!   `[blocks]` or `N::qabsmax` U8 `[blocks]` + `N::absmax2` F32 `[ceil(blocks/dq_block)]` +
//!   `N::offset` F32 `[1]`;
//! - int8: `N::q` I8 `[out, in]` + `N::absmax` F32 `[out]`;
//! - ggml: `N::ggml` U8 (candle/GGML block bytes of `[out, in]`) and, if kept, `N::ggml_t` (of
//!   `W^T`).
//!
//! Must not decide what to quantize: that is [`super::source::QuantizingSource`].

use super::blockwise4::Code4;
use super::dynamic8::DoubleQuantScales;
use super::error::QuantError;
use super::ggml::{GgmlFormat, GgmlWeight};
use super::int8::{Int8Rows, Int8Weight};
use super::nf4::{BlockScales, Nf4Weight, Packed4};
use super::spec::{QuantSpec, QuantizedWeight};
use candle_core::quantized::{QStorage, QTensor};
use candle_core::Device;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `format` metadata value.
pub const CACHE_FORMAT: &str = "peftc-quant";
/// `version` metadata value.
pub const CACHE_VERSION: &str = "1";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct EntryMeta {
    kind: String,
    dims: [usize; 2],
    block: Option<usize>,
    dq_block: Option<usize>,
}

/// Where the cache of `source_id` quantized with `spec` lives inside `dir`.
pub fn cache_path(dir: &Path, spec: &QuantSpec, source_id: &str) -> PathBuf {
    let mut h = blake3::Hasher::new();
    h.update(CACHE_VERSION.as_bytes());
    h.update(&[0]);
    h.update(source_id.as_bytes());
    h.update(&[0]);
    h.update(spec.canonical().as_bytes());
    let hex = h.finalize().to_hex();
    dir.join(format!("{}.{}.safetensors", &hex[..16], spec.format.name()))
}

/// One tensor to write: name, dtype, shape, bytes.
type Entry<'a> = (String, Dtype, Vec<usize>, Cow<'a, [u8]>);

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Writes `weights` atomically to `path`.
pub fn write_cache(
    path: &Path,
    spec: &QuantSpec,
    source_id: &str,
    weights: &BTreeMap<String, QuantizedWeight>,
) -> Result<(), QuantError> {
    let bad = |message: String| QuantError::BadCache {
        path: path.to_path_buf(),
        message,
    };
    // Byte buffers first (borrowed from the weights where the bytes already exist, so a large
    // model is not copied in memory), views over them second.
    let mut bufs: Vec<Entry<'_>> = Vec::new();
    let mut metas: BTreeMap<String, EntryMeta> = BTreeMap::new();
    for (name, w) in weights {
        match w {
            QuantizedWeight::Nf4(n) => {
                let p = n.packed();
                let mut dq_block = None;
                bufs.push((
                    format!("{name}::packed"),
                    Dtype::U8,
                    vec![p.packed.len()],
                    Cow::Borrowed(&p.packed[..]),
                ));
                match &p.scales {
                    BlockScales::F32(v) => {
                        bufs.push((
                            format!("{name}::absmax"),
                            Dtype::F32,
                            vec![v.len()],
                            Cow::Owned(f32_bytes(v)),
                        ));
                    }
                    BlockScales::Double(d) => {
                        dq_block = Some(d.block);
                        bufs.push((
                            format!("{name}::qabsmax"),
                            Dtype::U8,
                            vec![d.q.len()],
                            Cow::Borrowed(&d.q[..]),
                        ));
                        bufs.push((
                            format!("{name}::absmax2"),
                            Dtype::F32,
                            vec![d.absmax2.len()],
                            Cow::Owned(f32_bytes(&d.absmax2)),
                        ));
                        bufs.push((
                            format!("{name}::offset"),
                            Dtype::F32,
                            vec![1],
                            Cow::Owned(f32_bytes(&[d.offset])),
                        ));
                    }
                }
                metas.insert(
                    name.clone(),
                    EntryMeta {
                        kind: p.code.name().into(),
                        dims: [p.dims.0, p.dims.1],
                        block: Some(p.block),
                        dq_block,
                    },
                );
            }
            QuantizedWeight::Int8(i) => {
                let r = i.rows();
                let q: Vec<u8> = r.q.iter().map(|v| *v as u8).collect();
                bufs.push((
                    format!("{name}::q"),
                    Dtype::I8,
                    vec![r.dims.0, r.dims.1],
                    Cow::Owned(q),
                ));
                bufs.push((
                    format!("{name}::absmax"),
                    Dtype::F32,
                    vec![r.absmax.len()],
                    Cow::Owned(f32_bytes(&r.absmax)),
                ));
                metas.insert(
                    name.clone(),
                    EntryMeta {
                        kind: "int8".into(),
                        dims: [r.dims.0, r.dims.1],
                        block: None,
                        dq_block: None,
                    },
                );
            }
            QuantizedWeight::Ggml(g) => {
                let data = g
                    .qtensor()
                    .data()
                    .map_err(|e| bad(format!("{name}: {e}")))?;
                bufs.push((format!("{name}::ggml"), Dtype::U8, vec![data.len()], data));
                if let Some(t) = g.transposed() {
                    let data = t.data().map_err(|e| bad(format!("{name}: {e}")))?;
                    bufs.push((format!("{name}::ggml_t"), Dtype::U8, vec![data.len()], data));
                }
                let (o, i) = crate::runtime::weight::FrozenWeight::dims(g);
                metas.insert(
                    name.clone(),
                    EntryMeta {
                        kind: g.ggml_format().name().into(),
                        dims: [o, i],
                        block: None,
                        dq_block: None,
                    },
                );
            }
        }
    }
    let mut views = Vec::with_capacity(bufs.len());
    for (n, dt, shape, data) in &bufs {
        let v = TensorView::new(*dt, shape.clone(), data).map_err(|e| bad(format!("{n}: {e}")))?;
        views.push((n.clone(), v));
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), CACHE_FORMAT.to_string());
    meta.insert("version".to_string(), CACHE_VERSION.to_string());
    meta.insert("spec".to_string(), spec.canonical());
    meta.insert("source".to_string(), source_id.to_string());
    meta.insert(
        "weights".to_string(),
        serde_json::to_string(&metas).map_err(|e| bad(e.to_string()))?,
    );
    write_atomic(path, |tmp| {
        safetensors::tensor::serialize_to_file(views, Some(meta), tmp)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
}

/// Lets `write` fill a temporary file next to `path`, syncs it and renames it into place, so a
/// reader never sees a half-written file.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), QuantError> {
    let io = |source| QuantError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = write(&tmp)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads a cache file written by [`write_cache`] for the same `spec` and `source_id`.
pub fn read_cache(
    path: &Path,
    spec: &QuantSpec,
    source_id: &str,
) -> Result<BTreeMap<String, QuantizedWeight>, QuantError> {
    let bad = |message: String| QuantError::BadCache {
        path: path.to_path_buf(),
        message,
    };
    let io = |source| QuantError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the map is only read; cache files are replaced by rename and never rewritten in
    // place, so the mapped pages do not change while we read them.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let (_, header) = SafeTensors::read_metadata(&bytes[..]).map_err(|e| bad(e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let field = |k: &str| meta.get(k).cloned().unwrap_or_default();
    if field("format") != CACHE_FORMAT || field("version") != CACHE_VERSION {
        return Err(bad(format!(
            "not a peftc quantized cache of version {CACHE_VERSION} (format `{}`, version `{}`)",
            field("format"),
            field("version")
        )));
    }
    if field("spec") != spec.canonical() {
        return Err(bad(format!(
            "written for spec {}, wanted {}",
            field("spec"),
            spec.canonical()
        )));
    }
    if field("source") != source_id {
        return Err(bad(format!(
            "written for source `{}`, wanted `{source_id}`",
            field("source")
        )));
    }
    let metas: BTreeMap<String, EntryMeta> =
        serde_json::from_str(&field("weights")).map_err(|e| bad(format!("weights: {e}")))?;
    let st = SafeTensors::deserialize(&bytes[..]).map_err(|e| bad(e.to_string()))?;
    let get = |n: String| -> Result<Vec<u8>, QuantError> {
        st.tensor(&n)
            .map(|t| t.data().to_vec())
            .map_err(|e| bad(format!("{n}: {e}")))
    };
    let mut out = BTreeMap::new();
    for (name, m) in metas {
        let dims = (m.dims[0], m.dims[1]);
        let n = dims.0 * dims.1;
        let w = match m.kind.as_str() {
            "nf4" | "fp4" => {
                let code = if m.kind == "nf4" {
                    Code4::Nf4
                } else {
                    Code4::Fp4
                };
                let block = m.block.unwrap_or(64).max(1);
                let packed = get(format!("{name}::packed"))?;
                let blocks = n.div_ceil(block);
                let scales = match m.dq_block {
                    None => BlockScales::F32(bytes_f32(&get(format!("{name}::absmax"))?)),
                    Some(b2) => BlockScales::Double(DoubleQuantScales {
                        q: get(format!("{name}::qabsmax"))?,
                        absmax2: bytes_f32(&get(format!("{name}::absmax2"))?),
                        offset: bytes_f32(&get(format!("{name}::offset"))?)
                            .first()
                            .copied()
                            .unwrap_or(0.0),
                        block: b2.max(1),
                    }),
                };
                let n_scales = match &scales {
                    BlockScales::F32(v) => v.len(),
                    BlockScales::Double(d) => d.q.len(),
                };
                if packed.len() != n.div_ceil(2) || n_scales != blocks {
                    return Err(bad(format!("{name}: sizes do not match dims {dims:?}")));
                }
                QuantizedWeight::Nf4(Nf4Weight::new(Packed4 {
                    code,
                    block,
                    dims,
                    packed,
                    scales,
                }))
            }
            "int8" => {
                let q: Vec<i8> = get(format!("{name}::q"))?
                    .into_iter()
                    .map(|b| b as i8)
                    .collect();
                let absmax = bytes_f32(&get(format!("{name}::absmax"))?);
                if q.len() != n || absmax.len() != dims.0 {
                    return Err(bad(format!("{name}: sizes do not match dims {dims:?}")));
                }
                QuantizedWeight::Int8(Int8Weight::new(Int8Rows { dims, q, absmax }))
            }
            kind => {
                let f = match kind {
                    "q8_0" => GgmlFormat::Q8_0,
                    "q4k" => GgmlFormat::Q4K,
                    "q5k" => GgmlFormat::Q5K,
                    "q6k" => GgmlFormat::Q6K,
                    other => return Err(bad(format!("{name}: unknown kind `{other}`"))),
                };
                let load =
                    |bytes: Vec<u8>, shape: (usize, usize)| -> Result<Arc<QTensor>, QuantError> {
                        let want = shape.0 * shape.1 / f.block_size() * f.dtype().type_size();
                        if bytes.len() != want {
                            return Err(bad(format!(
                                "{name}: {} bytes, expected {want}",
                                bytes.len()
                            )));
                        }
                        let storage = QStorage::from_data(
                            std::borrow::Cow::Owned(bytes),
                            &Device::Cpu,
                            f.dtype(),
                        )
                        .map_err(|e| bad(format!("{name}: {e}")))?;
                        QTensor::new(storage, shape)
                            .map(Arc::new)
                            .map_err(|e| bad(format!("{name}: {e}")))
                    };
                let w = load(get(format!("{name}::ggml"))?, dims)?;
                let wt = if st.names().contains(&format!("{name}::ggml_t").as_str()) {
                    Some(load(get(format!("{name}::ggml_t"))?, (dims.1, dims.0))?)
                } else {
                    None
                };
                QuantizedWeight::Ggml(GgmlWeight::from_qtensors(f, w, wt))
            }
        };
        out.insert(name, w);
    }
    Ok(out)
}
