//! What the runtime cannot do with an adapter the language can name, refused before any compute:
//! merging a bottleneck adapter into base weights (it is a layer of its own, not a weight delta),
//! a weighted `mix` holding a bottleneck adapter (PEFT's `add_weighted_adapter` combines LoRA
//! matrices only), and PiSSA / OLoRA on a base quantized by a `quant` declaration (the init moves
//! part of the weight into the adapter; PEFT refuses a quantized weight too). It must not look
//! at anything but the lowered program.

use super::cx::Cx;
use super::hir::*;
use crate::syntax::{Code, Diagnostic};

impl Cx<'_> {
    pub(super) fn lint_support(&mut self, prog: &Program) {
        for m in &prog.merges {
            // A weighted mix holding a bottleneck adapter is refused below (E1002): one
            // diagnostic per mistake.
            if matches!(m.adapters, Combination::Mix(_)) {
                continue;
            }
            for r in m.adapters.refs() {
                if is_bottleneck(prog, r) {
                    self.emit(
                        Diagnostic::new(
                            Code::MergeBottleneck,
                            r.loc.file,
                            r.loc.span,
                            format!(
                                "`{}.{}` is a bottleneck adapter, which cannot be merged into the base weights",
                                r.train, r.adapter
                            ),
                        )
                        .with_label("bottleneck adapter")
                        .with_help(format!(
                            "evaluate or export it with its train (`eval e {{ model = {} }}`), or merge a LoRA adapter",
                            r.train
                        )),
                    );
                }
            }
        }
        let mut mixes: Vec<&Combination> = prog.merges.iter().map(|m| &m.adapters).collect();
        for e in &prog.evals {
            if let EvalSubject::Combined { adapters, .. } = &e.subject {
                mixes.push(adapters);
            }
        }
        for c in mixes {
            let Combination::Mix(entries) = c else {
                continue;
            };
            for (r, _) in entries {
                if is_bottleneck(prog, r) {
                    self.emit(
                        Diagnostic::new(
                            Code::MixBottleneck,
                            r.loc.file,
                            r.loc.span,
                            format!(
                                "a weighted mix combines LoRA adapters only; `{}.{}` is a bottleneck adapter",
                                r.train, r.adapter
                            ),
                        )
                        .with_label("its weight would be ignored")
                        .with_help("mix LoRA adapters, or stack it unweighted: `[a.x, b.y]`"),
                    );
                }
            }
        }
        for t in &prog.trains {
            let Some(q) = &t.quantized_with else {
                continue;
            };
            for a in &t.adapters {
                let AdapterKind::Lora(l) = &a.kind else {
                    continue;
                };
                let init = match l.init {
                    LoraInit::Pissa => "pissa",
                    LoraInit::Olora => "olora",
                    _ => continue,
                };
                self.emit(
                    Diagnostic::new(
                        Code::InitQuantized,
                        t.meta.loc.file,
                        t.meta.loc.span,
                        format!(
                            "`init = {init}` (adapter `{}`) needs an unquantized base, but `{}` trains on `{}` quantized {q}",
                            a.meta.name, t.meta.name, t.model
                        ),
                    )
                    .with_label("the init would subtract from quantized weights")
                    .with_help(format!(
                        "train on `model = {}` (unquantized), or use `init = default`",
                        t.model
                    )),
                );
            }
        }
    }
}

fn is_bottleneck(prog: &Program, r: &AdapterRef) -> bool {
    prog.train(&r.train).is_some_and(|t| {
        t.adapters
            .iter()
            .any(|a| a.meta.name == r.adapter && matches!(a.kind, AdapterKind::Bottleneck(_)))
    })
}
