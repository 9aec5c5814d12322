//! The `model` stage: finds the base model's files (a Hugging Face cache snapshot, a local folder,
//! a GGUF file) and records where they are. Its key holds their content hashes, so every stage
//! that builds the model re-runs when the weights or tokenizer change. For a GGUF file it also
//! writes `config.json`, `tokenizer.json` and `tokenizer_config.json` from the file's metadata.
//! It never downloads and never loads weights.

use crate::exec::{StageContext, StageOutcome};
use crate::plan::configs::ModelConfig;
use crate::plan::Stage;
use crate::runtime::models::gguf::{GgufLoadConfig, GgufModel};
use crate::runtime::models::hub::resolve_model_dir;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the `model` stage records; read back by every stage that builds the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The id for lineage (`org/name@revision`, or the file name).
    pub id: String,
    /// The model folder, or the GGUF file.
    pub path: PathBuf,
    /// Set for GGUF models: the file.
    pub gguf: Option<PathBuf>,
    /// For GGUF models: the folder with the HF-style files made from the metadata.
    pub hf_files: PathBuf,
    /// Whether `id` is a Hugging Face Hub id (an `hf(..)` model): adapter configs name the base
    /// by it (`base_model_name_or_path`), other bases by their path.
    #[serde(default)]
    pub from_hub: bool,
}

impl ModelRecord {
    /// What PEFT's `base_model_name_or_path` says for this base: the Hub id of an `hf(..)`
    /// model, the folder or file path of any other.
    pub fn name_or_path(&self) -> String {
        if self.from_hub {
            self.id.clone()
        } else {
            self.path.display().to_string()
        }
    }
}

impl ModelRecord {
    /// The record of the stage's `model` input.
    pub fn from_input(ctx: &StageContext) -> anyhow::Result<Self> {
        let input = ctx
            .input("model")
            .context("this stage has no `model` input")?;
        let mut rec: ModelRecord = serde_json::from_value(input.output.clone())
            .context("reading the model stage's record")?;
        if rec.gguf.is_some() {
            rec.hf_files = input.dir.join("hf");
        }
        Ok(rec)
    }
}

/// Runs the `model` stage.
pub fn run(stage: &Stage, ctx: &StageContext) -> anyhow::Result<StageOutcome> {
    let config: ModelConfig = serde_json::from_value(stage.config.clone())?;
    let declared = ctx.files.get("weights").cloned();
    let record = match &config {
        ModelConfig::Hf { repo, revision } => {
            let path = declared.or_else(|| resolve_model_dir(repo, Some(revision), None));
            let Some(path) = path else {
                bail!(
                    "`{repo}` (revision `{revision}`) is not in the Hugging Face cache ({}); peftc reads models offline: \
                     download it once (e.g. `huggingface-cli download {repo}`) or declare `local(\"path/to/folder\")`",
                    hf_cache_dir().display()
                );
            };
            ModelRecord {
                id: repo.clone(),
                path,
                gguf: None,
                hf_files: PathBuf::new(),
                from_hub: true,
            }
        }
        ModelConfig::Local => {
            let path = declared.context("the model folder was not found")?;
            let id = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            ModelRecord {
                id,
                path,
                gguf: None,
                hf_files: PathBuf::new(),
                from_hub: false,
            }
        }
        ModelConfig::Gguf => {
            let path = declared.context("the GGUF file was not found")?;
            let gguf = GgufModel::open(&path, &candle_core::Device::Cpu, GgufLoadConfig::default())
                .with_context(|| format!("reading {}", path.display()))?;
            gguf.write_hf_files(&ctx.out_dir.join("hf"))?;
            let id = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            ModelRecord {
                id,
                path: path.clone(),
                gguf: Some(path),
                hf_files: PathBuf::new(),
                from_hub: false,
            }
        }
    };
    Ok(StageOutcome::with_output(serde_json::to_value(&record)?))
}

fn hf_cache_dir() -> PathBuf {
    std::env::var_os("HF_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface")))
        .unwrap_or_default()
        .join("hub")
}
