//! What an export's `peftc.lineage.json` records beyond the export itself, collected from the
//! export stage's inputs: the hash of every base model file (a GGUF file included), of every
//! data file and tokenized set the adapters were trained on, the metrics of every eval of the
//! exported adapters or merged model (with the baseline's), and the resolved training config.
//! It must not run anything: it reads the inputs' records and hashes files.

use super::model_stage::ModelRecord;
use crate::exec::lineage::file_record;
use crate::exec::StageContext;
use crate::plan::Stage;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The lineage patch of an export (merged into `peftc.lineage.json` by the export stage).
pub fn lineage_patch(stage: &Stage, ctx: &StageContext) -> anyhow::Result<Value> {
    let base_files = match ModelRecord::from_input(ctx) {
        Ok(record) => base_files(&record)?,
        Err(_) => Vec::new(),
    };
    let mut data = Map::new();
    let mut data_files = Vec::new();
    let mut metrics = Map::new();
    let mut evals = Map::new();
    for (slot, input) in &ctx.inputs {
        let producer = stage
            .inputs
            .get(slot)
            .map(|id| id.as_str().to_string())
            .unwrap_or_default();
        if slot.starts_with("audit.data.") {
            let name = producer.strip_prefix("tokenize.").unwrap_or(&producer);
            if let Some(h) = input.output["tokenized"].as_str() {
                data.insert(format!("{name}.tokenized"), json!(h));
            }
            for f in input.output["files"].as_array().into_iter().flatten() {
                if let (Some(p), Some(h)) = (f["path"].as_str(), f["blake3"].as_str()) {
                    data.insert(format!("{name}:{p}"), json!(h));
                }
                let mut f = f.clone();
                f["dataset"] = json!(name);
                data_files.push(f);
            }
        } else if slot.starts_with("audit.eval.") {
            let name = producer.strip_prefix("eval.").unwrap_or(&producer);
            let flat = |prefix: &str, m: &Value, out: &mut Map<String, Value>| {
                for (k, v) in m.as_object().into_iter().flatten() {
                    if v.is_number() {
                        out.insert(format!("{prefix}{k}"), v.clone());
                    }
                }
            };
            flat(&format!("{name}."), &input.output["model"], &mut metrics);
            flat(
                &format!("{name}.baseline."),
                &input.output["baseline"],
                &mut metrics,
            );
            evals.insert(name.to_string(), input.output.clone());
        }
    }
    // The resolved config of the exported train, or of every train merged.
    let train_config = match ctx.input("train") {
        Some(t) => t.output["config"].clone(),
        None => {
            let merged: Map<String, Value> = ctx
                .inputs
                .iter()
                .filter(|(slot, _)| slot.starts_with("audit.train."))
                .map(|(slot, t)| {
                    let id = stage
                        .inputs
                        .get(slot)
                        .map(|i| i.as_str())
                        .unwrap_or_default();
                    let name = id.strip_prefix("train.").unwrap_or(id);
                    (name.to_string(), t.output["config"].clone())
                })
                .collect();
            if merged.is_empty() {
                Value::Null
            } else {
                Value::Object(merged)
            }
        }
    };
    let mut files: Vec<Value> = base_files
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f["role"] = json!("base model");
            f
        })
        .collect();
    files.extend(data_files.into_iter().map(|mut f| {
        f["role"] = json!("data");
        f
    }));
    let mut patch = json!({
        "data": data,
        "metrics": metrics,
        "evals": evals,
        "files": files,
        "train_config": train_config,
    });
    if !base_files.is_empty() {
        patch["base_model"] = json!({ "files": base_files });
    }
    Ok(patch)
}

/// Every file of the base model: the GGUF file, or the folder's weights, config and tokenizer.
fn base_files(record: &ModelRecord) -> anyhow::Result<Vec<Value>> {
    let mut paths: Vec<std::path::PathBuf> = match &record.gguf {
        Some(file) => vec![file.clone()],
        None => std::fs::read_dir(&record.path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_model_file(p))
            .collect(),
    };
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let shown = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(file_record(p, &shown)?)
        })
        .collect()
}

fn is_model_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.ends_with(".safetensors")
        || name.ends_with(".gguf")
        || name.ends_with(".json")
        || name.ends_with(".txt")
        || name.ends_with(".model")
}
