//! What `peftc serve FILE` serves, read from a checked pipeline without new syntax: the base
//! model of the trains whose adapters the pipeline exports as PEFT folders (with the train's
//! quantization), and every such export folder as an adapter named by its source
//! (`train.adapter`). Every exported adapter must share one base; LoRA exports only (DoRA and
//! bottleneck adapters are refused with the fix). Must not run anything: the folders must
//! already have been written by `peftc run`.

use super::config::{AdapterSpec, BaseSource, BaseSpec};
use crate::check::hir::{
    AdapterKind, Dtype, ExportFormat, ExportSource, ModelSource, Program, Quant, Train,
};
use crate::plan::configs::QuantConfig;
use crate::runtime::quant::QuantSpec;
use std::path::PathBuf;

/// Why a pipeline cannot be served.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PipelineServeError {
    #[error("the pipeline exports no adapter as `peft`: nothing to serve (add `export t.a to \"out/a\" as peft`, or use `peftc serve --model M --adapter name=path`)")]
    NoExports,
    #[error("the pipeline's quantization cannot be served: {0}")]
    Quant(String),
    #[error("the exported adapters have different bases ({0}); serve one base at a time with `peftc serve --model M --adapter name=path`")]
    SeveralBases(String),
    #[error("model `{model}` was not found on disk ({what}); run `peftc run` or fetch it first")]
    ModelMissing { model: String, what: String },
    #[error(
        "`{name}` is exported to {path}, which does not exist yet: run `peftc run {file}` first"
    )]
    NotExported {
        name: String,
        path: String,
        file: String,
    },
    #[error("`{name}` is {what}: peftc serve applies LoRA per request; merge it (`merge m = base + {name}`, `export m to \"..\" as merged`) and serve the merged folder with --model")]
    NotLora { name: String, what: &'static str },
}

/// One export to serve: name, folder, train.
struct Served<'a> {
    name: String,
    path: PathBuf,
    train: &'a Train,
}

fn exports(program: &Program) -> Vec<Served<'_>> {
    let mut out = Vec::new();
    for x in &program.exports {
        if x.format != ExportFormat::Peft {
            continue;
        }
        match &x.source {
            ExportSource::Adapter(r) => {
                if let Some(t) = program.train(&r.train) {
                    out.push(Served {
                        name: format!("{}.{}", r.train, r.adapter),
                        path: x.path.clone(),
                        train: t,
                    });
                }
            }
            ExportSource::Train(name) => {
                let Some(t) = program.train(name) else {
                    continue;
                };
                let several = t.adapters.len() > 1;
                for a in &t.adapters {
                    out.push(Served {
                        name: format!("{name}.{}", a.meta.name),
                        path: if several {
                            x.path.join(&a.meta.name)
                        } else {
                            x.path.clone()
                        },
                        train: t,
                    });
                }
            }
            ExportSource::Merge(_) => {}
        }
    }
    out
}

/// The runtime's spec of `q`, as the plan builds it for a train on `model_dtype`.
fn quant_spec(q: &Quant, model_dtype: Dtype) -> Result<QuantSpec, PipelineServeError> {
    let config = QuantConfig {
        kind: q.kind.name().to_string(),
        double_quant: q.double_quant && q.kind.has_blocks(),
        block_size: q.block_size,
        compute: q.compute.unwrap_or(model_dtype).name().to_string(),
    };
    crate::stages::quant_spec(&config).map_err(|e| PipelineServeError::Quant(format!("{e:#}")))
}

/// The base and adapters a checked pipeline serves.
pub fn from_program(program: &Program) -> Result<(BaseSpec, Vec<AdapterSpec>), PipelineServeError> {
    let served = exports(program);
    if served.is_empty() {
        return Err(PipelineServeError::NoExports);
    }
    let mut bases: Vec<(String, Option<String>)> = served
        .iter()
        .map(|s| (s.train.model.clone(), s.train.quantized_with.clone()))
        .collect();
    bases.sort();
    bases.dedup();
    if bases.len() > 1 {
        let list: Vec<String> = bases
            .iter()
            .map(|(m, q)| match q {
                Some(q) => format!("{m} quantized {q}"),
                None => m.clone(),
            })
            .collect();
        return Err(PipelineServeError::SeveralBases(list.join(", ")));
    }
    let (model_name, quant_name) = bases.remove(0);
    for s in &served {
        let adapter = s
            .train
            .adapters
            .iter()
            .find(|a| s.name.ends_with(&format!(".{}", a.meta.name)));
        let what = match adapter.map(|a| &a.kind) {
            Some(AdapterKind::Bottleneck(_)) => Some("a bottleneck adapter"),
            Some(AdapterKind::Lora(l)) if l.dora => Some("DoRA"),
            _ => None,
        };
        if let Some(what) = what {
            return Err(PipelineServeError::NotLora {
                name: s.name.clone(),
                what,
            });
        }
        if !s.path.join("adapter_config.json").is_file() {
            return Err(PipelineServeError::NotExported {
                name: s.name.clone(),
                path: s.path.display().to_string(),
                file: program.file.display().to_string(),
            });
        }
    }
    let model = program
        .model(&model_name)
        .ok_or_else(|| PipelineServeError::ModelMissing {
            model: model_name.clone(),
            what: "not declared".into(),
        })?;
    let resolved = model
        .resolved
        .clone()
        .ok_or_else(|| PipelineServeError::ModelMissing {
            model: model_name.clone(),
            what: match &model.source {
                ModelSource::Hf { repo, .. } => format!("`{repo}` is not in the local cache"),
                ModelSource::Local { path } | ModelSource::Gguf { path } => {
                    path.display().to_string()
                }
            },
        })?;
    let source = match &model.source {
        ModelSource::Gguf { .. } => BaseSource::Gguf(resolved),
        _ => BaseSource::Folder(resolved),
    };
    let quant = quant_name
        .as_deref()
        .and_then(|q| program.quant(q))
        .map(|q| quant_spec(q, model.dtype))
        .transpose()?;
    let base = BaseSpec {
        source,
        name: model_name,
        quant,
    };
    let adapters = served
        .into_iter()
        .map(|s| AdapterSpec {
            name: s.name,
            path: s.path,
        })
        .collect();
    Ok((base, adapters))
}
