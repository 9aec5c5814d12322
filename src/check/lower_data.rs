//! Lowers `dataset` declarations: source kind and files (paths relative to the `.peft` file,
//! globs), field mapping, template, labels, split, and options.

use super::cx::{file_id, Cx, DeclId, V};
use super::hir::*;
use super::schema;
use crate::runtime::data::render::CustomTemplate;
use crate::syntax::ast::ExprKind;
use crate::syntax::{Code, Diagnostic};
use std::path::Path;

impl<'a> Cx<'a> {
    pub fn lower_dataset(&mut self, id: DeclId, dir: &Path) -> Option<Dataset> {
        let decl = self.decl(id)?;
        let (head, f) = self.effective(id);
        self.check_keys(&f, schema::DATASET, "a dataset");
        let meta = self.meta(id, decl);
        let Some(head) = head else {
            self.emit(
                Diagnostic::new(
                    Code::MissingField,
                    file_id(id.module),
                    decl.name.span,
                    format!("dataset `{}` has no source", decl.name.name),
                )
                .with_label("needs `= jsonl(\"..\")`, `csv(..)`, `text(..)`, `parquet(..)`")
                .with_help("write `dataset d = jsonl(\"data/train.jsonl\")`"),
            );
            return None;
        };
        let head = self.deref(head);
        let source = self.data_source(head, dir)?;
        let mut fields = FieldMap::default();
        for (role, slot) in [
            ("text", &mut fields.text),
            ("label", &mut fields.label),
            ("prompt", &mut fields.prompt),
            ("completion", &mut fields.completion),
            ("messages", &mut fields.messages),
        ] {
            if let Some(x) = f.get(role) {
                *slot = self.field_path(x.value());
            }
        }
        let template = match f.get("template") {
            Some(x) => {
                let v = self.deref(x.value());
                match &v.expr.kind {
                    ExprKind::Str(s) => Some(self.template_string(v, s)),
                    _ => {
                        match self.choice(v, "template", &["alpaca", "chatml", "chat_template"])? {
                            "alpaca" => Some(Template::Alpaca),
                            "chatml" => Some(Template::Chatml),
                            _ => Some(Template::ChatTemplate),
                        }
                    }
                }
            }
            None => None,
        };
        let template_loc = f.get("template").map(|x| self.deref(x.value()).loc());
        let labels = f.get("labels").map(|x| {
            let items = self.list(x.value());
            items.into_iter().filter_map(|i| self.string(i)).collect()
        });
        let split = f.get("split").and_then(|x| self.split(x.value()));
        let max_len = f
            .get("max_len")
            .and_then(|x| self.int(x.value(), "max_len", 1, 1 << 20))
            .unwrap_or(512) as u32;
        let b = |cx: &mut Self, k: &str| {
            f.get(k)
                .and_then(|x| cx.boolean(x.value()))
                .unwrap_or(false)
        };
        let packing = b(self, "packing");
        let completion_only = b(self, "completion_only");
        let dedupe = b(self, "dedupe");
        let skip_invalid = b(self, "skip_invalid");
        let limit = f
            .get("limit")
            .and_then(|x| self.int(x.value(), "limit", 1, u64::MAX));
        if completion_only
            && (fields.prompt.is_none() || fields.completion.is_none())
            && fields.messages.is_none()
        {
            let at = f
                .get("completion_only")
                .map(|x| x.loc())
                .unwrap_or(meta.loc);
            self.emit(
                Diagnostic::new(Code::CompletionOnlyWithoutPrompt, at.file, at.span, "`completion_only` needs a prompt and a completion")
                    .with_label("nothing marks where the completion starts")
                    .with_help("map both: `prompt = field(\"question\")` and `completion = field(\"answer\")` (or `messages`)"),
            );
        }
        if fields.text.is_none()
            && fields.prompt.is_none()
            && fields.messages.is_none()
            && fields.completion.is_none()
        {
            self.emit(
                Diagnostic::new(Code::MissingMapping, file_id(id.module), decl.name.span, format!("dataset `{}` maps no input field", decl.name.name))
                    .with_label("no `text`, `prompt` or `messages`")
                    .with_help("add `text = field(\"text\")` (classification, plain text) or `prompt = field(..)` and `completion = field(..)`"),
            );
        }
        if fields.prompt.is_some() != fields.completion.is_some() {
            self.emit(
                Diagnostic::new(
                    Code::MissingMapping,
                    file_id(id.module),
                    decl.name.span,
                    "`prompt` and `completion` go together",
                )
                .with_label("only one of them is mapped")
                .with_help("map both `prompt = field(..)` and `completion = field(..)`"),
            );
        }
        Some(Dataset {
            meta,
            source,
            fields,
            template,
            template_loc,
            labels,
            split,
            max_len,
            packing,
            completion_only,
            dedupe,
            skip_invalid,
            limit,
        })
    }

    fn data_source(&mut self, v: V<'a>, dir: &Path) -> Option<DataSource> {
        let ExprKind::Call { callee, args } = &v.expr.kind else {
            self.type_error(
                v,
                "a data source such as `jsonl(\"data/train.jsonl\")`",
                None,
            );
            return None;
        };
        let format = match callee.name.as_str() {
            "jsonl" => DataFormat::Jsonl,
            "json" => DataFormat::Json,
            "csv" => DataFormat::Csv,
            "tsv" => DataFormat::Tsv,
            "text" => DataFormat::Text,
            "parquet" => DataFormat::Parquet,
            other => {
                let opts = ["jsonl", "json", "csv", "tsv", "text", "parquet"];
                let help = super::suggest::did_you_mean(other, opts)
                    .unwrap_or_else(|| format!("data sources are {}", opts.join(", ")));
                self.emit(
                    Diagnostic::new(
                        Code::BadCall,
                        file_id(v.m),
                        callee.span,
                        format!("unknown data source `{other}`"),
                    )
                    .with_label("not a data source")
                    .with_help(help),
                );
                return None;
            }
        };
        let usage = format!("`{}(\"data/train.jsonl\")`", callee.name);
        self.positional_only(callee, args, v.m, usize::MAX, &usage);
        let mut patterns = Vec::new();
        let mut files = Vec::new();
        for a in args.iter().filter(|a| a.name.is_none()) {
            let av = V {
                expr: &a.value,
                m: v.m,
            };
            for item in self.list(av) {
                let Some(p) = self.string(item) else { continue };
                let abs = super::load::normalize(&dir.join(&p));
                let s = abs.to_string_lossy().into_owned();
                let found = if s.contains(['*', '?', '[']) {
                    self.world.glob(&s)
                } else if self.world.is_file(&abs) {
                    vec![abs.clone()]
                } else {
                    Vec::new()
                };
                if found.is_empty() {
                    self.emit(
                        Diagnostic::new(Code::DataNotFound, file_id(v.m), item.expr.span, format!("no data file matches `{}`", abs.display()))
                            .with_label("not found")
                            .with_help("paths are relative to the .peft file; create the file or run the examples' setup script"),
                    );
                }
                files.extend(found);
                patterns.push(abs);
            }
        }
        if patterns.is_empty() && args.iter().all(|a| a.name.is_none()) {
            self.emit(
                Diagnostic::new(
                    Code::BadCall,
                    file_id(v.m),
                    v.expr.span,
                    format!("`{}` needs a file path", callee.name),
                )
                .with_label("missing path")
                .with_help("write `jsonl(\"data/train.jsonl\")`"),
            );
        }
        Some(DataSource {
            format,
            patterns,
            files,
            loc: v.loc(),
        })
    }

    fn field_path(&mut self, v: V<'a>) -> Option<FieldPath> {
        let v = self.deref(v);
        let mut loc = v.loc();
        let s = match &v.expr.kind {
            ExprKind::Call { callee, args } if callee.name == "field" => {
                self.positional_only(callee, args, v.m, 1, "`field(\"name\")`");
                match args.first() {
                    Some(a) => {
                        let av = V {
                            expr: &a.value,
                            m: v.m,
                        };
                        loc = av.loc();
                        self.string(av)?
                    }
                    None => {
                        self.type_error(v, "`field(\"name\")`", None);
                        return None;
                    }
                }
            }
            ExprKind::Str(s) => s.clone(),
            _ => {
                self.type_error(
                    v,
                    "`field(\"name\")` (a nested field is `field(\"a.b\")`)",
                    None,
                );
                return None;
            }
        };
        Some(FieldPath {
            path: s.split('.').map(str::to_string).collect(),
            loc,
        })
    }

    /// A template string: the name of a built-in template in quotes (E1205), a template the
    /// run cannot parse (E0403), or one without a hole (W1201). Holes are checked against the
    /// data in [`super::peek`].
    fn template_string(&mut self, v: V, s: &str) -> Template {
        let builtin = match s.trim() {
            "alpaca" => Some(Template::Alpaca),
            "chatml" => Some(Template::Chatml),
            "chat_template" => Some(Template::ChatTemplate),
            _ => None,
        };
        if let Some(t) = builtin {
            let name = s.trim();
            self.emit(
                Diagnostic::new(
                    Code::TemplateIsBuiltin,
                    file_id(v.m),
                    v.expr.span,
                    format!("\"{name}\" is a template string, not the built-in template `{name}`"),
                )
                .with_label("every example would become this literal text")
                .with_help(format!("write `template = {name}` without quotes")),
            );
            return t;
        }
        match CustomTemplate::parse(s) {
            Err(message) => {
                self.emit(
                    Diagnostic::new(Code::TemplateHole, file_id(v.m), v.expr.span, format!("the run cannot read this template: {message}"))
                        .with_label("invalid template")
                        .with_help("holes are `{prompt}`, `{completion}`, `{text}` or a field of the data; write `{{` and `}}` for literal braces"),
                );
            }
            Ok(t) if t.holes().is_empty() => {
                self.emit(
                    Diagnostic::new(Code::TemplateWithoutHole, file_id(v.m), v.expr.span, "the template has no `{..}` hole")
                        .with_label("every example becomes this same text")
                        .with_help("name the roles to insert, e.g. `\"### Question: {prompt}\\n### Answer: {completion}\"`"),
                );
            }
            Ok(_) => {}
        }
        Template::Custom(s.to_string())
    }

    fn split(&mut self, v: V<'a>) -> Option<SplitSpec> {
        let v = self.deref(v);
        let ExprKind::Block(b) = &v.expr.kind else {
            self.type_error(
                v,
                "a split such as `{ train = 90%, eval = 10%, seed = 7 }`",
                None,
            );
            return None;
        };
        let mut parts = Vec::new();
        let mut seed = 0;
        let mut total = 0.0;
        for e in &b.entries {
            let crate::syntax::ast::Entry::Field(f) = e else {
                continue;
            };
            let fv = V {
                expr: &f.value,
                m: v.m,
            };
            if f.key.name == "seed" {
                seed = self.int(fv, "seed", 0, u64::MAX).unwrap_or(0);
                continue;
            }
            let amount = match &f.value.kind {
                ExprKind::Number(n) if n.unit.is_none() && n.is_int && n.value >= 1.0 => {
                    SplitAmount::Count(n.value as u64)
                }
                _ => SplitAmount::Fraction(self.fraction(fv, "a split part")?),
            };
            if let SplitAmount::Fraction(x) = amount {
                total += x;
            }
            parts.push(SplitPart {
                name: f.key.name.clone(),
                amount,
            });
        }
        if parts.is_empty() || total > 1.0 + 1e-9 {
            let msg = if parts.is_empty() {
                "a split needs at least one part".to_string()
            } else {
                format!(
                    "the split parts add up to {:.0}%, more than 100%",
                    total * 100.0
                )
            };
            self.emit(
                Diagnostic::new(Code::BadSplit, file_id(v.m), v.expr.span, msg)
                    .with_label("invalid split")
                    .with_help("write `split = { train = 90%, eval = 10%, seed = 7 }`"),
            );
            if parts.is_empty() {
                return None;
            }
        }
        Some(SplitSpec { parts, seed })
    }
}
