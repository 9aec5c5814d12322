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
    let build = ModelBuild { labels: None, dtype: quant.compute.clone(), quant: None };
    let loaded = load_model(ctx, &build)?;
    let spec = super::loaded::quant_spec(&quant)?;
    let names: Vec<String> = loaded.model.as_adaptable().linears().iter().map(|l| format!("{}.weight", l.path)).collect();
    drop(loaded);
    let record = super::model_stage::ModelRecord::from_input(ctx)?;
    let device = super::loaded::device()?;
    let inner: std::sync::Arc<dyn crate::runtime::models::source::TensorSource> = match &record.gguf {
        Some(p) => std::sync::Arc::new(crate::runtime::models::gguf::GgufModel::open(
            p,
            &device,
            crate::runtime::models::gguf::GgufLoadConfig { linear_format: crate::runtime::models::gguf::LinearFormat::Dense },
        )?),
        None => std::sync::Arc::new(crate::runtime::models::safetensors_source::SafetensorsSource::from_folder(&record.path, &device)?),
    };
    let cache = QuantCacheConfig { dir: ctx.out_dir.clone(), source_id: "base".into() };
    let src = QuantizingSource::new(inner, spec, QuantizingConfig { cache: Some(cache), keep_dense: vec!["lm_head".into(), "classifier".into()] })?;
    use crate::runtime::models::source::TensorSource;
    for name in &names {
        ctx.cancel.check()?;
        if src.contains(name) {
            src.linear(name, candle_core::DType::F32)?;
        }
    }
    src.flush()?;
    let stats = src.stats();
    Ok(StageOutcome::with_output(serde_json::json!({ "quantized": stats.quantized, "dense": stats.dense })))
}
