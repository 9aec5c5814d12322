//! Checks over the lowered program: figures and memory against the device, rank and alpha
//! lints, task / data agreement, gates reading other evals, merges into quantized bases,
//! serving portability, and unused declarations.

use super::cx::{file_id, Cx, DeclId};
use super::figures::{self, human_bytes, FigureConfig};
use super::hir::*;
use crate::syntax::ast::{self, DeclKind};
use crate::syntax::{Code, Diagnostic, Loc};

impl Cx<'_> {
    pub fn lint(&mut self, prog: &mut Program) {
        self.lint_adapters(prog);
        self.lint_trains(prog);
        self.lint_evals(prog);
        self.lint_searches(prog);
        self.lint_merges(prog);
        self.lint_exports(prog);
        self.lint_support(prog);
        self.lint_relations(prog);
    }

    fn lint_adapter(&mut self, a: &Adapter, loc: Loc) {
        let AdapterKind::Lora(l) = &a.kind else {
            return;
        };
        // Point at the values, where the adapter's declaration sets them.
        let r_loc = self.value_loc(&a.meta.name, "r");
        let alpha_loc = self.value_loc(&a.meta.name, "alpha");
        if l.r > 256 {
            let at = r_loc.unwrap_or(loc);
            self.emit(
                Diagnostic::new(
                    Code::HighRank,
                    at.file,
                    at.span,
                    format!("rank {} is very high", l.r),
                )
                .with_label("r above 256")
                .with_help(format!(
                    "ranks above 256 rarely help unless the data set is large; try `r = 64, alpha = 128` (alpha / r = {} now)",
                    fmt_num(l.alpha / f64::from(l.r.max(1)))
                )),
            );
        }
        let ratio = l.alpha / f64::from(l.r.max(1));
        if !(0.5..=4.0).contains(&ratio) {
            let at = alpha_loc.or(r_loc).unwrap_or(loc);
            let mut d = Diagnostic::new(
                Code::AlphaRatio,
                at.file,
                at.span,
                format!("alpha / r = {} is far from the usual 1-2", fmt_num(ratio)),
            )
            .with_label(format!("alpha = {}, r = {}", fmt_num(l.alpha), l.r))
            .with_help(format!(
                "write `alpha = {}` (2 x r) or `alpha = {}` (1 x r); the LoRA update is scaled by alpha / r",
                2 * l.r,
                l.r
            ));
            if let (Some(r), Some(_)) = (r_loc, alpha_loc) {
                d = d.with_related(r, format!("r = {}", l.r));
            }
            self.emit(d);
        }
    }

    fn lint_adapters(&mut self, prog: &Program) {
        for a in &prog.adapters {
            self.lint_adapter(a, a.meta.loc);
        }
        for t in &prog.trains {
            for a in &t.adapters {
                self.lint_adapter(a, a.meta.loc);
            }
        }
    }

    fn lint_trains(&mut self, prog: &mut Program) {
        let mut all = Vec::new();
        for t in &prog.trains {
            let Some(model) = prog.model(&t.model) else {
                all.push(None);
                continue;
            };
            let ds = prog.dataset(&t.data.dataset);
            self.task_vs_data(t, model, ds);
            let Some(shape) = &model.shape else {
                all.push(None);
                continue;
            };
            let declared = t.quantized_with.as_ref().and_then(|q| prog.quant(q));
            if let Some(q) = declared {
                self.quant_fits(q, model, shape);
            }
            let cfg = figures::train_config(prog, t, None);
            let fig = figures::compute(t, model, shape, cfg);
            if let Some(dev) = t.device.as_ref().and_then(|d| prog.device(d)) {
                if let Some(budget) = dev.memory {
                    if fig.memory.total > budget {
                        let help = what_fits(t, model, shape, cfg, budget);
                        self.emit(
                            Diagnostic::new(
                                Code::OutOfMemory,
                                t.meta.loc.file,
                                t.meta.loc.span,
                                format!(
                                    "`{}` needs about {} but device `{}` has {}",
                                    t.meta.name,
                                    human_bytes(fig.memory.total),
                                    dev.meta.name,
                                    human_bytes(budget)
                                ),
                            )
                            .with_label(format!(
                                "weights {}, activations {}, logits {}, adapter + optimizer {}",
                                human_bytes(fig.memory.base_weights),
                                human_bytes(fig.memory.activations),
                                human_bytes(fig.memory.logits),
                                human_bytes(
                                    fig.memory.adapter_weights
                                        + fig.memory.gradients
                                        + fig.memory.optimizer_state
                                )
                            ))
                            .with_related(dev.meta.loc, "device declared here")
                            .with_help(help),
                        );
                    }
                }
            }
            all.push(Some(fig));
        }
        for (t, f) in prog.trains.iter_mut().zip(all) {
            t.figures = f;
        }
    }

    /// E1104 when a quantization's `compute` and the model's `dtype` are both written and
    /// differ; W1101 when a GGML format cannot store some layers (input width not a multiple
    /// of its block), which then stay dense.
    fn quant_fits(&mut self, q: &Quant, model: &Model, shape: &ModelShape) {
        if let Some(c) = q.compute {
            if model.dtype_declared && c != model.dtype {
                self.emit(
                    Diagnostic::new(
                        Code::ComputeConflict,
                        q.meta.loc.file,
                        q.meta.loc.span,
                        format!(
                            "`{}` computes in {} but model `{}` declares dtype {}",
                            q.meta.name,
                            c.name(),
                            model.meta.name,
                            model.dtype.name()
                        ),
                    )
                    .with_label("the activations and dense weights follow `compute`")
                    .with_related(model.meta.loc, "dtype declared here")
                    .with_help(
                        "write the dtype once: remove the model's `dtype` or make both equal",
                    ),
                );
            }
        }
        let Some(block) = q.kind.ggml_block() else {
            return;
        };
        let mut widths: Vec<u64> = super::arch::linear_modules(shape)
            .iter()
            .map(|m| m.in_features)
            .filter(|w| w % block != 0)
            .collect();
        let count = widths.len();
        widths.sort_unstable();
        widths.dedup();
        if count > 0 {
            let list: Vec<String> = widths.iter().map(u64::to_string).collect();
            self.emit(
                Diagnostic::new(
                    Code::QuantLayersDense,
                    q.meta.loc.file,
                    q.meta.loc.span,
                    format!(
                        "{count} linear layers of `{}` stay dense: input width{} {} not a multiple of {block}",
                        model.meta.name,
                        if list.len() > 1 { "s" } else { "" },
                        if list.len() > 1 { format!("{} are", list.join(", ")) } else { format!("{} is", list.join(", ")) }
                    ),
                )
                .with_label(format!("`{}` stores rows in blocks of {block}", q.kind.name()))
                .with_help("use `q8_0` (blocks of 32) or `nf4` for this model"),
            );
        }
    }

    fn task_vs_data(&mut self, t: &Train, model: &Model, ds: Option<&Dataset>) {
        let Some(ds) = ds else { return };
        match &model.task {
            Task::Classify { labels } => {
                if ds.fields.text.is_none() || ds.fields.label.is_none() {
                    self.emit(
                        Diagnostic::new(Code::MissingMapping, t.data.loc.file, t.data.loc.span, format!("classification needs `text` and `label` fields, and `{}` lacks one", ds.meta.name))
                            .with_label("used for classification here")
                            .with_related(ds.meta.loc, "dataset declared here")
                            .with_help("map them: `text = field(\"sentence\")`, `label = field(\"label\")`"),
                    );
                }
                if let Some(dl) = &ds.labels {
                    if dl != labels {
                        self.emit(
                            Diagnostic::new(Code::TaskMismatch, t.data.loc.file, t.data.loc.span, format!("the data's labels {dl:?} differ from the model's {labels:?}"))
                                .with_label("label sets differ")
                                .with_related(ds.meta.loc, "dataset declared here")
                                .with_help("use the same labels, in the same order, in `task = classify(..)` and the dataset"),
                        );
                    }
                }
            }
            Task::Causal => {
                if ds.fields.label.is_some()
                    && ds.fields.prompt.is_none()
                    && ds.fields.text.is_some()
                    && ds.fields.completion.is_none()
                {
                    self.emit(
                        Diagnostic::new(
                            Code::TaskMismatch,
                            t.data.loc.file,
                            t.data.loc.span,
                            format!(
                                "`{}` has labels but `{}` is a causal language model",
                                ds.meta.name, model.meta.name
                            ),
                        )
                        .with_label("labels would be ignored")
                        .with_related(model.meta.loc, "model declared here")
                        .with_help("declare `task = classify(labels = [..])` on the model"),
                    );
                }
                if ds.template == Some(Template::ChatTemplate)
                    && !model.has_chat_template
                    && model.resolved.is_some()
                {
                    self.emit(
                        Diagnostic::new(
                            Code::TaskMismatch,
                            t.data.loc.file,
                            t.data.loc.span,
                            format!(
                                "`{}` uses the tokenizer's chat template, but `{}` has none",
                                ds.meta.name, model.meta.name
                            ),
                        )
                        .with_label("no chat template")
                        .with_help("use `template = chatml` or `template = alpaca`"),
                    );
                }
            }
        }
    }

    /// A sweep with no eval of its train, an escalation with no gate over it.
    fn lint_searches(&mut self, prog: &Program) {
        for t in &prog.trains {
            let evals: Vec<&crate::check::hir::Eval> = prog
                .evals
                .iter()
                .filter(|e| {
                    matches!(&e.subject, crate::check::hir::EvalSubject::Train { train } if train == &t.meta.name)
                })
                .collect();
            let gated = evals.iter().any(|e| !e.gates.is_empty());
            for s in &t.searches {
                let (undecided, message, label) = match s.mode {
                    crate::check::hir::SearchMode::Sweep => (
                        evals.is_empty(),
                        format!("nothing evaluates `{}`: its sweep points are ranked by final training loss", t.meta.name),
                        "no eval of this train",
                    ),
                    crate::check::hir::SearchMode::Escalate => (
                        !gated,
                        format!("no gate judges `{}`: only the first value of the escalation is trained", t.meta.name),
                        "nothing to escalate on",
                    ),
                };
                if undecided {
                    let help = match evals.first() {
                        Some(e) if e.gates.is_empty() => format!(
                            "give `{}` a gate, e.g. `gate loss < baseline.loss`",
                            e.meta.name
                        ),
                        _ => format!(
                            "add `eval {0}_check {{ model = {0}, data = {1}.eval, metrics = [loss], gate loss < baseline.loss }}`",
                            t.meta.name, t.data.dataset
                        ),
                    };
                    self.emit(
                        Diagnostic::new(Code::SearchUndecided, s.loc.file, s.loc.span, message)
                            .with_label(label)
                            .with_help(help),
                    );
                }
            }
        }
    }

    fn lint_evals(&mut self, prog: &Program) {
        for e in &prog.evals {
            for g in &e.gates {
                for (other, metric) in runs(&g.lhs).into_iter().chain(runs(&g.rhs)) {
                    if let Some(o) = prog.eval(&other) {
                        if !o.metrics.contains(&metric) {
                            self.emit(
                                Diagnostic::new(
                                    Code::GateUnknownMetric,
                                    g.loc.file,
                                    g.loc.span,
                                    format!("`{other}` does not compute `{}`", metric.name()),
                                )
                                .with_label("not measured by that eval")
                                .with_related(o.meta.loc, "that eval")
                                .with_help(format!(
                                    "add `{}` to the metrics of `{other}`",
                                    metric.name()
                                )),
                            );
                        }
                    }
                }
            }
        }
    }

    fn lint_merges(&mut self, prog: &Program) {
        for m in &prog.merges {
            let gguf = prog
                .model(&m.model)
                .is_some_and(|x| matches!(x.source, ModelSource::Gguf { .. }));
            if m.quantized_with.is_none() && !gguf {
                continue;
            }
            let checked = prog.evals.iter().any(
                |e| matches!(&e.subject, EvalSubject::Merge { merge } if *merge == m.meta.name),
            );
            if !checked {
                self.emit(
                    Diagnostic::new(Code::MergeQuantizedUnchecked, m.meta.loc.file, m.meta.loc.span, format!("`{}` merges into a quantized base and nothing evaluates it", m.meta.name))
                        .with_label("rounding can cost accuracy")
                        .with_help(format!("add `eval {0}_check {{ model = {0}, data = .., metrics = [..] }}` with a gate", m.meta.name)),
                );
            }
        }
    }

    fn lint_exports(&mut self, prog: &Program) {
        for x in &prog.exports {
            let adapters: Vec<(&Train, &Adapter)> = match &x.source {
                ExportSource::Adapter(r) => prog
                    .train(&r.train)
                    .and_then(|t| {
                        t.adapters
                            .iter()
                            .find(|a| a.meta.name == r.adapter)
                            .map(|a| (t, a))
                    })
                    .into_iter()
                    .collect(),
                ExportSource::Train(t) => prog
                    .train(t)
                    .map(|t| t.adapters.iter().map(|a| (t, a)).collect())
                    .unwrap_or_default(),
                ExportSource::Merge(_) => Vec::new(),
            };
            for (t, a) in adapters {
                if x.format == ExportFormat::Peft && matches!(a.kind, AdapterKind::Bottleneck(_)) {
                    self.emit(
                        Diagnostic::new(Code::ExportFormat, x.meta.loc.file, x.meta.loc.span, format!("`{}` is a bottleneck adapter, which the PEFT format cannot hold", a.meta.name))
                            .with_label("bottleneck adapter")
                            .with_help("merge is not possible either; export a LoRA adapter, or keep it in peftc's cache"),
                    );
                    continue;
                }
                let Some(serve) = x.serve_on else { continue };
                let head = prog
                    .model(&t.model)
                    .is_some_and(|m| matches!(m.task, Task::Classify { .. }));
                if let Some(why) = portability(serve, a, head) {
                    let rt = match serve {
                        ServeOn::Vllm => "vLLM",
                        ServeOn::Lorax => "LoRAX",
                        ServeOn::Peft => "PEFT",
                    };
                    self.emit(
                        Diagnostic::new(
                            Code::NotPortable,
                            x.meta.loc.file,
                            x.meta.loc.span,
                            format!("{rt} cannot load `{}`: {why}", a.meta.name),
                        )
                        .with_label(format!("served on {rt}"))
                        .with_help("change the adapter, or serve it elsewhere (`serve_on = peft`)"),
                    );
                }
            }
        }
    }

    /// W0101 for declarations of user files that nothing uses; W0102 for unused imports.
    pub fn lint_unused(&mut self) {
        for (mi, module) in self.modules.iter().enumerate() {
            if module.std_name.is_some() || self.broken_files.contains(&mi) {
                continue;
            }
            for (ii, item) in module.ast.items.iter().enumerate() {
                let ast::Item::Decl(d) = item else { continue };
                if matches!(d.kind, DeclKind::Train | DeclKind::Eval | DeclKind::Merge) {
                    continue;
                }
                if !self.used.contains(&DeclId {
                    module: mi,
                    item: ii,
                }) {
                    self.emit(
                        Diagnostic::new(
                            Code::UnusedDecl,
                            file_id(mi),
                            d.name.span,
                            format!("{} `{}` is never used", d.kind.keyword(), d.name.name),
                        )
                        .with_label("unused")
                        .with_help("remove it, or refer to it from a train, eval or export"),
                    );
                }
            }
        }
        for imp in self.imports {
            let Some(names) = &imp.names else { continue };
            for n in names {
                let Some(id) = self.scope.get(&n.name) else {
                    continue;
                };
                let used = self.used.contains(id);
                if !used {
                    self.emit(
                        Diagnostic::new(
                            Code::UnusedImport,
                            file_id(imp.from),
                            n.span,
                            format!("`{}` is imported but never used", n.name),
                        )
                        .with_label("unused import")
                        .with_help("remove it from the `use` list"),
                    );
                }
            }
        }
    }
}

fn runs(g: &GateExpr) -> Vec<(String, Metric)> {
    match g {
        GateExpr::Run { eval, metric } => vec![(eval.clone(), *metric)],
        GateExpr::Binary { lhs, rhs, .. } => runs(lhs).into_iter().chain(runs(rhs)).collect(),
        GateExpr::Neg(i) => runs(i),
        _ => Vec::new(),
    }
}

/// Why `serve` cannot load adapter `a`, if it cannot.
fn portability(serve: ServeOn, a: &Adapter, has_head: bool) -> Option<String> {
    let l = match &a.kind {
        AdapterKind::Bottleneck(_) => {
            return Some("it is a bottleneck adapter (only LoRA is supported)".into())
        }
        AdapterKind::Lora(l) => l,
    };
    if serve == ServeOn::Peft {
        return None;
    }
    if l.dora {
        return Some("DoRA adapters are not supported".into());
    }
    if has_head {
        return Some(
            "the trained classification head is saved as `modules_to_save`, which it rejects"
                .into(),
        );
    }
    let special = ["embed_tokens", "lm_head", "wte", "word_embeddings"];
    if let Some(t) = l
        .targets
        .requested
        .iter()
        .find(|t| special.contains(&t.as_str()))
    {
        return Some(format!("it targets `{t}` (embeddings / output head)"));
    }
    let limit = if serve == ServeOn::Vllm { 512 } else { 256 };
    if l.r > limit {
        return Some(format!("rank {} is above its limit of {limit}", l.r));
    }
    None
}

/// The help line of E0701: the first change that fits the budget.
fn what_fits(
    t: &Train,
    model: &Model,
    shape: &ModelShape,
    cfg: FigureConfig,
    budget: u64,
) -> String {
    let mut tries: Vec<(String, FigureConfig)> = Vec::new();
    if cfg.quant.is_none() {
        tries.push((
            "quantize with nf4 (`model = m quantized q4`, `quant q4 = nf4`)".into(),
            FigureConfig {
                quant: Some((QuantKind::Nf4, 64, true)),
                ..cfg
            },
        ));
    }
    let mut c = cfg;
    while c.batch > 1 {
        c.batch /= 2;
        c.accumulate *= 2;
        tries.push((
            format!("batch = {}, accumulate = {}", c.batch, c.accumulate),
            c,
        ));
    }
    let q = FigureConfig {
        quant: Some((QuantKind::Nf4, 64, true)),
        batch: 1,
        accumulate: cfg.accumulate * cfg.batch,
        ..cfg
    };
    tries.push((
        format!("nf4 with batch = 1, accumulate = {}", q.accumulate),
        q,
    ));
    let q2 = FigureConfig {
        max_len: (cfg.max_len / 2).max(16),
        ..q
    };
    tries.push((format!("nf4, batch = 1 and max_len = {}", q2.max_len), q2));
    for (what, c) in tries {
        let f = figures::compute(t, model, shape, c);
        if f.memory.total <= budget {
            return format!("{what}: about {}", human_bytes(f.memory.total));
        }
    }
    let f = figures::compute(t, model, shape, q2);
    format!("even with nf4, batch 1 and a shorter max_len it needs about {}: use a smaller model or a larger device", human_bytes(f.memory.total))
}

/// A number as a user would write it (`16`, `0.5`, `0.12`).
fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
