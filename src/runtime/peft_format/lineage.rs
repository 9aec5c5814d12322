//! `peftc.lineage.json`: what an adapter was made from, so it can be audited and reproduced.
//!
//! The base model (id, revision, blake3 of its weight and config files), the adapter config,
//! and room for what the planner fills in: data hashes, metrics, gates, the producing stage.

use crate::runtime::peft_format::error::PeftFormatError;
use crate::runtime::peft_format::files::write_json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// File name inside an adapter folder.
pub const LINEAGE_FILE: &str = "peftc.lineage.json";

/// One hashed file of the base model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub path: String,
    pub blake3: String,
    pub bytes: u64,
}

/// The base model an adapter belongs to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BaseModel {
    pub id: String,
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub files: Vec<FileHash>,
}

/// The lineage record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// Format version of this file.
    pub version: u32,
    /// peftc version that wrote it.
    pub peftc_version: String,
    pub base_model: BaseModel,
    /// The adapter config as written to `adapter_config.json`.
    #[serde(default)]
    pub adapter_config: serde_json::Value,
    /// Data set name -> content hash.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Metric name -> value.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Gate results as the planner records them.
    #[serde(default)]
    pub gates: Vec<serde_json::Value>,
    /// The stage that produced the adapter (content key), when known.
    #[serde(default)]
    pub stage: Option<String>,
}

impl Lineage {
    /// A record for a base model at `folder` (hashes its safetensors, config and tokenizer
    /// files when the folder exists) with id `id`.
    pub fn for_base(id: &str, folder: Option<&Path>) -> Result<Self, PeftFormatError> {
        let mut files = Vec::new();
        if let Some(dir) = folder.filter(|d| d.is_dir()) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .map_err(PeftFormatError::io(dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.ends_with(".safetensors")
                                || n == "config.json"
                                || n.starts_with("tokenizer")
                                || n.ends_with(".gguf")
                        })
                })
                .collect();
            entries.sort();
            for p in entries {
                let (file, _) =
                    crate::safe_fs::open_regular(&p).map_err(PeftFormatError::io(&p))?;
                let mut hasher = blake3::Hasher::new();
                let bytes = std::io::copy(&mut std::io::BufReader::new(file), &mut hasher)
                    .map_err(PeftFormatError::io(&p))?;
                files.push(FileHash {
                    path: p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default()
                        .to_string(),
                    blake3: hasher.finalize().to_hex().to_string(),
                    bytes,
                });
            }
        }
        Ok(Self {
            version: 1,
            peftc_version: env!("CARGO_PKG_VERSION").to_string(),
            base_model: BaseModel {
                id: id.to_string(),
                revision: None,
                files,
            },
            ..Self::default()
        })
    }

    /// Writes `<dir>/peftc.lineage.json`.
    pub fn write(&self, dir: &Path) -> Result<(), PeftFormatError> {
        let value = serde_json::to_value(self).map_err(|e| PeftFormatError::Io {
            file: dir.join(LINEAGE_FILE).display().to_string(),
            message: e.to_string(),
        })?;
        write_json(&dir.join(LINEAGE_FILE), &value)
    }

    /// Reads `<dir>/peftc.lineage.json`.
    pub fn read(dir: &Path) -> Result<Self, PeftFormatError> {
        let path = dir.join(LINEAGE_FILE);
        let text = crate::safe_fs::read_text_limited(&path, crate::safe_fs::JSON_LIMIT)
            .map_err(PeftFormatError::io(&path))?;
        serde_json::from_str(&text).map_err(|e| PeftFormatError::Config {
            file: path.display().to_string(),
            message: e.to_string(),
        })
    }
}
