//! The `tokenize` stage: reads a dataset's files, maps fields onto roles, applies the template,
//! tokenizes with the model's tokenizer, splits and packs, and stores the result (`data.bin`) with
//! its summary (`summary.json`). Data errors are reported with the file, line and field. It must
//! not know about training.

use super::model_stage::ModelRecord;
use crate::exec::{StageContext, StageOutcome};
use crate::plan::configs::TokenizeConfig;
use crate::plan::Stage;
use crate::runtime::data::pipeline::{prepare, PrepareOptions};
use crate::runtime::data::spec::{
    DatasetSpec, FieldMapping, Roles, SourceFormat, SourceSpec, SplitPart, SplitSize, SplitSpec,
    Template,
};
use crate::runtime::data::store;
use crate::runtime::data::tokenizer::ModelTokenizer;
use crate::runtime::data::PreparedDataset;
use anyhow::{bail, Context};
use std::path::Path;

/// The file the stage writes its tokenized splits to.
pub const DATA_FILE: &str = "data.bin";

/// Runs the `tokenize` stage.
pub fn run(stage: &Stage, ctx: &StageContext, env: &super::RunEnv) -> anyhow::Result<StageOutcome> {
    let config: TokenizeConfig = serde_json::from_value(stage.config.clone())?;
    let record = ModelRecord::from_input(ctx)?;
    let tok_dir = if record.gguf.is_some() {
        record.hf_files.clone()
    } else {
        record.path.clone()
    };
    let tokenizer = ModelTokenizer::from_dir(&tok_dir)?;
    let paths: Vec<String> = ctx
        .files
        .values()
        .map(|p| p.display().to_string())
        .collect();
    if paths.is_empty() {
        bail!("the dataset has no files");
    }
    let spec = dataset_spec(&config, paths)?;
    // Paths in messages are shown relative to the pipeline's folder.
    let base = env
        .pipeline
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| "/".into());
    let data = prepare(&spec, &tokenizer, &PrepareOptions::new(base.clone()))
        .map_err(|e| anyhow::anyhow!(describe(&e)))?;
    for w in &data.warnings {
        ctx.progress.warn(w.message.clone());
    }
    store::save(&data, &ctx.out_dir.join(DATA_FILE))?;
    let summary = serde_json::to_value(&data.summary)?;
    std::fs::write(
        ctx.out_dir.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    let counts: serde_json::Map<String, serde_json::Value> = data
        .splits
        .iter()
        .map(|s| (s.name.clone(), serde_json::json!(s.examples.len())))
        .collect();
    // For lineage: every source file and the tokenized set, by content.
    let mut files = Vec::new();
    for path in ctx.files.values() {
        let shown = path
            .strip_prefix(&base)
            .unwrap_or(path)
            .display()
            .to_string();
        files.push(crate::exec::lineage::file_record(path, &shown)?);
    }
    let tokenized = crate::exec::hasher::hash_contents(&ctx.out_dir.join(DATA_FILE))?;
    Ok(StageOutcome::with_output(serde_json::json!({
        "examples": counts,
        "files": files,
        "tokenized": tokenized.to_string(),
    }))
    .metadata(summary))
}

/// A data error with the rows it groups (the first ten bad rows, each with file, line and field).
fn describe(e: &crate::runtime::data::DataError) -> String {
    use miette::Diagnostic;
    let mut text = e.to_string();
    if let Some(related) = e.related() {
        for r in related {
            text.push_str(&format!("\n  - {r}"));
        }
    }
    if let Some(help) = e.help() {
        text.push_str(&format!("\n  help: {help}"));
    }
    text
}

/// Reads the tokenized data of an input stage folder.
pub fn load_data(dir: &Path) -> anyhow::Result<PreparedDataset> {
    store::load(&dir.join(DATA_FILE))
        .with_context(|| format!("reading tokenized data in {}", dir.display()))
}

/// The examples of split `name`. A dataset declared without `split` has one split, which the
/// planner calls `all` (the data runtime names it `train`).
pub fn split_examples<'a>(
    data: &'a PreparedDataset,
    name: &str,
) -> Option<&'a [crate::runtime::batch::Example]> {
    data.split(name).or_else(|| match data.splits.as_slice() {
        [only] if name == "all" => Some(only.examples.as_slice()),
        _ => None,
    })
}

/// The runtime's dataset spec for a stage config and the resolved files.
pub fn dataset_spec(c: &TokenizeConfig, paths: Vec<String>) -> anyhow::Result<DatasetSpec> {
    let format = match c.format.as_str() {
        "jsonl" => SourceFormat::Jsonl,
        "json" => SourceFormat::Json,
        "csv" => SourceFormat::Csv,
        "tsv" => SourceFormat::Tsv,
        "text" => SourceFormat::Text,
        "parquet" => SourceFormat::Parquet,
        other => bail!("unknown data format `{other}`"),
    };
    let join = |p: &Option<Vec<String>>| p.as_ref().map(|v| v.join("."));
    let mapping = FieldMapping::from_roles(&Roles {
        text: join(&c.text),
        label: join(&c.label),
        prompt: join(&c.prompt),
        completion: join(&c.completion),
        messages: join(&c.messages),
        labels: c.labels.clone(),
    })?;
    let template = match c.template.as_deref() {
        None => Template::Plain,
        Some("alpaca") => Template::Alpaca,
        Some("chatml") => Template::Chatml,
        Some("chat_template") => Template::ChatTemplate,
        Some(s) => Template::Custom(s.strip_prefix("custom:").unwrap_or(s).to_string()),
    };
    let split = if c.split.is_empty() {
        SplitSpec::All {
            seed: (c.seed != 0).then_some(c.seed),
        }
    } else {
        let parts = c
            .split
            .iter()
            .map(|p| SplitPart {
                name: p.name.clone(),
                size: match (p.fraction, p.count) {
                    (Some(f), _) => SplitSize::Percent(f * 100.0),
                    (None, Some(n)) => SplitSize::Count(n as usize),
                    (None, None) => SplitSize::Percent(0.0),
                },
            })
            .collect();
        SplitSpec::Sizes {
            parts,
            seed: c.seed,
        }
    };
    let mut spec = DatasetSpec::new(
        SourceSpec {
            format,
            paths,
            text_unit: Default::default(),
        },
        mapping,
    );
    spec.template = template;
    spec.completion_only = c.completion_only;
    spec.max_len = Some(c.max_len as usize);
    spec.packing = c.packing;
    spec.split = split;
    spec.dedupe = c.dedupe;
    spec.skip_invalid = c.skip_invalid;
    spec.limit = c.limit.map(|l| l as usize);
    Ok(spec)
}
