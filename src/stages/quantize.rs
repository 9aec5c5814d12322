//! The `quantize` stage: quantizes the base model's linear weights once (NF4, int8, k-quants)
//! into the stage folder, so every later stage that builds the model reads the quantized form
//! instead of quantizing again. It must not train.

use super::loaded::load_model;
use crate::exec::{StageContext, StageOutcome};
use crate::plan::configs::{ModelBuild, QuantConfig};
use crate::plan::Stage;
use crate::runtime::quant::{QuantCacheConfig, QuantizingConfig, QuantizingSource};

/// Runs the `quantize` stage: a model load through a quantizing source writing its cache here.
pub fn run(stage: &Stage, ctx: &StageContext) -> anyhow::Result<StageOutcome> {
    let quant: QuantConfig = serde_json::from_value(stage.config.clone())?;
    // Loading through the quantizing source with the cache in `out_dir` quantizes every linear
    // weight and writes the cache file when the source is dropped.
    let build = ModelBuild {
        labels: None,
        dtype: quant.compute.clone(),
        quant: None,
    };
    let loaded = load_model(ctx, &build)?;
    let spec = super::loaded::quant_spec(&quant)?;
    // (weight name, stored as a GPT-2 `Conv1D` `[in, out]`).
    let names: Vec<(String, bool)> = loaded
        .model
        .as_adaptable()
        .linears()
        .iter()
        .map(|l| (format!("{}.weight", l.path), l.conv1d_layout()))
        .collect();
    drop(loaded);
    let record = super::model_stage::ModelRecord::from_input(ctx)?;
    let device = super::loaded::device()?;
    let inner: std::sync::Arc<dyn crate::runtime::models::source::TensorSource> = match &record.gguf
    {
        Some(p) => std::sync::Arc::new(crate::runtime::models::gguf::GgufModel::open(
            p,
            &device,
            crate::runtime::models::gguf::GgufLoadConfig {
                linear_format: crate::runtime::models::gguf::LinearFormat::Dense,
            },
        )?),
        None => std::sync::Arc::new(
            crate::runtime::models::safetensors_source::SafetensorsSource::from_folder(
                &record.path,
                &device,
            )?,
        ),
    };
    let cache = QuantCacheConfig {
        dir: ctx.out_dir.clone(),
        source_id: "base".into(),
    };
    let src = QuantizingSource::new(
        inner,
        spec,
        QuantizingConfig {
            cache: Some(cache),
            keep_dense: vec!["lm_head".into(), "classifier".into()],
        },
    )?;
    use crate::runtime::models::source::TensorSource;
    for (name, conv1d) in &names {
        ctx.cancel.check()?;
        // GPT-2 checkpoints may store names without the `transformer.` prefix.
        let stored = [
            name.clone(),
            name.trim_start_matches("transformer.").to_string(),
        ]
        .into_iter()
        .find(|n| src.contains(n));
        match stored {
            Some(n) if *conv1d => drop(src.conv1d(&n, candle_core::DType::F32)?),
            Some(n) => drop(src.linear(&n, candle_core::DType::F32)?),
            None => {}
        }
    }
    src.flush()?;
    let stats = src.stats();
    Ok(StageOutcome::with_output(
        serde_json::json!({ "quantized": stats.quantized, "dense": stats.dense }),
    ))
}
