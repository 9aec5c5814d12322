//! Completion items for the context at the cursor (see [`super::context`]): keywords at top
//! level, the fields of the enclosing block with their types, declaration names and named
//! options where a value is expected, stdlib names after `use std.`, the model's module names
//! inside `targets`, metric names in `metrics` and gates.

use super::context::{self, Ctx};
use super::fields::{self, FieldInfo};
use super::hover::shape_for;
use super::index;
use super::state::Analysis;
use crate::check::hir::Metric;
use crate::syntax::ast::DeclKind;
use lsp_types::{CompletionItem, CompletionItemKind, Documentation, MarkupContent, MarkupKind};

/// Items at byte `offset` of `text`; `an` is the last analysis of the document, if any.
pub fn complete(an: Option<&Analysis>, text: &str, offset: usize) -> Vec<CompletionItem> {
    let ctx = context::at(text, offset);
    let decls = an.map(index::all_decls).unwrap_or_default();
    let names_of = |kinds: &[DeclKind]| -> Vec<CompletionItem> {
        decls
            .iter()
            .filter(|s| kinds.contains(&s.kind))
            .map(|s| {
                item(
                    &s.name,
                    CompletionItemKind::REFERENCE,
                    Some(&s.header),
                    s.doc.as_deref(),
                )
            })
            .collect()
    };
    match ctx {
        Ctx::TopLevel => crate::syntax::KEYWORDS
            .iter()
            .filter(|k| DeclKind::from_keyword(k).is_some() || matches!(**k, "use" | "export"))
            .map(|k| item(k, CompletionItemKind::KEYWORD, None, None))
            .collect(),
        Ctx::UseStd { module: None } => super::stdlib::modules()
            .map(|(m, _)| item(m, CompletionItemKind::MODULE, None, None))
            .collect(),
        Ctx::UseStd { module: Some(m) } => std_decls(&m),
        Ctx::Head { kind } => {
            let mut out: Vec<CompletionItem> = fields::heads(kind)
                .iter()
                .map(|h| item(h, CompletionItemKind::CONSTRUCTOR, None, None))
                .collect();
            out.extend(names_of(&[kind]));
            out
        }
        Ctx::Field { decl, record } => {
            let table: &[FieldInfo] = match &record {
                Some((key, base)) => fields::for_record(key, base.as_deref()),
                None => match decl.kind {
                    Some(k) => {
                        let head = decl.head.as_deref().map(|h| base_head(&decls, h));
                        fields::for_decl(k, head.as_deref())
                    }
                    None => &[],
                },
            };
            let mut out: Vec<CompletionItem> = table.iter().map(field_item).collect();
            if record.is_none() && decl.kind == Some(DeclKind::Eval) {
                out.push(item(
                    "gate",
                    CompletionItemKind::KEYWORD,
                    Some("gate METRIC >= VALUE"),
                    None,
                ));
            }
            if record.is_none() && matches!(decl.kind, Some(DeclKind::Train | DeclKind::Eval)) {
                out.push(item(
                    "on",
                    CompletionItemKind::KEYWORD,
                    Some("on DEVICE"),
                    None,
                ));
            }
            out
        }
        Ctx::Value { decl, key } => {
            let mut out: Vec<CompletionItem> = fields::options(&key)
                .iter()
                .map(|o| item(o, CompletionItemKind::ENUM_MEMBER, None, None))
                .collect();
            if key == "data" {
                if let Some(an) = an {
                    for d in &an.checked.program.datasets {
                        for p in d.split.iter().flat_map(|s| s.parts.iter()) {
                            out.push(item(
                                &format!("{}.{}", d.meta.name, p.name),
                                CompletionItemKind::REFERENCE,
                                Some("dataset split"),
                                None,
                            ));
                        }
                    }
                }
            }
            out.extend(names_of(fields::ref_kinds(&key, decl.kind)));
            out
        }
        Ctx::Targets { decl } => {
            let mut out = vec![item(
                "all_linear",
                CompletionItemKind::CONSTANT,
                Some("every linear layer"),
                None,
            )];
            if let Some(shape) = an.and_then(|a| shape_for(&a.checked.program, &decl)) {
                let modules = crate::check::linear_modules(&shape);
                for n in crate::check::linear_names(shape.arch) {
                    let suffix = format!(".{n}");
                    let m = modules.iter().find(|m| m.name.ends_with(&suffix));
                    let detail =
                        m.map(|m| format!("Linear({} -> {})", m.in_features, m.out_features));
                    out.push(item(n, CompletionItemKind::FIELD, detail.as_deref(), None));
                }
            }
            out
        }
        Ctx::Metrics { .. } => Metric::ALL
            .iter()
            .map(|m| {
                item(
                    m.name(),
                    CompletionItemKind::ENUM_MEMBER,
                    Some("metric"),
                    None,
                )
            })
            .collect(),
        Ctx::Gate { decl } => {
            let own: Option<Vec<Metric>> = an.and_then(|a| {
                a.checked
                    .program
                    .eval(decl.name.as_deref().unwrap_or(""))
                    .map(|e| e.metrics.clone())
            });
            let metrics = own
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| Metric::ALL.to_vec());
            let mut out: Vec<CompletionItem> = metrics
                .iter()
                .map(|m| {
                    item(
                        m.name(),
                        CompletionItemKind::ENUM_MEMBER,
                        Some("metric"),
                        None,
                    )
                })
                .collect();
            out.push(item(
                "baseline",
                CompletionItemKind::KEYWORD,
                Some("the base model's metrics on the same data"),
                None,
            ));
            out
        }
        Ctx::None => Vec::new(),
    }
}

/// The builtin an adapter's head finally rests on (`lora_default` extends `lora`).
fn base_head(decls: &[index::Site], head: &str) -> String {
    let mut h = head.to_string();
    for _ in 0..16 {
        match decls
            .iter()
            .find(|s| s.name == h)
            .and_then(|s| s.head.clone())
        {
            Some(next) => h = next,
            None => break,
        }
    }
    h
}

fn std_decls(module: &str) -> Vec<CompletionItem> {
    let Some(text) = super::stdlib::text(module) else {
        return Vec::new();
    };
    let (ast, _) = crate::syntax::parse(text);
    index::decls_of(&ast, crate::syntax::FileId(0), text)
        .iter()
        .map(|s| {
            item(
                &s.name,
                CompletionItemKind::REFERENCE,
                Some(&s.header),
                s.doc.as_deref(),
            )
        })
        .collect()
}

fn field_item(f: &FieldInfo) -> CompletionItem {
    let mut it = item(f.name, CompletionItemKind::FIELD, Some(f.ty), Some(f.doc));
    it.insert_text = Some(format!("{} = ", f.name));
    it
}

fn item(
    label: &str,
    kind: CompletionItemKind,
    detail: Option<&str>,
    doc: Option<&str>,
) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: detail.map(str::to_string),
        documentation: doc.map(|d| {
            Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value: d.to_string(),
            })
        }),
        ..CompletionItem::default()
    }
}
