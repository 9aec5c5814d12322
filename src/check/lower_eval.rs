//! Lowers `eval` (subject, data, metrics, typed gates), `merge` (base + combination of trained
//! adapters) and `export` declarations, with the adapter-combination checks.

use super::cx::{file_id, Cx, DeclId, V};
use super::hir::*;
use super::lower_train::single;
use super::schema;
use crate::syntax::ast::{self, BinOp, DeclKind, ExprKind};
use crate::syntax::{Code, Diagnostic, Loc};
use std::path::Path;

impl<'a> Cx<'a> {
    pub fn lower_eval(&mut self, id: DeclId, prog: &Program) -> Option<Eval> {
        let decl = self.decl(id)?;
        let (head, f) = self.effective(id);
        if let Some(h) = head {
            self.type_error(h, "another eval to extend", None);
        }
        self.check_keys(&f, schema::EVAL, "an eval");
        let meta = self.meta(id, decl);
        let Some(mf) = f.get("model") else {
            self.missing(id.module, decl.name.span, "model", "an eval", "TRAIN");
            return None;
        };
        let mv = mf.value();
        let subject_name = match &mv.expr.kind {
            ExprKind::Path(p) => single(p).cloned(),
            _ => None,
        };
        let Some(sn) = subject_name else {
            self.type_error(mv, "a train, model or merge name", None);
            return None;
        };
        let sid = self.lookup(
            mv.m,
            &sn,
            &[DeclKind::Train, DeclKind::Model, DeclKind::Merge],
        )?;
        let skind = self.decl(sid)?.kind;
        let mut subject = match skind {
            DeclKind::Train => EvalSubject::Train {
                train: sn.name.clone(),
            },
            DeclKind::Merge => EvalSubject::Merge {
                merge: sn.name.clone(),
            },
            _ => EvalSubject::Base {
                model: sn.name.clone(),
            },
        };
        if let Some(af) = f.get("adapters") {
            match &subject {
                EvalSubject::Base { model } => {
                    let model = model.clone();
                    if let Some(c) = self.combination(af.value(), prog, Some(&model)) {
                        subject = EvalSubject::Combined { model, adapters: c };
                    }
                }
                _ => self.emit(
                    Diagnostic::new(Code::BadMix, af.loc().file, af.loc().span, "`adapters` applies only to a base model")
                        .with_label("the subject already has its adapters")
                        .with_help("set `model` to a base model declaration to evaluate a combination of adapters"),
                ),
            }
        }
        let task = subject_task(prog, &subject);
        let data = match f.get("data") {
            Some(d) => self.data_ref(d.value(), prog)?,
            None => {
                self.missing(id.module, decl.name.span, "data", "an eval", "DATASET.eval");
                return None;
            }
        };
        let mut metrics = Vec::new();
        if let Some(mf) = f.get("metrics") {
            for v in self.list(mf.value()) {
                let names: Vec<&'static str> = Metric::ALL.iter().map(|m| m.name()).collect();
                if let Some((n, span)) = self.name(v) {
                    if let Some((ours, note)) = super::schema::foreign_metric(&n) {
                        self.emit(
                            Diagnostic::new(
                                Code::UnknownVariant,
                                file_id(v.m),
                                span,
                                format!("`{n}` is spelled `{ours}` in .peft"),
                            )
                            .with_label(format!("write `{ours}`"))
                            .with_help(format!("{note}: write `{ours}`")),
                        );
                        // Taken as meant, so gates on it report nothing more.
                        if let Some(m) = Metric::parse(ours).filter(|m| !metrics.contains(m)) {
                            metrics.push(m);
                        }
                        continue;
                    }
                }
                let Some(n) = self.choice(v, "metric", &names) else {
                    continue;
                };
                let Some(m) = Metric::parse(n) else { continue };
                if let Some(t) = &task {
                    let ok = !matches!(
                        (t, m),
                        (
                            Task::Classify { .. },
                            Metric::Perplexity | Metric::ExactMatch
                        ) | (Task::Causal, Metric::F1)
                    );
                    if !ok {
                        let what = if matches!(t, Task::Causal) {
                            "a causal language model"
                        } else {
                            "a classifier"
                        };
                        let fits = if matches!(t, Task::Causal) {
                            "loss, perplexity, accuracy (of the next token), exact_match"
                        } else {
                            "loss, accuracy, f1"
                        };
                        self.emit(
                            Diagnostic::new(
                                Code::MetricForTask,
                                file_id(v.m),
                                v.expr.span,
                                format!("`{n}` cannot be measured on {what}"),
                            )
                            .with_label("does not fit the task")
                            .with_help(format!("metrics for {what}: {fits}")),
                        );
                    }
                }
                if !metrics.contains(&m) {
                    metrics.push(m);
                }
            }
        } else {
            metrics.push(Metric::Loss);
        }
        let batch = f
            .get("batch")
            .and_then(|x| self.int(x.value(), "batch", 1, u64::MAX))
            .unwrap_or(8) as u32;
        let mut gates = Vec::new();
        let mut needs = Vec::new();
        for (g, m) in f.gates.clone() {
            if let Some(gate) = self.gate(g, m, &metrics, &mut needs) {
                gates.push(gate);
            }
        }
        Some(Eval {
            meta,
            subject,
            data,
            metrics,
            gates,
            batch,
            needs_evals: needs,
        })
    }

    fn gate(
        &mut self,
        g: &'a ast::Gate,
        m: usize,
        metrics: &[Metric],
        needs: &mut Vec<String>,
    ) -> Option<Gate> {
        let e = strip(&g.expr);
        let ExprKind::Binary { op, lhs, rhs } = &e.kind else {
            self.bad_gate(
                m,
                g.expr.span,
                "a gate must compare two values",
                "write `gate accuracy >= 0.85` or `gate loss < baseline.loss`",
            );
            return None;
        };
        let cmp = match op {
            BinOp::Ge => CmpOp::Ge,
            BinOp::Gt => CmpOp::Gt,
            BinOp::Le => CmpOp::Le,
            BinOp::Lt => CmpOp::Lt,
            BinOp::Eq => CmpOp::Eq,
            BinOp::Ne => CmpOp::Ne,
            _ => {
                self.bad_gate(
                    m,
                    g.expr.span,
                    "a gate must compare two values",
                    "use one of >=, >, <=, <, ==, !=",
                );
                return None;
            }
        };
        let l = self.gate_expr(lhs, m, metrics, needs);
        let r = self.gate_expr(rhs, m, metrics, needs);
        let text = self
            .sources
            .get(file_id(m))
            .map(|f| g.expr.span.text(&f.text).to_string())
            .unwrap_or_default();
        let (l, r) = (l?, r?);
        if !mentions_metric(&l) && !mentions_metric(&r) {
            self.bad_gate(
                m,
                g.expr.span,
                "this gate reads no metric of the eval",
                "compare a metric: `gate accuracy >= 0.85`",
            );
            return None;
        }
        Some(Gate {
            lhs: l,
            op: cmp,
            rhs: r,
            text,
            loc: Loc {
                file: file_id(m),
                span: g.span,
            },
        })
    }

    fn bad_gate(&mut self, m: usize, span: crate::syntax::Span, msg: &str, help: &str) {
        self.emit(
            Diagnostic::new(Code::BadGate, file_id(m), span, msg)
                .with_label("invalid gate")
                .with_help(help),
        );
    }

    fn gate_expr(
        &mut self,
        e: &'a ast::Expr,
        m: usize,
        metrics: &[Metric],
        needs: &mut Vec<String>,
    ) -> Option<GateExpr> {
        match &e.kind {
            ExprKind::Number(n) => match n.unit {
                None => Some(GateExpr::Literal(n.value)),
                Some(ast::Unit::Percent) => Some(GateExpr::Literal(n.value / 100.0)),
                Some(_) => {
                    self.unit_error(V { expr: e, m }, "a number or a percentage");
                    None
                }
            },
            ExprKind::Paren(inner) => self.gate_expr(inner, m, metrics, needs),
            ExprKind::Neg(inner) => Some(GateExpr::Neg(Box::new(
                self.gate_expr(inner, m, metrics, needs)?,
            ))),
            ExprKind::Binary { op, lhs, rhs } => {
                let op = match op {
                    BinOp::Add => ArithOp::Add,
                    BinOp::Sub => ArithOp::Sub,
                    BinOp::Mul => ArithOp::Mul,
                    BinOp::Div => ArithOp::Div,
                    _ => {
                        self.bad_gate(
                            m,
                            e.span,
                            "a gate has exactly one comparison",
                            "split it into two gates",
                        );
                        return None;
                    }
                };
                let l = self.gate_expr(lhs, m, metrics, needs);
                let r = self.gate_expr(rhs, m, metrics, needs);
                Some(GateExpr::Binary {
                    op,
                    lhs: Box::new(l?),
                    rhs: Box::new(r?),
                })
            }
            ExprKind::Path(p) => {
                let segs: Vec<&ast::Ident> = p.segments.iter().collect();
                match segs.as_slice() {
                    [metric] => {
                        let mt = self.metric_name(metric, m)?;
                        if !metrics.contains(&mt) {
                            self.unknown_metric(metric, m, metrics);
                            return None;
                        }
                        Some(GateExpr::Metric(mt))
                    }
                    [base, metric] if base.name == "baseline" => {
                        let mt = self.metric_name(metric, m)?;
                        if !metrics.contains(&mt) {
                            self.unknown_metric(metric, m, metrics);
                            return None;
                        }
                        Some(GateExpr::Baseline(mt))
                    }
                    [other, metric] => {
                        let id = self.lookup(m, other, &[DeclKind::Eval])?;
                        let name = self.decl(id)?.name.name.clone();
                        let mt = self.metric_name(metric, m)?;
                        if !needs.contains(&name) {
                            needs.push(name.clone());
                        }
                        Some(GateExpr::Run {
                            eval: name,
                            metric: mt,
                        })
                    }
                    _ => {
                        self.bad_gate(
                            m,
                            e.span,
                            "a gate reads `metric`, `baseline.metric` or `other_eval.metric`",
                            "write `gate accuracy >= baseline.accuracy + 0.05`",
                        );
                        None
                    }
                }
            }
            _ => {
                self.bad_gate(
                    m,
                    e.span,
                    "a gate compares metrics and numbers",
                    "write `gate accuracy >= 0.85`",
                );
                None
            }
        }
    }

    fn metric_name(&mut self, id: &ast::Ident, m: usize) -> Option<Metric> {
        if let Some(mt) = Metric::parse(&id.name) {
            return Some(mt);
        }
        let names: Vec<&str> = Metric::ALL.iter().map(|x| x.name()).collect();
        let foreign = super::schema::foreign_metric(&id.name);
        let help = match foreign {
            Some((ours, note)) => format!("{note}: write `{ours}`"),
            None => super::suggest::did_you_mean(&id.name, names.iter().copied())
                .unwrap_or_else(|| format!("metrics are {}", names.join(", "))),
        };
        self.emit(
            Diagnostic::new(
                Code::BadGate,
                file_id(m),
                id.span,
                format!("`{}` is not a metric", id.name),
            )
            .with_label(if foreign.is_some() {
                "spelled as in the Hugging Face Trainer"
            } else {
                "unknown metric"
            })
            .with_help(help),
        );
        // A foreign spelling is taken as meant: the gate is checked on, nothing cascades.
        foreign.and_then(|(ours, _)| Metric::parse(ours))
    }

    fn unknown_metric(&mut self, id: &ast::Ident, m: usize, metrics: &[Metric]) {
        let list: Vec<&str> = metrics.iter().map(|x| x.name()).collect();
        self.emit(
            Diagnostic::new(
                Code::GateUnknownMetric,
                file_id(m),
                id.span,
                format!(
                    "the gate reads `{}`, which this eval does not compute",
                    id.name
                ),
            )
            .with_label("not in `metrics`")
            .with_help(format!(
                "add it: `metrics = [{}]`",
                list.iter()
                    .copied()
                    .chain([id.name.as_str()])
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
    }

    /// `t.a`, `t`, `[t.a, u.b]` or `mix { t.a: 0.7, u.b: 0.3 }`; checks bases against `model`.
    pub fn combination(
        &mut self,
        v: V<'a>,
        prog: &Program,
        model: Option<&str>,
    ) -> Option<Combination> {
        let v = self.deref(v);
        let comb = match &v.expr.kind {
            ExprKind::Mix(b) => {
                let mut out = Vec::new();
                for e in &b.entries {
                    let ast::Entry::Field(f) = e else { continue };
                    let w = self.float(
                        V {
                            expr: &f.value,
                            m: v.m,
                        },
                        "a mix weight",
                        0.0,
                        f64::MAX,
                    );
                    let refs = self.adapter_refs_dotted(&f.key, v.m, prog);
                    if let (Some(w), Some(refs)) = (w, refs) {
                        if w <= 0.0 {
                            self.emit(
                                Diagnostic::new(
                                    Code::BadMix,
                                    file_id(v.m),
                                    f.value.span,
                                    "mix weights must be positive",
                                )
                                .with_label("zero weight")
                                .with_help("drop the adapter from the mix instead"),
                            );
                        }
                        out.extend(refs.into_iter().map(|r| (r, w)));
                    }
                }
                if out.is_empty() {
                    self.emit(
                        Diagnostic::new(Code::BadMix, file_id(v.m), v.expr.span, "an empty mix")
                            .with_label("nothing to mix")
                            .with_help("write `mix { train.adapter: 0.7, other.adapter: 0.3 }`"),
                    );
                    return None;
                }
                Combination::Mix(out)
            }
            ExprKind::List(items) => {
                let mut out = Vec::new();
                for e in items {
                    out.extend(
                        self.adapter_refs(V { expr: e, m: v.m }, prog)
                            .unwrap_or_default(),
                    );
                }
                let trains: std::collections::BTreeSet<&str> =
                    out.iter().map(|r| r.train.as_str()).collect();
                if trains.len() > 1 {
                    self.emit(
                        Diagnostic::new(Code::ImplicitCombination, file_id(v.m), v.expr.span, "adapters from several trains are active at once with no declared combination")
                            .with_label("their deltas are simply added")
                            .with_help("say how to combine them: `mix { a.x: 0.5, b.y: 0.5 }`"),
                    );
                }
                Combination::Stack(out)
            }
            _ => Combination::Stack(self.adapter_refs(v, prog)?),
        };
        // Bases.
        let mut bases: Vec<(&str, &AdapterRef)> = Vec::new();
        for r in comb.refs() {
            if let Some(t) = prog.train(&r.train) {
                bases.push((t.model.as_str(), r));
            }
        }
        if let Some((first, _)) = bases.first() {
            if let Some((other, r)) = bases.iter().find(|(b, _)| b != first) {
                self.emit(
                    Diagnostic::new(
                        Code::StackBases,
                        r.loc.file,
                        r.loc.span,
                        format!(
                            "`{}.{}` was trained on `{other}`, the others on `{first}`",
                            r.train, r.adapter
                        ),
                    )
                    .with_label("different base model")
                    .with_help("combine only adapters trained on the same base"),
                );
            }
        }
        if let Some(m) = model.and_then(|m| prog.model(m)) {
            for r in comb.refs() {
                if let Some(imp) = prog.imported(&r.train) {
                    self.check_peft_on(imp, m, r.loc);
                }
            }
        }
        self.combinable(&comb, v, prog);
        if let Some(model) = model {
            for (b, r) in &bases {
                let shape_of = |n: &str| prog.model(n).and_then(|m| m.shape.as_ref());
                if let (Some(sb), Some(sm)) = (shape_of(b), shape_of(model)) {
                    if (sb.hidden, sb.intermediate, sb.layers, sb.vocab)
                        != (sm.hidden, sm.intermediate, sm.layers, sm.vocab)
                    {
                        self.emit(
                            Diagnostic::new(
                                Code::AdapterShapeMismatch,
                                r.loc.file,
                                r.loc.span,
                                format!(
                                    "`{}.{}` was trained on `{b}` (hidden {}, {} layers), which does not fit `{model}` (hidden {}, {} layers)",
                                    r.train, r.adapter, sb.hidden, sb.layers, sm.hidden, sm.layers
                                ),
                            )
                            .with_label("its matrices cannot be added to this base")
                            .with_help(format!("apply it to `{b}`, or train it again on `{model}`")),
                        );
                        continue;
                    }
                }
                if *b != model {
                    self.emit(
                        Diagnostic::new(
                            Code::ForeignBase,
                            r.loc.file,
                            r.loc.span,
                            format!(
                                "`{}.{}` was trained on `{b}` but is applied to `{model}`",
                                r.train, r.adapter
                            ),
                        )
                        .with_label("trained on another base")
                        .with_help(format!("apply it to `{b}`, or train it again on `{model}`")),
                    );
                }
            }
        }
        Some(comb)
    }

    /// E1213: the runtime's rule for which adapter kinds combine
    /// ([`crate::runtime::adapters::combine_rules`]).
    fn combinable(&mut self, comb: &Combination, v: V, prog: &Program) {
        use crate::runtime::adapters::combine_rules::{can_combine, PartKind, Together};
        let kind = |r: &AdapterRef| {
            let t = prog.train(&r.train)?;
            let a = t.adapters.iter().find(|a| a.meta.name == r.adapter)?;
            Some(match &a.kind {
                AdapterKind::Lora(l) => PartKind::Lora { dora: l.dora },
                AdapterKind::Bottleneck(_) => PartKind::Bottleneck,
            })
        };
        let how = match comb {
            Combination::Stack(_) => Together::Stack,
            Combination::Mix(_) => Together::Weighted,
        };
        let kinds: Vec<PartKind> = comb.refs().into_iter().filter_map(kind).collect();
        if how == Together::Weighted && kinds.contains(&PartKind::Bottleneck) {
            // Reported at the bottleneck adapter itself (E1002).
            return;
        }
        if let Err(reason) = can_combine(&kinds, how) {
            self.emit(
                Diagnostic::new(
                    Code::AdaptersNotCombinable,
                    file_id(v.m),
                    v.expr.span,
                    format!("these adapters cannot be put together: {reason}"),
                )
                .with_label("the run cannot build this combination")
                .with_help("combine LoRA adapters only, or evaluate the adapters one at a time"),
            );
        }
    }

    fn adapter_refs(&mut self, v: V<'a>, prog: &Program) -> Option<Vec<AdapterRef>> {
        let ExprKind::Path(p) = &v.expr.kind else {
            self.type_error(v, "a trained adapter `train.adapter`", None);
            return None;
        };
        self.path_refs(&p.segments, p.span, v.m, prog)
    }

    fn adapter_refs_dotted(
        &mut self,
        key: &ast::Ident,
        m: usize,
        prog: &Program,
    ) -> Option<Vec<AdapterRef>> {
        let mut segs = Vec::new();
        let mut at = key.span.start as usize;
        for part in key.name.split('.') {
            segs.push(ast::Ident {
                name: part.to_string(),
                span: crate::syntax::Span::new(at, at + part.len()),
            });
            at += part.len() + 1;
        }
        self.path_refs(&segs, key.span, m, prog)
    }

    fn path_refs(
        &mut self,
        segs: &[ast::Ident],
        span: crate::syntax::Span,
        m: usize,
        prog: &Program,
    ) -> Option<Vec<AdapterRef>> {
        let first = segs.first()?;
        let loc = Loc {
            file: file_id(m),
            span,
        };
        if let Some(r) = self.imported_ref(segs, m, loc, prog) {
            return r;
        }
        let id = self.lookup(m, first, &[DeclKind::Train])?;
        let tname = self.decl(id)?.name.name.clone();
        let train = prog.train(&tname)?;
        match segs.get(1) {
            None => Some(
                train
                    .adapters
                    .iter()
                    .map(|a| AdapterRef {
                        train: tname.clone(),
                        adapter: a.meta.name.clone(),
                        loc,
                    })
                    .collect(),
            ),
            Some(a) => {
                if !train.adapters.iter().any(|x| x.meta.name == a.name) {
                    let names: Vec<&str> = train
                        .adapters
                        .iter()
                        .map(|x| x.meta.name.as_str())
                        .collect();
                    let help = super::suggest::did_you_mean(&a.name, names.iter().copied())
                        .unwrap_or_else(|| format!("`{tname}` trains {}", names.join(", ")));
                    self.emit(
                        Diagnostic::new(
                            Code::UnknownName,
                            file_id(m),
                            a.span,
                            format!("train `{tname}` has no adapter `{}`", a.name),
                        )
                        .with_label("not trained there")
                        .with_help(help),
                    );
                    return None;
                }
                Some(vec![AdapterRef {
                    train: tname,
                    adapter: a.name.clone(),
                    loc,
                }])
            }
        }
    }

    /// A reference to a `peft(..)` adapter: `Some(refs)` when `segs` names one (`None` inside
    /// after an error), `None` when it names something else.
    fn imported_ref(
        &mut self,
        segs: &[ast::Ident],
        m: usize,
        loc: Loc,
        prog: &Program,
    ) -> Option<Option<Vec<AdapterRef>>> {
        let first = segs.first()?;
        let id = self.find(m, &first.name)?;
        if !self.is_peft_decl(id) {
            return None;
        }
        self.used.insert(id);
        if let Some(extra) = segs.get(1) {
            self.emit(
                Diagnostic::new(
                    Code::UnknownName,
                    loc.file,
                    extra.span,
                    format!(
                        "`{}` is one adapter (`peft(..)`), with no adapter `{}` inside",
                        first.name, extra.name
                    ),
                )
                .with_label("not part of it")
                .with_help(format!("write `{}`", first.name)),
            );
            return Some(None);
        }
        prog.imported(&first.name)?;
        Some(Some(vec![AdapterRef {
            train: first.name.clone(),
            adapter: first.name.clone(),
            loc,
        }]))
    }

    pub fn lower_merge(&mut self, id: DeclId, prog: &Program) -> Option<Merge> {
        let decl = self.decl(id)?;
        let meta = self.meta(id, decl);
        if let Some(b) = &decl.body {
            let mut f = super::cx::Fields::default();
            f.extend_block(b, id.module);
            self.check_keys(&f, &[], "a merge");
        }
        let Some(h) = &decl.head else {
            self.missing(
                id.module,
                decl.name.span,
                "= BASE + TRAIN.ADAPTER",
                "a merge",
                "llama + tune.sent",
            );
            return None;
        };
        let ExprKind::Binary {
            op: BinOp::Add,
            lhs,
            rhs,
        } = &h.kind
        else {
            self.type_error(
                V {
                    expr: h,
                    m: id.module,
                },
                "`BASE + TRAIN.ADAPTER` (or `BASE + mix { .. }`)",
                None,
            );
            return None;
        };
        let (model, quantized_with) = self.model_ref(V {
            expr: lhs,
            m: id.module,
        })?;
        let adapters = self.combination(
            V {
                expr: rhs,
                m: id.module,
            },
            prog,
            Some(&model),
        )?;
        Some(Merge {
            meta,
            model,
            quantized_with,
            adapters,
        })
    }

    pub fn lower_export(
        &mut self,
        e: &'a ast::Export,
        m: usize,
        dir: &Path,
        prog: &Program,
    ) -> Option<Export> {
        let meta = Meta {
            name: e.source.dotted(),
            loc: Loc {
                file: file_id(m),
                span: e.source.span,
            },
            doc: e.doc.clone(),
        };
        let mut f = super::cx::Fields::default();
        if let Some(b) = &e.body {
            f.extend_block(b, m);
        }
        self.check_keys(&f, schema::EXPORT, "an export");
        let format = match &e.format {
            Some(fm) => match fm.name.as_str() {
                "peft" => ExportFormat::Peft,
                "merged" => ExportFormat::Merged,
                other => {
                    let help = super::suggest::did_you_mean(other, ["peft", "merged"])
                        .unwrap_or_else(|| "formats are `peft` and `merged`".into());
                    self.emit(
                        Diagnostic::new(
                            Code::UnknownVariant,
                            file_id(m),
                            fm.span,
                            format!("unknown export format `{other}`"),
                        )
                        .with_label("not a format")
                        .with_help(help),
                    );
                    return None;
                }
            },
            None => ExportFormat::Peft,
        };
        let first = e.source.segments.first()?;
        let at = Loc {
            file: file_id(m),
            span: e.source.span,
        };
        let imported = self.imported_ref(&e.source.segments, m, at, prog);
        let source = if let Some(refs) = imported {
            ExportSource::Adapter(refs?.into_iter().next()?)
        } else if self
            .lookup(m, first, &[DeclKind::Train, DeclKind::Merge])
            .and_then(|sid| self.decl(sid))
            .map(|d| d.kind)?
            == DeclKind::Merge
        {
            ExportSource::Merge(first.name.clone())
        } else {
            let refs = self.path_refs(&e.source.segments, e.source.span, m, prog)?;
            match (e.source.segments.len(), refs.into_iter().next()) {
                (2, Some(r)) => ExportSource::Adapter(r),
                _ => ExportSource::Train(first.name.clone()),
            }
        };
        match (&source, format) {
            (ExportSource::Merge(_), ExportFormat::Peft) => self.emit(
                Diagnostic::new(Code::ExportFormat, file_id(m), e.source.span, "a merged model cannot be exported as a PEFT adapter")
                    .with_label("this is a merge")
                    .with_help("write `as merged`, or export the adapter itself (`export train.adapter ... as peft`)"),
            ),
            (ExportSource::Adapter(_) | ExportSource::Train(_), ExportFormat::Merged) => self.emit(
                Diagnostic::new(Code::ExportFormat, file_id(m), e.source.span, "only a `merge` can be exported `as merged`")
                    .with_label("this is an adapter")
                    .with_help("declare `merge m = base + train.adapter` and export `m`, or write `as peft`"),
            ),
            _ => {}
        }
        let serve_on = match f
            .get("serve_on")
            .and_then(|x| self.choice(x.value(), "serving runtime", &["vllm", "lorax", "peft"]))
        {
            Some("vllm") => Some(ServeOn::Vllm),
            Some("lorax") => Some(ServeOn::Lorax),
            Some("peft") => Some(ServeOn::Peft),
            _ => None,
        };
        let outside_project = f
            .get("outside_project")
            .and_then(|x| self.boolean(x.value()))
            .unwrap_or(false);
        let path = super::load::normalize(&dir.join(&e.dest.value));
        Some(Export {
            meta,
            source,
            path,
            dest: e.dest.value.clone(),
            dest_loc: Loc {
                file: file_id(m),
                span: e.dest.span,
            },
            outside_project,
            format,
            serve_on,
        })
    }
}

fn strip(e: &ast::Expr) -> &ast::Expr {
    match &e.kind {
        ExprKind::Paren(inner) => strip(inner),
        _ => e,
    }
}

fn mentions_metric(g: &GateExpr) -> bool {
    match g {
        GateExpr::Metric(_) | GateExpr::Baseline(_) | GateExpr::Run { .. } => true,
        GateExpr::Literal(_) => false,
        GateExpr::Binary { lhs, rhs, .. } => mentions_metric(lhs) || mentions_metric(rhs),
        GateExpr::Neg(i) => mentions_metric(i),
    }
}

/// The task of what an eval measures.
pub fn subject_task(prog: &Program, s: &EvalSubject) -> Option<Task> {
    let model = match s {
        EvalSubject::Base { model } | EvalSubject::Combined { model, .. } => model.clone(),
        EvalSubject::Train { train } => prog.train(train)?.model.clone(),
        EvalSubject::Merge { merge } => prog.merge(merge)?.model.clone(),
    };
    prog.model(&model).map(|m| m.task.clone())
}
