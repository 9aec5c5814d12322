//! Turns pest pairs of one parsed item into AST nodes, converting every pest span to a
//! [`Span`] at once (offset by where the item starts in the file). Must not report errors (the
//! grammar already accepted the input), with one exception: it never builds a tree deeper than
//! [`MAX_DEPTH`] (every later walk over the tree recurses), and says where it stopped instead.

use super::ast::*;
use super::grammar::Rule;
use super::span::Span;
use pest::iterators::Pair;
use std::cell::Cell;

/// The deepest syntax tree built: levels of brackets, blocks, operators in a chain and signs
/// (`- - x`) together. Real pipelines use a handful; the checker, formatter and language server
/// walk trees recursively, so a bound here keeps every walk within a small stack.
pub const MAX_DEPTH: usize = 100;

/// Converts pairs of one chunk; `base` is the chunk's byte offset in the file.
pub struct Builder {
    pub base: usize,
    /// Levels of the tree above the node being built.
    depth: Cell<usize>,
    /// Where the tree first grew deeper than [`MAX_DEPTH`] (that part was not built).
    too_deep: Cell<Option<Span>>,
}

type P<'a> = Pair<'a, Rule>;

impl Builder {
    /// A builder for the chunk starting at byte `base`.
    pub fn new(base: usize) -> Self {
        Builder {
            base,
            depth: Cell::new(0),
            too_deep: Cell::new(None),
        }
    }

    /// Where the tree would have grown deeper than [`MAX_DEPTH`], if it would.
    pub fn too_deep(&self) -> Option<Span> {
        self.too_deep.get()
    }

    /// Runs `f` `levels` deeper in the tree, or records `span` as too deep and returns `None`.
    fn deeper<T>(&self, levels: usize, span: Span, f: impl FnOnce() -> T) -> Option<T> {
        let d = self.depth.get();
        if d + levels > MAX_DEPTH {
            if self.too_deep.get().is_none() {
                self.too_deep.set(Some(span));
            }
            return None;
        }
        self.depth.set(d + levels);
        let out = f();
        self.depth.set(d);
        Some(out)
    }

    /// The pair's span without trailing blanks (pest can end a rule after the whitespace it
    /// skipped looking for more), so a diagnostic underlines only what was written.
    fn span(&self, p: &P) -> Span {
        let s = p.as_span();
        let len = p.as_str().trim_end().len();
        Span::new(self.base + s.start(), self.base + s.start() + len)
    }

    fn ident(&self, p: &P) -> Ident {
        Ident {
            name: p.as_str().to_string(),
            span: self.span(p),
        }
    }

    /// An `item` pair (use_decl, export_decl or decl).
    pub fn item(&self, p: P) -> Option<Item> {
        match p.as_rule() {
            Rule::use_decl => Some(Item::Use(self.use_decl(p))),
            Rule::export_decl => Some(Item::Export(self.export(p))),
            Rule::decl => Some(Item::Decl(self.decl(p))),
            _ => None,
        }
    }

    fn use_decl(&self, p: P) -> Use {
        let span = self.span(&p);
        let mut target = UseTarget::Module(Vec::new());
        let mut names = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::string => target = UseTarget::File(self.string(c)),
                Rule::use_path => {
                    let mut segs = Vec::new();
                    for s in c.into_inner() {
                        match s.as_rule() {
                            Rule::key => segs.push(self.ident(&s)),
                            Rule::use_names => {
                                names = Some(s.into_inner().map(|n| self.ident(&n)).collect())
                            }
                            _ => {}
                        }
                    }
                    target = UseTarget::Module(segs);
                }
                _ => {}
            }
        }
        Use {
            target,
            names,
            span,
        }
    }

    fn decl(&self, p: P) -> Decl {
        let span = self.span(&p);
        let mut kind = DeclKind::Let;
        let mut kind_span = span;
        let mut name = Ident {
            name: String::new(),
            span,
        };
        let mut head = None;
        let mut body = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::decl_kw => {
                    kind = DeclKind::from_keyword(c.as_str()).unwrap_or(DeclKind::Let);
                    kind_span = self.span(&c);
                }
                Rule::ident => name = self.ident(&c),
                Rule::head_expr => head = Some(self.expr(c)),
                Rule::block => body = Some(self.block(c)),
                _ => {}
            }
        }
        Decl {
            kind,
            kind_span,
            name,
            head,
            body,
            doc: None,
            span,
        }
    }

    fn export(&self, p: P) -> Export {
        let span = self.span(&p);
        let mut source = Path {
            segments: Vec::new(),
            span,
        };
        let mut dest = StrLit {
            value: String::new(),
            span,
        };
        let mut format = None;
        let mut body = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::path => source = self.path(c),
                Rule::string => dest = self.string(c),
                Rule::key => format = Some(self.ident(&c)),
                Rule::block => body = Some(self.block(c)),
                _ => {}
            }
        }
        Export {
            source,
            dest,
            format,
            body,
            doc: None,
            span,
        }
    }

    fn block(&self, p: P) -> Block {
        let span = self.span(&p);
        let entries = self.deeper(1, span, || self.entries(p)).unwrap_or_default();
        Block { entries, span }
    }

    fn entries(&self, p: P) -> Vec<Entry> {
        let mut entries = Vec::new();
        for c in p.into_inner() {
            let espan = self.span(&c);
            match c.as_rule() {
                Rule::field => {
                    let mut key = Ident {
                        name: String::new(),
                        span: espan,
                    };
                    let mut colon = false;
                    let mut value = None;
                    for f in c.into_inner() {
                        match f.as_rule() {
                            Rule::field_key => key = self.ident(&f),
                            Rule::colon => colon = true,
                            Rule::expr => value = Some(self.expr(f)),
                            _ => {}
                        }
                    }
                    let value = value.unwrap_or(Expr {
                        kind: ExprKind::List(Vec::new()),
                        span: espan,
                    });
                    entries.push(Entry::Field(Field {
                        key,
                        colon,
                        value,
                        doc: None,
                        span: espan,
                    }));
                }
                Rule::gate => {
                    if let Some(e) = c.into_inner().find(|x| x.as_rule() == Rule::expr) {
                        entries.push(Entry::Gate(Gate {
                            expr: self.expr(e),
                            span: espan,
                        }));
                    }
                }
                Rule::on_clause => {
                    if let Some(i) = c.into_inner().find(|x| x.as_rule() == Rule::ident) {
                        entries.push(Entry::On(self.ident(&i), espan));
                    }
                }
                _ => {}
            }
        }
        entries
    }

    fn string(&self, p: P) -> StrLit {
        let span = self.span(&p);
        let raw = p.into_inner().next().map(|i| i.as_str()).unwrap_or("");
        StrLit {
            value: unescape(raw),
            span,
        }
    }

    fn path(&self, p: P) -> Path {
        let span = self.span(&p);
        let segments = p.into_inner().map(|s| self.ident(&s)).collect();
        Path { segments, span }
    }

    /// Any expression-level pair.
    pub fn expr(&self, p: P) -> Expr {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::expr | Rule::head_expr => self.binary_chain(p),
            Rule::operand | Rule::head_operand => {
                // Each sign and each `quantized ..` / `{ .. }` after the value is a level.
                let levels = p
                    .clone()
                    .into_inner()
                    .filter(|c| matches!(c.as_rule(), Rule::neg | Rule::quantized | Rule::block))
                    .count();
                self.deeper(levels, span, || self.operand(p))
                    .unwrap_or(empty(span))
            }
            Rule::paren => self
                .deeper(1, span, || self.paren(p))
                .unwrap_or(empty(span)),
            _ => self
                .deeper(1, span, || self.nested(p))
                .unwrap_or(empty(span)),
        }
    }

    /// A value with its signs and suffixes (`-x`, `m quantized q`, `base { .. }`).
    fn operand(&self, p: P) -> Expr {
        let span = self.span(&p);
        let mut negs = 0;
        let mut e: Option<Expr> = None;
        for c in p.into_inner() {
            let cspan = self.span(&c);
            match (c.as_rule(), e.take()) {
                (Rule::neg, None) => negs += 1,
                (Rule::quantized, Some(base)) => {
                    let quant = c
                        .into_inner()
                        .find(|x| x.as_rule() == Rule::path)
                        .map(|q| self.path(q))
                        .unwrap_or(Path {
                            segments: Vec::new(),
                            span: cspan,
                        });
                    let whole = base.span.to(cspan);
                    e = Some(Expr {
                        kind: ExprKind::Quantized {
                            base: Box::new(base),
                            quant,
                        },
                        span: whole,
                    });
                }
                (Rule::block, Some(base)) => {
                    let whole = base.span.to(cspan);
                    e = Some(Expr {
                        kind: ExprKind::Extend {
                            base: Box::new(base),
                            block: self.block(c),
                        },
                        span: whole,
                    });
                }
                (_, prev) => e = prev.or_else(|| Some(self.expr(c))),
            }
        }
        let mut e = e.unwrap_or(empty(span));
        // `-` up to the end of the number: not the whitespace or comment after it.
        let neg_span = Span {
            start: span.start,
            end: e.span.end.max(span.start),
        };
        for _ in 0..negs {
            e = Expr {
                kind: ExprKind::Neg(Box::new(e)),
                span: neg_span,
            };
        }
        e
    }

    fn paren(&self, p: P) -> Expr {
        let span = self.span(&p);
        let inner = p
            .into_inner()
            .next()
            .map(|c| self.expr(c))
            .unwrap_or(empty(span));
        Expr {
            kind: ExprKind::Paren(Box::new(inner)),
            span,
        }
    }

    /// Values that hold other values (lists, calls, records, searches, mixes) and atoms.
    fn nested(&self, p: P) -> Expr {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::sweep | Rule::escalate => {
                let rule = p.as_rule();
                let items = p
                    .into_inner()
                    .find(|x| x.as_rule() == Rule::list)
                    .map(|l| l.into_inner().map(|x| self.expr(x)).collect())
                    .unwrap_or_default();
                let kind = if rule == Rule::sweep {
                    ExprKind::Sweep(items)
                } else {
                    ExprKind::Escalate(items)
                };
                Expr { kind, span }
            }
            Rule::mix => {
                let b = p.into_inner().find(|x| x.as_rule() == Rule::block);
                let block = b.map(|b| self.block(b)).unwrap_or(Block {
                    entries: Vec::new(),
                    span,
                });
                Expr {
                    kind: ExprKind::Mix(block),
                    span,
                }
            }
            Rule::call => {
                let mut inner = p.into_inner();
                let callee = inner.next().map(|c| self.ident(&c)).unwrap_or(Ident {
                    name: String::new(),
                    span,
                });
                let args = inner
                    .map(|a| {
                        let mut name = None;
                        let mut value = empty(span);
                        for x in a.into_inner() {
                            match x.as_rule() {
                                Rule::key => name = Some(self.ident(&x)),
                                Rule::expr => value = self.expr(x),
                                _ => {}
                            }
                        }
                        Arg { name, value }
                    })
                    .collect();
                Expr {
                    kind: ExprKind::Call { callee, args },
                    span,
                }
            }
            Rule::list => Expr {
                kind: ExprKind::List(p.into_inner().map(|x| self.expr(x)).collect()),
                span,
            },
            Rule::block => Expr {
                kind: ExprKind::Block(self.block(p)),
                span,
            },
            Rule::number => {
                let mut value = 0.0;
                let mut is_int = true;
                let mut unit = None;
                for c in p.into_inner() {
                    match c.as_rule() {
                        Rule::num_lit => {
                            let t: String = c.as_str().chars().filter(|&ch| ch != '_').collect();
                            is_int = !t.contains(['.', 'e', 'E']);
                            value = t.parse().unwrap_or(0.0);
                        }
                        Rule::unit => unit = Unit::parse(c.as_str()),
                        _ => {}
                    }
                }
                Expr {
                    kind: ExprKind::Number(Number {
                        value,
                        is_int,
                        unit,
                    }),
                    span,
                }
            }
            Rule::string => {
                let s = self.string(p);
                Expr {
                    kind: ExprKind::Str(s.value),
                    span,
                }
            }
            Rule::boolean => Expr {
                kind: ExprKind::Bool(p.as_str().trim() == "true"),
                span,
            },
            Rule::path => Expr {
                kind: ExprKind::Path(self.path(p)),
                span,
            },
            _ => empty(span),
        }
    }

    /// `a OP b OP c` with precedence (`* /` over `+ -` over comparisons), left-associative.
    fn binary_chain(&self, p: P) -> Expr {
        let span = self.span(&p);
        // A chain of n operators can build a tree n levels deep.
        let ops = p.clone().into_inner().count() / 2;
        self.deeper(ops, span, || self.chain(p))
            .unwrap_or(empty(span))
    }

    fn chain(&self, p: P) -> Expr {
        let span = self.span(&p);
        let mut inner = p.into_inner();
        let mut out: Vec<Expr> = match inner.next() {
            Some(c) => vec![self.expr(c)],
            None => return empty(span),
        };
        let mut ops: Vec<BinOp> = Vec::new();
        while let Some(op) = inner.next() {
            let op = match op.as_str() {
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                ">=" => BinOp::Ge,
                "<=" => BinOp::Le,
                ">" => BinOp::Gt,
                "<" => BinOp::Lt,
                "==" => BinOp::Eq,
                _ => BinOp::Ne,
            };
            let Some(rhs) = inner.next() else { break };
            while ops.last().is_some_and(|top| prec(*top) >= prec(op)) {
                reduce(&mut out, &mut ops);
            }
            ops.push(op);
            out.push(self.expr(rhs));
        }
        while !ops.is_empty() {
            reduce(&mut out, &mut ops);
        }
        out.pop().unwrap_or(empty(span))
    }
}

fn prec(op: BinOp) -> u8 {
    match op {
        BinOp::Mul | BinOp::Div => 3,
        BinOp::Add | BinOp::Sub => 2,
        _ => 1,
    }
}

fn reduce(out: &mut Vec<Expr>, ops: &mut Vec<BinOp>) {
    let (Some(op), Some(rhs), Some(lhs)) = (ops.pop(), out.pop(), out.pop()) else {
        return;
    };
    let span = lhs.span.to(rhs.span);
    out.push(Expr {
        kind: ExprKind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
        span,
    });
}

fn empty(span: Span) -> Expr {
    Expr {
        kind: ExprKind::List(Vec::new()),
        span,
    }
}

/// Resolves `\"`, `\\`, `\n`, `\t`; other escapes keep the escaped char.
pub fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}
