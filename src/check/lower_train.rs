//! Lowers `train` declarations: the base model (optionally `quantized`), the adapter stack
//! with inline overrides, the data split, hyper-parameters with defaults, schedule, optimizer,
//! device, and sweep / escalate points.

use super::cx::{file_id, Cx, DeclId, Fields, V};
use super::hir::*;
use super::schema;
use crate::syntax::ast::{DeclKind, ExprKind, Path as AstPath};
use crate::syntax::{Code, Diagnostic};

impl<'a> Cx<'a> {
    pub fn lower_train(&mut self, id: DeclId, prog: &Program) -> Option<Train> {
        let decl = self.decl(id)?;
        let (head, f) = self.effective(id);
        if let Some(h) = head {
            self.type_error(h, "another train to extend (`train t2 = t1 { .. }`)", None);
        }
        self.check_keys(&f, schema::TRAIN, "a train");
        let meta = self.meta(id, decl);
        let mut searches = Vec::new();
        let model_ref = match f.get("model") {
            Some(mf) => self.model_ref(mf.value()),
            None => {
                self.missing(id.module, decl.name.span, "model", "a train", "NAME");
                None
            }
        };
        let (model, quantized_with) = model_ref.clone().unwrap_or_default();
        let shape = prog.model(&model).and_then(|m| m.shape.clone());
        let mut adapters = Vec::new();
        match f.get("adapters") {
            Some(af) => {
                for v in self.list(af.value()) {
                    let (path, extra) = match &v.expr.kind {
                        ExprKind::Path(p) => (p, None),
                        ExprKind::Extend { base, block } => match &base.kind {
                            ExprKind::Path(p) => (p, Some((block, v.m))),
                            _ => {
                                self.type_error(v, "an adapter name", None);
                                continue;
                            }
                        },
                        ExprKind::Mix(_) => {
                            self.emit(
                                Diagnostic::new(Code::BadMix, file_id(v.m), v.expr.span, "a train cannot train a mix")
                                    .with_label("mixes combine trained adapters")
                                    .with_help("train the adapters as a stack (`adapters = [a, b]`) and mix them in a `merge` or `eval`"),
                            );
                            continue;
                        }
                        _ => {
                            self.type_error(v, "an adapter name", None);
                            continue;
                        }
                    };
                    let Some(seg) = single(path) else {
                        self.type_error(v, "an adapter name", None);
                        continue;
                    };
                    let Some(aid) = self.lookup(v.m, seg, &[DeclKind::Adapter]) else {
                        continue;
                    };
                    if self.is_peft_decl(aid) {
                        self.emit(
                            Diagnostic::new(Code::PeftNotTrainable, file_id(v.m), v.expr.span, format!("`{}` is an adapter trained elsewhere (`peft(..)`); a train trains new adapters", seg.name))
                                .with_label("already trained")
                                .with_help(format!("use it where trained adapters go: `eval e {{ model = {model}, adapters = [{}], .. }}`, `merge m = {model} + {}`, or `export {} to \"..\" as peft`", seg.name, seg.name, seg.name)),
                        );
                        continue;
                    }
                    if let Some(a) = self.lower_adapter(aid, extra, shape.as_ref(), &mut searches) {
                        adapters.push(a);
                    }
                }
            }
            None => self.missing(
                id.module,
                decl.name.span,
                "adapters",
                "a train",
                "[my_adapter]",
            ),
        }
        let data = match f.get("data") {
            Some(d) => self.data_ref(d.value(), prog)?,
            None => {
                self.missing(
                    id.module,
                    decl.name.span,
                    "data",
                    "a train",
                    "DATASET.train",
                );
                return None;
            }
        };
        let int = |cx: &mut Self, s: &mut Vec<Search>, k: &str, min: u64, def: u64| -> u64 {
            match f.get(k) {
                Some(x) => {
                    let v = cx.searchable(x, "", s);
                    v.and_then(|v| cx.int(v, k, min, u64::MAX)).unwrap_or(def)
                }
                None => def,
            }
        };
        let epochs = int(self, &mut searches, "epochs", 1, 1) as u32;
        let max_steps = f
            .get("max_steps")
            .and_then(|x| self.int(x.value(), "max_steps", 1, u64::MAX));
        let batch = int(self, &mut searches, "batch", 1, 8) as u32;
        let accumulate = int(self, &mut searches, "accumulate", 1, 1) as u32;
        let lr = match f.get("lr") {
            Some(x) => {
                let v = self.searchable(x, "", &mut searches);
                v.and_then(|v| self.float(v, "lr", 0.0, 10.0))
                    .unwrap_or(2e-4)
            }
            None => 2e-4,
        };
        let schedule = self.schedule(f.get("schedule").map(|x| x.value()));
        let optimizer = self.optimizer(f.get("optimizer").map(|x| x.value()));
        let grad_clip = f
            .get("grad_clip")
            .and_then(|x| self.float(x.value(), "grad_clip", 0.0, f64::MAX));
        let seed = f
            .get("seed")
            .and_then(|x| self.int(x.value(), "seed", 0, u64::MAX))
            .unwrap_or(0);
        let checkpoint_every = f
            .get("checkpoint_every")
            .and_then(|x| self.int(x.value(), "checkpoint_every", 1, u64::MAX));
        let device = self.device_ref(&f);
        let escalations: Vec<&Search> = searches
            .iter()
            .filter(|s| s.mode == SearchMode::Escalate)
            .collect();
        if let [_, second, ..] = escalations.as_slice() {
            self.emit(
                Diagnostic::new(
                    Code::SearchMisuse,
                    second.loc.file,
                    second.loc.span,
                    "only one `escalate` per train",
                )
                .with_label("a second escalation")
                .with_help("escalate one field; use `sweep` for the others"),
            );
        }
        model_ref?;
        Some(Train {
            meta,
            model,
            quantized_with,
            adapters,
            data,
            epochs,
            max_steps,
            batch,
            accumulate,
            lr,
            schedule,
            optimizer,
            grad_clip,
            seed,
            checkpoint_every,
            device,
            searches,
            figures: None,
        })
    }

    /// `m` or `m quantized q`: the model and quant declaration names.
    pub fn model_ref(&mut self, v: V<'a>) -> Option<(String, Option<String>)> {
        match &v.expr.kind {
            ExprKind::Quantized { base, quant } => {
                let (m, _) = self.model_ref(V { expr: base, m: v.m })?;
                let q = single(quant)
                    .and_then(|s| self.lookup(v.m, s, &[DeclKind::Quant]))
                    .and_then(|id| self.decl(id))
                    .map(|d| d.name.name.clone());
                Some((m, q))
            }
            ExprKind::Path(p) => {
                let seg = single(p)?;
                let id = self.lookup(v.m, seg, &[DeclKind::Model])?;
                Some((self.decl(id)?.name.name.clone(), None))
            }
            _ => {
                self.type_error(v, "a model name (or `NAME quantized QUANT`)", None);
                None
            }
        }
    }

    /// `dataset` or `dataset.split`.
    pub fn data_ref(&mut self, v: V<'a>, prog: &Program) -> Option<DataRef> {
        let ExprKind::Path(p) = &v.expr.kind else {
            self.type_error(v, "a dataset (or `dataset.split`)", None);
            return None;
        };
        let first = p.segments.first()?;
        let id = self.lookup(v.m, first, &[DeclKind::Dataset])?;
        let name = self.decl(id)?.name.name.clone();
        let split = p.segments.get(1).map(|s| s.name.clone());
        // A split that failed to lower was reported where it is written.
        let split_failed = prog.dataset(&name).is_some_and(|d| d.split.is_none())
            && self.value_loc(&name, "split").is_some();
        if let (Some(sp), Some(ds), false) = (&split, prog.dataset(&name), split_failed) {
            let parts: Vec<&str> = ds
                .split
                .as_ref()
                .map(|s| s.parts.iter().map(|p| p.name.as_str()).collect())
                .unwrap_or_default();
            if !parts.contains(&sp.as_str()) {
                let seg = p.segments.get(1).map(|s| s.span).unwrap_or(p.span);
                let help = match super::suggest::did_you_mean(sp, parts.iter().copied()) {
                    Some(h) => h,
                    None if parts.is_empty() => {
                        format!("declare the split: `split = {{ {sp} = 90%, .. }}` in `{name}`")
                    }
                    None => format!("`{name}` has the splits {}", parts.join(", ")),
                };
                self.emit(
                    Diagnostic::new(
                        Code::UnknownSplit,
                        file_id(v.m),
                        seg,
                        format!("dataset `{name}` has no split `{sp}`"),
                    )
                    .with_label("unknown split")
                    .with_related(ds.meta.loc, "dataset declared here")
                    .with_help(help),
                );
            }
        }
        Some(DataRef {
            dataset: name,
            split,
            loc: v.loc(),
        })
    }

    fn device_ref(&mut self, f: &Fields<'a>) -> Option<String> {
        if let Some((ident, m)) = f.on.last() {
            let id = self.lookup(*m, ident, &[DeclKind::Device])?;
            return self.decl(id).map(|d| d.name.name.clone());
        }
        let x = f.get("device")?;
        let v = x.value();
        let ExprKind::Path(p) = &v.expr.kind else {
            self.type_error(v, "a device name", None);
            return None;
        };
        let id = self.lookup(v.m, single(p)?, &[DeclKind::Device])?;
        self.decl(id).map(|d| d.name.name.clone())
    }

    fn schedule(&mut self, v: Option<V<'a>>) -> Schedule {
        let mut s = Schedule {
            kind: ScheduleKind::Constant,
            warmup: Warmup::Steps(0),
        };
        let Some(v) = v else { return s };
        let v = self.deref(v);
        let (base, block) = match &v.expr.kind {
            ExprKind::Extend { base, block } => (V { expr: base, m: v.m }, Some(block)),
            _ => (v, None),
        };
        s.kind = match self.choice(base, "schedule", &["constant", "linear", "cosine"]) {
            Some("linear") => ScheduleKind::Linear,
            Some("cosine") => ScheduleKind::Cosine,
            _ => ScheduleKind::Constant,
        };
        if let Some(b) = block {
            let mut f = Fields::default();
            f.extend_block(b, v.m);
            self.check_keys(&f, schema::SCHEDULE, "a schedule");
            if let Some(w) = f.get("warmup") {
                let wv = w.value();
                s.warmup = match &wv.expr.kind {
                    ExprKind::Number(n) if n.unit.is_none() && n.is_int => {
                        Warmup::Steps(n.value as u64)
                    }
                    _ => Warmup::Fraction(self.fraction(wv, "warmup").unwrap_or(0.0)),
                };
            }
        }
        s
    }

    fn optimizer(&mut self, v: Option<V<'a>>) -> Optimizer {
        let mut o = Optimizer {
            kind: OptimizerKind::AdamW,
            weight_decay: 0.0,
            momentum: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let Some(v) = v else { return o };
        let v = self.deref(v);
        let (base, block) = match &v.expr.kind {
            ExprKind::Extend { base, block } => (V { expr: base, m: v.m }, Some(block)),
            _ => (v, None),
        };
        if self.choice(base, "optimizer", &["adamw", "sgd"]) == Some("sgd") {
            o.kind = OptimizerKind::Sgd;
        }
        if let Some(b) = block {
            let mut f = Fields::default();
            f.extend_block(b, v.m);
            let allowed = if o.kind == OptimizerKind::Sgd {
                schema::SGD
            } else {
                schema::ADAMW
            };
            self.check_keys(&f, allowed, "an optimizer");
            let num = |cx: &mut Self, k: &str, def: f64| {
                f.get(k)
                    .and_then(|x| cx.float(x.value(), k, 0.0, 1.0))
                    .unwrap_or(def)
            };
            o.weight_decay = num(self, "weight_decay", 0.0);
            o.momentum = num(self, "momentum", 0.0);
            o.beta1 = num(self, "beta1", 0.9);
            o.beta2 = num(self, "beta2", 0.999);
            o.eps = num(self, "eps", 1e-8);
        }
        o
    }
}

/// The only segment of a one-segment path.
pub fn single(p: &AstPath) -> Option<&crate::syntax::ast::Ident> {
    match p.segments.as_slice() {
        [s] => Some(s),
        _ => None,
    }
}
