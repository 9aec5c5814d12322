//! Lowers `quant` and `device` declarations.

use super::cx::{file_id, Cx, DeclId};
use super::hir::*;
use super::schema;
use crate::syntax::ast::ExprKind;
use crate::syntax::{Code, Diagnostic};

impl<'a> Cx<'a> {
    pub fn lower_quant(&mut self, id: DeclId) -> Option<Quant> {
        let decl = self.decl(id)?;
        let (head, f) = self.effective(id);
        self.check_keys(&f, schema::QUANT, "a quant");
        let meta = self.meta(id, decl);
        let Some(head) = head else {
            self.missing(
                id.module,
                decl.name.span,
                "= nf4",
                "a quant",
                "nf4 { double_quant = true }",
            );
            return None;
        };
        let head = self.deref(head);
        let names: Vec<&str> = QuantKind::ALL.iter().map(|k| k.name()).collect();
        let chosen = self.choice(head, "quantization", &names)?;
        let kind = QuantKind::ALL
            .into_iter()
            .find(|k| k.name() == chosen)
            .unwrap_or(QuantKind::Nf4);
        if !kind.has_blocks() {
            for option in ["block", "double_quant"] {
                if let Some(x) = f.get(option) {
                    let span = x.value().expr.span;
                    let m = x.value().m;
                    self.emit(
                        Diagnostic::new(
                            Code::QuantOptionUnused,
                            file_id(m),
                            span,
                            format!("`{option}` does not apply to `{}`", kind.name()),
                        )
                        .with_label(match kind {
                            QuantKind::Int8 => "int8 keeps one absmax scale per output row",
                            _ => "GGML formats have fixed block sizes",
                        })
                        .with_help(format!(
                            "remove `{option}`; it applies to `nf4` and `fp4` only"
                        )),
                    );
                }
            }
        }
        let double_quant = f
            .get("double_quant")
            .and_then(|x| self.boolean(x.value()))
            .unwrap_or(false);
        let block_size = f
            .get("block")
            .and_then(|x| self.int(x.value(), "block", 16, 4096))
            .unwrap_or(64) as u32;
        let compute = f
            .get("compute")
            .and_then(|x| self.choice(x.value(), "dtype", &["f32", "f16", "bf16"]))
            .map(|c| match c {
                "f16" => Dtype::F16,
                "bf16" => Dtype::Bf16,
                _ => Dtype::F32,
            });
        Some(Quant {
            meta,
            kind,
            double_quant,
            block_size,
            compute,
        })
    }

    pub fn lower_device(&mut self, id: DeclId) -> Option<Device> {
        let decl = self.decl(id)?;
        let (head, f) = self.effective(id);
        self.check_keys(&f, schema::DEVICE, "a device");
        let meta = self.meta(id, decl);
        let Some(head) = head else {
            self.missing(id.module, decl.name.span, "= cpu", "a device", "cuda(0)");
            return None;
        };
        let head = self.deref(head);
        let (name, index) = match &head.expr.kind {
            ExprKind::Call { callee, args } => {
                let usage = format!("`{}(0)`", callee.name);
                self.positional_only(callee, args, head.m, 1, &usage);
                let idx = match args.iter().find(|a| a.name.is_none()) {
                    Some(a) => self.int(
                        super::cx::V {
                            expr: &a.value,
                            m: head.m,
                        },
                        "device index",
                        0,
                        1024,
                    )? as u32,
                    None => 0,
                };
                (callee.name.clone(), idx)
            }
            _ => (self.name(head).map(|n| n.0).unwrap_or_default(), 0),
        };
        let kind = match name.as_str() {
            "cpu" => DeviceKind::Cpu,
            "cuda" => DeviceKind::Cuda,
            "metal" => DeviceKind::Metal,
            other => {
                let help = super::suggest::did_you_mean(other, ["cpu", "cuda", "metal"])
                    .unwrap_or_else(|| "devices are `cpu`, `cuda(N)` and `metal`".into());
                self.emit(
                    Diagnostic::new(
                        Code::UnknownVariant,
                        file_id(head.m),
                        head.expr.span,
                        format!("unknown device `{other}`"),
                    )
                    .with_label("not a device")
                    .with_help(help),
                );
                return None;
            }
        };
        if !kind.built() {
            self.emit(
                Diagnostic::new(
                    Code::DeviceNotBuilt,
                    file_id(head.m),
                    head.expr.span,
                    format!("this peftc was built without {}, so `{}` cannot be used", kind.feature_name(), decl.name.name),
                )
                .with_label("the run would fall back to the CPU")
                .with_help(format!(
                    "rebuild with `cargo install --path . --features {}`, or declare `device {} = cpu`",
                    kind.feature_name(),
                    decl.name.name
                )),
            );
        }
        let memory = f.get("memory").and_then(|x| self.size(x.value()));
        Some(Device {
            meta,
            kind,
            index,
            memory,
        })
    }
}
