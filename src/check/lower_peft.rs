//! Lowers `adapter x = peft("folder")` and `adapter x = peft(hf("org/repo"))`: an adapter
//! trained elsewhere (Hugging Face PEFT's folder layout). Finds the folder (the Hub cache is
//! read offline, as for `hf(..)` models), reads `adapter_config.json` and the header of
//! `adapter_model.safetensors` (never the weights), and checks the adapter against every model
//! it is applied to: modules, shapes, task and base model name. Must not load tensors.

use super::cx::{file_id, Cx, DeclId, V};
use super::hir::*;
use crate::syntax::ast::ExprKind;
use crate::syntax::{Code, Diagnostic, Loc};
use std::path::Path;

/// Largest safetensors header read (the adapter's tensor list).
const MAX_HEADER: u64 = 16 << 20;
const PREFIX: &str = "base_model.model.";

impl<'a> Cx<'a> {
    /// Whether declaration `id` is written `adapter x = peft(..)`.
    pub fn is_peft_decl(&self, id: DeclId) -> bool {
        self.decl(id).and_then(|d| d.head.as_ref()).is_some_and(
            |h| matches!(&h.kind, ExprKind::Call { callee, .. } if callee.name == "peft"),
        )
    }

    /// Lowers a `peft(..)` adapter declaration; `dir` is its file's folder.
    pub fn lower_peft(&mut self, id: DeclId, dir: &Path) -> Option<PeftImport> {
        let decl = self.decl(id)?;
        let meta = self.meta(id, decl);
        if let Some(b) = &decl.body {
            let mut f = super::cx::Fields::default();
            f.extend_block(b, id.module);
            self.check_keys(&f, &[], "a peft(..) adapter");
        }
        let head = V {
            expr: decl.head.as_ref()?,
            m: id.module,
        };
        let source = self.peft_source(head, dir)?;
        let resolved = match &source {
            PeftSource::Local { path } => self
                .world
                .is_file(&path.join("adapter_config.json"))
                .then(|| path.clone()),
            PeftSource::Hf { repo, revision } => self
                .world
                .hf_cached_file(repo, revision, "adapter_config.json")
                .and_then(|p| p.parent().map(Path::to_path_buf)),
        };
        let Some(folder) = resolved.clone() else {
            let (what, help) = match &source {
                PeftSource::Local { path } => (
                    format!("`{}` holds no adapter_config.json", path.display()),
                    "name a folder saved by PEFT's `save_pretrained` (adapter_config.json + adapter_model.safetensors)".to_string(),
                ),
                PeftSource::Hf { repo, revision } => (
                    format!("`{repo}` (revision `{revision}`) is not in the Hugging Face cache"),
                    format!("peftc reads the Hub offline: download it once (`huggingface-cli download {repo}`), or name a folder: `peft(\"path\")`"),
                ),
            };
            self.emit(
                Diagnostic::new(Code::PeftNotFound, file_id(head.m), head.expr.span, what)
                    .with_label("no PEFT adapter here")
                    .with_help(help),
            );
            return Some(PeftImport {
                meta,
                source,
                resolved: None,
                info: None,
            });
        };
        let info = match read_info(self.world, &folder) {
            Ok(info) => Some(info),
            Err(why) => {
                self.emit(
                    Diagnostic::new(Code::PeftUnsupported, file_id(head.m), head.expr.span, format!("`{}`: {why}", folder.display()))
                        .with_label("not a LoRA adapter peftc loads")
                        .with_help("peftc loads PEFT LoRA / rsLoRA / DoRA adapters saved as safetensors (`save_pretrained(..., safe_serialization=True)`), with bias = \"none\""),
                );
                None
            }
        };
        Some(PeftImport {
            meta,
            source,
            resolved,
            info,
        })
    }

    fn peft_source(&mut self, v: V<'a>, dir: &Path) -> Option<PeftSource> {
        let ExprKind::Call { args, .. } = &v.expr.kind else {
            return None;
        };
        let bad = |cx: &mut Self, span| {
            cx.emit(
                Diagnostic::new(
                    Code::BadCall,
                    file_id(v.m),
                    span,
                    "`peft` takes a folder or a Hub repo",
                )
                .with_label("expected `\"path\"` or `hf(\"org/repo\")`")
                .with_help("write `peft(\"adapters/sentiment\")` or `peft(hf(\"org/repo\"))`"),
            );
        };
        let [arg] = args.as_slice() else {
            bad(self, v.expr.span);
            return None;
        };
        if arg.name.is_some() {
            bad(self, arg.value.span);
            return None;
        }
        match &arg.value.kind {
            ExprKind::Str(s) => Some(PeftSource::Local {
                path: super::load::normalize(&dir.join(s)),
            }),
            ExprKind::Call { callee, args } if callee.name == "hf" => {
                let mut repo = None;
                let mut revision = "main".to_string();
                for a in args {
                    let av = V {
                        expr: &a.value,
                        m: v.m,
                    };
                    match a.name.as_ref().map(|n| n.name.as_str()) {
                        None if repo.is_none() => repo = self.string(av),
                        Some("revision") => revision = self.string(av).unwrap_or(revision),
                        _ => {
                            bad(self, a.value.span);
                            return None;
                        }
                    }
                }
                let Some(repo) = repo else {
                    bad(self, arg.value.span);
                    return None;
                };
                Some(PeftSource::Hf { repo, revision })
            }
            _ => {
                bad(self, arg.value.span);
                None
            }
        }
    }

    /// Checks imported adapter `imp`, applied at `at`, against `model`.
    pub fn check_peft_on(&mut self, imp: &PeftImport, model: &Model, at: Loc) {
        let Some(info) = &imp.info else { return };
        let name = &imp.meta.name;
        let task_ok = match (&model.task, info.task_type.as_deref()) {
            (Task::Causal, Some("SEQ_CLS")) => Err("a SEQ_CLS adapter (a classifier's)"),
            (Task::Classify { .. }, Some("CAUSAL_LM")) => Err("a CAUSAL_LM adapter"),
            _ => Ok(()),
        };
        if let Err(what) = task_ok {
            let task = match model.task {
                Task::Causal => "a causal language model",
                Task::Classify { .. } => "a classifier",
            };
            self.emit(
                Diagnostic::new(Code::PeftTask, at.file, at.span, format!("`{name}` is {what}, but `{}` is {task}", model.meta.name))
                    .with_label("another task")
                    .with_related(imp.meta.loc, format!("`{name}` is declared here"))
                    .with_help("apply it to a model of its task (`task = classify(..)` for SEQ_CLS, the default causal task for CAUSAL_LM)"),
            );
        }
        if let (ModelSource::Hf { repo, .. }, Some(base)) = (&model.source, &info.base_model) {
            if base != repo && !base.is_empty() {
                self.emit(
                    Diagnostic::new(Code::PeftForeignBase, at.file, at.span, format!("`{name}` was trained on `{base}`, and is applied to `{repo}`"))
                        .with_label("another base model")
                        .with_related(imp.meta.loc, format!("`{name}` is declared here"))
                        .with_help(format!("apply it to `hf(\"{base}\")`, or check that the two models share their weights")),
                );
            }
        }
        let Some(shape) = &model.shape else { return };
        let all = self.linear_modules(shape);
        let specials = super::arch::special_names(shape.arch);
        for layer in &info.layers {
            // The checker names BERT's layers without the task class's `bert.` prefix.
            let path = match shape.arch {
                Arch::Bert => layer.path.strip_prefix("bert.").unwrap_or(&layer.path),
                _ => &layer.path,
            };
            let leaf = path.rsplit('.').next().unwrap_or(path);
            if specials.contains(&leaf) || path == "pooler.dense" {
                continue;
            }
            let problem = match all.modules.iter().find(|m| &*m.name == path) {
                None => format!(
                    "`{name}` adapts `{}`, which `{}` does not have",
                    layer.path, model.meta.name
                ),
                Some(m)
                    if (m.in_features, m.out_features)
                        != (layer.in_features, layer.out_features) =>
                {
                    format!(
                        "`{name}` adapts `{}` as [{} -> {}], but in `{}` it is [{} -> {}]",
                        layer.path,
                        layer.in_features,
                        layer.out_features,
                        model.meta.name,
                        m.in_features,
                        m.out_features
                    )
                }
                Some(_) => continue,
            };
            self.emit(
                Diagnostic::new(Code::PeftMismatch, at.file, at.span, problem)
                    .with_label("does not fit this model")
                    .with_related(imp.meta.loc, format!("`{name}` is declared here"))
                    .with_help(format!(
                        "apply it to the model it was trained on ({})",
                        info.base_model
                            .as_deref()
                            .unwrap_or("see its adapter_config.json")
                    )),
            );
            return;
        }
    }
}

/// Reads the config and the weights' header of a PEFT folder.
fn read_info(world: &dyn super::world::World, folder: &Path) -> Result<PeftInfo, String> {
    let text = world
        .read_to_string(&folder.join("adapter_config.json"))
        .map_err(|e| format!("adapter_config.json: {e}"))?;
    let cfg: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("adapter_config.json: {e}"))?;
    let peft_type = cfg["peft_type"].as_str().unwrap_or("LORA");
    if peft_type != "LORA" {
        return Err(format!(
            "peft_type `{peft_type}` is not loaded by peftc (LORA is)"
        ));
    }
    let bias = cfg["bias"].as_str().unwrap_or("none");
    if bias != "none" {
        return Err(format!(
            "bias = \"{bias}\" is not supported (only \"none\")"
        ));
    }
    let weights = folder.join("adapter_model.safetensors");
    if !world.is_file(&weights) {
        return Err(if world.is_file(&folder.join("adapter_model.bin")) {
            "the weights are a pickled adapter_model.bin, which can run code and is refused; save them as safetensors".into()
        } else {
            "no adapter_model.safetensors".into()
        });
    }
    let head = world.read_prefix(&weights, 8).map_err(|e| e.to_string())?;
    let len = head
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .filter(|n| *n <= MAX_HEADER)
        .ok_or("adapter_model.safetensors has no valid header")?;
    let bytes = world
        .read_prefix(&weights, 8 + len as usize)
        .map_err(|e| e.to_string())?;
    let header: serde_json::Value = bytes
        .get(8..)
        .and_then(|b| serde_json::from_slice(b).ok())
        .ok_or("adapter_model.safetensors has an unreadable header")?;
    let shape = |key: &str| -> Option<Vec<u64>> {
        header[key]["shape"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
    };
    let mut layers = Vec::new();
    let mut saved = Vec::new();
    if let Some(map) = header.as_object() {
        for key in map.keys() {
            let Some(rest) = key.strip_prefix(PREFIX) else {
                continue;
            };
            if let Some(path) = rest.strip_suffix(".lora_A.weight") {
                let a = shape(key).unwrap_or_default();
                let b = shape(&format!("{PREFIX}{path}.lora_B.weight")).unwrap_or_default();
                if let ([r, i], [o, _]) = (a.as_slice(), b.as_slice()) {
                    layers.push(PeftLayer {
                        path: path.to_string(),
                        r: *r,
                        in_features: *i,
                        out_features: *o,
                    });
                }
            } else if let Some(path) = rest.strip_suffix(".weight") {
                if !path.ends_with(".lora_B") {
                    saved.push(path.to_string());
                }
            }
        }
    }
    if layers.is_empty() && saved.is_empty() {
        return Err("adapter_model.safetensors holds no LoRA weight".into());
    }
    layers.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(PeftInfo {
        r: cfg["r"].as_u64().unwrap_or(8),
        alpha: cfg["lora_alpha"].as_f64().unwrap_or(8.0),
        task_type: cfg["task_type"].as_str().map(str::to_string),
        base_model: cfg["base_model_name_or_path"].as_str().map(str::to_string),
        use_dora: cfg["use_dora"].as_bool().unwrap_or(false),
        use_rslora: cfg["use_rslora"].as_bool().unwrap_or(false),
        layers,
        saved_modules: saved,
    })
}
