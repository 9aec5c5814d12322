//! # fmt: the canonical layout of `.peft` files
//!
//! [`format_source`] prints a parsed file back in one layout: two-space indentation, one field
//! per line in declaration bodies (`=` aligned within a group of fields), one space around
//! operators and `=`, at most one blank line between declarations and fields, and every `//`
//! and `///` comment kept where it was (own-line comments stay above the node that follows
//! them, trailing comments stay at the end of their line). Numbers and strings are printed as
//! written. Formatting is idempotent: formatting the output again changes nothing.
//!
//! A file with syntax errors is not formatted ([`FormatError::Syntax`]); this module never
//! reads or writes files (the CLI and the language server do).
//!
//! ```
//! let out = peftc::fmt::format_source("adapter a=lora{r=8,alpha=16}").unwrap();
//! assert_eq!(out, "adapter a = lora {\n  r     = 8\n  alpha = 16\n}\n");
//! ```

mod printer;

use crate::syntax::{self, ast};

/// Why a source could not be formatted.
#[derive(Debug, Clone, PartialEq, thiserror::Error, miette::Diagnostic)]
pub enum FormatError {
    /// The source does not parse; formatting would lose text.
    #[error("{count} syntax error(s); the first: {first}")]
    #[diagnostic(
        code(peftc::fmt::syntax),
        help("fix the syntax errors (`peftc check`) and format again")
    )]
    Syntax { count: usize, first: String },
    /// The printed text lost a comment (a bug in the formatter; the source is left as it was).
    #[error("formatting would drop a comment ({before} comments before, {after} after)")]
    #[diagnostic(code(peftc::fmt::comments))]
    LostComment { before: usize, after: usize },
}

/// Layout options. The defaults are the canonical layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatConfig {
    /// Spaces per indentation level.
    pub indent: usize,
    /// Lists and records that fit in this width stay on one line (when written on one line).
    pub width: usize,
    /// Align `=` of the fields in one group (consecutive lines without a blank line).
    pub align_fields: bool,
}

impl Default for FormatConfig {
    fn default() -> Self {
        FormatConfig {
            indent: 2,
            width: 100,
            align_fields: true,
        }
    }
}

/// Formats `source` in the canonical layout.
pub fn format_source(source: &str) -> Result<String, FormatError> {
    format_with(source, FormatConfig::default())
}

/// Formats `source` with explicit options.
pub fn format_with(source: &str, config: FormatConfig) -> Result<String, FormatError> {
    let (file, diags) = syntax::parse(source);
    let has_error_item = file.items.iter().any(|i| matches!(i, ast::Item::Error(_)));
    if !diags.is_empty() || has_error_item {
        let first = diags
            .first()
            .map(|d| format!("{} {}", d.code.as_str(), d.message))
            .unwrap_or_else(|| "unreadable item".to_string());
        return Err(FormatError::Syntax {
            count: diags.len().max(1),
            first,
        });
    }
    let out = printer::print(source, &file, config);
    let before = file.comments.len();
    let after = syntax::parse(&out).0.comments.len();
    if before != after {
        return Err(FormatError::LostComment { before, after });
    }
    Ok(out)
}
