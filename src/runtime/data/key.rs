//! What a tokenized dataset's content key is made of. The executor hashes the files; this module
//! says which files and which settings matter.

use std::path::PathBuf;

use serde::Serialize;

use super::error::DataError;
use super::pipeline::PrepareOptions;
use super::source::resolve_paths;
use super::spec::{DatasetSpec, SplitSpec};
use super::store::TOKENIZED_FORMAT_VERSION;

/// The inputs of a tokenize stage's content key, apart from file hashes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContentKeyInputs {
    /// [`TOKENIZED_FORMAT_VERSION`]: bumps invalidate old caches.
    pub format_version: u32,
    /// Every setting of the spec (all of them change the output), canonical JSON.
    pub settings: serde_json::Value,
    /// The data files, resolved and in reading order: hash their contents.
    pub data_files: Vec<PathBuf>,
    /// The tokenizer files to hash, relative to the model folder (the chat template and the
    /// special tokens live in `tokenizer_config.json`).
    pub tokenizer_files: Vec<&'static str>,
}

/// Resolve the files `spec` reads and list what its content key depends on.
pub fn content_key_inputs(
    spec: &DatasetSpec,
    opts: &PrepareOptions,
) -> Result<ContentKeyInputs, DataError> {
    let span = opts.span.as_ref();
    let mut data_files = resolve_paths(&spec.source.paths, &opts.base_dir, span)?;
    if let SplitSpec::Files { parts, .. } = &spec.split {
        data_files.clear();
        for p in parts {
            data_files.extend(resolve_paths(&p.paths, &opts.base_dir, span)?);
        }
    }
    // Paths are hashed by content: their spelling is not part of the settings.
    let mut canonical = spec.clone();
    canonical.source.paths.clear();
    if let SplitSpec::Files { parts, .. } = &mut canonical.split {
        for p in parts {
            p.paths.clear();
        }
    }
    let settings = serde_json::to_value(&canonical).unwrap_or(serde_json::Value::Null);
    Ok(ContentKeyInputs {
        format_version: TOKENIZED_FORMAT_VERSION,
        settings,
        data_files,
        tokenizer_files: vec!["tokenizer.json", "tokenizer_config.json"],
    })
}
