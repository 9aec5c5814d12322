//! Errors of data preparation, pointing into the data: the file, the line (or element or row)
//! and the field, plus the `.peft` span of the mapping that asked for it when the caller has one.
//!
//! Wording lives here and only here; the readers and the mapping build the variants.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use miette::{Diagnostic, NamedSource, SourceSpan};
use thiserror::Error;

/// How many bad rows an [`DataError::InvalidRows`] carries in full.
pub const MAX_REPORTED_ROWS: usize = 10;

/// The `.peft` text that declared a mapping: file name, whole source text, byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingSpan {
    pub name: String,
    pub source: String,
    pub range: Range<usize>,
}

impl From<(String, String, Range<usize>)> for MappingSpan {
    fn from((name, source, range): (String, String, Range<usize>)) -> Self {
        MappingSpan {
            name,
            source,
            range,
        }
    }
}

/// Where a row sits in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowLocation {
    pub file: PathBuf,
    pub at: RowIndex,
}

/// The position of a row inside its file, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowIndex {
    /// A line of a JSONL, CSV, TSV or text file.
    Line(u64),
    /// An element of a JSON array.
    Element(u64),
    /// A row of a Parquet file.
    Row(u64),
    /// A whole file (text sources read per file).
    File,
}

impl fmt::Display for RowLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match self.at {
            RowIndex::Line(n) => write!(f, "{file}:{n}"),
            RowIndex::Element(n) => write!(f, "{file} element {n}"),
            RowIndex::Row(n) => write!(f, "{file} row {n}"),
            RowIndex::File => write!(f, "{file}"),
        }
    }
}

/// The `.peft` span, in the shape miette wants.
#[derive(Clone, Debug, Default)]
pub struct PeftSpan {
    pub src: Option<NamedSource<String>>,
    pub span: Option<SourceSpan>,
}

impl PeftSpan {
    pub fn from_mapping(m: Option<&MappingSpan>) -> Self {
        match m {
            Some(m) => PeftSpan {
                src: Some(NamedSource::new(m.name.clone(), m.source.clone())),
                span: Some(SourceSpan::from(m.range.clone())),
            },
            None => PeftSpan::default(),
        }
    }
}

/// A data preparation error.
#[derive(Debug, Error, Diagnostic)]
pub enum DataError {
    /// A file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(
        code(peftc::data::io),
        help("check that the file exists and is readable")
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A path or glob matched no file.
    #[error("no file matches `{pattern}`")]
    #[diagnostic(
        code(peftc::data::no_files),
        help("paths are relative to the directory of the .peft file")
    )]
    NoFiles {
        pattern: String,
        #[source_code]
        src: Option<NamedSource<String>>,
        #[label("declared here")]
        span: Option<SourceSpan>,
    },

    /// A file read whole (a JSON array) is not UTF-8: no row of it can be read.
    #[error("{at}: the {format} file is not valid UTF-8: {message}")]
    #[diagnostic(
        code(peftc::data::not_utf8),
        help("re-encode the file as UTF-8; a JSON array is parsed whole, so use JSONL to skip single bad rows with `skip_invalid = true`")
    )]
    NotUtf8 {
        at: RowLocation,
        format: &'static str,
        message: String,
    },

    /// A glob pattern is not valid.
    #[error("bad glob pattern `{pattern}`: {message}")]
    #[diagnostic(code(peftc::data::bad_glob))]
    BadGlob { pattern: String, message: String },

    /// A line (or element, or row) is not a well-formed record.
    #[error("{at}: malformed {format} record: {message}")]
    #[diagnostic(
        code(peftc::data::malformed),
        help("fix the record, or set `skip_invalid = true` to drop bad rows")
    )]
    Malformed {
        at: RowLocation,
        format: &'static str,
        message: String,
    },

    /// A mapped field is absent from a record.
    #[error("{at}: field `{field}` is missing{}", found_keys(keys))]
    #[diagnostic(
        code(peftc::data::missing_field),
        help("map the role to a field the data has, or set `skip_invalid = true`")
    )]
    MissingField {
        at: RowLocation,
        field: String,
        keys: Vec<String>,
        #[source_code]
        src: Option<NamedSource<String>>,
        #[label("field mapped here")]
        span: Option<SourceSpan>,
    },

    /// A mapped field has the wrong type.
    #[error("{at}: field `{field}` should be {expected}, found {found}")]
    #[diagnostic(
        code(peftc::data::wrong_type),
        help("map the role to a field of the right type, or set `skip_invalid = true`")
    )]
    WrongType {
        at: RowLocation,
        field: String,
        expected: &'static str,
        found: String,
        #[source_code]
        src: Option<NamedSource<String>>,
        #[label("field mapped here")]
        span: Option<SourceSpan>,
    },

    /// A label is not among the declared classes.
    #[error("{at}: label {value} in field `{field}` is not one of the declared labels [{}]", known.join(", "))]
    #[diagnostic(
        code(peftc::data::unknown_label),
        help("add it to `labels`, fix the row, or set `skip_invalid = true`")
    )]
    UnknownLabel {
        at: RowLocation,
        field: String,
        value: String,
        known: Vec<String>,
        #[source_code]
        src: Option<NamedSource<String>>,
        #[label("labels declared here")]
        span: Option<SourceSpan>,
    },

    /// The chat template refused a row (`raise_exception`) or failed on it.
    #[error("{at}: chat template failed on this row: {message}")]
    #[diagnostic(
        code(peftc::data::template_row),
        help("fix the row, or set `skip_invalid = true`")
    )]
    TemplateRow { at: RowLocation, message: String },

    /// A row renders to no tokens at all.
    #[error("{at}: the row renders to an empty text")]
    #[diagnostic(
        code(peftc::data::empty_row),
        help("fix the row, or set `skip_invalid = true`")
    )]
    EmptyRow { at: RowLocation },

    /// Several rows are invalid: the first few in full, and the total.
    #[error("{count} invalid rows in {files} (first {} shown)", first.len())]
    #[diagnostic(
        code(peftc::data::invalid_rows),
        help("fix the rows, or set `skip_invalid = true` to drop them with a warning")
    )]
    InvalidRows {
        count: usize,
        files: String,
        #[related]
        first: Vec<DataError>,
    },

    /// No row survived reading (and skipping, deduplication, limits).
    #[error("dataset is empty: no usable rows in {files}")]
    #[diagnostic(
        code(peftc::data::empty_dataset),
        help("check the paths and the field mapping")
    )]
    EmptyDataset {
        files: String,
        #[source_code]
        src: Option<NamedSource<String>>,
        #[label("dataset declared here")]
        span: Option<SourceSpan>,
    },

    /// A split ended up with no rows.
    #[error("split `{name}` is empty ({total} rows in all)")]
    #[diagnostic(
        code(peftc::data::empty_split),
        help("use larger split sizes or more data")
    )]
    EmptySplit { name: String, total: usize },

    /// Split sizes ask for more rows than there are, or more than 100%.
    #[error("split sizes ask for {asked} but the dataset has {total} rows")]
    #[diagnostic(
        code(peftc::data::split_too_large),
        help("percentages must add up to at most 100%, counts to at most the number of rows")
    )]
    SplitTooLarge { asked: String, total: usize },

    /// The spec is not usable as given (wrong template for the mapping and the like).
    #[error("invalid dataset settings: {message}")]
    #[diagnostic(code(peftc::data::invalid_spec))]
    InvalidSpec {
        message: String,
        #[source_code]
        src: Option<NamedSource<String>>,
        #[label("declared here")]
        span: Option<SourceSpan>,
    },

    /// A custom template names a hole that is neither a role nor a field of the data.
    #[error(
        "{at}: template hole `{{{hole}}}` is neither a role nor a field of the row{}",
        found_keys(keys)
    )]
    #[diagnostic(
        code(peftc::data::unknown_hole),
        help("holes name a role (text, prompt, input, completion) or a field of the data")
    )]
    UnknownHole {
        at: RowLocation,
        hole: String,
        keys: Vec<String>,
        #[source_code]
        src: Option<NamedSource<String>>,
        #[label("template declared here")]
        span: Option<SourceSpan>,
    },

    /// The tokenizer's files are missing or unreadable.
    #[error("tokenizer {}: {message}", path.display())]
    #[diagnostic(code(peftc::data::tokenizer))]
    Tokenizer { path: PathBuf, message: String },

    /// The tokenizer failed on a row.
    #[error("{at}: tokenization failed: {message}")]
    #[diagnostic(code(peftc::data::tokenize))]
    Tokenize { at: RowLocation, message: String },

    /// The chat template could not be compiled or rendered.
    #[error("chat template: {message}")]
    #[diagnostic(
        code(peftc::data::chat_template),
        help("the template comes from tokenizer_config.json; use `template = chatml` instead")
    )]
    ChatTemplate { message: String },

    /// A tokenized-data file is not in the expected format.
    #[error("{}: not a peftc tokenized-data file ({message})", path.display())]
    #[diagnostic(
        code(peftc::data::bad_cache),
        help("delete the file; it will be rebuilt")
    )]
    BadCache { path: PathBuf, message: String },
}

fn found_keys(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(" (the row has: {})", keys.join(", "))
    }
}

impl DataError {
    /// Whether this error is about one row (and may be skipped with `skip_invalid`).
    pub fn is_row_error(&self) -> bool {
        matches!(
            self,
            DataError::Malformed { .. }
                | DataError::MissingField { .. }
                | DataError::WrongType { .. }
                | DataError::UnknownLabel { .. }
                | DataError::EmptyRow { .. }
                | DataError::TemplateRow { .. }
                | DataError::UnknownHole { .. }
                | DataError::Tokenize { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Collects row errors while reading: keeps the first [`MAX_REPORTED_ROWS`] and counts the rest.
#[derive(Debug, Default)]
pub struct RowErrors {
    pub first: Vec<DataError>,
    pub count: usize,
}

impl RowErrors {
    pub fn push(&mut self, e: DataError) {
        if self.first.len() < MAX_REPORTED_ROWS {
            self.first.push(e);
        }
        self.count += 1;
    }

    /// One error for all: the row error itself when there is one, else [`DataError::InvalidRows`].
    pub fn into_error(mut self, files: String) -> Option<DataError> {
        match self.count {
            0 => None,
            1 => self.first.pop(),
            count => Some(DataError::InvalidRows {
                count,
                files,
                first: self.first,
            }),
        }
    }
}

/// A warning of data preparation (rows dropped and the like), serialisable for the run record.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataWarning {
    /// What happened, one line.
    pub message: String,
    /// Up to [`MAX_REPORTED_ROWS`] examples, one line each.
    pub examples: Vec<String>,
}
