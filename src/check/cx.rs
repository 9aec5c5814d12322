//! The checking context: loaded modules, the name scope, diagnostics (deduplicated), and the
//! helpers every lowering step shares (look-ups, extension chains, typed value readers).

use super::hir::{LinearModule, ModelShape};
use super::load::{Import, Module};
use super::suggest;
use super::world::World;
use crate::syntax::ast::{self, DeclKind, Expr, ExprKind};
use crate::syntax::{Code, Diagnostic, FileId, Loc, Span};
use std::collections::{HashMap, HashSet};

/// A declaration: module index and item index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeclId {
    pub module: usize,
    pub item: usize,
}

/// An expression together with the module it was written in.
#[derive(Debug, Clone, Copy)]
pub struct V<'a> {
    pub expr: &'a Expr,
    pub m: usize,
}

impl V<'_> {
    pub fn loc(&self) -> Loc {
        Loc {
            file: file_id(self.m),
            span: self.expr.span,
        }
    }
}

/// A field together with its module.
#[derive(Debug, Clone, Copy)]
pub struct FieldRef<'a> {
    pub field: &'a ast::Field,
    pub m: usize,
}

impl<'a> FieldRef<'a> {
    pub fn value(&self) -> V<'a> {
        V {
            expr: &self.field.value,
            m: self.m,
        }
    }
    pub fn key(&self) -> &'a str {
        &self.field.key.name
    }
    pub fn loc(&self) -> Loc {
        Loc {
            file: file_id(self.m),
            span: self.field.key.span,
        }
    }
}

pub fn file_id(m: usize) -> FileId {
    FileId(u32::try_from(m).unwrap_or(u32::MAX))
}

/// The effective fields of a declaration after its extension chain (later entries win).
#[derive(Debug, Clone, Default)]
pub struct Fields<'a> {
    pub list: Vec<FieldRef<'a>>,
    /// `on DEVICE` clauses.
    pub on: Vec<(&'a ast::Ident, usize)>,
    pub gates: Vec<(&'a ast::Gate, usize)>,
}

impl<'a> Fields<'a> {
    pub fn get(&self, key: &str) -> Option<FieldRef<'a>> {
        self.list.iter().rev().find(|f| f.key() == key).copied()
    }
    /// Adds a block's entries (later ones override earlier).
    pub fn extend_block(&mut self, block: &'a ast::Block, m: usize) {
        for e in &block.entries {
            match e {
                ast::Entry::Field(f) => self.list.push(FieldRef { field: f, m }),
                ast::Entry::On(i, _) => self.on.push((i, m)),
                ast::Entry::Gate(g) => self.gates.push((g, m)),
            }
        }
    }
}

pub struct Cx<'a> {
    pub world: &'a dyn World,
    pub modules: &'a [Module],
    pub imports: &'a [Import],
    pub sources: &'a super::sources::Sources,
    pub diags: Vec<Diagnostic>,
    reported: HashSet<(Code, Loc)>,
    /// Names visible everywhere: user files' declarations and stdlib imports.
    pub scope: HashMap<String, DeclId>,
    pub used: HashSet<DeclId>,
    /// Names of declarations that did not parse: references to them are not reported again.
    pub broken: HashSet<String>,
    /// Files with syntax errors: unused-declaration warnings are not reported there.
    pub broken_files: HashSet<usize>,
    /// The first rows of each data file read so far ([`super::peek`]).
    pub peeked: HashMap<std::path::PathBuf, Option<std::rc::Rc<super::peek::Peeked>>>,
    /// Linear modules of each model shape met so far (hundreds of adapters share a few models).
    linear: Vec<(ModelShape, std::rc::Rc<LinearIndex>)>,
}

/// A model's linear modules, and where each last name segment (`q_proj`) occurs among them.
#[derive(Debug)]
pub struct LinearIndex {
    pub modules: Vec<LinearModule>,
    by_leaf: HashMap<String, Vec<usize>>,
}

impl LinearIndex {
    fn new(modules: Vec<LinearModule>) -> Self {
        let mut by_leaf: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, m) in modules.iter().enumerate() {
            let leaf = m.name.rsplit('.').next().unwrap_or(&m.name);
            by_leaf.entry(leaf.to_string()).or_default().push(i);
        }
        LinearIndex { modules, by_leaf }
    }

    /// Indices of the modules that `target` names (PEFT's rule, [`super::arch::matches`]).
    pub fn matching<'s>(&'s self, target: &'s str) -> impl Iterator<Item = usize> + 's {
        let leaf = target.rsplit('.').next().unwrap_or(target);
        let hits = self.by_leaf.get(leaf).map(Vec::as_slice).unwrap_or(&[]);
        hits.iter()
            .copied()
            .filter(move |&i| super::arch::matches(&self.modules[i].name, target))
    }
}

impl<'a> Cx<'a> {
    pub fn new(
        world: &'a dyn World,
        modules: &'a [Module],
        imports: &'a [Import],
        sources: &'a super::sources::Sources,
    ) -> Self {
        Cx {
            world,
            modules,
            imports,
            sources,
            diags: Vec::new(),
            reported: HashSet::new(),
            scope: HashMap::new(),
            used: HashSet::new(),
            broken: HashSet::new(),
            broken_files: HashSet::new(),
            peeked: HashMap::new(),
            linear: Vec::new(),
        }
    }

    /// The linear modules of a model of `shape` ([`super::arch::linear_modules`]), built once
    /// per shape.
    pub fn linear_modules(&mut self, shape: &ModelShape) -> std::rc::Rc<LinearIndex> {
        if let Some((_, m)) = self.linear.iter().find(|(s, _)| s == shape) {
            return m.clone();
        }
        let m = std::rc::Rc::new(LinearIndex::new(super::arch::linear_modules(shape)));
        self.linear.push((shape.clone(), m.clone()));
        m
    }

    /// Records a diagnostic once per (code, location).
    pub fn emit(&mut self, d: Diagnostic) {
        if self.reported.insert((d.code, d.loc)) {
            self.diags.push(d);
        }
    }

    pub fn decl(&self, id: DeclId) -> Option<&'a ast::Decl> {
        match self.modules.get(id.module)?.ast.items.get(id.item)? {
            ast::Item::Decl(d) => Some(d),
            _ => None,
        }
    }

    /// Name, location and doc comment of a declaration.
    pub fn meta(&self, id: DeclId, decl: &ast::Decl) -> super::hir::Meta {
        super::hir::Meta {
            name: decl.name.name.clone(),
            loc: Loc {
                file: file_id(id.module),
                span: decl.name.span,
            },
            doc: decl.doc.clone(),
        }
    }

    /// Finds `name` from module `m` (global scope first, then the module's own declarations).
    pub fn find(&self, m: usize, name: &str) -> Option<DeclId> {
        if let Some(id) = self.scope.get(name) {
            return Some(*id);
        }
        let module = self.modules.get(m)?;
        module
            .ast
            .items
            .iter()
            .enumerate()
            .find_map(|(i, it)| match it {
                ast::Item::Decl(d) if d.name.name == name => Some(DeclId { module: m, item: i }),
                _ => None,
            })
    }

    /// Names of declarations of the given kinds, for "did you mean".
    pub fn names_of(&self, kinds: &[DeclKind]) -> Vec<String> {
        let mut v: Vec<String> = self
            .scope
            .iter()
            .filter(|(_, id)| {
                self.decl(**id)
                    .is_some_and(|d| kinds.is_empty() || kinds.contains(&d.kind))
            })
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// Resolves a reference to a declaration of one of `kinds`; reports E0101 / E0110.
    pub fn lookup(&mut self, m: usize, name: &ast::Ident, kinds: &[DeclKind]) -> Option<DeclId> {
        let what = kinds
            .iter()
            .map(|k| k.keyword())
            .collect::<Vec<_>>()
            .join(" or ");
        match self.find(m, &name.name) {
            Some(id) => {
                self.used.insert(id);
                let d = self.decl(id)?;
                if kinds.contains(&d.kind) {
                    return Some(id);
                }
                let dl = Loc {
                    file: file_id(id.module),
                    span: d.name.span,
                };
                self.emit(
                    Diagnostic::new(
                        Code::WrongKind,
                        file_id(m),
                        name.span,
                        format!(
                            "`{}` is {}, but {} is expected here",
                            name.name,
                            article(d.kind.keyword()),
                            article(&what)
                        ),
                    )
                    .with_label(format!("expected {}", article(&what)))
                    .with_related(dl, format!("`{}` is declared here", name.name)),
                );
                None
            }
            None if self.broken.contains(&name.name) => None,
            None => {
                let names = self.names_of(kinds);
                let mut d = Diagnostic::new(
                    Code::UnknownName,
                    file_id(m),
                    name.span,
                    format!("no {what} named `{}`", name.name),
                )
                .with_label("not declared");
                d = d.with_help(
                    match suggest::did_you_mean(&name.name, names.iter().map(String::as_str)) {
                        Some(s) => s,
                        None if names.is_empty() => format!(
                            "declare it first: `{} {} = ...`",
                            kinds.first().map(|k| k.keyword()).unwrap_or("let"),
                            name.name
                        ),
                        None => format!("declared {what}s: {}", names.join(", ")),
                    },
                );
                self.emit(d);
                None
            }
        }
    }

    /// Follows `let` references: a single name that is a `let` yields the let's value.
    pub fn deref(&mut self, v: V<'a>) -> V<'a> {
        let mut cur = v;
        for _ in 0..16 {
            let ExprKind::Path(p) = &cur.expr.kind else {
                return cur;
            };
            let [seg] = p.segments.as_slice() else {
                return cur;
            };
            let Some(id) = self.find(cur.m, &seg.name) else {
                return cur;
            };
            let Some(d) = self.decl(id) else { return cur };
            if d.kind != DeclKind::Let {
                return cur;
            }
            self.used.insert(id);
            match &d.head {
                Some(h) => {
                    cur = V {
                        expr: h,
                        m: id.module,
                    }
                }
                None => return cur,
            }
        }
        cur
    }

    /// The builtin head (e.g. `lora`, `hf("..")`) and effective fields of a declaration, following
    /// `KIND name = other { .. }` extensions of the same kind.
    pub fn effective(&mut self, id: DeclId) -> (Option<V<'a>>, Fields<'a>) {
        let mut chain = Vec::new();
        let mut cur = id;
        let mut head = None;
        loop {
            if chain.contains(&cur) {
                if let Some(d) = self.decl(id) {
                    self.emit(
                        Diagnostic::new(Code::ExtendCycle, file_id(id.module), d.name.span, format!("`{}` extends itself", d.name.name))
                            .with_label("through this chain of extensions")
                            .with_help("an extension must end in a builtin such as `lora` or a source such as `hf(\"..\")`"),
                    );
                }
                break;
            }
            chain.push(cur);
            let Some(d) = self.decl(cur) else { break };
            let Some(h) = &d.head else { break };
            let hv = V {
                expr: h,
                m: cur.module,
            };
            if let ExprKind::Path(p) = &h.kind {
                if let [seg] = p.segments.as_slice() {
                    if let Some(next) = self.find(cur.module, &seg.name) {
                        if self
                            .decl(next)
                            .is_some_and(|nd| nd.kind == d.kind && nd.kind != DeclKind::Let)
                        {
                            self.used.insert(next);
                            cur = next;
                            continue;
                        }
                    }
                }
            }
            head = Some(hv);
            break;
        }
        let mut fields = Fields::default();
        for c in chain.iter().rev() {
            if let Some(d) = self.decl(*c) {
                if let Some(b) = &d.body {
                    fields.extend_block(b, c.module);
                }
            }
        }
        (head, fields)
    }

    // ---- typed value readers ---------------------------------------------------------

    pub fn type_error(&mut self, v: V, expected: &str, help: Option<String>) {
        let found = describe(v.expr);
        let mut d = Diagnostic::new(
            Code::TypeMismatch,
            file_id(v.m),
            v.expr.span,
            format!("expected {expected}, found {found}"),
        )
        .with_label(format!("expected {expected}"));
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.emit(d);
    }

    pub fn range_error(&mut self, v: V, what: &str, range: &str) {
        self.emit(
            Diagnostic::new(
                Code::OutOfRange,
                file_id(v.m),
                v.expr.span,
                format!("{what} must be {range}"),
            )
            .with_label("out of range")
            .with_help(format!("use a value {range}")),
        );
    }

    fn number(&mut self, v: V<'a>) -> Option<(ast::Number, V<'a>)> {
        let v = self.deref(v);
        match &v.expr.kind {
            ExprKind::Number(n) => Some((*n, v)),
            ExprKind::Neg(inner) => {
                let (n, _) = self.number(V {
                    expr: inner,
                    m: v.m,
                })?;
                Some((
                    ast::Number {
                        value: -n.value,
                        ..n
                    },
                    v,
                ))
            }
            ExprKind::Paren(inner) => self.number(V {
                expr: inner,
                m: v.m,
            }),
            _ => None,
        }
    }

    /// An integer in `min..=max`.
    pub fn int(&mut self, v: V<'a>, what: &str, min: u64, max: u64) -> Option<u64> {
        match self.number(v) {
            Some((n, nv)) if n.unit.is_none() && n.is_int => {
                if n.value < min as f64 || n.value > max as f64 {
                    let range = if max == u64::MAX {
                        format!("at least {min}")
                    } else {
                        format!("between {min} and {max}")
                    };
                    self.range_error(nv, what, &range);
                    return None;
                }
                Some(n.value as u64)
            }
            Some((n, nv)) if n.unit.is_some() => {
                self.unit_error(nv, "a whole number without a unit");
                None
            }
            _ => {
                self.type_error(v, "a whole number", None);
                None
            }
        }
    }

    /// A plain number (no unit) in `min..=max`.
    pub fn float(&mut self, v: V<'a>, what: &str, min: f64, max: f64) -> Option<f64> {
        match self.number(v) {
            Some((n, nv)) if n.unit.is_none() => {
                if n.value < min || n.value > max || !n.value.is_finite() {
                    let range = if max == f64::MAX {
                        format!("at least {min}")
                    } else {
                        format!("between {min} and {max}")
                    };
                    self.range_error(nv, what, &range);
                    return None;
                }
                Some(n.value)
            }
            Some((_, nv)) => {
                self.unit_error(nv, "a number without a unit");
                None
            }
            None => {
                self.type_error(v, "a number", None);
                None
            }
        }
    }

    /// A fraction: `10%` or a plain number in 0..=1.
    pub fn fraction(&mut self, v: V<'a>, what: &str) -> Option<f64> {
        match self.number(v) {
            Some((n, nv)) => {
                let f = match n.unit {
                    Some(ast::Unit::Percent) => n.value / 100.0,
                    None => n.value,
                    Some(_) => {
                        self.unit_error(nv, "a percentage (`10%`) or a fraction (`0.1`)");
                        return None;
                    }
                };
                if !(0.0..=1.0).contains(&f) {
                    self.range_error(nv, what, "between 0% and 100%");
                    return None;
                }
                Some(f)
            }
            None => {
                self.type_error(v, "a percentage (`10%`) or a fraction (`0.1`)", None);
                None
            }
        }
    }

    /// A size in bytes (`24GiB`).
    pub fn size(&mut self, v: V<'a>) -> Option<u64> {
        match self.number(v) {
            Some((n, nv)) => match n.unit.and_then(|u| u.bytes()) {
                Some(mult) if n.value >= 0.0 => Some((n.value * mult) as u64),
                Some(_) => {
                    self.range_error(nv, "a size", "at least 0");
                    None
                }
                None => {
                    self.unit_error(nv, "a size such as `24GiB` or `512MB`");
                    None
                }
            },
            None => {
                self.type_error(v, "a size such as `24GiB`", None);
                None
            }
        }
    }

    pub fn unit_error(&mut self, v: V, expected: &str) {
        self.emit(
            Diagnostic::new(
                Code::WrongUnit,
                file_id(v.m),
                v.expr.span,
                format!("expected {expected}, found {}", describe(v.expr)),
            )
            .with_label("wrong unit")
            .with_help(format!("write {expected}")),
        );
    }

    pub fn boolean(&mut self, v: V<'a>) -> Option<bool> {
        let v = self.deref(v);
        match &v.expr.kind {
            ExprKind::Bool(b) => Some(*b),
            _ => {
                self.type_error(v, "`true` or `false`", None);
                None
            }
        }
    }

    pub fn string(&mut self, v: V<'a>) -> Option<String> {
        let v = self.deref(v);
        match &v.expr.kind {
            ExprKind::Str(s) => Some(s.clone()),
            _ => {
                self.type_error(v, "a string", None);
                None
            }
        }
    }

    /// A bare name (enum value), with its span.
    pub fn name(&mut self, v: V<'a>) -> Option<(String, Span)> {
        match &v.expr.kind {
            ExprKind::Path(p) if p.segments.len() == 1 => {
                p.segments.first().map(|s| (s.name.clone(), s.span))
            }
            _ => None,
        }
    }

    /// One of `options` (a bare name); E0203 with "did you mean" otherwise.
    pub fn choice(
        &mut self,
        v: V<'a>,
        what: &str,
        options: &[&'static str],
    ) -> Option<&'static str> {
        let v = self.deref(v);
        let (name, span) = match self.name(v) {
            Some(n) => n,
            None => {
                self.type_error(v, &format!("{what} ({})", options.join(", ")), None);
                return None;
            }
        };
        if let Some(o) = options.iter().find(|o| **o == name) {
            return Some(o);
        }
        if self.broken.contains(&name) {
            // A name whose import or declaration failed: already reported there.
            return None;
        }
        let help = match suggest::did_you_mean(&name, options.iter().copied()) {
            Some(s) => s,
            None => format!("choose one of {}", options.join(", ")),
        };
        self.emit(
            Diagnostic::new(
                Code::UnknownVariant,
                file_id(v.m),
                span,
                format!("unknown {what} `{name}`"),
            )
            .with_label(format!("not a known {what}"))
            .with_help(help),
        );
        None
    }

    /// The elements of a list (a single value counts as a list of one).
    pub fn list(&mut self, v: V<'a>) -> Vec<V<'a>> {
        let v = self.deref(v);
        match &v.expr.kind {
            ExprKind::List(items) => items.iter().map(|e| V { expr: e, m: v.m }).collect(),
            _ => vec![v],
        }
    }

    /// Reports fields whose key is not in `allowed`, with "did you mean" or the other tool's
    /// spelling.
    pub fn check_keys(&mut self, fields: &Fields<'a>, allowed: &[&str], what: &str) {
        for f in &fields.list {
            let key = f.key();
            if allowed.contains(&key) {
                continue;
            }
            if let Some((ours, note)) = super::schema::foreign(key) {
                if allowed
                    .iter()
                    .any(|a| ours.split(['.', ' ']).next() == Some(*a))
                    || allowed.contains(&ours)
                {
                    self.emit(
                        Diagnostic::new(
                            Code::ForeignSpelling,
                            file_id(f.m),
                            f.field.key.span,
                            format!("`{key}` is spelled `{ours}` in .peft"),
                        )
                        .with_label(format!("write `{ours}`"))
                        .with_help(self.foreign_help(key, ours, note, f)),
                    );
                    continue;
                }
            }
            let help = match suggest::did_you_mean(key, allowed.iter().copied()) {
                Some(s) => s,
                None => format!("the fields of {what} are {}", allowed.join(", ")),
            };
            self.emit(
                Diagnostic::new(
                    Code::UnknownField,
                    file_id(f.m),
                    f.field.key.span,
                    format!("unknown field `{key}` in {what}"),
                )
                .with_label("unknown field")
                .with_help(help),
            );
        }
    }

    /// The help for a field spelled as in another tool, built from the value the user wrote:
    /// `learning_rate = 1e-5` gets "write `lr = 1e-5`".
    fn foreign_help(&self, key: &str, ours: &str, note: &str, f: &FieldRef) -> String {
        let value = &f.field.value;
        let text = self
            .sources
            .get(file_id(f.m))
            .map(|s| value.span.text(&s.text).trim().to_string())
            .unwrap_or_default();
        // Strings become bare names where peftc takes a name (`"cosine"` -> `cosine`).
        let bare = |e: &Expr| -> Option<String> {
            match &e.kind {
                ExprKind::Str(s)
                    if !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') =>
                {
                    Some(s.clone())
                }
                _ => None,
            }
        };
        let named = |e: &Expr| -> String {
            match &e.kind {
                ExprKind::List(items) => {
                    let v: Option<Vec<String>> = items.iter().map(&bare).collect();
                    v.map(|v| format!("[{}]", v.join(", ")))
                        .unwrap_or_else(|| text.clone())
                }
                _ => bare(e).unwrap_or_else(|| text.clone()),
            }
        };
        let written = match (key, ours) {
            ("lora_target_linear", _) => Some("`targets = all_linear`".to_string()),
            ("warmup_steps" | "warmup_ratio", _) => {
                let w = match &value.kind {
                    ExprKind::Number(n)
                        if key == "warmup_ratio" && n.unit.is_none() && n.value < 1.0 =>
                    {
                        format!("{}%", (n.value * 1000.0).round() / 10.0)
                    }
                    _ => text.clone(),
                };
                return format!(
                    "warmup is set on the schedule: write `schedule = cosine {{ warmup = {w} }}`"
                );
            }
            ("weight_decay", _) => Some(format!("`optimizer = adamw {{ weight_decay = {text} }}`")),
            ("train_on_inputs", _) => match &value.kind {
                ExprKind::Bool(b) => Some(format!("`completion_only = {}`", !b)),
                _ => None,
            },
            ("val_set_size" | "test_size", _) => match &value.kind {
                ExprKind::Number(n) if n.unit.is_none() && n.value > 0.0 && n.value < 1.0 => {
                    let eval = (n.value * 100.0).round();
                    Some(format!(
                        "`split = {{ train = {}%, eval = {eval}%, seed = 7 }}`",
                        100.0 - eval
                    ))
                }
                _ => None,
            },
            (_, "targets" | "schedule" | "init" | "optimizer" | "template") => {
                Some(format!("`{ours} = {}`", named(value)))
            }
            (_, "model" | "task" | "split" | "compute") => None,
            _ if !text.is_empty() => Some(format!("`{ours} = {text}`")),
            _ => None,
        };
        match written {
            Some(w) if note.starts_with("write ") => format!("write {w}"),
            Some(w) => format!("{note}: write {w}"),
            None => note.to_string(),
        }
    }

    pub fn missing(&mut self, m: usize, span: Span, field: &str, what: &str, example: &str) {
        self.emit(
            Diagnostic::new(
                Code::MissingField,
                file_id(m),
                span,
                format!("{what} needs `{field}`"),
            )
            .with_label(format!("`{field}` is missing"))
            .with_help(format!("add `{field} = {example}`")),
        );
    }
}

/// `a model`, `an adapter`, `an eval`.
pub fn article(noun: &str) -> String {
    let vowel = noun
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {noun}", if vowel { "an" } else { "a" })
}

/// A short description of what an expression is, for "found ...".
pub fn describe(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Number(n) => match n.unit {
            Some(ast::Unit::Percent) => "a percentage".into(),
            Some(_) => "a size".into(),
            None if n.is_int => "a whole number".into(),
            None => "a number".into(),
        },
        ExprKind::Str(_) => "a string".into(),
        ExprKind::Bool(_) => "a boolean".into(),
        ExprKind::Path(p) => format!("`{}`", p.dotted()),
        ExprKind::Call { callee, .. } => format!("a call to `{}`", callee.name),
        ExprKind::List(_) => "a list".into(),
        ExprKind::Block(_) => "a record `{ .. }`".into(),
        ExprKind::Extend { .. } => "a configured value `.. { .. }`".into(),
        ExprKind::Quantized { .. } => "a quantized model".into(),
        ExprKind::Sweep(_) => "a sweep".into(),
        ExprKind::Escalate(_) => "an escalation".into(),
        ExprKind::Mix(_) => "a mix".into(),
        ExprKind::Binary { .. } | ExprKind::Neg(_) => "an expression".into(),
        ExprKind::Paren(inner) => describe(inner),
    }
}
