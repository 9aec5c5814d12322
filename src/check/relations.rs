//! Relations between declarations: what a run can finish green on and still mean nothing. Each
//! check reads two or more declarations (and the first rows of the data, [`super::peek`]): an eval
//! against what its train learned from, a schedule against the length of its run, what a gate can
//! and cannot decide, what the labels and lengths of the data do to the objective, and which
//! exports no gate covers. Field-by-field validation cannot see any of these.

use super::cx::Cx;
use super::hir::*;
use super::peek::DataFacts;
use crate::runtime::data::split::split_sizes;
use crate::runtime::data::{SplitPart, SplitSize};
use crate::syntax::{Code, Diagnostic, Loc};
use std::collections::HashMap;

impl Cx<'_> {
    /// Every relation check; reads the data once per dataset.
    pub fn lint_relations(&mut self, prog: &Program) {
        let mut facts: HashMap<String, DataFacts> = HashMap::new();
        for ds in &prog.datasets {
            let labels = ds
                .labels
                .clone()
                .or_else(|| classifier_labels(prog, &ds.meta.name));
            let dir = self
                .modules
                .get(ds.meta.loc.file.0 as usize)
                .map(|m| m.dir.clone())
                .unwrap_or_default();
            let f = self.peek_dataset(ds, labels, &dir);
            facts.insert(ds.meta.name.clone(), f);
        }
        let mut sizes: HashMap<String, Vec<(String, u64)>> = HashMap::new();
        for ds in &prog.datasets {
            if let Some(s) = facts
                .get(&ds.meta.name)
                .and_then(|f| self.split_rows(ds, f))
            {
                sizes.insert(ds.meta.name.clone(), s);
            }
        }
        for t in &prog.trains {
            self.data_ref_split(prog, &t.data);
            let rows = data_rows(&t.data, &sizes);
            self.train_length(t, rows);
            self.learning_rate(t);
            self.escalations_go_up(t);
            self.context_length(prog, t);
        }
        for e in &prog.evals {
            self.data_ref_split(prog, &e.data);
            self.eval_overlap(prog, e);
            self.eval_metrics_need_data(prog, e);
            for g in &e.gates {
                self.gate_decides(e, g);
            }
            self.label_balance(prog, e, facts.get(&e.data.dataset));
        }
        for ds in &prog.datasets {
            if let Some(f) = facts.get(&ds.meta.name) {
                self.completion_cut(ds, f);
            }
        }
        self.ungated_exports(prog);
    }

    /// The location of the value of field `key` of the declaration `name` (after extensions).
    pub fn value_loc(&mut self, name: &str, key: &str) -> Option<Loc> {
        let id = *self.scope.get(name)?;
        let (_, f) = self.effective(id);
        f.get(key).map(|x| x.value().loc())
    }

    /// E1209: `data = reviews` where `reviews` is split.
    fn data_ref_split(&mut self, prog: &Program, r: &DataRef) {
        let Some(ds) = prog.dataset(&r.dataset) else {
            return;
        };
        let (None, Some(split)) = (&r.split, &ds.split) else {
            return;
        };
        let parts: Vec<&str> = split.parts.iter().map(|p| p.name.as_str()).collect();
        let first = parts.first().copied().unwrap_or("train");
        self.emit(
            Diagnostic::new(
                Code::DataWithoutSplit,
                r.loc.file,
                r.loc.span,
                format!(
                    "`{}` is split into {}, but no part is named here",
                    r.dataset,
                    tick_list(&parts)
                ),
            )
            .with_label("reads every row, the held-out ones too")
            .with_related(ds.meta.loc, "split declared here")
            .with_help(format!("write `{}.{first}`", r.dataset)),
        );
    }

    /// The rows of each split part when every file was read whole, sized as the run sizes them
    /// ([`split_sizes`]); E1215 for a part that gets no rows or counts beyond the data.
    fn split_rows(&mut self, ds: &Dataset, f: &DataFacts) -> Option<Vec<(String, u64)>> {
        if !f.complete || ds.dedupe || f.rows == 0 || f.mapped != f.rows || f.unreadable > 0 {
            return None;
        }
        let n = ds.limit.map_or(f.mapped, |l| l.min(f.mapped)) as usize;
        let Some(spec) = &ds.split else {
            return Some(vec![(String::new(), n as u64)]);
        };
        let parts: Vec<SplitPart> = spec
            .parts
            .iter()
            .map(|p| SplitPart {
                name: p.name.clone(),
                size: match p.amount {
                    SplitAmount::Fraction(x) => SplitSize::Percent(x * 100.0),
                    SplitAmount::Count(c) => SplitSize::Count(c as usize),
                },
            })
            .collect();
        let shares: f64 = spec
            .parts
            .iter()
            .map(|p| match p.amount {
                SplitAmount::Fraction(x) => x,
                SplitAmount::Count(_) => 0.0,
            })
            .sum();
        if shares > 1.0 + 1e-9 {
            return None; // E0207, where the split is written
        }
        let at = self
            .value_loc(&ds.meta.name, "split")
            .unwrap_or(ds.meta.loc);
        let rows = plural(n as u64, "row");
        match split_sizes(&parts, n) {
            Err(_) => {
                self.emit(
                    Diagnostic::new(
                        Code::SplitTooSmall,
                        at.file,
                        at.span,
                        format!(
                            "the split asks for more rows than `{}` has ({rows})",
                            ds.meta.name
                        ),
                    )
                    .with_label("the run would stop here")
                    .with_help("give the parts as shares (`train = 90%, eval = 10%`), or add rows"),
                );
                None
            }
            Ok(sizes) => {
                if let Some(empty) = parts.iter().zip(&sizes).find(|(_, s)| **s == 0) {
                    self.emit(
                        Diagnostic::new(
                            Code::SplitTooSmall,
                            at.file,
                            at.span,
                            format!(
                                "the split part `{}` gets no rows of the {rows} of `{}`",
                                empty.0.name, ds.meta.name
                            ),
                        )
                        .with_label("an empty part stops the run")
                        .with_help(format!(
                            "give `{}` a count (`{} = 1`) or a larger share, or add rows",
                            empty.0.name, empty.0.name
                        )),
                    );
                }
                Some(
                    parts
                        .iter()
                        .zip(sizes)
                        .map(|(p, s)| (p.name.clone(), s as u64))
                        .collect(),
                )
            }
        }
    }

    /// W1202 `epochs` with `max_steps`; W1204 warmup as long as the run; W1210 a run of one or
    /// two steps (when the data was read whole).
    fn train_length(&mut self, t: &Train, rows: Option<u64>) {
        let name = t.meta.name.clone();
        let epochs_loc = self.value_loc(&name, "epochs");
        let steps_loc = self.value_loc(&name, "max_steps");
        if let (Some(m), Some(eloc), Some(sloc)) = (t.max_steps, epochs_loc, steps_loc) {
            self.emit(
                Diagnostic::new(Code::EpochsIgnored, eloc.file, eloc.span, format!("`epochs = {}` is ignored: `max_steps = {m}` sets the length of the run", t.epochs))
                    .with_label("ignored")
                    .with_related(sloc, "max_steps overrides epochs, as in the Hugging Face Trainer")
                    .with_help("remove one of them: `max_steps` repeats the data as needed, `epochs` counts passes over it"),
            );
        }
        let batch = u64::from(t.batch.max(1));
        let accumulate = u64::from(t.accumulate.max(1));
        let steps = match (t.max_steps, rows) {
            (Some(m), _) => Some(m),
            (None, Some(n)) => {
                Some(n.div_ceil(batch).div_ceil(accumulate) * u64::from(t.epochs.max(1)))
            }
            (None, None) => None,
        };
        let Some(steps) = steps else { return };
        if let (Some(n), None) = (rows, t.max_steps) {
            if steps <= 2 && n > 0 {
                let at = self.value_loc(&name, "batch").unwrap_or(t.data.loc);
                self.emit(
                    Diagnostic::new(
                        Code::FewSteps,
                        at.file,
                        at.span,
                        format!(
                            "`{name}` takes {} on its {}",
                            plural(steps, "optimizer step"),
                            plural(n, "row")
                        ),
                    )
                    .with_label(format!(
                        "batch {batch} x accumulate {accumulate}, {}",
                        plural(u64::from(t.epochs), "epoch")
                    ))
                    .with_related(t.data.loc, "the data")
                    .with_help({
                        let b = (n / 4).clamp(1, 8);
                        format!(
                            "a smaller batch or more epochs: `batch = {b}` gives {} per epoch; or add rows",
                            plural(n.div_ceil(b).div_ceil(accumulate), "step")
                        )
                    }),
                );
            }
        }
        let warmup = match t.schedule.warmup {
            Warmup::Steps(s) => s,
            Warmup::Fraction(_) => return,
        };
        if warmup > 0 && warmup >= steps {
            let Some(sched) = self.value_loc(&name, "schedule") else {
                return;
            };
            self.emit(
                Diagnostic::new(
                    Code::WarmupLongerThanRun,
                    sched.file,
                    sched.span,
                    format!(
                        "the warmup of {warmup} steps is at least as long as the run ({})",
                        plural(steps, "step")
                    ),
                )
                .with_label("the learning rate never reaches `lr`")
                .with_help("give the warmup as a share of the run: `warmup = 10%`"),
            );
        }
    }

    /// E1216: an escalation of a capacity (rank, size, epochs, steps) must grow.
    fn escalations_go_up(&mut self, t: &Train) {
        for s in &t.searches {
            let leaf = s.field.rsplit('.').next().unwrap_or(&s.field);
            if s.mode != SearchMode::Escalate
                || !["r", "size", "epochs", "max_steps", "alpha"].contains(&leaf)
            {
                continue;
            }
            if s.values.windows(2).all(|w| w[0] < w[1]) {
                continue;
            }
            let mut sorted = s.values.clone();
            sorted.sort_by(f64::total_cmp);
            sorted.dedup();
            let list: Vec<String> = sorted.iter().map(|v| format!("{v}")).collect();
            self.emit(
                Diagnostic::new(
                    Code::EscalationNotUp,
                    s.loc.file,
                    s.loc.span,
                    format!("this escalation of `{leaf}` does not go up"),
                )
                .with_label("a failed gate would retry with less capacity")
                .with_help(format!(
                    "order the values from small to large: `{leaf} = escalate [{}]`",
                    list.join(", ")
                )),
            );
        }
    }

    /// W1206: a learning rate far from what adapters train with (AdamW).
    fn learning_rate(&mut self, t: &Train) {
        if t.optimizer.kind != OptimizerKind::AdamW || t.adapters.is_empty() {
            return;
        }
        if t.searches.iter().any(|s| s.field == "lr") {
            return;
        }
        let lr = t.lr;
        if (1e-5..=1e-2).contains(&lr) {
            return;
        }
        let Some(at) = self.value_loc(&t.meta.name, "lr") else {
            return;
        };
        let kind = match t.adapters.first().map(|a| &a.kind) {
            Some(AdapterKind::Bottleneck(_)) => "bottleneck adapters",
            _ => "LoRA",
        };
        let (label, hint) = if lr < 1e-5 {
            ("a full-fine-tuning rate: the adapter barely moves", "1e-4")
        } else {
            ("likely to diverge", "2e-4")
        };
        self.emit(
            Diagnostic::new(Code::LearningRateUnusual, at.file, at.span, format!("`lr = {lr:e}` is far outside the usual range for {kind} (1e-5 to 1e-2)"))
                .with_label(label)
                .with_help(format!("{kind} usually trains with 5e-5 to 1e-3 (QLoRA used 2e-4): try `lr = {hint}`, or `lr = sweep [{lr:e}, {hint}]` to compare")),
        );
    }

    /// E1207: `max_len` longer than the model's context.
    fn context_length(&mut self, prog: &Program, t: &Train) {
        let Some(ds) = prog.dataset(&t.data.dataset) else {
            return;
        };
        let Some(shape) = prog.model(&t.model).and_then(|m| m.shape.as_ref()) else {
            return;
        };
        if shape.context == 0 || u64::from(ds.max_len) <= shape.context {
            return;
        }
        // Only a written value: the default (512) is what the run truncates to.
        let Some(at) = self.value_loc(&ds.meta.name, "max_len") else {
            return;
        };
        self.emit(
            Diagnostic::new(
                Code::ContextTooShort,
                at.file,
                at.span,
                format!(
                    "`max_len = {}` is longer than the context of `{}` ({} positions)",
                    ds.max_len, t.model, shape.context
                ),
            )
            .with_label(format!("at most {}", shape.context))
            .with_related(
                t.meta.loc,
                format!("`{}` trains `{}` on this data", t.meta.name, t.model),
            )
            .with_help(format!("write `max_len = {}`", shape.context)),
        );
    }

    /// W1203: an eval that reads rows its train learned from.
    fn eval_overlap(&mut self, prog: &Program, e: &Eval) {
        let EvalSubject::Train { train } = &e.subject else {
            return;
        };
        let Some(t) = prog.train(train) else { return };
        let (Some(ed), Some(td)) = (prog.dataset(&e.data.dataset), prog.dataset(&t.data.dataset))
        else {
            return;
        };
        let unnamed_split = |r: &DataRef, d: &Dataset| r.split.is_none() && d.split.is_some();
        if unnamed_split(&e.data, ed) || unnamed_split(&t.data, td) {
            return; // E1209 at the reference
        }
        let same_files = ed.meta.name == td.meta.name
            || (!ed.source.patterns.is_empty() && ed.source.patterns == td.source.patterns);
        if !same_files {
            return;
        }
        let same_split = ed.meta.name == td.meta.name
            && ed.split == td.split
            && (e.data.split.is_none() || t.data.split.is_none() || e.data.split == t.data.split);
        let other_decl_same_file = ed.meta.name != td.meta.name;
        if !(same_split || other_decl_same_file) {
            return;
        }
        let why = if other_decl_same_file {
            format!(
                "`{}` and `{}` read the same files",
                ed.meta.name, td.meta.name
            )
        } else if e.data.split.is_some() && e.data.split == t.data.split {
            "the same split".to_string()
        } else {
            "the whole dataset".to_string()
        };
        self.emit(
            Diagnostic::new(Code::EvalOverlapsTrain, e.data.loc.file, e.data.loc.span, format!("`{}` evaluates `{train}` on rows it trained on ({why})", e.meta.name))
                .with_label("these rows were trained on")
                .with_related(t.data.loc, "the train's data")
                .with_help(format!("hold rows out: `split = {{ train = 90%, eval = 10%, seed = 7 }}` in `{}`, then `data = {}.train` in the train and `data = {}.eval` here", td.meta.name, td.meta.name, td.meta.name)),
        );
    }

    /// E1210: `exact_match` on data without a completion.
    fn eval_metrics_need_data(&mut self, prog: &Program, e: &Eval) {
        if !e.metrics.contains(&Metric::ExactMatch) {
            return;
        }
        let Some(ds) = prog.dataset(&e.data.dataset) else {
            return;
        };
        if ds.fields.completion.is_some() || ds.fields.messages.is_some() {
            return;
        }
        let at = self
            .metric_loc(&e.meta.name, "exact_match")
            .unwrap_or(e.meta.loc);
        self.emit(
            Diagnostic::new(Code::MetricNeedsCompletion, at.file, at.span, format!("`exact_match` needs a completion to compare with, but `{}` maps none", ds.meta.name))
                .with_label("would score 0 on every row")
                .with_related(ds.meta.loc, "dataset declared here")
                .with_help("map `prompt = field(..)` and `completion = field(..)` in the dataset, or measure `loss` / `perplexity`"),
        );
    }

    /// The location of `metric` in an eval's `metrics = [..]`.
    fn metric_loc(&mut self, eval: &str, metric: &str) -> Option<Loc> {
        let id = *self.scope.get(eval)?;
        let (_, f) = self.effective(id);
        let v = f.get("metrics")?.value();
        self.list(v)
            .into_iter()
            .find_map(|item| match &item.expr.kind {
                crate::syntax::ast::ExprKind::Path(p) if p.dotted() == metric => Some(item.loc()),
                _ => None,
            })
    }

    /// E1212 / W1205: a gate decided before any compute.
    fn gate_decides(&mut self, e: &Eval, g: &Gate) {
        let self_baseline = matches!(e.subject, EvalSubject::Base { .. });
        let mut vars: Vec<(String, Metric)> = Vec::new();
        collect_vars(&g.lhs, self_baseline, &mut vars);
        collect_vars(&g.rhs, self_baseline, &mut vars);
        vars.dedup();
        if vars.len() > 4 {
            return;
        }
        let grids: Vec<&[f64]> = vars.iter().map(|(_, m)| grid(*m)).collect();
        let mut any_pass = false;
        let mut any_fail = false;
        let mut idx = vec![0usize; vars.len()];
        loop {
            let env: Vec<(String, f64)> = vars
                .iter()
                .zip(&idx)
                .zip(&grids)
                .map(|(((n, _), i), g)| (n.clone(), g[*i]))
                .collect();
            match (
                eval_expr(&g.lhs, self_baseline, &env),
                eval_expr(&g.rhs, self_baseline, &env),
            ) {
                (Some(l), Some(r)) => {
                    if compare(g.op, l, r) {
                        any_pass = true;
                    } else {
                        any_fail = true;
                    }
                }
                _ => return,
            }
            let mut k = 0;
            loop {
                if k == idx.len() {
                    break;
                }
                idx[k] += 1;
                if idx[k] < grids[k].len() {
                    break;
                }
                idx[k] = 0;
                k += 1;
            }
            if k == idx.len() {
                break;
            }
        }
        let metric = vars.first().map(|(_, m)| *m);
        let range = metric.map(range_text).unwrap_or("");
        let percent_help = percent_hint(g, metric);
        if !any_pass {
            let help = percent_help.unwrap_or_else(|| {
                if self_baseline && uses_baseline(g) {
                    "this eval measures the base model, so `baseline.` is the same number: gate an eval of the trained model".to_string()
                } else {
                    format!("{range}; choose a threshold the metric can reach")
                }
            });
            self.emit(
                Diagnostic::new(
                    Code::GateNeverPasses,
                    g.loc.file,
                    g.loc.span,
                    format!("`gate {}` can never pass", g.text),
                )
                .with_label("fails whatever the metrics are")
                .with_help(help),
            );
        } else if !any_fail {
            let help = if self_baseline && uses_baseline(g) {
                "this eval measures the base model, so `baseline.` is the same number: gate an eval of the trained model".to_string()
            } else {
                format!(
                    "{range}; compare with the baseline, e.g. `gate {} >= baseline.{} + 0.02`",
                    metric.map(Metric::name).unwrap_or("accuracy"),
                    metric.map(Metric::name).unwrap_or("accuracy")
                )
            };
            self.emit(
                Diagnostic::new(
                    Code::GateNeverFails,
                    g.loc.file,
                    g.loc.span,
                    format!("`gate {}` can never fail", g.text),
                )
                .with_label("passes whatever the metrics are")
                .with_help(help),
            );
        }
    }

    /// W1208: accuracy on data where one label dominates (data read whole).
    fn label_balance(&mut self, prog: &Program, e: &Eval, facts: Option<&DataFacts>) {
        let Some(f) = facts else { return };
        if !f.complete || f.labels.is_empty() {
            return;
        }
        let reads_accuracy = e.metrics.contains(&Metric::Accuracy);
        if !reads_accuracy {
            return;
        }
        let total: u64 = f.labels.values().sum();
        let Some((top, count)) = f.labels.iter().max_by_key(|(_, c)| **c) else {
            return;
        };
        if total < 20 || (*count as f64) < 0.9 * total as f64 {
            return;
        }
        let share = *count as f64 / total as f64;
        let at = self
            .metric_loc(&e.meta.name, "accuracy")
            .unwrap_or(e.meta.loc);
        let mut d = Diagnostic::new(Code::LabelImbalance, at.file, at.span, format!("`{top}` is {:.0}% of `{}`: always answering `{top}` scores {share:.2} accuracy", share * 100.0, e.data.dataset))
            .with_label(format!("{count} of {total} rows are `{top}`"))
            .with_help("gate on `f1` (macro-averaged), or on `accuracy >= baseline.accuracy + 0.05`; or balance the data");
        if let Some(ds) = prog.dataset(&e.data.dataset) {
            if let Some(l) = &ds.fields.label {
                d = d.with_related(l.loc, "labels read from here");
            }
        }
        self.emit(d);
    }

    /// W1209: prompts that fill `max_len` on their own.
    fn completion_cut(&mut self, ds: &Dataset, f: &DataFacts) {
        if ds.packing || f.mapped < 4 || f.prompt_fills_max_len * 2 <= f.mapped {
            return;
        }
        let at = self
            .value_loc(&ds.meta.name, "max_len")
            .unwrap_or(ds.meta.loc);
        self.emit(
            Diagnostic::new(
                Code::CompletionTruncated,
                at.file,
                at.span,
                format!(
                    "in {} of the first {} rows the prompt alone fills `max_len = {}`",
                    f.prompt_fills_max_len, f.mapped, ds.max_len
                ),
            )
            .with_label("the completion is cut off: these rows train on nothing")
            .with_help("raise `max_len` (each word is at least one token), or shorten the prompts"),
        );
    }

    /// W1207: exports of trains and merges that no gate judges.
    fn ungated_exports(&mut self, prog: &Program) {
        for x in &prog.exports {
            let (subject, gated) = match &x.source {
                ExportSource::Adapter(r) => (r.train.clone(), gated_train(prog, &r.train)),
                ExportSource::Train(t) => (t.clone(), gated_train(prog, t)),
                ExportSource::Merge(m) => (
                    m.clone(),
                    prog.evals.iter().any(|e| {
                        !e.gates.is_empty()
                            && matches!(&e.subject, EvalSubject::Merge { merge } if merge == m)
                    }),
                ),
            };
            // An adapter trained elsewhere (`peft(..)`) is re-exported as it was: nothing
            // this pipeline learned goes out ungated.
            if gated || prog.imported(&subject).is_some() {
                continue;
            }
            let data = prog
                .train(&subject)
                .map(|t| t.data.dataset.clone())
                .unwrap_or_else(|| "data".to_string());
            self.emit(
                Diagnostic::new(Code::ExportUngated, x.meta.loc.file, x.meta.loc.span, format!("no gate judges `{subject}` before it is exported"))
                    .with_label("exported whatever the run learned")
                    .with_help(format!("add `eval {subject}_check {{ model = {subject}, data = {data}.eval, metrics = [loss], gate loss < baseline.loss }}`")),
            );
        }
    }
}

/// Rows a data reference reads, when known.
fn data_rows(r: &DataRef, sizes: &HashMap<String, Vec<(String, u64)>>) -> Option<u64> {
    let parts = sizes.get(&r.dataset)?;
    match &r.split {
        Some(s) => parts.iter().find(|(n, _)| n == s).map(|(_, c)| *c),
        None => Some(parts.iter().map(|(_, c)| c).sum()),
    }
}

fn gated_train(prog: &Program, t: &str) -> bool {
    prog.evals.iter().any(|e| {
        !e.gates.is_empty() && matches!(&e.subject, EvalSubject::Train { train } if train == t)
    })
}

fn classifier_labels(prog: &Program, dataset: &str) -> Option<Vec<String>> {
    let models = prog
        .trains
        .iter()
        .filter(|t| t.data.dataset == dataset)
        .map(|t| t.model.clone())
        .chain(
            prog.evals
                .iter()
                .filter(|e| e.data.dataset == dataset)
                .filter_map(|e| match &e.subject {
                    EvalSubject::Base { model } | EvalSubject::Combined { model, .. } => {
                        Some(model.clone())
                    }
                    EvalSubject::Train { train } => prog.train(train).map(|t| t.model.clone()),
                    EvalSubject::Merge { merge } => prog.merge(merge).map(|m| m.model.clone()),
                }),
        );
    for m in models {
        if let Some(Task::Classify { labels }) = prog.model(&m).map(|m| &m.task) {
            return Some(labels.clone());
        }
    }
    None
}

fn uses_baseline(g: &Gate) -> bool {
    fn has(e: &GateExpr) -> bool {
        match e {
            GateExpr::Baseline(_) => true,
            GateExpr::Binary { lhs, rhs, .. } => has(lhs) || has(rhs),
            GateExpr::Neg(x) => has(x),
            _ => false,
        }
    }
    has(&g.lhs) || has(&g.rhs)
}

fn var_name(e: &GateExpr, self_baseline: bool) -> Option<(String, Metric)> {
    match e {
        GateExpr::Metric(m) => Some((m.name().to_string(), *m)),
        GateExpr::Baseline(m) if self_baseline => Some((m.name().to_string(), *m)),
        GateExpr::Baseline(m) => Some((format!("baseline.{}", m.name()), *m)),
        GateExpr::Run { eval, metric } => Some((format!("{eval}.{}", metric.name()), *metric)),
        _ => None,
    }
}

fn collect_vars(e: &GateExpr, self_baseline: bool, out: &mut Vec<(String, Metric)>) {
    if let Some(v) = var_name(e, self_baseline) {
        if !out.iter().any(|(n, _)| *n == v.0) {
            out.push(v);
        }
        return;
    }
    match e {
        GateExpr::Binary { lhs, rhs, .. } => {
            collect_vars(lhs, self_baseline, out);
            collect_vars(rhs, self_baseline, out);
        }
        GateExpr::Neg(x) => collect_vars(x, self_baseline, out),
        _ => {}
    }
}

fn eval_expr(e: &GateExpr, self_baseline: bool, env: &[(String, f64)]) -> Option<f64> {
    if let Some((n, _)) = var_name(e, self_baseline) {
        return env.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    }
    match e {
        GateExpr::Literal(x) => Some(*x),
        GateExpr::Neg(x) => eval_expr(x, self_baseline, env).map(|v| -v),
        GateExpr::Binary { op, lhs, rhs } => {
            let (l, r) = (
                eval_expr(lhs, self_baseline, env)?,
                eval_expr(rhs, self_baseline, env)?,
            );
            Some(match op {
                ArithOp::Add => l + r,
                ArithOp::Sub => l - r,
                ArithOp::Mul => l * r,
                ArithOp::Div if r == 0.0 => return None,
                ArithOp::Div => l / r,
            })
        }
        _ => None,
    }
}

fn compare(op: CmpOp, l: f64, r: f64) -> bool {
    match op {
        CmpOp::Ge => l >= r,
        CmpOp::Gt => l > r,
        CmpOp::Le => l <= r,
        CmpOp::Lt => l < r,
        CmpOp::Eq => (l - r).abs() < 1e-12,
        CmpOp::Ne => (l - r).abs() >= 1e-12,
    }
}

/// Values a metric can take, ends included, for deciding a gate by enumeration.
fn grid(m: Metric) -> &'static [f64] {
    match m {
        Metric::Accuracy | Metric::F1 | Metric::ExactMatch => {
            &[0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0]
        }
        Metric::Loss => &[0.0, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 1e6],
        Metric::Perplexity => &[1.0, 1.01, 1.5, 2.0, 5.0, 10.0, 100.0, 1e4, 1e9],
    }
}

fn range_text(m: Metric) -> &'static str {
    match m {
        Metric::Accuracy => "`accuracy` lies between 0 and 1",
        Metric::F1 => "`f1` lies between 0 and 1",
        Metric::ExactMatch => "`exact_match` lies between 0 and 1",
        Metric::Loss => "`loss` is at least 0",
        Metric::Perplexity => "`perplexity` is at least 1",
    }
}

/// "write 0.85" for `accuracy >= 85` (a percentage written as a number).
fn percent_hint(g: &Gate, metric: Option<Metric>) -> Option<String> {
    let m = metric?;
    if !matches!(m, Metric::Accuracy | Metric::F1 | Metric::ExactMatch) {
        return None;
    }
    let (GateExpr::Metric(_), GateExpr::Literal(x)) = (&g.lhs, &g.rhs) else {
        return None;
    };
    if *x > 1.0 && *x <= 100.0 {
        let op = g.text.split_whitespace().nth(1).unwrap_or(">=");
        return Some(format!(
            "`{}` is a fraction between 0 and 1: write `gate {} {op} {}`",
            m.name(),
            m.name(),
            x / 100.0
        ));
    }
    None
}

fn tick_list(names: &[&str]) -> String {
    let v: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match v.len() {
        0 => String::new(),
        1 => v[0].clone(),
        n => format!("{} and {}", v[..n - 1].join(", "), v[n - 1]),
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
