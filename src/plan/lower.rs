//! Compiles a checked program ([`hir::Program`]) into a [`Plan`]: one stage per model, quantized
//! base, tokenized dataset, train (one per sweep point), eval, eval's gates, merge and export,
//! wired by their inputs. Stage configs are the structs of [`super::configs`]: no declaration
//! names, no paths (files enter keys by content), so renaming or reordering declarations and
//! editing comments change no key. It must not read files or run anything.

use super::configs::*;
use super::{Plan, PlanError, Stage};
use crate::check::hir::{self, Program};
use serde::Serialize;
use std::collections::BTreeMap;

/// Which value of each `escalate [...]` a lowering uses (train name -> index); absent = first.
pub type EscalationChoice = BTreeMap<String, usize>;

/// Builds the plan of a checked program (which must have no errors).
pub fn lower(program: &Program, escalation: &EscalationChoice) -> Result<Plan, PlanError> {
    let mut lw = Lowering {
        program,
        stages: Vec::new(),
        escalation,
    };
    lw.all();
    Plan::new(lw.stages)
}

/// Stage id of a train at a sweep point (`train.name` or `train.name[lr=0.001]`).
pub fn train_ids(
    program: &Program,
    train: &hir::Train,
    escalation: &EscalationChoice,
) -> Vec<(String, TrainStageConfig)> {
    let base = train_config(program, train);
    let sweeps: Vec<&hir::Search> = train
        .searches
        .iter()
        .filter(|s| s.mode == hir::SearchMode::Sweep)
        .collect();
    let mut points = vec![(format!("train.{}", train.meta.name), base)];
    for search in &train.searches {
        if search.mode == hir::SearchMode::Escalate {
            let idx = escalation.get(&train.meta.name).copied().unwrap_or(0);
            if let Some(v) = search.values.get(idx) {
                for (_, cfg) in &mut points {
                    apply_search(cfg, &search.field, *v);
                }
            }
        }
    }
    for search in sweeps {
        let mut next = Vec::new();
        for (id, cfg) in &points {
            for v in &search.values {
                let mut c = cfg.clone();
                apply_search(&mut c, &search.field, *v);
                next.push((format!("{id}[{}={}]", search.field, v), c));
            }
        }
        points = next;
    }
    points
}

struct Lowering<'a> {
    program: &'a Program,
    stages: Vec<Stage>,
    escalation: &'a EscalationChoice,
}

fn to_value<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn stage(id: String, kind: StageKind, config: serde_json::Value) -> Stage {
    Stage::new(id, kind.name(), config).version(kind.version())
}

impl Lowering<'_> {
    fn has(&self, id: &str) -> bool {
        self.stages.iter().any(|s| s.id.as_str() == id)
    }

    fn push(&mut self, s: Stage) {
        if !self.has(s.id.as_str()) {
            self.stages.push(s);
        }
    }

    fn all(&mut self) {
        let p = self.program;
        for t in &p.trains {
            self.train(t);
        }
        for m in &p.merges {
            self.merge(m);
        }
        for e in &p.evals {
            self.eval(e);
        }
        for t in &p.trains {
            self.select(t);
        }
        for m in &p.merges {
            self.recheck_merge(m);
        }
        for x in &p.exports {
            self.export(x);
        }
    }

    /// `model.NAME`: the model's files.
    fn model(&mut self, name: &str) -> String {
        let id = format!("model.{name}");
        if self.has(&id) {
            return id;
        }
        let Some(m) = self.program.model(name) else {
            return id;
        };
        let config = match &m.source {
            hir::ModelSource::Hf { repo, revision } => ModelConfig::Hf {
                repo: repo.clone(),
                revision: revision.clone(),
            },
            hir::ModelSource::Local { .. } => ModelConfig::Local,
            hir::ModelSource::Gguf { .. } => ModelConfig::Gguf,
        };
        let mut s = stage(id.clone(), StageKind::Model, to_value(&config));
        let path = m.resolved.clone().or_else(|| match &m.source {
            hir::ModelSource::Local { path } | hir::ModelSource::Gguf { path } => {
                Some(path.clone())
            }
            hir::ModelSource::Hf { .. } => None,
        });
        if let Some(path) = path {
            s = s.file("weights", path);
        }
        if let Some(shape) = &m.shape {
            s = s.figure("params", crate::check::figures::human_count(shape.params));
            s = s.figure("arch", shape.arch.name());
        }
        self.push(s);
        id
    }

    fn build(&self, model: &str, quant: Option<&str>) -> ModelBuild {
        let m = self.program.model(model);
        let labels = m.and_then(|m| match &m.task {
            hir::Task::Classify { labels } => Some(labels.clone()),
            hir::Task::Causal => None,
        });
        let quant = quant.and_then(|q| self.program.quant(q));
        // With a quantized base, `compute` (when written) is the dtype of the activations and
        // of every weight kept dense; otherwise the model's `dtype`.
        let dtype = quant
            .and_then(|q| q.compute)
            .or(m.map(|m| m.dtype))
            .unwrap_or(hir::Dtype::F32);
        let quant = quant.map(|q| QuantConfig {
            kind: q.kind.name().to_string(),
            double_quant: q.double_quant && q.kind.has_blocks(),
            block_size: q.block_size,
            compute: dtype_name(dtype).to_string(),
        });
        ModelBuild {
            labels,
            dtype: dtype_name(dtype).to_string(),
            quant,
            dense_weights: m.is_some_and(|m| m.dense_weights),
        }
    }

    /// `quantize.MODEL.QUANT`, when the base is quantized.
    fn quantize(&mut self, model: &str, quant: Option<&str>) -> Option<String> {
        let quant = quant?;
        let build = self.build(model, Some(quant));
        let model_id = self.model(model);
        let id = format!("quantize.{model}.{quant}");
        let s =
            stage(id.clone(), StageKind::Quantize, to_value(&build.quant)).input("model", model_id);
        self.push(s);
        Some(id)
    }

    /// `tokenize.DATASET` (suffixed with `@MODEL` when another model tokenizes it too).
    fn tokenize(&mut self, data: &hir::DataRef, model: &str) -> String {
        let users = self.dataset_models(&data.dataset);
        let id = if users.len() > 1 {
            format!("tokenize.{}@{model}", data.dataset)
        } else {
            format!("tokenize.{}", data.dataset)
        };
        if self.has(&id) {
            return id;
        }
        let model_id = self.model(model);
        let Some(d) = self.program.dataset(&data.dataset) else {
            return id;
        };
        let mut config = tokenize_config(d);
        if config.labels.is_none() {
            config.labels = self.build(model, None).labels;
        }
        let mut s =
            stage(id.clone(), StageKind::Tokenize, to_value(&config)).input("model", model_id);
        for (i, f) in d.source.files.iter().enumerate() {
            s = s.file(format!("data.{i}"), f.clone());
        }
        self.push(s);
        id
    }

    /// Models that tokenize a dataset (through trains and evals).
    fn dataset_models(&self, dataset: &str) -> Vec<String> {
        let p = self.program;
        let mut out: Vec<String> = Vec::new();
        let mut add = |m: String| {
            if !out.contains(&m) {
                out.push(m);
            }
        };
        for t in &p.trains {
            if t.data.dataset == dataset {
                add(t.model.clone());
            }
        }
        for e in &p.evals {
            if e.data.dataset == dataset {
                if let Some(m) = self.subject_model(&e.subject) {
                    add(m);
                }
            }
        }
        out
    }

    fn subject_model(&self, subject: &hir::EvalSubject) -> Option<String> {
        match subject {
            hir::EvalSubject::Base { model } | hir::EvalSubject::Combined { model, .. } => {
                Some(model.clone())
            }
            hir::EvalSubject::Train { train } => self.program.train(train).map(|t| t.model.clone()),
            hir::EvalSubject::Merge { merge } => self.program.merge(merge).map(|m| m.model.clone()),
        }
    }

    fn subject_quant(&self, subject: &hir::EvalSubject) -> Option<String> {
        match subject {
            hir::EvalSubject::Train { train } => self
                .program
                .train(train)
                .and_then(|t| t.quantized_with.clone()),
            hir::EvalSubject::Merge { merge } => self
                .program
                .merge(merge)
                .and_then(|m| m.quantized_with.clone()),
            hir::EvalSubject::Base { .. } | hir::EvalSubject::Combined { .. } => None,
        }
    }

    fn train(&mut self, t: &hir::Train) {
        let model_id = self.model(&t.model);
        let quant_id = self.quantize(&t.model, t.quantized_with.as_deref());
        let tok_id = self.tokenize(&t.data, &t.model);
        let prefix = format!("train.{}", t.meta.name);
        for (id, cfg) in train_ids(self.program, t, self.escalation) {
            let point = id.strip_prefix(&prefix).unwrap_or("").to_string();
            let mut s = stage(id, StageKind::Train, to_value(&cfg))
                .name(format!("train {}{point}", t.meta.name))
                .input("model", model_id.clone())
                .input("data", tok_id.clone());
            if let Some(q) = &quant_id {
                s = s.input("quant", q.clone());
            }
            if let Some(f) = &t.figures {
                s = s
                    .figure(
                        "trainable",
                        format!(
                            "{} ({:.3}%)",
                            crate::check::figures::human_count(f.trainable_params),
                            f.trainable_percent
                        ),
                    )
                    .figure("memory", crate::check::figures::human_bytes(f.memory.total))
                    .figure("flops/step", format!("{:.3e}", f.flops_per_step));
            }
            self.push(s);
        }
    }

    /// The sweep points of a train that has more than one: `(stage id, label)`.
    fn sweep_points(&self, name: &str) -> Option<Vec<(String, String)>> {
        let t = self.program.train(name)?;
        let ids = train_ids(self.program, t, self.escalation);
        if ids.len() < 2 {
            return None;
        }
        let prefix = format!("train.{name}");
        Some(
            ids.into_iter()
                .map(|(id, _)| {
                    let label = id
                        .strip_prefix(&prefix)
                        .unwrap_or(&id)
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .replace("][", ", ");
                    (id, label)
                })
                .collect(),
        )
    }

    /// The stage that stands for a train's adapters: the train, or for a swept train the
    /// `select` stage that chooses its point.
    fn train_id(&self, name: &str) -> Option<String> {
        if self.sweep_points(name).is_some() {
            return Some(format!("select.{name}"));
        }
        let t = self.program.train(name)?;
        train_ids(self.program, t, self.escalation)
            .into_iter()
            .next()
            .map(|(id, _)| id)
    }

    /// The swept train an eval measures directly (`model = T` with `T` swept).
    fn swept_subject(&self, e: &hir::Eval) -> Option<String> {
        match &e.subject {
            hir::EvalSubject::Train { train } if self.sweep_points(train).is_some() => {
                Some(train.clone())
            }
            _ => None,
        }
    }

    /// The stage whose output holds eval `name`'s metrics: the eval, or for an eval of a swept
    /// train the `select` stage (which carries the chosen point's metrics).
    fn eval_output_id(&self, name: &str) -> String {
        match self
            .program
            .evals
            .iter()
            .find(|e| e.meta.name == name)
            .and_then(|e| self.swept_subject(e))
        {
            Some(train) => format!("select.{train}"),
            None => format!("eval.{name}"),
        }
    }

    /// `select.T` for each swept train: every eval of `T` at each point, their gates, and the
    /// rank (the first eval's first metric, else the final training loss).
    fn select(&mut self, t: &hir::Train) {
        let Some(points) = self.sweep_points(&t.meta.name) else {
            return;
        };
        let evals: Vec<&hir::Eval> = self
            .program
            .evals
            .iter()
            .filter(|e| self.swept_subject(e).as_deref() == Some(t.meta.name.as_str()))
            .collect();
        let rank = match evals.first().and_then(|e| e.metrics.first()) {
            Some(m) => RankConfig {
                metric: Some(m.name().to_string()),
                higher_is_better: matches!(
                    m,
                    hir::Metric::Accuracy | hir::Metric::F1 | hir::Metric::ExactMatch
                ),
            },
            None => RankConfig {
                metric: None,
                higher_is_better: false,
            },
        };
        let cfg = SelectStageConfig {
            points: points.iter().map(|(_, l)| l.clone()).collect(),
            evals: evals
                .iter()
                .map(|e| GateStageConfig {
                    gates: e.gates.iter().map(gate_config).collect(),
                })
                .collect(),
            rank,
        };
        let mut s = stage(
            format!("select.{}", t.meta.name),
            StageKind::Select,
            to_value(&cfg),
        )
        .name(format!("select {}", t.meta.name));
        for (i, (id, _)) in points.iter().enumerate() {
            s = s.input(format!("point.{i}"), id.clone());
            for (k, e) in evals.iter().enumerate() {
                s = s.input(
                    format!("eval.{k}.{i}"),
                    point_eval_id(&e.meta.name, id, &t.meta.name),
                );
            }
        }
        for e in &evals {
            for other in &e.needs_evals {
                s = s.input(format!("run.{other}"), self.eval_output_id(other));
            }
        }
        self.push(s);
    }

    /// Inputs and picks for a combination of trained adapters.
    fn picks(
        &mut self,
        combo: &hir::Combination,
    ) -> (Vec<(String, String)>, Vec<AdapterPick>, Vec<f64>) {
        let mut inputs = Vec::new();
        let mut picks = Vec::new();
        let mut weights = Vec::new();
        let items: Vec<(&hir::AdapterRef, f64)> = match combo {
            hir::Combination::Stack(v) => v.iter().map(|r| (r, 1.0)).collect(),
            hir::Combination::Mix(v) => v.iter().map(|(r, w)| (r, *w)).collect(),
        };
        for (r, w) in items {
            let Some(train_id) = self.train_id(&r.train) else {
                continue;
            };
            let slot = format!("adapters.{}", inputs.len());
            let index = self
                .program
                .train(&r.train)
                .and_then(|t| t.adapters.iter().position(|a| a.meta.name == r.adapter));
            inputs.push((slot.clone(), train_id));
            picks.push(AdapterPick { slot, index });
            weights.push(w);
        }
        (inputs, picks, weights)
    }

    fn merge(&mut self, m: &hir::Merge) {
        let model_id = self.model(&m.model);
        let quant_id = self.quantize(&m.model, m.quantized_with.as_deref());
        let (inputs, picks, weights) = self.picks(&m.adapters);
        let cfg = MergeStageConfig {
            build: self.build(&m.model, m.quantized_with.as_deref()),
            picks,
            weights,
        };
        let mut s = stage(
            format!("merge.{}", m.meta.name),
            StageKind::Merge,
            to_value(&cfg),
        )
        .input("model", model_id);
        if let Some(q) = quant_id {
            s = s.input("quant", q);
        }
        for (slot, id) in inputs {
            s = s.input(slot, id);
        }
        self.push(s);
    }

    /// After a merge, the metrics of an eval of the merged adapters are measured again on the
    /// merged model, and a gate bounds the drop (a merge into a low-precision or quantized base
    /// loses accuracy). Added only when the program does not evaluate the merge itself.
    fn recheck_merge(&mut self, m: &hir::Merge) {
        let p = self.program;
        if p.evals.iter().any(
            |e| matches!(&e.subject, hir::EvalSubject::Merge { merge } if merge == &m.meta.name),
        ) {
            return;
        }
        let trains: Vec<&str> = m.adapters.refs().iter().map(|r| r.train.as_str()).collect();
        let Some(source) = p.evals.iter().find(|e| match &e.subject {
            hir::EvalSubject::Train { train } => trains.contains(&train.as_str()),
            hir::EvalSubject::Combined { adapters, .. } => adapters
                .refs()
                .iter()
                .any(|r| trains.contains(&r.train.as_str())),
            _ => false,
        }) else {
            return;
        };
        let model_id = self.model(&m.model);
        let tok_id = self.tokenize(&source.data, &m.model);
        let cfg = EvalStageConfig {
            build: self.build(&m.model, None),
            subject: EvalSubjectConfig::Merged,
            split: source.data.split.clone().unwrap_or_else(|| "all".into()),
            metrics: source
                .metrics
                .iter()
                .map(|x| x.name().to_string())
                .collect(),
            batch: source.batch,
            baseline: false,
        };
        let eval_id = format!("eval.{}.after_merge", m.meta.name);
        let s = stage(eval_id.clone(), StageKind::Eval, to_value(&cfg))
            .input("model", model_id)
            .input("data", tok_id)
            .input("merged", format!("merge.{}", m.meta.name));
        self.push(s);
        let slot = format!("run.{}", source.meta.name);
        let gates = source
            .metrics
            .iter()
            .map(|metric| {
                let name = metric.name().to_string();
                let higher_is_better = matches!(
                    metric,
                    hir::Metric::Accuracy | hir::Metric::F1 | hir::Metric::ExactMatch
                );
                let (cmp, tolerance, arith) = if higher_is_better {
                    (">=", 0.02, "-")
                } else {
                    ("<=", 0.05, "*")
                };
                let rhs = if higher_is_better {
                    GateExprConfig::Binary {
                        arith: arith.into(),
                        lhs: Box::new(GateExprConfig::Run {
                            slot: slot.clone(),
                            metric: name.clone(),
                        }),
                        rhs: Box::new(GateExprConfig::Literal { value: tolerance }),
                    }
                } else {
                    GateExprConfig::Binary {
                        arith: arith.into(),
                        lhs: Box::new(GateExprConfig::Run {
                            slot: slot.clone(),
                            metric: name.clone(),
                        }),
                        rhs: Box::new(GateExprConfig::Literal {
                            value: 1.0 + tolerance,
                        }),
                    }
                };
                let text = if higher_is_better {
                    format!(
                        "{name} >= {}.{name} - {tolerance} (after merge)",
                        source.meta.name
                    )
                } else {
                    format!(
                        "{name} <= {}.{name} * {} (after merge)",
                        source.meta.name,
                        1.0 + tolerance
                    )
                };
                GateConfig {
                    text,
                    lhs: GateExprConfig::Metric { metric: name },
                    cmp: cmp.into(),
                    rhs,
                }
            })
            .collect();
        let g = stage(
            format!("gate.{}.after_merge", m.meta.name),
            StageKind::Gate,
            to_value(&GateStageConfig { gates }),
        )
        .input("eval", eval_id)
        .input(slot, self.eval_output_id(&source.meta.name));
        self.push(g);
    }

    fn eval(&mut self, e: &hir::Eval) {
        let Some(model) = self.subject_model(&e.subject) else {
            return;
        };
        let quant = self.subject_quant(&e.subject);
        let model_id = self.model(&model);
        let tok_id = self.tokenize(&e.data, &model);
        let baseline = e
            .gates
            .iter()
            .any(|g| uses_baseline(&g.lhs) || uses_baseline(&g.rhs));
        let mut inputs: Vec<(String, String)> =
            vec![("model".into(), model_id), ("data".into(), tok_id)];
        if let Some(q) = self.quantize(&model, quant.as_deref()) {
            inputs.push(("quant".into(), q));
        }
        let subject = match &e.subject {
            hir::EvalSubject::Base { .. } => EvalSubjectConfig::Base,
            hir::EvalSubject::Train { train } => {
                if let Some(id) = self.train_id(train) {
                    inputs.push(("adapters.0".into(), id));
                }
                EvalSubjectConfig::Adapters {
                    picks: vec![AdapterPick {
                        slot: "adapters.0".into(),
                        index: None,
                    }],
                    weights: None,
                }
            }
            hir::EvalSubject::Combined { adapters, .. } => {
                let mixed = matches!(adapters, hir::Combination::Mix(_));
                let (ins, picks, weights) = self.picks(adapters);
                inputs.extend(ins);
                EvalSubjectConfig::Adapters {
                    picks,
                    weights: mixed.then_some(weights),
                }
            }
            hir::EvalSubject::Merge { merge } => {
                inputs.push(("merged".into(), format!("merge.{merge}")));
                EvalSubjectConfig::Merged
            }
        };
        let cfg = EvalStageConfig {
            build: self.build(&model, quant.as_deref()),
            subject,
            split: e.data.split.clone().unwrap_or_else(|| "all".into()),
            metrics: e.metrics.iter().map(|m| m.name().to_string()).collect(),
            batch: e.batch,
            baseline,
        };
        if let Some(train) = self.swept_subject(e) {
            // One eval per point; the point's gates are decided by `select.TRAIN`.
            for (point, _) in self.sweep_points(&train).unwrap_or_default() {
                let mut s = stage(
                    point_eval_id(&e.meta.name, &point, &train),
                    StageKind::Eval,
                    to_value(&cfg),
                )
                .name(format!(
                    "eval {}{}",
                    e.meta.name,
                    point.strip_prefix(&format!("train.{train}")).unwrap_or("")
                ));
                for (slot, id) in &inputs {
                    let id = if slot == "adapters.0" { &point } else { id };
                    s = s.input(slot.clone(), id.clone());
                }
                self.push(s);
            }
            return;
        }
        let eval_id = format!("eval.{}", e.meta.name);
        let mut s = stage(eval_id.clone(), StageKind::Eval, to_value(&cfg));
        for (slot, id) in inputs {
            s = s.input(slot, id);
        }
        self.push(s);
        if !e.gates.is_empty() {
            let gates = e.gates.iter().map(gate_config).collect();
            let mut g = stage(
                format!("gate.{}", e.meta.name),
                StageKind::Gate,
                to_value(&GateStageConfig { gates }),
            )
            .input("eval", eval_id);
            for other in &e.needs_evals {
                g = g.input(format!("run.{other}"), self.eval_output_id(other));
            }
            self.push(g);
        }
    }

    /// Gate stages of every eval whose subject involves `train` (or merge `merge`).
    fn gates_over(&self, train: Option<&str>, merge: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.program.evals {
            if let Some(t) = self.swept_subject(e) {
                // A swept train's gates are decided per point by its select stage.
                let id = format!("select.{t}");
                if Some(t.as_str()) == train && !out.contains(&id) {
                    out.push(id);
                }
                continue;
            }
            if e.gates.is_empty() {
                continue;
            }
            let involved = match &e.subject {
                hir::EvalSubject::Train { train: t } => Some(t.as_str()) == train,
                hir::EvalSubject::Combined { adapters, .. } => adapters
                    .refs()
                    .iter()
                    .any(|r| Some(r.train.as_str()) == train),
                hir::EvalSubject::Merge { merge: m } => Some(m.as_str()) == merge,
                hir::EvalSubject::Base { .. } => false,
            };
            if involved {
                out.push(format!("gate.{}", e.meta.name));
            }
        }
        if let Some(m) = merge {
            let recheck = format!("gate.{m}.after_merge");
            if self.has(&recheck) {
                out.push(recheck);
            }
        }
        out
    }

    fn export(&mut self, x: &hir::Export) {
        let (source_slot, source_id, adapters, names, gates) = match &x.source {
            hir::ExportSource::Adapter(r) => {
                let Some(t) = self.program.train(&r.train) else {
                    return;
                };
                let idx = t.adapters.iter().position(|a| a.meta.name == r.adapter);
                let Some(id) = self.train_id(&r.train) else {
                    return;
                };
                let gates = self.gates_over(Some(&r.train), None);
                (
                    "train",
                    id,
                    idx.map(|i| vec![i]).unwrap_or_default(),
                    vec![r.adapter.clone()],
                    gates,
                )
            }
            hir::ExportSource::Train(name) => {
                let Some(t) = self.program.train(name) else {
                    return;
                };
                let Some(id) = self.train_id(name) else {
                    return;
                };
                let names = t.adapters.iter().map(|a| a.meta.name.clone()).collect();
                (
                    "train",
                    id,
                    Vec::new(),
                    names,
                    self.gates_over(Some(name), None),
                )
            }
            hir::ExportSource::Merge(name) => (
                "merged",
                format!("merge.{name}"),
                Vec::new(),
                vec![name.clone()],
                self.gates_over(None, Some(name)),
            ),
        };
        let cfg = ExportStageConfig {
            format: match x.format {
                hir::ExportFormat::Peft => "peft".into(),
                hir::ExportFormat::Merged => "merged".into(),
            },
            path: x.path.to_string_lossy().into_owned(),
            serve_on: x.serve_on.map(|s| {
                match s {
                    hir::ServeOn::Vllm => "vllm",
                    hir::ServeOn::Lorax => "lorax",
                    hir::ServeOn::Peft => "peft",
                }
                .to_string()
            }),
            adapters,
            names,
        };
        let id = format!("export.{}", x.meta.name);
        let mut s = stage(id, StageKind::Export, to_value(&cfg)).input(source_slot, source_id);
        // The base model of the source, for merged exports and lineage.
        let model = match &x.source {
            hir::ExportSource::Adapter(r) => self.program.train(&r.train).map(|t| t.model.clone()),
            hir::ExportSource::Train(n) => self.program.train(n).map(|t| t.model.clone()),
            hir::ExportSource::Merge(n) => self.program.merge(n).map(|m| m.model.clone()),
        };
        if let Some(m) = model {
            s = s.input("model", format!("model.{m}"));
        }
        for (i, g) in gates.into_iter().enumerate() {
            s = s.input(format!("gate.{i}"), g);
        }
        // What the lineage records: the data the adapters were trained on, every eval of them.
        let (data, evals) = self.audited(&x.source);
        if let hir::ExportSource::Merge(n) = &x.source {
            // A merged model's trains (an adapter export has its train as `train`).
            let trains: Vec<String> = self
                .program
                .merge(n)
                .map(|m| m.adapters.refs().iter().map(|r| r.train.clone()).collect())
                .unwrap_or_default();
            let mut ids: Vec<String> = trains.iter().filter_map(|t| self.train_id(t)).collect();
            ids.dedup();
            for (i, t) in ids.into_iter().enumerate() {
                s = s.input(format!("audit.train.{i}"), t);
            }
        }
        for (i, d) in data.into_iter().enumerate() {
            s = s.input(format!("audit.data.{i}"), d);
        }
        for (i, e) in evals.into_iter().enumerate() {
            s = s.input(format!("audit.eval.{i}"), e);
        }
        self.push(s);
    }

    /// The tokenize stages of the trains behind an export's source, and the eval stages that
    /// measure the source (its train's evals, or the merge's), for the export's lineage.
    fn audited(&self, source: &hir::ExportSource) -> (Vec<String>, Vec<String>) {
        let (trains, merge): (Vec<String>, Option<&str>) = match source {
            hir::ExportSource::Adapter(r) => (vec![r.train.clone()], None),
            hir::ExportSource::Train(n) => (vec![n.clone()], None),
            hir::ExportSource::Merge(n) => (
                self.program
                    .merge(n)
                    .map(|m| m.adapters.refs().iter().map(|r| r.train.clone()).collect())
                    .unwrap_or_default(),
                Some(n.as_str()),
            ),
        };
        let mut data = Vec::new();
        for t in &trains {
            let Some(id) = self.train_id(t) else { continue };
            let Some(stage) = self.stages.iter().find(|s| s.id.as_str() == id) else {
                continue;
            };
            if let Some(d) = stage.inputs.get("data") {
                let d = d.as_str().to_string();
                if !data.contains(&d) {
                    data.push(d);
                }
            }
        }
        let mut evals = Vec::new();
        for e in &self.program.evals {
            let involved = match &e.subject {
                hir::EvalSubject::Train { train } => merge.is_none() && trains.contains(train),
                hir::EvalSubject::Combined { adapters, .. } => {
                    merge.is_none() && adapters.refs().iter().any(|r| trains.contains(&r.train))
                }
                hir::EvalSubject::Merge { merge: m } => Some(m.as_str()) == merge,
                hir::EvalSubject::Base { .. } => false,
            };
            let id = format!("eval.{}", e.meta.name);
            if involved && self.has(&id) {
                evals.push(id);
            }
        }
        if let Some(m) = merge {
            let recheck = format!("eval.{m}.after_merge");
            if self.has(&recheck) {
                evals.push(recheck);
            }
        }
        (data, evals)
    }
}

/// The eval stage of eval `eval` at one sweep point (`train.T[lr=..]` -> `eval.E[lr=..]`).
fn point_eval_id(eval: &str, point: &str, train: &str) -> String {
    let suffix = point
        .strip_prefix(&format!("train.{train}"))
        .unwrap_or(point);
    format!("eval.{eval}{suffix}")
}

fn gate_config(g: &hir::Gate) -> GateConfig {
    GateConfig {
        text: g.text.clone(),
        lhs: gate_expr(&g.lhs),
        cmp: cmp_name(g.op).into(),
        rhs: gate_expr(&g.rhs),
    }
}

fn uses_baseline(e: &hir::GateExpr) -> bool {
    match e {
        hir::GateExpr::Baseline(_) => true,
        hir::GateExpr::Binary { lhs, rhs, .. } => uses_baseline(lhs) || uses_baseline(rhs),
        hir::GateExpr::Neg(x) => uses_baseline(x),
        hir::GateExpr::Metric(_) | hir::GateExpr::Run { .. } | hir::GateExpr::Literal(_) => false,
    }
}

fn gate_expr(e: &hir::GateExpr) -> GateExprConfig {
    match e {
        hir::GateExpr::Metric(m) => GateExprConfig::Metric {
            metric: m.name().into(),
        },
        hir::GateExpr::Baseline(m) => GateExprConfig::Baseline {
            metric: m.name().into(),
        },
        hir::GateExpr::Run { eval, metric } => GateExprConfig::Run {
            slot: format!("run.{eval}"),
            metric: metric.name().into(),
        },
        hir::GateExpr::Literal(v) => GateExprConfig::Literal { value: *v },
        hir::GateExpr::Binary { op, lhs, rhs } => GateExprConfig::Binary {
            arith: match op {
                hir::ArithOp::Add => "+",
                hir::ArithOp::Sub => "-",
                hir::ArithOp::Mul => "*",
                hir::ArithOp::Div => "/",
            }
            .into(),
            lhs: Box::new(gate_expr(lhs)),
            rhs: Box::new(gate_expr(rhs)),
        },
        hir::GateExpr::Neg(x) => GateExprConfig::Neg {
            expr: Box::new(gate_expr(x)),
        },
    }
}

fn cmp_name(op: hir::CmpOp) -> &'static str {
    match op {
        hir::CmpOp::Ge => ">=",
        hir::CmpOp::Gt => ">",
        hir::CmpOp::Le => "<=",
        hir::CmpOp::Lt => "<",
        hir::CmpOp::Eq => "==",
        hir::CmpOp::Ne => "!=",
    }
}

fn dtype_name(d: hir::Dtype) -> &'static str {
    match d {
        hir::Dtype::F32 => "f32",
        hir::Dtype::F16 => "f16",
        hir::Dtype::Bf16 => "bf16",
    }
}

fn field(f: &Option<hir::FieldPath>) -> Option<FieldPath> {
    f.as_ref().map(|f| f.path.clone())
}

fn tokenize_config(d: &hir::Dataset) -> TokenizeConfig {
    let format = match d.source.format {
        hir::DataFormat::Jsonl => "jsonl",
        hir::DataFormat::Json => "json",
        hir::DataFormat::Csv => "csv",
        hir::DataFormat::Tsv => "tsv",
        hir::DataFormat::Text => "text",
        hir::DataFormat::Parquet => "parquet",
    };
    let template = d.template.as_ref().map(|t| match t {
        hir::Template::Alpaca => "alpaca".to_string(),
        hir::Template::Chatml => "chatml".to_string(),
        hir::Template::ChatTemplate => "chat_template".to_string(),
        hir::Template::Custom(s) => format!("custom:{s}"),
    });
    let (split, seed) = match &d.split {
        Some(sp) => (
            sp.parts
                .iter()
                .map(|p| match p.amount {
                    hir::SplitAmount::Fraction(f) => SplitPartConfig {
                        name: p.name.clone(),
                        fraction: Some(f),
                        count: None,
                    },
                    hir::SplitAmount::Count(c) => SplitPartConfig {
                        name: p.name.clone(),
                        fraction: None,
                        count: Some(c),
                    },
                })
                .collect(),
            sp.seed,
        ),
        None => (Vec::new(), 0),
    };
    TokenizeConfig {
        format: format.into(),
        text: field(&d.fields.text),
        label: field(&d.fields.label),
        prompt: field(&d.fields.prompt),
        completion: field(&d.fields.completion),
        messages: field(&d.fields.messages),
        template,
        labels: d.labels.clone(),
        split,
        seed,
        max_len: d.max_len,
        packing: d.packing,
        completion_only: d.completion_only,
        dedupe: d.dedupe,
        skip_invalid: d.skip_invalid,
        limit: d.limit,
    }
}

fn adapter_config(a: &hir::Adapter) -> AdapterConfig {
    match &a.kind {
        hir::AdapterKind::Lora(l) => AdapterConfig::Lora {
            r: l.r,
            alpha: l.alpha,
            dropout: l.dropout,
            targets: lora_targets(&l.targets),
            rslora: l.rslora,
            dora: l.dora,
            init: match l.init {
                hir::LoraInit::Default => "default",
                hir::LoraInit::Gaussian => "gaussian",
                hir::LoraInit::Pissa => "pissa",
                hir::LoraInit::Olora => "olora",
            }
            .into(),
            lr_ratio: l.lr_ratio,
        },
        hir::AdapterKind::Bottleneck(b) => {
            let (size, reduction) = match b.size {
                hir::BottleneckSize::Size(s) => (Some(s), None),
                hir::BottleneckSize::Reduction(r) => (None, Some(r)),
            };
            AdapterConfig::Bottleneck {
                size,
                reduction,
                placement: match b.placement {
                    hir::Placement::Houlsby => "houlsby",
                    hir::Placement::Pfeiffer => "pfeiffer",
                }
                .into(),
                activation: match b.activation {
                    hir::Activation::Relu => "relu",
                    hir::Activation::Gelu => "gelu",
                    hir::Activation::Silu => "silu",
                    hir::Activation::Tanh => "tanh",
                }
                .into(),
            }
        }
    }
}

/// PEFT-style `target_modules`: the names as written, or for `all_linear` the distinct module
/// leaf names it expanded to.
fn lora_targets(t: &hir::Targets) -> Vec<String> {
    if !t.all_linear && !t.requested.is_empty() {
        return t.requested.clone();
    }
    let mut out: Vec<String> = Vec::new();
    for m in &t.modules {
        let leaf = m.name.rsplit('.').next().unwrap_or(&m.name).to_string();
        if !out.contains(&leaf) {
            out.push(leaf);
        }
    }
    out
}

fn train_config(program: &Program, t: &hir::Train) -> TrainStageConfig {
    let lw = Lowering {
        program,
        stages: Vec::new(),
        escalation: &BTreeMap::new(),
    };
    let (warmup_fraction, warmup_steps) = match t.schedule.warmup {
        hir::Warmup::Fraction(f) => (Some(f), None),
        hir::Warmup::Steps(s) => (None, Some(s)),
    };
    TrainStageConfig {
        build: lw.build(&t.model, t.quantized_with.as_deref()),
        adapters: t.adapters.iter().map(adapter_config).collect(),
        split: t.data.split.clone().unwrap_or_else(|| "all".into()),
        epochs: t.epochs,
        max_steps: t.max_steps,
        batch: t.batch,
        accumulate: t.accumulate,
        lr: t.lr,
        schedule: match t.schedule.kind {
            hir::ScheduleKind::Constant => "constant",
            hir::ScheduleKind::Linear => "linear",
            hir::ScheduleKind::Cosine => "cosine",
        }
        .into(),
        warmup_fraction,
        warmup_steps,
        optimizer: match t.optimizer.kind {
            hir::OptimizerKind::AdamW => "adamw",
            hir::OptimizerKind::Sgd => "sgd",
        }
        .into(),
        weight_decay: t.optimizer.weight_decay,
        momentum: t.optimizer.momentum,
        beta1: t.optimizer.beta1,
        beta2: t.optimizer.beta2,
        eps: t.optimizer.eps,
        grad_clip: t.grad_clip,
        seed: t.seed,
        checkpoint_every: t.checkpoint_every,
    }
}

/// Sets a searched field (`lr`, `epochs`, `r`, `adapters.NAME.r`, ...) to a value.
fn apply_search(cfg: &mut TrainStageConfig, field: &str, v: f64) {
    let leaf = field.rsplit('.').next().unwrap_or(field);
    let as_u32 = v.max(0.0).round() as u32;
    match leaf {
        "lr" => cfg.lr = v,
        "epochs" => cfg.epochs = as_u32,
        "batch" => cfg.batch = as_u32,
        "accumulate" => cfg.accumulate = as_u32,
        "max_steps" => cfg.max_steps = Some(v.max(0.0).round() as u64),
        "weight_decay" => cfg.weight_decay = v,
        "seed" => cfg.seed = v.max(0.0).round() as u64,
        _ => {
            for a in &mut cfg.adapters {
                match (a, leaf) {
                    (AdapterConfig::Lora { r, .. }, "r") => *r = as_u32,
                    (AdapterConfig::Lora { alpha, .. }, "alpha") => *alpha = v,
                    (AdapterConfig::Lora { dropout, .. }, "dropout") => *dropout = v,
                    (AdapterConfig::Bottleneck { size, .. }, "size") => *size = Some(as_u32),
                    _ => {}
                }
            }
        }
    }
}
