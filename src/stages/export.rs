//! The `export` stage: writes trained adapters (PEFT folders) or a merged model to their
//! destination, with a `peftc.lineage.json` (base model and file hashes, data, config, metrics,
//! gates, peftc version, the `.peft` source) and a human `REPORT.md` with the loss curve. It runs
//! only when every gate upstream passed.
//!
//! The stage builds the export inside its own cache entry (`out/export/`), with peftc's export
//! record in the top `peftc.lineage.json`; [`super::publish`] copies that folder to the
//! destination and checks it on every run. The stage itself writes nothing outside the cache.

use super::adapters::adapter_dir;
use super::RunEnv;
use crate::exec::report::{read_loss_jsonl, write_report, MetricRow, ReportInput};
use crate::exec::{merge_lineage, StageContext, StageOutcome, LINEAGE_FILE};
use crate::plan::configs::ExportStageConfig;
use crate::plan::Stage;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Runs the `export` stage.
pub fn run(stage: &Stage, ctx: &StageContext, env: &RunEnv) -> anyhow::Result<StageOutcome> {
    let config: ExportStageConfig = serde_json::from_value(stage.config.clone())?;
    let dest = PathBuf::from(&config.path);
    let tree = ctx.out_dir.join(EXPORT_DIR);
    let gates: Vec<Value> = ctx
        .inputs
        .iter()
        .filter(|(slot, _)| slot.starts_with("gate."))
        .flat_map(|(_, g)| g.output["gates"].as_array().cloned().unwrap_or_default())
        .collect();
    let model_id = ctx
        .input("model")
        .and_then(|m| m.output["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let audit = super::audit::lineage_patch(stage, ctx)?;
    let mut written = Vec::new();
    if let Some(train) = ctx.input("train") {
        if config.format == "merged" {
            bail!("a merged export needs a `merge` declaration as its source: `merge m = base + train.adapter`, then `export m to ... as merged`");
        }
        let count = std::fs::read_dir(train.dir.join("adapters"))
            .map(|d| d.count())
            .unwrap_or(0);
        let indices: Vec<usize> = if config.adapters.is_empty() {
            (0..count).collect()
        } else {
            config.adapters.clone()
        };
        for (k, i) in indices.iter().enumerate() {
            let target = if indices.len() == 1 {
                tree.clone()
            } else {
                tree.join(
                    config
                        .names
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| i.to_string()),
                )
            };
            link_tree(&adapter_dir(&train.dir, *i), &target)?;
            written.push(target);
        }
        let loss = read_loss_jsonl(&train.dir.join("metrics.jsonl")).unwrap_or_default();
        for target in &written {
            finish(
                target,
                &config,
                ctx,
                env,
                &model_id,
                &gates,
                train.output.clone(),
                loss.clone(),
                &audit,
            )?;
        }
    } else if let Some(merged) = ctx.input("merged") {
        link_tree(&merged.dir.join("model"), &tree)?;
        finish(
            &tree,
            &config,
            ctx,
            env,
            &model_id,
            &gates,
            Value::Null,
            Vec::new(),
            &audit,
        )?;
        written.push(tree.clone());
    } else {
        bail!("the export has no source input");
    }
    // The record that makes the destination recognisably peftc's (see `publish`).
    merge_lineage(&tree.join(LINEAGE_FILE), &super::publish::marker(&tree)?)?;
    let paths: Vec<String> = written
        .iter()
        .map(|p| match p.strip_prefix(&tree) {
            Ok(rel) => dest.join(rel).display().to_string(),
            Err(_) => p.display().to_string(),
        })
        .collect();
    Ok(StageOutcome::with_output(json!({ "written": paths })))
}

#[allow(clippy::too_many_arguments)]
fn finish(
    target: &Path,
    config: &ExportStageConfig,
    ctx: &StageContext,
    env: &RunEnv,
    model_id: &str,
    gates: &[Value],
    train: Value,
    loss: Vec<crate::exec::report::LossPoint>,
    audit: &Value,
) -> anyhow::Result<()> {
    let data: Vec<Value> = ctx
        .stage_key
        .files
        .iter()
        .map(|(k, v)| json!({ "slot": k, "hash": v }))
        .collect();
    let inputs: Value = ctx
        .inputs
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.digest.to_string())))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let mut patch = json!({
        "peftc_version": env!("CARGO_PKG_VERSION"),
        "base_model": { "id": model_id },
        "export": { "format": config.format, "serve_on": config.serve_on, "names": config.names },
        "inputs": inputs,
        "files": data,
        "train": train,
        "gates": gates,
        "pipeline": { "file": env.pipeline.display().to_string(), "source": env.source },
    });
    crate::exec::lineage::merge(&mut patch, audit);
    merge_lineage(&target.join(LINEAGE_FILE), &patch)?;
    let metrics: Vec<MetricRow> = gates
        .iter()
        .map(|g| MetricRow {
            name: g["gate"].as_str().unwrap_or_default().to_string(),
            value: g["value"].as_f64().unwrap_or(f64::NAN),
            baseline: g["baseline"].as_f64(),
            gate: Some(format!(
                "{:.4}",
                g["threshold"].as_f64().unwrap_or(f64::NAN)
            )),
            passed: g["passed"].as_bool(),
        })
        .collect();
    let facts = vec![
        ("base model".to_string(), model_id.to_string()),
        ("format".to_string(), config.format.clone()),
        ("pipeline".to_string(), env.pipeline.display().to_string()),
        ("peftc".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ];
    write_report(
        target,
        &ReportInput {
            title: format!("{} ({})", config.names.join(", "), config.format),
            facts,
            metrics,
            loss,
        },
    )?;
    Ok(())
}

/// The folder inside the stage's output that holds the export as it is published.
pub const EXPORT_DIR: &str = "export";

/// Fills `dest` (created) with the files of the cache folder `src`: hard links where the file
/// system allows (both are immutable cache entries), copies otherwise.
fn link_tree(src: &Path, dest: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let entry = entry?;
        let to = dest.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&entry.path(), &to)?;
        } else if std::fs::hard_link(entry.path(), &to).is_err() {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

/// Copies the folder `src` into `dest` (created), recursively.
pub(super) fn copy_tree(src: &Path, dest: &Path) -> anyhow::Result<()> {
    Ok(super::publish::copy_tree(src, dest)?)
}
