//! The typed syntax tree of a `.peft` file: what was written, with byte spans, comments and doc
//! comments. No pest types, no resolution, no defaults (those are `check`'s job).

use super::span::Span;

/// A whole source file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
    /// Every `//` and `///` comment in source order (the formatter interleaves them by span).
    pub comments: Vec<Comment>,
    pub span: Span,
}

/// A comment. `doc` comments (`///`) directly above a declaration or field are also copied into
/// that node's `doc`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub span: Span,
    /// The text after `//` or `///`.
    pub text: String,
    pub doc: bool,
}

/// A name with its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A top-level item.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Use(Use),
    Decl(Decl),
    Export(Export),
    /// A region that did not parse; its error is among the diagnostics.
    Error(Span),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Use(u) => u.span,
            Item::Decl(d) => d.span,
            Item::Export(e) => e.span,
            Item::Error(s) => *s,
        }
    }
}

/// `use std.recipes.{lora_default}` or `use "other.peft"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Use {
    pub target: UseTarget,
    /// `.{a, b}`: only these names; `None` imports every declaration.
    pub names: Option<Vec<Ident>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UseTarget {
    /// A stdlib module path such as `std.recipes`.
    Module(Vec<Ident>),
    /// A file path relative to the importing file.
    File(StrLit),
}

/// The kinds of `KIND NAME = HEAD { ... }` declarations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclKind {
    Model,
    Quant,
    Adapter,
    Dataset,
    Train,
    Eval,
    Merge,
    Device,
    Let,
}

impl DeclKind {
    pub const ALL: [DeclKind; 9] = [
        DeclKind::Model,
        DeclKind::Quant,
        DeclKind::Adapter,
        DeclKind::Dataset,
        DeclKind::Train,
        DeclKind::Eval,
        DeclKind::Merge,
        DeclKind::Device,
        DeclKind::Let,
    ];
    /// The keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            DeclKind::Model => "model",
            DeclKind::Quant => "quant",
            DeclKind::Adapter => "adapter",
            DeclKind::Dataset => "dataset",
            DeclKind::Train => "train",
            DeclKind::Eval => "eval",
            DeclKind::Merge => "merge",
            DeclKind::Device => "device",
            DeclKind::Let => "let",
        }
    }
    pub fn from_keyword(s: &str) -> Option<DeclKind> {
        DeclKind::ALL.into_iter().find(|k| k.keyword() == s)
    }
}

/// `KIND NAME (= HEAD)? { BODY }?`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decl {
    pub kind: DeclKind,
    pub kind_span: Span,
    pub name: Ident,
    /// What it builds on: a builtin (`lora`), a source (`hf("..")`), or a declaration it extends.
    pub head: Option<Expr>,
    pub body: Option<Block>,
    /// Text of the `///` lines directly above, joined with newlines.
    pub doc: Option<String>,
    pub span: Span,
}

/// `export SOURCE to "PATH" as FORMAT { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub source: Path,
    pub dest: StrLit,
    pub format: Option<Ident>,
    pub body: Option<Block>,
    pub doc: Option<String>,
    pub span: Span,
}

/// `{ entries }`; also used as a record value (`{ train = 90%, eval = 10% }`).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub entries: Vec<Entry>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Field(Field),
    Gate(Gate),
    /// `on DEVICE`.
    On(Ident, Span),
}

impl Entry {
    pub fn span(&self) -> Span {
        match self {
            Entry::Field(f) => f.span,
            Entry::Gate(g) => g.span,
            Entry::On(_, s) => *s,
        }
    }
}

/// `key = value` or `key: value`. A key may be dotted (`tune.sent: 0.7` inside `mix`).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub key: Ident,
    /// True when written with `:` instead of `=`.
    pub colon: bool,
    pub value: Expr,
    pub doc: Option<String>,
    pub span: Span,
}

/// `gate EXPR`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub expr: Expr,
    pub span: Span,
}

/// A string literal: the unescaped value and the span including the quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

/// A dotted reference such as `reviews.train` or `baseline.accuracy`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub segments: Vec<Ident>,
    pub span: Span,
}

impl Path {
    /// The path as written, segments joined with dots.
    pub fn dotted(&self) -> String {
        let names: Vec<&str> = self.segments.iter().map(|s| s.name.as_str()).collect();
        names.join(".")
    }
}

/// Units a number may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Percent,
    B,
    KB,
    MB,
    GB,
    TB,
    KiB,
    MiB,
    GiB,
    TiB,
}

impl Unit {
    pub fn parse(s: &str) -> Option<Unit> {
        Some(match s {
            "%" => Unit::Percent,
            "B" => Unit::B,
            "KB" => Unit::KB,
            "MB" => Unit::MB,
            "GB" => Unit::GB,
            "TB" => Unit::TB,
            "KiB" => Unit::KiB,
            "MiB" => Unit::MiB,
            "GiB" => Unit::GiB,
            "TiB" => Unit::TiB,
            _ => return None,
        })
    }
    /// Bytes per unit for sizes; `None` for `%`.
    pub fn bytes(self) -> Option<f64> {
        let k = 1000f64;
        let ki = 1024f64;
        Some(match self {
            Unit::Percent => return None,
            Unit::B => 1.0,
            Unit::KB => k,
            Unit::MB => k * k,
            Unit::GB => k * k * k,
            Unit::TB => k * k * k * k,
            Unit::KiB => ki,
            Unit::MiB => ki * ki,
            Unit::GiB => ki * ki * ki,
            Unit::TiB => ki * ki * ki * ki,
        })
    }
}

/// A numeric literal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number {
    pub value: f64,
    /// Written without a fraction or exponent.
    pub is_int: bool,
    pub unit: Option<Unit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Ge,
    Le,
    Gt,
    Lt,
    Eq,
    Ne,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Ge => ">=",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Lt => "<",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
        }
    }
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Ge | BinOp::Le | BinOp::Gt | BinOp::Lt | BinOp::Eq | BinOp::Ne
        )
    }
}

/// A call argument, positional or named (`revision = "main"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

/// An expression with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Number(Number),
    Str(String),
    Bool(bool),
    /// A name or dotted reference; also enum values such as `cosine`.
    Path(Path),
    /// `hf("..", revision = "main")`, `classify(labels = [..])`, `field("text")`.
    Call {
        callee: Ident,
        args: Vec<Arg>,
    },
    List(Vec<Expr>),
    /// `{ ... }` in value position (a record).
    Block(Block),
    /// `BASE { ... }`: a value extended or configured field by field (`cosine { warmup = 10% }`).
    Extend {
        base: Box<Expr>,
        block: Block,
    },
    /// `BASE quantized Q`.
    Quantized {
        base: Box<Expr>,
        quant: Path,
    },
    Sweep(Vec<Expr>),
    Escalate(Vec<Expr>),
    /// `mix { a: 0.7, b: 0.3 }`.
    Mix(Block),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Neg(Box<Expr>),
    /// `( expr )`.
    Paren(Box<Expr>),
}
