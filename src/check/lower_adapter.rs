//! Lowers adapters (a `lora` or `bottleneck` builtin, a recipe it extends, and inline
//! overrides in a train), expanding targets to the model's real module names and reading
//! `sweep` / `escalate` values into [`Search`]es.

use super::cx::{file_id, Cx, DeclId, Fields, V};
use super::hir::*;
use super::{arch, schema, suggest};
use crate::syntax::ast::{self, ExprKind};
use crate::syntax::{Code, Diagnostic};

impl<'a> Cx<'a> {
    /// Lowers adapter `id` (plus an inline override block) for a model of `shape`.
    pub fn lower_adapter(
        &mut self,
        id: DeclId,
        extra: Option<(&'a ast::Block, usize)>,
        shape: Option<&ModelShape>,
        searches: &mut Vec<Search>,
    ) -> Option<Adapter> {
        let decl = self.decl(id)?;
        if self.is_peft_decl(id) {
            return None;
        }
        let (head, mut fields) = self.effective(id);
        if let Some((b, m)) = extra {
            fields.extend_block(b, m);
        }
        let meta = self.meta(id, decl);
        let Some(head) = head else {
            if decl.head.is_some() {
                return None;
            }
            self.emit(
                Diagnostic::new(
                    Code::MissingField,
                    file_id(id.module),
                    decl.name.span,
                    format!("adapter `{}` has no kind", decl.name.name),
                )
                .with_label("needs `= lora { .. }` or `= bottleneck { .. }`")
                .with_help("write `adapter a = lora { r = 16, alpha = 32 }`"),
            );
            return None;
        };
        let head = self.deref(head);
        let kind = self.choice(head, "adapter kind", &["lora", "bottleneck"])?;
        let prefix = format!("adapters.{}", decl.name.name);
        let kind = if kind == "lora" {
            self.check_keys(&fields, schema::LORA, "a lora adapter");
            AdapterKind::Lora(self.lora(&fields, shape, &prefix, searches, &meta))
        } else {
            self.check_keys(&fields, schema::BOTTLENECK, "a bottleneck adapter");
            AdapterKind::Bottleneck(self.bottleneck(&fields, &prefix, searches)?)
        };
        Some(Adapter { meta, kind })
    }

    /// A numeric field that may be a `sweep [..]` / `escalate [..]`: returns the first value
    /// and records the search.
    pub fn searchable(
        &mut self,
        f: super::cx::FieldRef<'a>,
        prefix: &str,
        searches: &mut Vec<Search>,
    ) -> Option<V<'a>> {
        let v = f.value();
        let (mode, items) = match &v.expr.kind {
            ExprKind::Sweep(items) => (SearchMode::Sweep, items),
            ExprKind::Escalate(items) => (SearchMode::Escalate, items),
            _ => return Some(v),
        };
        let field = if prefix.is_empty() {
            f.key().to_string()
        } else {
            format!("{prefix}.{}", f.key())
        };
        let Some(first) = items.first() else {
            self.emit(
                Diagnostic::new(
                    Code::SearchMisuse,
                    file_id(v.m),
                    v.expr.span,
                    "an empty list of values to try",
                )
                .with_label("nothing to try")
                .with_help("give at least two values: `sweep [1e-4, 3e-4]`"),
            );
            return None;
        };
        let values = items
            .iter()
            .filter_map(|e| match &e.kind {
                ExprKind::Number(n) => Some(n.value),
                _ => {
                    self.type_error(V { expr: e, m: v.m }, "a number", None);
                    None
                }
            })
            .collect();
        searches.push(Search {
            mode,
            field,
            values,
            loc: v.loc(),
        });
        Some(V {
            expr: first,
            m: v.m,
        })
    }

    fn lora(
        &mut self,
        f: &Fields<'a>,
        shape: Option<&ModelShape>,
        prefix: &str,
        s: &mut Vec<Search>,
        meta: &Meta,
    ) -> Lora {
        let r = match f.get("r") {
            Some(x) => {
                let v = self.searchable(x, prefix, s);
                v.and_then(|v| self.int(v, "r", 1, 65536)).unwrap_or(8) as u32
            }
            None => 8,
        };
        let alpha = match f.get("alpha") {
            Some(x) => {
                let v = self.searchable(x, prefix, s);
                v.and_then(|v| self.float(v, "alpha", 0.0, f64::MAX))
                    .unwrap_or(f64::from(r))
            }
            None => 8.0,
        };
        let dropout = f
            .get("dropout")
            .and_then(|x| self.float(x.value(), "dropout", 0.0, 0.99))
            .unwrap_or(0.0);
        let rslora = f
            .get("rslora")
            .and_then(|x| self.boolean(x.value()))
            .unwrap_or(false);
        let dora = f
            .get("dora")
            .and_then(|x| self.boolean(x.value()))
            .unwrap_or(false);
        let init = match f.get("init").and_then(|x| {
            self.choice(
                x.value(),
                "init",
                &["default", "gaussian", "pissa", "olora"],
            )
        }) {
            Some("gaussian") => LoraInit::Gaussian,
            Some("pissa") => LoraInit::Pissa,
            Some("olora") => LoraInit::Olora,
            _ => LoraInit::Default,
        };
        let lr_ratio = f
            .get("lr_ratio")
            .and_then(|x| self.float(x.value(), "lr_ratio", 0.0, f64::MAX));
        let targets = self.targets(f.get("targets"), shape, r, meta);
        Lora {
            r,
            alpha,
            dropout,
            targets,
            rslora,
            dora,
            init,
            lr_ratio,
        }
    }

    fn targets(
        &mut self,
        field: Option<super::cx::FieldRef<'a>>,
        shape: Option<&ModelShape>,
        r: u32,
        meta: &Meta,
    ) -> Targets {
        let mut requested: Vec<(String, Option<V<'a>>)> = Vec::new();
        let mut all_linear = false;
        match field {
            Some(fr) => {
                for v in self.list(fr.value()) {
                    let v = self.deref(v);
                    match &v.expr.kind {
                        ExprKind::Path(p) => {
                            let d = p.dotted();
                            if d == "all_linear" {
                                all_linear = true;
                            } else {
                                requested.push((d, Some(v)));
                            }
                        }
                        ExprKind::Str(s) => requested.push((s.clone(), Some(v))),
                        _ => self.type_error(
                            v,
                            "a module name such as `q_proj`, or `all_linear`",
                            None,
                        ),
                    }
                }
            }
            None => {
                if let Some(s) = shape {
                    requested = arch::default_targets(s.arch)
                        .iter()
                        .map(|t| (t.to_string(), None))
                        .collect();
                }
            }
        }
        let mut modules = Vec::new();
        if let Some(s) = shape {
            let all = self.linear_modules(s);
            // Which of `all` are taken, so a module named by two targets appears once.
            let mut taken = vec![false; all.modules.len()];
            if all_linear {
                modules = all.modules.clone();
                taken.fill(true);
            }
            for (t, v) in &requested {
                let mut hit = false;
                for i in all.matching(t) {
                    hit = true;
                    if !taken[i] {
                        taken[i] = true;
                        modules.push(all.modules[i].clone());
                    }
                }
                if hit {
                    continue;
                }
                let special = arch::special_names(s.arch).contains(&t.as_str());
                if special {
                    if !modules.iter().any(|m| *m.name == **t) {
                        modules.push(LinearModule {
                            name: t.as_str().into(),
                            in_features: s.hidden,
                            out_features: s.vocab,
                        });
                    }
                    continue;
                }
                if let Some(v) = v {
                    let cands: Vec<&str> = arch::linear_names(s.arch)
                        .iter()
                        .chain(arch::special_names(s.arch))
                        .copied()
                        .collect();
                    let help = match suggest::did_you_mean(t, cands.iter().copied()) {
                        Some(h) => format!(
                            "{h} ({} modules are: {})",
                            s.arch.name(),
                            arch::linear_names(s.arch).join(", ")
                        ),
                        None => format!(
                            "{} modules are: {}, or `all_linear`",
                            s.arch.name(),
                            arch::linear_names(s.arch).join(", ")
                        ),
                    };
                    self.emit(
                        Diagnostic::new(
                            Code::UnknownTarget,
                            file_id(v.m),
                            v.expr.span,
                            format!("the {} model has no module `{t}`", s.arch.name()),
                        )
                        .with_label("no such module")
                        .with_help(help),
                    );
                }
            }
            // Rank against the smallest targeted layer.
            if let Some(small) = modules
                .iter()
                .min_by_key(|m| m.in_features.min(m.out_features))
            {
                let lim = small.in_features.min(small.out_features);
                if u64::from(r) > lim {
                    self.emit(
                        Diagnostic::new(Code::RankTooLarge, meta.loc.file, meta.loc.span, format!("rank {r} is larger than `{}` allows (min(in, out) = {lim})", small.name))
                            .with_label(format!("r = {r} > {lim}"))
                            .with_help(format!("a rank above min(in, out) adds parameters without adding capacity; use r <= {lim}")),
                    );
                }
            }
        }
        if all_linear {
            requested.insert(0, ("all_linear".into(), None));
        }
        Targets {
            requested: requested.into_iter().map(|(t, _)| t).collect(),
            all_linear,
            modules,
        }
    }

    fn bottleneck(
        &mut self,
        f: &Fields<'a>,
        prefix: &str,
        s: &mut Vec<Search>,
    ) -> Option<Bottleneck> {
        let size = match (f.get("size"), f.get("reduction")) {
            (Some(x), _) => {
                let v = self.searchable(x, prefix, s)?;
                BottleneckSize::Size(self.int(v, "size", 1, 1 << 20)? as u32)
            }
            (None, Some(x)) => {
                BottleneckSize::Reduction(self.int(x.value(), "reduction", 1, 1 << 16)? as u32)
            }
            (None, None) => BottleneckSize::Size(64),
        };
        let placement = match f
            .get("placement")
            .and_then(|x| self.choice(x.value(), "placement", &["houlsby", "pfeiffer"]))
        {
            Some("houlsby") => Placement::Houlsby,
            _ => Placement::Pfeiffer,
        };
        let activation = match f
            .get("activation")
            .and_then(|x| self.choice(x.value(), "activation", &["relu", "gelu", "silu", "tanh"]))
        {
            Some("gelu") => Activation::Gelu,
            Some("silu") => Activation::Silu,
            Some("tanh") => Activation::Tanh,
            _ => Activation::Relu,
        };
        Some(Bottleneck {
            size,
            placement,
            activation,
        })
    }
}
