//! Renders diagnostics for people (miette: fancy on a terminal, plain ASCII without colour
//! otherwise) and for tools (`--format json`: one JSON object per line). Presentation only.

use super::sources::Sources;
use crate::syntax::{Diagnostic, Severity};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use std::fmt;

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
    src: NamedSource<String>,
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
            span(self.d.loc.span),
        )];
        for r in &self.d.related {
            if r.loc.file == self.d.loc.file {
                v.push(LabeledSpan::new_with_span(
                    Some(r.message.clone()),
                    span(r.loc.span),
                ));
            }
        }
        Some(Box::new(v.into_iter()))
    }
}

fn span(s: crate::syntax::Span) -> SourceSpan {
    SourceSpan::new((s.start as usize).into(), s.len())
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

/// One diagnostic as miette draws it.
pub fn human(d: &Diagnostic, sources: &Sources, style: Style) -> String {
    let text = sources
        .get(d.loc.file)
        .map(|f| f.text.clone())
        .unwrap_or_default();
    let name = display_path(sources, d.loc.file);
    let notes: Vec<String> = d
        .related
        .iter()
        .filter(|r| r.loc.file != d.loc.file)
        .map(|r| {
            let lc = sources.line_col(r.loc.file, r.loc.span.start);
            format!(
                "note: {} ({}:{}:{})",
                r.message,
                display_path(sources, r.loc.file),
                lc.line,
                lc.col
            )
        })
        .collect();
    let report = Report {
        d,
        src: NamedSource::new(name, text),
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
