//! Prints an [`ast::File`] in the canonical layout, interleaving the file's comments by span.
//! Decides per list or record whether it stays on one line (written on one line, no comment
//! inside, fits the width) or gets one element per line. Must not change what the file means:
//! numbers and strings are copied from the source text.

use super::FormatConfig;
use crate::syntax::ast::{self, Block, Entry, Expr, ExprKind, Item};
use crate::syntax::Span;

/// The formatted text of `file` (parsed from `src`), ending with one newline.
pub(super) fn print(src: &str, file: &ast::File, cfg: FormatConfig) -> String {
    let mut p = Printer {
        src,
        comments: &file.comments,
        next: 0,
        out: String::new(),
        cfg,
        last_end: 0,
        fresh: true,
    };
    for item in &file.items {
        let span = p.tight(item.span());
        p.leading(span.start, 0);
        p.separate(span.start);
        p.newline(0);
        p.item(item);
        p.done(span.end);
        p.trailing(span.end);
    }
    p.leading(u32::MAX, 0);
    let mut out = p.out;
    while out.ends_with('\n') {
        out.pop();
    }
    out.push('\n');
    if out.trim().is_empty() {
        return String::new();
    }
    out
}

struct Printer<'a> {
    src: &'a str,
    comments: &'a [ast::Comment],
    /// The first comment not printed yet.
    next: usize,
    out: String,
    cfg: FormatConfig,
    /// End of the last element printed (node or comment), for blank-line detection.
    last_end: u32,
    /// Nothing printed yet in the current block.
    fresh: bool,
}

/// Whether `gap` (source between two elements) holds an empty line.
fn has_blank_line(gap: &str) -> bool {
    let parts: Vec<&str> = gap.split('\n').collect();
    parts.len() > 2
        && parts[1..parts.len() - 1]
            .iter()
            .any(|l| l.trim().is_empty())
}

impl Printer<'_> {
    fn text(&self, span: Span) -> &str {
        span.text(self.src).trim()
    }

    fn newline(&mut self, indent: usize) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        for _ in 0..indent * self.cfg.indent {
            self.out.push(' ');
        }
    }

    fn column(&self) -> usize {
        self.out
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
    }

    /// A blank line before the element at `start` when the source had one (never first in a block).
    fn separate(&mut self, start: u32) {
        let gap = self
            .src
            .get(self.last_end as usize..start as usize)
            .unwrap_or("");
        if !self.fresh && has_blank_line(gap) {
            self.out.push('\n');
        }
    }

    fn done(&mut self, end: u32) {
        self.last_end = self.last_end.max(end);
        self.fresh = false;
    }

    /// Prints, each on its own line, the comments that start before `upto`.
    fn leading(&mut self, upto: u32, indent: usize) {
        while let Some(c) = self.comments.get(self.next) {
            if c.span.start >= upto {
                break;
            }
            self.next += 1;
            self.separate(c.span.start);
            self.newline(indent);
            self.comment(c);
            self.done(c.span.end);
        }
    }

    /// A comment after `end` on the same source line is kept at the end of the printed line.
    fn trailing(&mut self, end: u32) {
        let Some(c) = self.comments.get(self.next) else {
            return;
        };
        if c.span.start < end {
            return;
        }
        let gap = self
            .src
            .get(end as usize..c.span.start as usize)
            .unwrap_or("\n");
        if gap.contains('\n') || !gap.trim().trim_matches(',').trim().is_empty() {
            return;
        }
        self.next += 1;
        self.out.push(' ');
        self.comment(c);
        self.done(c.span.end);
    }

    fn comment(&mut self, c: &ast::Comment) {
        let marker = if c.doc { "///" } else { "//" };
        self.out.push_str(marker);
        self.out.push_str(c.text.trim_end());
    }

    /// `span` without the whitespace and comments at its end (the parser's spans may include them).
    fn tight(&self, span: Span) -> Span {
        let mut end = span.end as usize;
        let start = span.start as usize;
        loop {
            while end > start
                && self
                    .src
                    .as_bytes()
                    .get(end - 1)
                    .is_some_and(|b| b.is_ascii_whitespace())
            {
                end -= 1;
            }
            let i = self
                .comments
                .partition_point(|c| (c.span.end as usize) < end);
            match self.comments.get(i) {
                Some(c) if c.span.end as usize == end && c.span.start as usize >= start => {
                    end = c.span.start as usize
                }
                _ => break,
            }
        }
        Span::new(start, end)
    }

    fn has_comment_in(&self, span: Span) -> bool {
        let span = self.tight(span);
        let rest = self.comments.get(self.next..).unwrap_or(&[]);
        let i = rest.partition_point(|c| c.span.start < span.start);
        rest.get(i).is_some_and(|c| c.span.start < span.end)
    }

    fn spans_lines(&self, span: Span) -> bool {
        self.tight(span).text(self.src).contains('\n')
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Use(u) => {
                self.out.push_str("use ");
                match &u.target {
                    ast::UseTarget::Module(segs) => {
                        let names: Vec<&str> = segs.iter().map(|s| s.name.as_str()).collect();
                        self.out.push_str(&names.join("."));
                    }
                    ast::UseTarget::File(s) => {
                        let t = self.text(s.span).to_string();
                        self.out.push_str(&t);
                    }
                }
                if let Some(names) = &u.names {
                    let names: Vec<&str> = names.iter().map(|s| s.name.as_str()).collect();
                    self.out.push_str(&format!(".{{{}}}", names.join(", ")));
                }
            }
            Item::Decl(d) => {
                self.out.push_str(d.kind.keyword());
                self.out.push(' ');
                self.out.push_str(&d.name.name);
                if let Some(h) = &d.head {
                    self.out.push_str(" = ");
                    self.expr(h, 0);
                }
                if let Some(b) = &d.body {
                    self.out.push(' ');
                    self.block(b, 0, true);
                }
            }
            Item::Export(e) => {
                self.out.push_str("export ");
                self.out.push_str(&e.source.dotted());
                self.out.push_str(" to ");
                let dest = self.text(e.dest.span).to_string();
                self.out.push_str(&dest);
                if let Some(f) = &e.format {
                    self.out.push_str(" as ");
                    self.out.push_str(&f.name);
                }
                if let Some(b) = &e.body {
                    self.out.push(' ');
                    self.block(b, 0, true);
                }
            }
            Item::Error(span) => {
                let t = self.text(*span).to_string();
                self.out.push_str(&t);
            }
        }
    }

    /// `{ .. }`: on one line when allowed and it fits, else one entry per line.
    fn block(&mut self, b: &Block, indent: usize, force_lines: bool) {
        if b.entries.is_empty() && !self.has_comment_in(b.span) {
            self.out.push_str("{}");
            return;
        }
        if !force_lines {
            if let Some(flat) = self.flat_block(b) {
                if self.column() + flat.len() <= self.cfg.width {
                    self.out.push_str(&flat);
                    return;
                }
            }
        }
        self.out.push('{');
        let pads = self.field_pads(&b.entries);
        let saved = (self.fresh, self.last_end);
        self.fresh = true;
        self.last_end = b.span.start;
        for (e, pad) in b.entries.iter().zip(pads) {
            let span = self.tight(e.span());
            self.leading(span.start, indent + 1);
            self.separate(span.start);
            self.newline(indent + 1);
            self.entry(e, pad, indent + 1);
            self.done(span.end);
            self.trailing(span.end);
        }
        let end = self.tight(b.span).end;
        self.leading(end, indent + 1);
        self.newline(indent);
        self.out.push('}');
        self.fresh = saved.0;
        self.last_end = end.max(saved.1);
    }

    /// The key width of each entry's group (fields in consecutive lines align their `=`).
    fn field_pads(&self, entries: &[Entry]) -> Vec<usize> {
        let mut pads = vec![0; entries.len()];
        if !self.cfg.align_fields {
            return pads;
        }
        let mut start = 0;
        for i in 0..=entries.len() {
            let brk = match (
                i.checked_sub(1).and_then(|j| entries.get(j)),
                entries.get(i),
            ) {
                (Some(a), Some(b)) => has_blank_line(
                    self.src
                        .get(self.tight(a.span()).end as usize..b.span().start as usize)
                        .unwrap_or(""),
                ),
                _ => true,
            };
            if brk && i > start {
                let width = entries[start..i]
                    .iter()
                    .filter_map(eq_key_len)
                    .max()
                    .unwrap_or(0);
                for p in &mut pads[start..i] {
                    *p = width;
                }
                start = i;
            }
        }
        pads
    }

    fn entry(&mut self, e: &Entry, pad: usize, indent: usize) {
        match e {
            Entry::Field(f) => {
                self.out.push_str(&f.key.name);
                if f.colon {
                    self.out.push_str(": ");
                } else {
                    for _ in f.key.name.chars().count()..pad {
                        self.out.push(' ');
                    }
                    self.out.push_str(" = ");
                }
                self.expr(&f.value, indent);
            }
            Entry::Gate(g) => {
                self.out.push_str("gate ");
                self.expr(&g.expr, indent);
            }
            Entry::On(name, _) => {
                self.out.push_str("on ");
                self.out.push_str(&name.name);
            }
        }
    }

    fn expr(&mut self, e: &Expr, indent: usize) {
        if let Some(flat) = self.flat(e) {
            let breakable = matches!(
                e.kind,
                ExprKind::List(_) | ExprKind::Sweep(_) | ExprKind::Escalate(_)
            );
            if !breakable || self.column() + flat.len() <= self.cfg.width {
                self.out.push_str(&flat);
                return;
            }
        }
        match &e.kind {
            ExprKind::List(items) => self.list(items, self.tight(e.span).end, indent),
            ExprKind::Sweep(items) => {
                self.out.push_str("sweep ");
                self.list(items, self.tight(e.span).end, indent);
            }
            ExprKind::Escalate(items) => {
                self.out.push_str("escalate ");
                self.list(items, self.tight(e.span).end, indent);
            }
            ExprKind::Block(b) => self.block(b, indent, false),
            ExprKind::Mix(b) => {
                self.out.push_str("mix ");
                self.block(b, indent, false);
            }
            ExprKind::Extend { base, block } => {
                self.expr(base, indent);
                self.out.push(' ');
                self.block(block, indent, false);
            }
            ExprKind::Quantized { base, quant } => {
                self.expr(base, indent);
                self.out.push_str(" quantized ");
                self.out.push_str(&quant.dotted());
            }
            ExprKind::Call { callee, args } => {
                self.out.push_str(&callee.name);
                self.out.push('(');
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    if let Some(n) = &a.name {
                        self.out.push_str(&n.name);
                        self.out.push_str(" = ");
                    }
                    self.expr(&a.value, indent);
                }
                self.out.push(')');
            }
            ExprKind::Binary { op, lhs, rhs } => {
                self.expr(lhs, indent);
                self.out.push_str(&format!(" {} ", op.symbol()));
                self.expr(rhs, indent);
            }
            ExprKind::Neg(x) => {
                self.out.push('-');
                self.expr(x, indent);
            }
            ExprKind::Paren(x) => {
                self.out.push('(');
                self.expr(x, indent);
                self.out.push(')');
            }
            ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Path(_) => {
                let t = self.atom(e);
                self.out.push_str(&t);
            }
        }
    }

    /// `[` one element per line, each followed by a comma `]`.
    fn list(&mut self, items: &[Expr], end: u32, indent: usize) {
        self.out.push('[');
        let saved = (self.fresh, self.last_end);
        self.fresh = true;
        for it in items {
            let span = self.tight(it.span);
            self.leading(span.start, indent + 1);
            self.separate(span.start);
            self.newline(indent + 1);
            self.expr(it, indent + 1);
            self.out.push(',');
            self.done(span.end);
            self.trailing(span.end);
        }
        self.leading(end, indent + 1);
        self.newline(indent);
        self.out.push(']');
        self.fresh = saved.0;
        self.last_end = end.max(saved.1);
    }

    fn atom(&self, e: &Expr) -> String {
        match &e.kind {
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Path(p) => p.dotted(),
            _ => self.text(e.span).to_string(),
        }
    }

    /// The one-line form, or `None` when the expression must keep its lines (a list or record
    /// written over several lines, or a comment inside).
    fn flat(&self, e: &Expr) -> Option<String> {
        if self.has_comment_in(e.span) {
            return None;
        }
        Some(match &e.kind {
            ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Path(_) => {
                self.atom(e)
            }
            ExprKind::Call { callee, args } => {
                let mut parts = Vec::new();
                for a in args {
                    let v = self.flat(&a.value)?;
                    parts.push(match &a.name {
                        Some(n) => format!("{} = {v}", n.name),
                        None => v,
                    });
                }
                format!("{}({})", callee.name, parts.join(", "))
            }
            ExprKind::List(items) => format!("[{}]", self.flat_items(items, e.span)?),
            ExprKind::Sweep(items) => format!("sweep [{}]", self.flat_items(items, e.span)?),
            ExprKind::Escalate(items) => format!("escalate [{}]", self.flat_items(items, e.span)?),
            ExprKind::Block(b) => self.flat_block(b)?,
            ExprKind::Mix(b) => format!("mix {}", self.flat_block(b)?),
            ExprKind::Extend { base, block } => {
                format!("{} {}", self.flat(base)?, self.flat_block(block)?)
            }
            ExprKind::Quantized { base, quant } => {
                format!("{} quantized {}", self.flat(base)?, quant.dotted())
            }
            ExprKind::Binary { op, lhs, rhs } => {
                format!("{} {} {}", self.flat(lhs)?, op.symbol(), self.flat(rhs)?)
            }
            ExprKind::Neg(x) => format!("-{}", self.flat(x)?),
            ExprKind::Paren(x) => format!("({})", self.flat(x)?),
        })
    }

    fn flat_items(&self, items: &[Expr], span: Span) -> Option<String> {
        if self.spans_lines(span) {
            return None;
        }
        let parts: Option<Vec<String>> = items.iter().map(|i| self.flat(i)).collect();
        Some(parts?.join(", "))
    }

    fn flat_block(&self, b: &Block) -> Option<String> {
        if self.spans_lines(b.span) || self.has_comment_in(b.span) {
            return None;
        }
        if b.entries.is_empty() {
            return Some("{}".to_string());
        }
        let mut parts = Vec::new();
        for e in &b.entries {
            parts.push(match e {
                Entry::Field(f) => format!(
                    "{}{} {}",
                    f.key.name,
                    if f.colon { ":" } else { " =" },
                    self.flat(&f.value)?
                ),
                Entry::Gate(g) => format!("gate {}", self.flat(&g.expr)?),
                Entry::On(n, _) => format!("on {}", n.name),
            });
        }
        Some(format!("{{ {} }}", parts.join(", ")))
    }
}

fn eq_key_len(e: &Entry) -> Option<usize> {
    match e {
        Entry::Field(f) if !f.colon => Some(f.key.name.chars().count()),
        _ => None,
    }
}
