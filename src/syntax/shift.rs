//! Moving a syntax tree along its file: adds a byte delta to every span in an item, so an item
//! parsed at one offset can be reused at another after an edit above it. Must not change
//! anything but spans.

use super::ast::{Block, Entry, Expr, ExprKind, Ident, Item, Path, StrLit, UseTarget};
use super::span::Span;

/// Adds `delta` to every span inside `item`.
pub fn shift_item(item: &mut Item, delta: i64) {
    match item {
        Item::Use(u) => {
            match &mut u.target {
                UseTarget::Module(segs) => segs.iter_mut().for_each(|s| ident(s, delta)),
                UseTarget::File(s) => str_lit(s, delta),
            }
            if let Some(names) = &mut u.names {
                names.iter_mut().for_each(|n| ident(n, delta));
            }
            span(&mut u.span, delta);
        }
        Item::Decl(d) => {
            span(&mut d.kind_span, delta);
            ident(&mut d.name, delta);
            if let Some(h) = &mut d.head {
                expr(h, delta);
            }
            if let Some(b) = &mut d.body {
                block(b, delta);
            }
            span(&mut d.span, delta);
        }
        Item::Export(e) => {
            path(&mut e.source, delta);
            str_lit(&mut e.dest, delta);
            if let Some(f) = &mut e.format {
                ident(f, delta);
            }
            if let Some(b) = &mut e.body {
                block(b, delta);
            }
            span(&mut e.span, delta);
        }
        Item::Error(s) => span(s, delta),
    }
}

fn span(s: &mut Span, delta: i64) {
    let at = |x: u32| u32::try_from(i64::from(x) + delta).unwrap_or(0);
    *s = Span {
        start: at(s.start),
        end: at(s.end),
    };
}

fn ident(i: &mut Ident, delta: i64) {
    span(&mut i.span, delta);
}

fn str_lit(s: &mut StrLit, delta: i64) {
    span(&mut s.span, delta);
}

fn path(p: &mut Path, delta: i64) {
    p.segments.iter_mut().for_each(|s| ident(s, delta));
    span(&mut p.span, delta);
}

fn block(b: &mut Block, delta: i64) {
    for e in &mut b.entries {
        match e {
            Entry::Field(f) => {
                ident(&mut f.key, delta);
                expr(&mut f.value, delta);
                span(&mut f.span, delta);
            }
            Entry::Gate(g) => {
                expr(&mut g.expr, delta);
                span(&mut g.span, delta);
            }
            Entry::On(i, s) => {
                ident(i, delta);
                span(s, delta);
            }
        }
    }
    span(&mut b.span, delta);
}

fn expr(e: &mut Expr, delta: i64) {
    match &mut e.kind {
        ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) => {}
        ExprKind::Path(p) => path(p, delta),
        ExprKind::Call { callee, args } => {
            ident(callee, delta);
            for a in args {
                if let Some(n) = &mut a.name {
                    ident(n, delta);
                }
                expr(&mut a.value, delta);
            }
        }
        ExprKind::List(xs) | ExprKind::Sweep(xs) | ExprKind::Escalate(xs) => {
            xs.iter_mut().for_each(|x| expr(x, delta));
        }
        ExprKind::Block(b) | ExprKind::Mix(b) => block(b, delta),
        ExprKind::Extend { base, block: b } => {
            expr(base, delta);
            block(b, delta);
        }
        ExprKind::Quantized { base, quant } => {
            expr(base, delta);
            path(quant, delta);
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            expr(lhs, delta);
            expr(rhs, delta);
        }
        ExprKind::Neg(x) | ExprKind::Paren(x) => expr(x, delta),
    }
    span(&mut e.span, delta);
}
