//! The checker's diagnostics as LSP diagnostics (only those in the document itself; related
//! locations may point into other files), and quick fixes for those that carry a replacement
//! ("did you mean `x`?", "write `x`"). The replacement travels in the diagnostic's `data`.

use super::index::file_uri;
use super::state::{Analysis, Document};
use crate::syntax::{Code, FileId, Severity};
use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, Diagnostic, DiagnosticRelatedInformation,
    DiagnosticSeverity, Location, NumberOrString, Range, TextEdit, WorkspaceEdit,
};
use std::collections::HashMap;

/// LSP diagnostics of the document's last analysis.
pub fn to_lsp(doc: &Document, an: &Analysis) -> Vec<Diagnostic> {
    let text = &doc.text;
    let mut out = Vec::new();
    for d in an
        .checked
        .diagnostics
        .iter()
        .filter(|d| d.loc.file == FileId(0))
    {
        let range = doc.map.range(text, d.loc.span);
        let mut message = d.message.clone();
        if let Some(l) = &d.label {
            message.push_str(&format!("\n{l}"));
        }
        if let Some(h) = &d.help {
            message.push_str(&format!("\nhelp: {h}"));
        }
        let related: Vec<DiagnosticRelatedInformation> = d
            .related
            .iter()
            .filter_map(|r| {
                let uri = file_uri(an, &doc.uri, r.loc.file)?;
                let src = an.checked.sources.get(r.loc.file)?;
                let map = super::text::LineMap::new(&src.text);
                Some(DiagnosticRelatedInformation {
                    location: Location {
                        uri,
                        range: map.range(&src.text, r.loc.span),
                    },
                    message: r.message.clone(),
                })
            })
            .collect();
        out.push(Diagnostic {
            range,
            severity: Some(match d.severity {
                Severity::Error => DiagnosticSeverity::ERROR,
                Severity::Warning => DiagnosticSeverity::WARNING,
            }),
            code: Some(NumberOrString::String(d.code.as_str().to_string())),
            source: Some("peftc".to_string()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            data: replacement(d.code, d.help.as_deref(), d.label.as_deref())
                .map(|r| serde_json::json!({ "replace": r })),
            ..Diagnostic::default()
        });
    }
    out
}

/// The text a diagnostic suggests writing instead of its span.
pub fn replacement(code: Code, help: Option<&str>, label: Option<&str>) -> Option<String> {
    let quoted_after = |s: &str, prefix: &str| -> Option<String> {
        let rest = &s[s.find(prefix)? + prefix.len()..];
        let end = rest.find('`')?;
        Some(rest[..end].to_string())
    };
    if let Some(r) = help.and_then(|h| quoted_after(h, "did you mean `")) {
        return Some(r);
    }
    if code == Code::ForeignSpelling {
        return label.and_then(|l| quoted_after(l, "write `"));
    }
    None
}

/// Quick fixes for the document's diagnostics that overlap `range`.
#[allow(clippy::mutable_key_type)] // `Uri` is the key type lsp-types chose for edits
pub fn code_actions(doc: &Document, range: Range) -> Vec<CodeActionOrCommand> {
    let Some(an) = &doc.analysis else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for d in to_lsp(doc, an) {
        let overlaps = d.range.start <= range.end && range.start <= d.range.end;
        let Some(new) = d
            .data
            .as_ref()
            .and_then(|v| v.get("replace"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
        else {
            continue;
        };
        if !overlaps {
            continue;
        }
        let mut changes = HashMap::new();
        changes.insert(
            doc.uri.clone(),
            vec![TextEdit {
                range: d.range,
                new_text: new.clone(),
            }],
        );
        out.push(CodeActionOrCommand::CodeAction(CodeAction {
            title: format!("Replace with `{new}`"),
            kind: Some(CodeActionKind::QUICKFIX),
            diagnostics: Some(vec![d.clone()]),
            edit: Some(WorkspaceEdit {
                changes: Some(changes),
                ..WorkspaceEdit::default()
            }),
            is_preferred: Some(true),
            ..CodeAction::default()
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_come_from_did_you_mean_and_foreign_spellings() {
        assert_eq!(
            replacement(Code::UnknownField, Some("did you mean `alpha`?"), None).as_deref(),
            Some("alpha")
        );
        assert_eq!(
            replacement(
                Code::ForeignSpelling,
                Some("PEFT's `lora_alpha` is `alpha` here"),
                Some("write `alpha`")
            )
            .as_deref(),
            Some("alpha")
        );
        assert_eq!(
            replacement(
                Code::UnknownField,
                Some("`a` has r, alpha"),
                Some("write `x`")
            ),
            None
        );
    }
}
