//! The `quantize` stage: quantizes the base model's linear weights once (NF4, int8, k-quants)
//! into the stage folder, so every later stage that builds the model reads the quantized form
//! instead of quantizing again. It must not train.

use super::loaded::load_model_with;
use crate::exec::{StageContext, StageOutcome};
use crate::plan::configs::{ModelBuild, QuantConfig};
use crate::plan::Stage;
use crate::runtime::models::source::TensorSource;
use crate::runtime::quant::{QuantCacheConfig, QuantizingConfig, QuantizingSource};
use anyhow::Context;
use std::cell::RefCell;
use std::sync::Arc;

/// Runs the `quantize` stage: the model is built once through a quantizing source whose cache is
/// this stage's folder, so each linear weight is read, quantized and kept in its quantized form
/// one at a time (peak memory: the quantized model, not the f32 one); the cache file is written
/// when the source is flushed.
pub fn run(stage: &Stage, ctx: &StageContext) -> anyhow::Result<StageOutcome> {
    let quant: QuantConfig = serde_json::from_value(stage.config.clone())?;
    // Weights are read in f32 and quantized from it, whatever the compute dtype (the layers
    // kept dense are built again, in the compute dtype, by the stages that use the model).
    let build = ModelBuild {
        labels: None,
        dtype: "f32".into(),
        quant: None,
        dense_weights: false,
    };
    let spec = super::loaded::quant_spec(&quant)?;
    let quantizer: RefCell<Option<Arc<QuantizingSource>>> = RefCell::new(None);
    let wrap = |inner: Arc<dyn TensorSource>| -> anyhow::Result<Arc<dyn TensorSource>> {
        ctx.cancel.check()?;
        let src = Arc::new(QuantizingSource::new(
            inner,
            spec.clone(),
            QuantizingConfig {
                cache: Some(QuantCacheConfig {
                    dir: ctx.out_dir.clone(),
                    source_id: "base".into(),
                }),
                keep_dense: vec!["lm_head".into(), "classifier".into(), "score".into()],
            },
        )?);
        *quantizer.borrow_mut() = Some(src.clone());
        Ok(src)
    };
    let loaded = load_model_with(ctx, &build, &wrap)?;
    drop(loaded);
    let src = quantizer
        .take()
        .context("the model was built without its quantizing source")?;
    src.flush()?;
    let stats = src.stats();
    Ok(StageOutcome::with_output(
        serde_json::json!({ "quantized": stats.quantized, "dense": stats.dense }),
    ))
}
