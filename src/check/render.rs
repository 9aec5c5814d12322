//! Renders diagnostics for people (miette: fancy on a terminal, plain ASCII without colour
//! otherwise) and for tools (`--format json`: one JSON object per line). Presentation only.
//! A rendered diagnostic stays small whatever the file: miette sees only the lines around the
//! labels, long lines cut to a window ([`super::snippet`]); people see at most
//! [`MAX_SHOWN`] diagnostics per report, then a count.

use super::snippet::{clamp_span, Snippet};
use super::sources::Sources;
use crate::syntax::{Diagnostic, Severity, Span};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan};
use std::fmt;

/// Diagnostics drawn for people in one report; the rest are counted.
pub const MAX_SHOWN: usize = 100;
/// A related label further than this many lines from the primary one becomes a note.
const MAX_SPREAD_LINES: usize = 60;

/// How to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Colours and unicode box drawing (a terminal without NO_COLOR).
    pub fancy: bool,
    /// Wrap width.
    pub width: usize,
}

impl Style {
    /// Plain ASCII without colour (snapshots, pipes, NO_COLOR).
    pub fn plain() -> Self {
        Style {
            fancy: false,
            width: 100,
        }
    }
}

struct Report<'a> {
    d: &'a Diagnostic,
    src: Snippet,
    /// The primary label and the related labels drawn in the snippet, in file offsets.
    primary: Span,
    related: Vec<(Span, String)>,
    notes: Option<String>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.d.message)
    }
}
impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.d.message)
    }
}
impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.d.code.as_str()))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        match (&self.d.help, &self.notes) {
            (Some(h), Some(n)) => Some(Box::new(format!("{h}\n{n}"))),
            (Some(h), None) => Some(Box::new(h.as_str())),
            (None, Some(n)) => Some(Box::new(n.as_str())),
            (None, None) => None,
        }
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let mut v = vec![LabeledSpan::new_primary_with_span(
            self.d.label.clone(),
            self.src.map_span(self.primary),
        )];
        for (s, message) in &self.related {
            v.push(LabeledSpan::new_with_span(
                Some(message.clone()),
                self.src.map_span(*s),
            ));
        }
        Some(Box::new(v.into_iter()))
    }
}

/// Path of a file as shown to the user (relative to the current folder when possible).
pub fn display_path(sources: &Sources, file: crate::syntax::FileId) -> String {
    let Some(f) = sources.get(file) else {
        return String::from("?");
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    f.path
        .strip_prefix(&cwd)
        .unwrap_or(&f.path)
        .display()
        .to_string()
}

/// Every diagnostic as miette draws it, at most [`MAX_SHOWN`] of them, then a line counting
/// the rest.
pub fn human_all(diags: &[Diagnostic], sources: &Sources, style: Style) -> String {
    let mut out = String::new();
    for d in diags.iter().take(MAX_SHOWN) {
        out.push_str(&human(d, sources, style));
    }
    if diags.len() > MAX_SHOWN {
        let rest = &diags[MAX_SHOWN..];
        let errors = rest.iter().filter(|d| d.is_error()).count();
        out.push_str(&format!(
            "... and {} more ({errors} error(s), {} warning(s)); `--format json` lists every one\n",
            rest.len(),
            rest.len() - errors
        ));
    }
    out
}

/// One diagnostic as miette draws it.
pub fn human(d: &Diagnostic, sources: &Sources, style: Style) -> String {
    let empty = crate::syntax::LineIndex::new("");
    let (text, index) = match sources.get(d.loc.file) {
        Some(f) => (f.text.as_str(), &f.lines),
        None => ("", &empty),
    };
    let clamp = |s: Span| {
        let s = Span::new(
            (s.start as usize).min(text.len()),
            (s.end as usize).min(text.len()),
        );
        clamp_span(text, index, s)
    };
    let primary = clamp(d.loc.span);
    let primary_line = index.line_of(primary.start as usize);
    let mut related = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for r in &d.related {
        let near = r.loc.file == d.loc.file && {
            let l = index.line_of(r.loc.span.start as usize);
            l.abs_diff(primary_line) <= MAX_SPREAD_LINES
        };
        if near {
            related.push((clamp(r.loc.span), r.message.clone()));
            continue;
        }
        let lc = sources.line_col(r.loc.file, r.loc.span.start);
        notes.push(format!(
            "note: {} ({}:{}:{})",
            r.message,
            display_path(sources, r.loc.file),
            lc.line,
            lc.col
        ));
    }
    let spans: Vec<Span> = std::iter::once(primary)
        .chain(related.iter().map(|(s, _)| *s))
        .collect();
    let name = display_path(sources, d.loc.file);
    let report = Report {
        d,
        src: Snippet::new(name, text, index, &spans),
        primary,
        related,
        notes: (!notes.is_empty()).then(|| notes.join("\n")),
    };
    let theme = if style.fancy {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::none()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(style.width)
        .with_links(false);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        out = format!("{}: {}\n", d.code.as_str(), d.message);
    }
    out
}

/// One diagnostic as a JSON object (the format `--format json` prints, one per line).
pub fn json(d: &Diagnostic, sources: &Sources) -> serde_json::Value {
    let pos = |file, off: u32| {
        let lc = sources.line_col(file, off);
        serde_json::json!({ "byte": off, "line": lc.line, "column": lc.col })
    };
    serde_json::json!({
        "file": sources.get(d.loc.file).map(|f| f.path.display().to_string()).unwrap_or_default(),
        "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "code": d.code.as_str(),
        "message": d.message,
        "label": d.label,
        "help": d.help,
        "start": pos(d.loc.file, d.loc.span.start),
        "end": pos(d.loc.file, d.loc.span.end),
        "related": d.related.iter().map(|r| serde_json::json!({
            "file": sources.get(r.loc.file).map(|f| f.path.display().to_string()).unwrap_or_default(),
            "message": r.message,
            "start": pos(r.loc.file, r.loc.span.start),
            "end": pos(r.loc.file, r.loc.span.end),
        })).collect::<Vec<_>>(),
    })
}
