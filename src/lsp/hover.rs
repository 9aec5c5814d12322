//! Hover text: for a declaration (or a reference to one) its header, doc comment and what the
//! checker knows (adapters and trains: trainable parameters, adapter size, memory estimate);
//! for a field its type and meaning; for a target its module shape in the model; for a metric
//! what it measures. Markdown; reads the last analysis only.

use super::context::{self, Ctx, Enclosing};
use super::fields;
use super::index::{self, Site};
use super::state::Analysis;
use crate::check::figures::{adapter_params, human_bytes, human_count};
use crate::check::hir::{self, AdapterKind, BottleneckSize, ModelShape, Program};
use crate::syntax::ast::DeclKind;
use std::ops::Range;

/// The hover markdown at `offset`, and the byte range it describes.
pub fn hover(an: &Analysis, text: &str, offset: usize) -> Option<(String, Range<usize>)> {
    let (segs, idx, range) = context::path_at(text, offset)?;
    let word = segs.get(idx)?.clone();
    let after = text.get(range.end..).unwrap_or("").trim_start();
    let ctx = context::at(text, range.start);
    let prog = &an.checked.program;
    if let Ctx::Targets { decl } = &ctx {
        return target_hover(prog, decl, &word).map(|t| (t, range));
    }
    if matches!(ctx, Ctx::Metrics { .. } | Ctx::Gate { .. }) {
        if let Some(m) = hir::Metric::parse(&word) {
            return Some((metric_doc(m).to_string(), range));
        }
    }
    let is_key = (after.starts_with('=') && !after.starts_with("==")) || after.starts_with(':');
    if is_key && matches!(ctx, Ctx::Field { .. } | Ctx::Value { .. } | Ctx::None) {
        let kind = match &ctx {
            Ctx::Field { decl, .. } | Ctx::Value { decl, .. } => decl.kind,
            _ => None,
        };
        if let Some(f) = fields::find(&word, kind) {
            return Some((
                format!("```peft\n{}: {}\n```\n{}", f.name, f.ty, f.doc),
                range,
            ));
        }
    }
    let site = index::find_decl(an, &word)?;
    Some((decl_hover(prog, &site), range))
}

fn decl_hover(prog: &Program, site: &Site) -> String {
    let mut out = format!("```peft\n{}\n```\n", site.header);
    if let Some(doc) = &site.doc {
        out.push_str(doc);
        out.push_str("\n\n");
    }
    let details = match site.kind {
        DeclKind::Adapter => adapter_details(prog, &site.name),
        DeclKind::Train => train_details(prog, &site.name),
        DeclKind::Model => model_details(prog, &site.name),
        DeclKind::Dataset => dataset_details(prog, &site.name),
        DeclKind::Eval => eval_details(prog, &site.name),
        DeclKind::Quant => prog.quant(&site.name).map(|q| {
            let compute = q.compute.map_or("the model's dtype", |c| c.name());
            if q.kind.has_blocks() {
                format!(
                    "quantization `{}`, blocks of {}, double quant {}, compute {compute}",
                    q.kind.name(),
                    q.block_size,
                    q.double_quant
                )
            } else {
                format!("quantization `{}`, compute {compute}", q.kind.name())
            }
        }),
        DeclKind::Device => prog.device(&site.name).map(|d| {
            let mem = d
                .memory
                .map(|m| format!(", memory {}", human_bytes(m)))
                .unwrap_or_default();
            format!("device {:?}({}){mem}", d.kind, d.index)
        }),
        DeclKind::Merge => prog
            .merge(&site.name)
            .map(|m| format!("merged into model `{}`", m.model)),
        DeclKind::Let => None,
    };
    out.push_str(&format!("*{}*", kind_name(site.kind)));
    if let Some(d) = details {
        out.push_str("\n\n");
        out.push_str(&d);
    }
    out
}

fn kind_name(k: DeclKind) -> &'static str {
    match k {
        DeclKind::Model => "model",
        DeclKind::Quant => "quantization",
        DeclKind::Adapter => "adapter",
        DeclKind::Dataset => "dataset",
        DeclKind::Train => "train stage",
        DeclKind::Eval => "eval stage",
        DeclKind::Merge => "merge stage",
        DeclKind::Device => "device",
        DeclKind::Let => "value",
    }
}

fn adapter_details(prog: &Program, name: &str) -> Option<String> {
    let a = prog.adapter(name)?;
    let mut lines = vec![adapter_kind(a)];
    for t in &prog.trains {
        let Some(ta) = t.adapters.iter().find(|x| x.meta.name == name) else {
            continue;
        };
        let Some(shape) = prog.model(&t.model).and_then(|m| m.shape.as_ref()) else {
            lines.push(format!("- in `{}`: model shapes unknown", t.meta.name));
            continue;
        };
        let p = adapter_params(ta, shape);
        let modules = match &ta.kind {
            AdapterKind::Lora(l) => format!(" on {} modules", l.targets.modules.len()),
            AdapterKind::Bottleneck(_) => String::new(),
        };
        let memory = t
            .figures
            .as_ref()
            .map(|f| {
                format!(
                    ", memory estimate of the train {}",
                    human_bytes(f.memory.total)
                )
            })
            .unwrap_or_default();
        lines.push(format!(
            "- in `{}`: **{} trainable parameters**{modules}, adapter size {} (f32){memory}",
            t.meta.name,
            human_count(p),
            human_bytes(p * 4)
        ));
    }
    Some(lines.join("\n"))
}

fn adapter_kind(a: &hir::Adapter) -> String {
    match &a.kind {
        AdapterKind::Lora(l) => {
            let targets = if l.targets.all_linear {
                "all_linear".to_string()
            } else {
                l.targets.requested.join(", ")
            };
            let scale = if l.rslora {
                l.alpha / f64::from(l.r).sqrt()
            } else {
                l.alpha / f64::from(l.r.max(1))
            };
            format!(
                "LoRA: r = {}, alpha = {} (scale {scale:.3}), dropout = {}, targets = [{targets}]",
                l.r, l.alpha, l.dropout
            )
        }
        AdapterKind::Bottleneck(b) => {
            let size = match b.size {
                BottleneckSize::Size(s) => format!("size {s}"),
                BottleneckSize::Reduction(r) => format!("reduction {r}"),
            };
            format!(
                "bottleneck adapter: {size}, {:?} placement, {:?}",
                b.placement, b.activation
            )
        }
    }
}

fn train_details(prog: &Program, name: &str) -> Option<String> {
    let t = prog.train(name)?;
    let mut out = format!(
        "model `{}`, adapters [{}], data `{}`",
        t.model,
        t.adapters
            .iter()
            .map(|a| a.meta.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        t.data.dataset
    );
    if let Some(f) = &t.figures {
        let m = &f.memory;
        out.push_str(&format!(
            "\n\n- **trainable parameters: {}** ({:.3}% of {} + trainable)\n- adapter size: {}\n- memory estimate: **{}** (base weights {}, adapter weights {}, gradients {}, optimizer state {}, activations {}, logits {})\n- tokens per step: {}, FLOPs per step: {:.3e}",
            human_count(f.trainable_params),
            f.trainable_percent,
            human_count(f.base_params),
            human_bytes(f.adapter_bytes),
            human_bytes(m.total),
            human_bytes(m.base_weights),
            human_bytes(m.adapter_weights),
            human_bytes(m.gradients),
            human_bytes(m.optimizer_state),
            human_bytes(m.activations),
            human_bytes(m.logits),
            f.tokens_per_step,
            f.flops_per_step
        ));
    }
    Some(out)
}

fn model_details(prog: &Program, name: &str) -> Option<String> {
    let m = prog.model(name)?;
    let source = match &m.source {
        hir::ModelSource::Hf { repo, revision } => format!("hf `{repo}` @ {revision}"),
        hir::ModelSource::Local { path } => format!("local `{}`", path.display()),
        hir::ModelSource::Gguf { path } => format!("gguf `{}`", path.display()),
    };
    let mut out = format!("{source}, dtype {:?}", m.dtype);
    if let hir::Task::Classify { labels } = &m.task {
        out.push_str(&format!(", classifies [{}]", labels.join(", ")));
    }
    match &m.shape {
        Some(s) => out.push_str(&format!(
            "\n\n{}: hidden {}, intermediate {}, {} layers, {} heads ({} kv), vocab {}, **{} parameters**",
            s.arch.name(),
            s.hidden,
            s.intermediate,
            s.layers,
            s.heads,
            s.kv_heads,
            s.vocab,
            human_count(s.params)
        )),
        None => out.push_str("\n\nshapes unknown"),
    }
    Some(out)
}

fn dataset_details(prog: &Program, name: &str) -> Option<String> {
    let d = prog.dataset(name)?;
    let mut out = format!(
        "{:?}, {} file(s), max_len {}",
        d.source.format,
        d.source.files.len(),
        d.max_len
    );
    if let Some(s) = &d.split {
        let parts: Vec<&str> = s.parts.iter().map(|p| p.name.as_str()).collect();
        out.push_str(&format!(", splits [{}]", parts.join(", ")));
    }
    Some(out)
}

fn eval_details(prog: &Program, name: &str) -> Option<String> {
    let e = prog.eval(name)?;
    let metrics: Vec<&str> = e.metrics.iter().map(|m| m.name()).collect();
    let mut out = format!("metrics [{}]", metrics.join(", "));
    for g in &e.gates {
        out.push_str(&format!("\n- gate `{}`", g.text));
    }
    Some(out)
}

/// The model shape an adapter (or train) in `decl` is applied to.
pub fn shape_for(prog: &Program, decl: &Enclosing) -> Option<ModelShape> {
    let name = decl.name.as_deref().unwrap_or("");
    let train = match decl.kind {
        Some(DeclKind::Train) => prog.train(name),
        _ => prog
            .trains
            .iter()
            .find(|t| t.adapters.iter().any(|a| a.meta.name == name)),
    };
    if let Some(s) = train
        .and_then(|t| prog.model(&t.model))
        .and_then(|m| m.shape.clone())
    {
        return Some(s);
    }
    prog.models.iter().find_map(|m| m.shape.clone())
}

fn target_hover(prog: &Program, decl: &Enclosing, word: &str) -> Option<String> {
    if word == "all_linear" {
        return Some("`all_linear`: every linear layer inside the transformer blocks".to_string());
    }
    let shape = shape_for(prog, decl)?;
    let suffix = format!(".{word}");
    let modules: Vec<hir::LinearModule> = crate::check::linear_modules(&shape)
        .into_iter()
        .filter(|m| m.name.ends_with(&suffix))
        .collect();
    let first = modules.first()?;
    let r = prog
        .adapter(decl.name.as_deref().unwrap_or(""))
        .and_then(|a| match &a.kind {
            AdapterKind::Lora(l) => Some(u64::from(l.r)),
            AdapterKind::Bottleneck(_) => None,
        });
    let mut out = format!(
        "```peft\n{word}: Linear({} -> {})\n```\n{} module(s) in `{}`, e.g. `{}`",
        first.in_features,
        first.out_features,
        modules.len(),
        shape.arch.name(),
        first.name
    );
    if let Some(r) = r {
        out.push_str(&format!(
            "\n\nLoRA r = {r}: {} parameters per module",
            r * (first.in_features + first.out_features)
        ));
    }
    Some(out)
}

fn metric_doc(m: hir::Metric) -> &'static str {
    match m {
        hir::Metric::Loss => "`loss`: mean cross-entropy on the eval data (lower is better)",
        hir::Metric::Perplexity => "`perplexity`: exp(loss) (lower is better)",
        hir::Metric::Accuracy => "`accuracy`: share of examples classified right, 0..1",
        hir::Metric::F1 => "`f1`: macro F1 over the labels, 0..1",
        hir::Metric::ExactMatch => {
            "`exact_match`: share of generations equal to the reference, 0..1"
        }
    }
}
