//! Lowers `model` declarations: the source (`hf`, `local`, `gguf`) resolved to absolute paths
//! and what exists on disk, the task, and the shape from config.json, a GGUF header, a
//! `shape` record or a stdlib preset.

use super::cx::{file_id, Cx, DeclId, V};
use super::hir::*;
use super::{arch, config_json, gguf, schema};
use crate::syntax::ast::ExprKind;
use crate::syntax::{Code, Diagnostic};
use std::path::Path;

impl<'a> Cx<'a> {
    pub fn lower_model(
        &mut self,
        id: DeclId,
        dir: &Path,
        presets: &[(String, ModelShape)],
    ) -> Option<Model> {
        let decl = self.decl(id)?;
        let (head, fields) = self.effective(id);
        self.check_keys(&fields, schema::MODEL, "a model");
        let meta = self.meta(id, decl);
        let Some(head) = head else {
            self.emit(
                Diagnostic::new(
                    Code::MissingField,
                    file_id(id.module),
                    decl.name.span,
                    format!("model `{}` has no source", decl.name.name),
                )
                .with_label("needs `= hf(\"..\")`, `= local(\"..\")` or `= gguf(\"..\")`")
                .with_help("write `model m = hf(\"org/name\")`"),
            );
            return None;
        };
        let head = self.deref(head);
        let source = self.model_source(head, dir)?;
        let mut has_chat_template = false;
        let mut shape = None;
        let mut resolved = None;
        match &source {
            ModelSource::Hf { repo, revision } => {
                if let Some(cfg) = self.world.hf_cached_file(repo, revision, "config.json") {
                    resolved = cfg.parent().map(Path::to_path_buf);
                    shape = self.config_shape(head, &cfg);
                    if let Some(tc) = resolved.as_ref().map(|r| r.join("tokenizer_config.json")) {
                        has_chat_template = config_json::has_chat_template(self.world, &tc);
                    }
                }
            }
            ModelSource::Local { path } => {
                if !self.world.is_dir(path) {
                    self.not_found(head, path, "folder");
                } else {
                    resolved = Some(path.clone());
                    let cfg = path.join("config.json");
                    if self.world.is_file(&cfg) {
                        shape = self.config_shape(head, &cfg);
                        if shape.is_some() {
                            self.model_folder(head, path);
                        }
                    } else {
                        self.emit(
                            Diagnostic::new(Code::UnsupportedModel, file_id(head.m), head.expr.span, format!("`{}` has no config.json", path.display()))
                                .with_label("not a Hugging Face model folder")
                                .with_help("a model folder holds config.json, model.safetensors and tokenizer.json"),
                        );
                    }
                    has_chat_template = config_json::has_chat_template(
                        self.world,
                        &path.join("tokenizer_config.json"),
                    );
                }
            }
            ModelSource::Gguf { path } => {
                if !self.world.is_file(path) {
                    self.not_found(head, path, "file");
                } else {
                    resolved = Some(path.clone());
                    match gguf::read(self.world, path) {
                        Ok(info) => {
                            has_chat_template = info.has_chat_template;
                            self.gguf_buildable(head, &info.shape);
                            shape = Some(info.shape);
                        }
                        Err(e) => self.emit(
                            Diagnostic::new(Code::BadGguf, file_id(head.m), head.expr.span, format!("cannot read the GGUF header of `{}`: {e}", path.display()))
                                .with_label("not a readable GGUF file")
                                .with_help("check that the file is a complete GGUF model (llama.cpp format, version 2 or 3)"),
                        ),
                    }
                }
            }
        }
        if let Some(f) = fields.get("shape") {
            if let Some(s) = self.declared_shape(f.value()) {
                shape = Some(s);
            }
        }
        if shape.is_none() {
            if let ModelSource::Hf { repo, .. } = &source {
                shape = preset_for(repo, presets);
            }
        }
        let task = match fields.get("task") {
            Some(f) => self.task(f.value())?,
            None => Task::Causal,
        };
        if let (Some(s), Task::Causal) = (&shape, &task) {
            if s.arch.is_encoder() {
                self.emit(
                    Diagnostic::new(
                        Code::TaskMismatch,
                        file_id(id.module),
                        decl.name.span,
                        format!(
                            "`{}` is a {} encoder and cannot be trained as a causal language model",
                            decl.name.name,
                            s.arch.name()
                        ),
                    )
                    .with_label("needs a classification task")
                    .with_help("add `task = classify(labels = [\"negative\", \"positive\"])`"),
                );
            }
        }
        if shape.is_none()
            && !matches!(source, ModelSource::Gguf { .. } | ModelSource::Local { .. })
        {
            self.emit(
                Diagnostic::new(Code::ShapesUnknown, file_id(head.m), head.expr.span, format!("the shape of `{}` is unknown: targets, ranks and memory are not checked", decl.name.name))
                    .with_label("not in the local Hugging Face cache and no preset")
                    .with_help("download it once (`huggingface-cli download REPO`), or add `shape = { arch = llama, hidden = .., layers = .., .. }`"),
            );
        }
        let dense_weights = match fields.get("weights") {
            Some(f) => {
                let dense =
                    self.choice(f.value(), "weights", &["stored", "dense"]) == Some("dense");
                if !matches!(source, ModelSource::Gguf { .. }) {
                    let v = f.value();
                    self.emit(
                        Diagnostic::new(
                            Code::WeightsNotGguf,
                            file_id(v.m),
                            v.expr.span,
                            "`weights` applies to GGUF bases only",
                        )
                        .with_label("this model's weights are already dense")
                        .with_help("remove `weights`; to quantize this model, declare `quant q = nf4` and train on `m quantized q`"),
                    );
                }
                dense
            }
            None => false,
        };
        let dtype = match fields.get("dtype") {
            Some(f) => match self.choice(f.value(), "dtype", &["f32", "f16", "bf16"]) {
                Some("f16") => Dtype::F16,
                Some("bf16") => Dtype::Bf16,
                _ => Dtype::F32,
            },
            None => Dtype::F32,
        };
        Some(Model {
            meta,
            source,
            resolved,
            task,
            shape,
            dtype,
            dtype_declared: fields.get("dtype").is_some(),
            dense_weights,
            has_chat_template,
        })
    }

    /// E1102 when the runtime cannot build a model from this GGUF file: an architecture other
    /// than llama, mistral, qwen2, gpt2, or a tokenizer other than byte-level BPE (`gpt2`) and
    /// SentencePiece (`llama`).
    fn gguf_buildable(&mut self, v: V, shape: &ModelShape) {
        let tokenizer = shape.gguf.as_ref().and_then(|g| g.tokenizer.clone());
        let problem = if !matches!(
            shape.arch,
            Arch::Llama | Arch::Mistral | Arch::Qwen2 | Arch::Gpt2
        ) {
            Some((
                format!(
                    "GGUF bases of architecture `{}` are not supported",
                    shape.arch.name()
                ),
                "GGUF files of llama, mistral, qwen2 and gpt2 are".to_string(),
            ))
        } else {
            match tokenizer.as_deref() {
                Some("gpt2") | Some("llama") | None => None,
                Some(other) => Some((
                    format!("the GGUF tokenizer `{other}` is not supported"),
                    "GGUF files with a byte-level BPE (`tokenizer.ggml.model = gpt2`) or SentencePiece (`llama`) tokenizer are".to_string(),
                )),
            }
        };
        if let Some((message, supported)) = problem {
            self.emit(
                Diagnostic::new(Code::GgufUnsupported, file_id(v.m), v.expr.span, message)
                    .with_label("the runtime cannot build this model")
                    .with_help(format!("{supported}; or use the Hugging Face (safetensors) model and a `quant` declaration")),
            );
        }
    }

    /// E1208 (local folders; files missing from the Hugging Face cache are fetched by the run):
    /// a folder the loader would refuse (no safetensors weights, only a pickled
    /// checkpoint) or without the tokenizer the data stages read.
    fn model_folder(&mut self, v: V, folder: &Path) {
        use crate::runtime::models::layout::{weight_layout, WeightLayout, TOKENIZER_FILE};
        let pattern = folder.join("*").to_string_lossy().into_owned();
        let entries = self.world.glob(&pattern);
        let shown = folder.display();
        let special = [
            "model.safetensors",
            "model.safetensors.index.json",
            TOKENIZER_FILE,
        ]
        .iter()
        .find_map(|f| self.world.special_file(&folder.join(f)));
        let problem = match weight_layout(folder, &entries) {
            _ if special.is_some() => special.map(|what| {
                (
                    what,
                    "the run would refuse to read it".to_string(),
                    "replace it with the real file (a FIFO would block, a device never ends)"
                        .to_string(),
                )
            }),
            WeightLayout::Pickled(p) => Some((
                format!("`{shown}` holds only a pickled checkpoint (`{}`)", p.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()),
                "pickled checkpoints can run code when loaded and are never read".to_string(),
                format!("convert it once in Python: `AutoModel.from_pretrained(\"{shown}\").save_pretrained(\"{shown}\", safe_serialization=True)`"),
            )),
            WeightLayout::Missing => Some((
                format!("`{shown}` has no safetensors weights"),
                "no model.safetensors, no shards".to_string(),
                "a model folder holds config.json, model.safetensors (or shards with model.safetensors.index.json) and tokenizer.json".to_string(),
            )),
            _ if !self.world.is_file(&folder.join(TOKENIZER_FILE)) => Some((
                format!("`{shown}` has no {TOKENIZER_FILE}"),
                "the data cannot be tokenized".to_string(),
                format!("save the tokenizer beside the weights: `AutoTokenizer.from_pretrained(..).save_pretrained(\"{shown}\")`"),
            )),
            _ => None,
        };
        if let Some((message, label, help)) = problem {
            self.emit(
                Diagnostic::new(
                    Code::ModelFolderIncomplete,
                    file_id(v.m),
                    v.expr.span,
                    message,
                )
                .with_label(label)
                .with_help(help),
            );
        }
    }

    fn not_found(&mut self, v: V, path: &Path, what: &str) {
        self.emit(
            Diagnostic::new(Code::ModelNotFound, file_id(v.m), v.expr.span, format!("model {what} `{}` does not exist", path.display()))
                .with_label(format!("{what} not found"))
                .with_help("paths are relative to the .peft file; run the examples' setup script (or download the model) to put it there"),
        );
    }

    fn config_shape(&mut self, v: V, cfg: &Path) -> Option<ModelShape> {
        match config_json::read(self.world, cfg) {
            Ok(s) => Some(s),
            Err(e) => {
                self.emit(
                    Diagnostic::new(Code::UnsupportedModel, file_id(v.m), v.expr.span, format!("{e} ({})", cfg.display()))
                        .with_label("model not usable")
                        .with_help("supported: llama, mistral, qwen2, gpt2 and bert models with a standard config.json"),
                );
                None
            }
        }
    }

    fn model_source(&mut self, v: V<'a>, dir: &Path) -> Option<ModelSource> {
        let ExprKind::Call { callee, args } = &v.expr.kind else {
            self.type_error(
                v,
                "a model source: `hf(\"org/name\")`, `local(\"path\")` or `gguf(\"file.gguf\")`",
                None,
            );
            return None;
        };
        let mut pos = None;
        let mut revision = "main".to_string();
        for a in args {
            let av = V {
                expr: &a.value,
                m: v.m,
            };
            match a.name.as_ref().map(|n| n.name.as_str()) {
                None if pos.is_none() => pos = self.string(av),
                Some("revision") if callee.name == "hf" => {
                    revision = self.string(av).unwrap_or(revision)
                }
                _ => {
                    self.emit(
                        Diagnostic::new(Code::BadCall, file_id(v.m), a.value.span, format!("unexpected argument to `{}`", callee.name))
                            .with_label("not an argument of this source")
                            .with_help("`hf(\"org/name\", revision = \"main\")`, `local(\"path\")`, `gguf(\"file.gguf\")`"),
                    );
                }
            }
        }
        let Some(arg) = pos else {
            self.emit(
                Diagnostic::new(
                    Code::BadCall,
                    file_id(v.m),
                    v.expr.span,
                    format!("`{}` needs a path or repo id", callee.name),
                )
                .with_label("missing argument")
                .with_help("write `hf(\"org/name\")`"),
            );
            return None;
        };
        let abs = |p: &str| super::load::normalize(&dir.join(p));
        Some(match callee.name.as_str() {
            "hf" => ModelSource::Hf {
                repo: arg,
                revision,
            },
            "local" => ModelSource::Local { path: abs(&arg) },
            "gguf" => ModelSource::Gguf { path: abs(&arg) },
            other => {
                let help = super::suggest::did_you_mean(other, ["hf", "local", "gguf"])
                    .unwrap_or_else(|| {
                        "models come from `hf(..)`, `local(..)` or `gguf(..)`".into()
                    });
                self.emit(
                    Diagnostic::new(
                        Code::BadCall,
                        file_id(v.m),
                        callee.span,
                        format!("unknown model source `{other}`"),
                    )
                    .with_label("not a model source")
                    .with_help(help),
                );
                return None;
            }
        })
    }

    fn task(&mut self, v: V<'a>) -> Option<Task> {
        let v = self.deref(v);
        match &v.expr.kind {
            ExprKind::Path(_) => match self.choice(v, "task", &["causal", "classify"])? {
                "causal" => Some(Task::Causal),
                _ => {
                    self.emit(
                        Diagnostic::new(
                            Code::MissingField,
                            file_id(v.m),
                            v.expr.span,
                            "a classification task needs its labels",
                        )
                        .with_label("labels missing")
                        .with_help(
                            "write `task = classify(labels = [\"negative\", \"positive\"])`",
                        ),
                    );
                    None
                }
            },
            ExprKind::Call { callee, args } if callee.name == "classify" => {
                let usage = "`classify(labels = [\"negative\", \"positive\"])`";
                let args_ok = self.call_args(callee, args, v.m, 1, &["labels"], usage);
                let labels_arg = args
                    .iter()
                    .find(|a| a.name.as_ref().is_none_or(|n| n.name == "labels"));
                let Some(a) = labels_arg else {
                    if !args_ok {
                        return None;
                    }
                    self.emit(
                        Diagnostic::new(
                            Code::MissingField,
                            file_id(v.m),
                            v.expr.span,
                            "a classification task needs its labels",
                        )
                        .with_label("labels missing")
                        .with_help("write `classify(labels = [\"negative\", \"positive\"])`"),
                    );
                    return None;
                };
                let items = self.list(V {
                    expr: &a.value,
                    m: v.m,
                });
                let labels: Vec<String> =
                    items.into_iter().filter_map(|i| self.string(i)).collect();
                if labels.len() < 2 {
                    self.range_error(
                        V {
                            expr: &a.value,
                            m: v.m,
                        },
                        "a classification task",
                        "given at least two labels",
                    );
                    return None;
                }
                Some(Task::Classify { labels })
            }
            _ => {
                self.type_error(v, "a task: `causal` or `classify(labels = [..])`", None);
                None
            }
        }
    }

    /// A `shape = { arch = .., hidden = .., .. }` record.
    pub fn declared_shape(&mut self, v: V<'a>) -> Option<ModelShape> {
        let ExprKind::Block(b) = &v.expr.kind else {
            self.type_error(v, "a record `{ arch = llama, hidden = 4096, .. }`", None);
            return None;
        };
        let mut f = super::cx::Fields::default();
        f.extend_block(b, v.m);
        self.check_keys(&f, schema::SHAPE, "a shape");
        let get = |cx: &mut Self, k: &str| -> Option<u64> {
            match f.get(k) {
                Some(x) => cx.int(x.value(), k, 1, u64::MAX),
                None => {
                    cx.missing(v.m, b.span, k, "a shape", "..");
                    None
                }
            }
        };
        let arch_v = f.get("arch");
        let hidden = get(self, "hidden");
        let intermediate = get(self, "intermediate");
        let layers = get(self, "layers");
        let heads = get(self, "heads");
        let vocab = get(self, "vocab");
        let kv_heads = f
            .get("kv_heads")
            .and_then(|x| self.int(x.value(), "kv_heads", 1, u64::MAX))
            .or(heads);
        let context = f
            .get("context")
            .and_then(|x| self.int(x.value(), "context", 1, u64::MAX))
            .unwrap_or(2048);
        let tied = f
            .get("tied")
            .and_then(|x| self.boolean(x.value()))
            .unwrap_or(false);
        let arch = match arch_v {
            Some(a) => Arch::parse(self.choice(
                a.value(),
                "architecture",
                &["llama", "mistral", "qwen2", "gpt2", "bert"],
            )?)?,
            None => {
                self.missing(v.m, b.span, "arch", "a shape", "llama");
                return None;
            }
        };
        let mut s = ModelShape {
            arch,
            hidden: hidden?,
            intermediate: intermediate?,
            layers: layers?,
            heads: heads?,
            kv_heads: kv_heads?,
            vocab: vocab?,
            context,
            tied_embeddings: tied,
            explicit_head_dim: None,
            params: 0,
            stored_bytes: None,
            gguf: None,
            origin: ShapeOrigin::Declared,
        };
        s.params = arch::param_count(&s);
        Some(s)
    }
}

/// The preset whose repo id matches (`gpt2` also matches `openai-community/gpt2`).
fn preset_for(repo: &str, presets: &[(String, ModelShape)]) -> Option<ModelShape> {
    let lower = repo.to_ascii_lowercase();
    presets
        .iter()
        .find(|(id, _)| {
            let id = id.to_ascii_lowercase();
            id == lower || (!lower.contains('/') && id.rsplit('/').next() == Some(lower.as_str()))
        })
        .map(|(_, s)| s.clone())
}
