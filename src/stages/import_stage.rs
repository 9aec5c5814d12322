//! The `import` stage: takes in an existing PEFT adapter folder (`adapter x = peft(..)`), a local
//! folder or a Hugging Face cache snapshot read offline. It checks that peftc loads the folder
//! (a LoRA `adapter_config.json`, safetensors weights) and copies the two files into
//! `adapters/0/`, the layout of a train stage's output, so evals, merges, mixes and exports use
//! it as they use a trained adapter. Its key holds the files' content. It never downloads, and
//! never writes into the source folder.

use super::adapters::adapter_dir;
use crate::exec::{StageContext, StageOutcome};
use crate::plan::configs::ImportStageConfig;
use crate::plan::Stage;
use crate::runtime::peft_format::adapter_config::AdapterConfig;
use anyhow::{bail, Context};
use serde_json::json;

/// The files of a PEFT folder that peftc reads.
const FILES: [&str; 2] = ["adapter_config.json", "adapter_model.safetensors"];

/// Runs the `import` stage.
pub fn run(stage: &Stage, ctx: &StageContext) -> anyhow::Result<StageOutcome> {
    let config: ImportStageConfig = serde_json::from_value(stage.config.clone())?;
    let Some(folder) = ctx.files.get("adapter").cloned() else {
        match &config.hub {
            Some((repo, revision)) => bail!(
                "`{repo}` (revision `{revision}`) is not in the Hugging Face cache; peftc reads the Hub offline: \
                 download it once (`huggingface-cli download {repo}`) or name the folder: `peft(\"path\")`"
            ),
            None => bail!("the PEFT adapter folder was not found"),
        }
    };
    let cfg = AdapterConfig::read(&folder)?;
    let out = adapter_dir(&ctx.out_dir, 0);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for f in FILES {
        let from = folder.join(f);
        if !from.is_file() {
            bail!(
                "{} has no {f}: peftc loads adapters saved as safetensors (a pickled adapter_model.bin is refused)",
                folder.display()
            );
        }
        std::fs::copy(&from, out.join(f)).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(StageOutcome::with_output(json!({
        "source": config.hub.as_ref().map(|(r, v)| format!("{r}@{v}")),
        "r": cfg.r,
        "lora_alpha": cfg.lora_alpha,
        "task_type": cfg.task_type,
        "base_model_name_or_path": cfg.base_model_name_or_path,
    })))
}
