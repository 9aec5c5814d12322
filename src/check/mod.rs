//! # check: a parsed pipeline to a checked program
//!
//! [`check`] (or [`check_source`] for an unsaved buffer) loads a `.peft` file and what it
//! `use`s through a [`World`], resolves names, applies extensions and recipes, fills defaults,
//! types every value, reads model shapes (config.json, GGUF headers, stdlib presets), computes
//! figures and runs the lints. It never fails on bad input: it returns a [`hir::Program`] with
//! what could be lowered plus every [`Diagnostic`]. It must not depend on candle nor read
//! weights.
//!
//! ```
//! use peftc::check::{check_source, MemoryWorld};
//! let world = MemoryWorld::new();
//! let src = "model m = hf(\"gpt2\")\nadapter a = lora { r = 8, alpha = 16, targets = [c_attn] }\n";
//! let checked = check_source(&world, std::path::Path::new("/p/x.peft"), src);
//! assert!(!checked.has_errors());
//! ```

mod activations;
mod arch;
mod args;
mod config_json;
mod cx;
pub mod explain;
pub mod figures;
mod gguf;
pub mod hir;
mod lint_support;
mod lints;
mod load;
mod lower_adapter;
mod lower_data;
mod lower_eval;
mod lower_misc;
mod lower_model;
mod lower_peft;
mod lower_train;
mod meta_cache;
mod outputs;
mod peek;
mod relations;
pub mod render;
pub mod schema;
mod snippet;
pub mod sources;
mod suggest;
pub mod world;

pub use crate::syntax::{Code, Diagnostic, Severity};
pub use arch::{linear_modules, linear_names};
pub use hir::Program;
pub use load::STDLIB;
pub use outputs::refuse_outside_project;
pub use sources::Sources;
pub use world::{FileStamp, MemoryWorld, RealWorld, World};

use crate::syntax::ast::{self, DeclKind};
use crate::syntax::{Loc, ParseCache, Span};
use cx::{file_id, Cx, DeclId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The result of checking: the program, every diagnostic (sorted by file and position), and
/// the sources they point into.
#[derive(Debug)]
pub struct Checked {
    pub program: Program,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
    /// The syntax tree of each loaded file, by file id (file 0 is the checked file).
    pub syntax: Vec<ast::File>,
}

impl Checked {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Reads `path` through `world` and checks it. Fails only when the file cannot be read.
pub fn check(world: &dyn World, path: &Path) -> std::io::Result<Checked> {
    let path = absolute(path);
    let text = world.read_to_string(&path)?;
    Ok(check_source(world, &path, &text))
}

/// Checks `text` as the contents of `path` (relative paths inside are taken from its folder).
pub fn check_source(world: &dyn World, path: &Path, text: &str) -> Checked {
    check_source_cached(world, path, text, None)
}

/// Checks `text` like [`check_source`], re-parsing only the items that changed since the last
/// check through `cache` (one cache per document: an editor or `watch` keeps it between
/// checks). Ends the cache's round when done.
pub fn check_source_cached(
    world: &dyn World,
    path: &Path,
    text: &str,
    cache: Option<&ParseCache>,
) -> Checked {
    let path = absolute(path);
    let (mut loaded, mut diags) = load::load(world, &path, text.to_string(), cache);
    let presets_module = load::ensure_std(&mut loaded, &mut diags, "std.models", cache);
    if let Some(c) = cache {
        c.end_round();
    }
    let mut cx = Cx::new(world, &loaded.modules, &loaded.imports, &loaded.sources);
    cx.diags = diags;
    mark_broken(&mut cx, &loaded.sources);
    build_scope(&mut cx);
    duplicate_fields(&mut cx);
    let presets = presets(&mut cx, presets_module);
    let mut prog = Program {
        file: path.clone(),
        ..Program::default()
    };
    lower_all(&mut cx, &mut prog, &presets);
    cx.check_exports(&prog, &loaded.sources);
    cx.lint(&mut prog);
    cx.lint_unused();
    let mut diagnostics = std::mem::take(&mut cx.diags);
    drop(cx);
    diagnostics.sort_by_key(|d| (d.loc.file, d.loc.span.start, d.code));
    Checked {
        program: prog,
        diagnostics,
        sources: loaded.sources,
        syntax: loaded.modules.into_iter().map(|m| m.ast).collect(),
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        load::normalize(path)
    } else {
        load::normalize(&std::env::current_dir().unwrap_or_default().join(path))
    }
}

/// Names of items that failed to parse (`KIND NAME` at the start of the item), and files with
/// syntax errors, so that their consequences are not reported as further errors.
fn mark_broken(cx: &mut Cx, sources: &Sources) {
    for d in &cx.diags {
        if d.code.as_str().starts_with("E00") {
            cx.broken_files.insert(d.loc.file.0 as usize);
        }
    }
    for (mi, module) in cx.modules.iter().enumerate() {
        let Some(src) = sources.get(file_id(mi)) else {
            continue;
        };
        for item in &module.ast.items {
            let ast::Item::Error(span) = item else {
                continue;
            };
            let text = span.text(&src.text);
            let mut words = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty());
            while let Some(w) = words.next() {
                if DeclKind::from_keyword(w).is_some() {
                    if let Some(name) = words.next() {
                        cx.broken.insert(name.to_string());
                    }
                    break;
                }
            }
        }
    }
}

fn build_scope(cx: &mut Cx) {
    for (mi, module) in cx.modules.iter().enumerate() {
        if module.std_name.is_some() {
            continue;
        }
        for (ii, item) in module.ast.items.iter().enumerate() {
            let ast::Item::Decl(d) = item else { continue };
            let id = DeclId {
                module: mi,
                item: ii,
            };
            if let Some(prev) = cx.scope.get(&d.name.name).copied() {
                let prev_loc = cx
                    .decl(prev)
                    .map(|p| Loc {
                        file: file_id(prev.module),
                        span: p.name.span,
                    })
                    .unwrap_or_default();
                cx.emit(
                    Diagnostic::new(
                        Code::DuplicateDecl,
                        file_id(mi),
                        d.name.span,
                        format!("`{}` is declared twice", d.name.name),
                    )
                    .with_label("declared again here")
                    .with_related(prev_loc, "first declared here")
                    .with_help("rename one of them"),
                );
                continue;
            }
            cx.scope.insert(d.name.name.clone(), id);
        }
    }
    for imp in cx.imports {
        let Some(target) = cx.modules.get(imp.target) else {
            continue;
        };
        if target.std_name.is_none() {
            continue;
        }
        let decls: HashMap<&str, usize> = target
            .ast
            .items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| {
                if let ast::Item::Decl(d) = it {
                    Some((d.name.name.as_str(), i))
                } else {
                    None
                }
            })
            .collect();
        match &imp.names {
            Some(names) => {
                for n in names {
                    match decls.get(n.name.as_str()) {
                        Some(i) => {
                            cx.scope.entry(n.name.clone()).or_insert(DeclId {
                                module: imp.target,
                                item: *i,
                            });
                        }
                        None => {
                            // Reported once here; uses of the name are not reported again.
                            cx.broken.insert(n.name.clone());
                            let module = target.std_name.clone().unwrap_or_default();
                            let help = suggest::did_you_mean(&n.name, decls.keys().copied())
                                .unwrap_or_else(|| {
                                    let mut k: Vec<&str> = decls.keys().copied().collect();
                                    k.sort();
                                    format!("`{module}` has {}", k.join(", "))
                                });
                            cx.emit(
                                Diagnostic::new(
                                    Code::UnknownModule,
                                    file_id(imp.from),
                                    n.span,
                                    format!("`{module}` has no `{}`", n.name),
                                )
                                .with_label("not in that module")
                                .with_help(help),
                            );
                        }
                    }
                }
            }
            None => {
                for (name, i) in decls {
                    cx.scope.entry(name.to_string()).or_insert(DeclId {
                        module: imp.target,
                        item: i,
                    });
                }
            }
        }
    }
}

/// E0106 for a key written twice in one block (anywhere in user files).
fn duplicate_fields(cx: &mut Cx) {
    let mut found = Vec::new();
    for (mi, module) in cx.modules.iter().enumerate() {
        if module.std_name.is_some() {
            continue;
        }
        for item in &module.ast.items {
            let body = match item {
                ast::Item::Decl(d) => d.body.as_ref(),
                ast::Item::Export(e) => e.body.as_ref(),
                _ => None,
            };
            if let Some(b) = body {
                dup_block(b, mi, &mut found);
            }
        }
    }
    for d in found {
        cx.emit(d);
    }
}

fn dup_block(b: &ast::Block, m: usize, out: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for e in &b.entries {
        let ast::Entry::Field(f) = e else { continue };
        if let Some(first) = seen.insert(&f.key.name, f.key.span) {
            out.push(
                Diagnostic::new(
                    Code::DuplicateField,
                    file_id(m),
                    f.key.span,
                    format!("`{}` is set twice", f.key.name),
                )
                .with_label("set again here")
                .with_related(
                    Loc {
                        file: file_id(m),
                        span: first,
                    },
                    "first set here",
                )
                .with_help("remove one of them"),
            );
        }
        dup_expr(&f.value, m, out);
    }
}

fn dup_expr(e: &ast::Expr, m: usize, out: &mut Vec<Diagnostic>) {
    match &e.kind {
        ast::ExprKind::Block(b) | ast::ExprKind::Mix(b) => dup_block(b, m, out),
        ast::ExprKind::Extend { base, block } => {
            dup_expr(base, m, out);
            dup_block(block, m, out);
        }
        ast::ExprKind::List(items) => items.iter().for_each(|i| dup_expr(i, m, out)),
        _ => {}
    }
}

fn presets(cx: &mut Cx, module: Option<usize>) -> Vec<(String, hir::ModelShape)> {
    let Some(mi) = module else { return Vec::new() };
    let Some(m) = cx.modules.get(mi) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in &m.ast.items {
        let ast::Item::Decl(d) = item else { continue };
        let repo = match d.head.as_ref().map(|h| &h.kind) {
            Some(ast::ExprKind::Call { args, .. }) => match args.first().map(|a| &a.value.kind) {
                Some(ast::ExprKind::Str(s)) => s.clone(),
                _ => continue,
            },
            _ => continue,
        };
        let Some(body) = &d.body else { continue };
        let Some(shape_field) = body.entries.iter().find_map(|e| match e {
            ast::Entry::Field(f) if f.key.name == "shape" => Some(f),
            _ => None,
        }) else {
            continue;
        };
        if let Some(mut s) = cx.declared_shape(cx::V {
            expr: &shape_field.value,
            m: mi,
        }) {
            s.origin = hir::ShapeOrigin::Preset(d.name.name.clone());
            out.push((repo, s));
        }
    }
    out
}

fn lower_all(cx: &mut Cx, prog: &mut Program, presets: &[(String, hir::ModelShape)]) {
    let mut ids: Vec<DeclId> = cx.scope.values().copied().collect();
    ids.sort_by_key(|id| (id.module, id.item));
    let of = |cx: &Cx, kind: DeclKind| -> Vec<DeclId> {
        ids.iter()
            .copied()
            .filter(|id| cx.decl(*id).is_some_and(|d| d.kind == kind))
            .collect()
    };
    let dir = |cx: &Cx, id: DeclId| {
        cx.modules
            .get(id.module)
            .map(|m| m.dir.clone())
            .unwrap_or_default()
    };
    for id in of(cx, DeclKind::Device) {
        if let Some(d) = cx.lower_device(id) {
            prog.devices.push(d);
        }
    }
    for id in of(cx, DeclKind::Quant) {
        if let Some(q) = cx.lower_quant(id) {
            prog.quants.push(q);
        }
    }
    for id in of(cx, DeclKind::Model) {
        if let Some(m) = cx.lower_model(id, &dir(cx, id), presets) {
            prog.models.push(m);
        }
    }
    for id in of(cx, DeclKind::Dataset) {
        if let Some(d) = cx.lower_dataset(id, &dir(cx, id)) {
            prog.datasets.push(d);
        }
    }
    for id in of(cx, DeclKind::Adapter) {
        if cx.is_peft_decl(id) {
            if let Some(p) = cx.lower_peft(id, &dir(cx, id)) {
                prog.imported.push(p);
            }
            continue;
        }
        let mut s = Vec::new();
        if let Some(a) = cx.lower_adapter(id, None, None, &mut s) {
            prog.adapters.push(a);
        }
    }
    for id in of(cx, DeclKind::Let) {
        if let Some(d) = cx.decl(id) {
            if d.body.is_some() || d.head.is_none() {
                cx.emit(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        file_id(id.module),
                        d.name.span,
                        "a `let` binds one value: `let name = value`",
                    )
                    .with_label("malformed let")
                    .with_help("write `let lr = 2e-4`"),
                );
            }
        }
    }
    let trains: Vec<hir::Train> = of(cx, DeclKind::Train)
        .into_iter()
        .filter_map(|id| cx.lower_train(id, prog))
        .collect();
    prog.trains = trains;
    let merges: Vec<hir::Merge> = of(cx, DeclKind::Merge)
        .into_iter()
        .filter_map(|id| cx.lower_merge(id, prog))
        .collect();
    prog.merges = merges;
    let evals: Vec<hir::Eval> = of(cx, DeclKind::Eval)
        .into_iter()
        .filter_map(|id| cx.lower_eval(id, prog))
        .collect();
    prog.evals = evals;
    let mut exports = Vec::new();
    for (mi, module) in cx.modules.iter().enumerate() {
        if module.std_name.is_some() {
            continue;
        }
        for item in &module.ast.items {
            if let ast::Item::Export(e) = item {
                if let Some(x) = cx.lower_export(e, mi, &module.dir, prog) {
                    exports.push(x);
                }
            }
        }
    }
    prog.exports = exports;
}
