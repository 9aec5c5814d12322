//! Sources: turn files of one format into a stream of rows (JSON values with their location).
//!
//! Every reader streams: it holds one line (or one CSV record, one Parquet row group) at a time,
//! except JSON arrays, which are parsed whole. Readers know nothing of roles or templates; a row
//! that cannot be parsed is a row error ([`DataError::Malformed`]), a file that cannot be read is
//! fatal ([`DataError::Io`]).

mod delimited;
mod json;
mod jsonl;
mod parquet;
mod text;

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::{DataError, MappingSpan, PeftSpan, RowLocation};
use super::spec::{SourceFormat, TextUnit};

/// One record read from a source.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRow {
    pub at: RowLocation,
    pub value: Value,
}

/// A stream of rows; `Err` items are row errors or fatal I/O errors (see
/// [`DataError::is_row_error`]).
pub type Rows = Box<dyn Iterator<Item = Result<SourceRow, DataError>>>;

/// Resolve paths and glob patterns against `base`: a plain path must exist; a glob must match at
/// least one file. Matches of one glob come sorted; patterns keep their order.
pub fn resolve_paths(
    patterns: &[String],
    base: &Path,
    span: Option<&MappingSpan>,
) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for pattern in patterns {
        let full = base.join(pattern);
        let is_glob = pattern.contains(['*', '?', '[']);
        let mut found: Vec<PathBuf> = if is_glob {
            let text = full.to_string_lossy().into_owned();
            let paths = glob::glob(&text).map_err(|e| DataError::BadGlob {
                pattern: pattern.clone(),
                message: e.msg.to_string(),
            })?;
            paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect()
        } else if full.exists() {
            // Not only regular files: the reader names a FIFO or a device instead of hanging.
            vec![full]
        } else {
            Vec::new()
        };
        if found.is_empty() {
            let s = PeftSpan::from_mapping(span);
            return Err(DataError::NoFiles {
                pattern: pattern.clone(),
                src: s.src,
                span: s.span,
            });
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Rows of all `files` in order, read as `format`. Locations name files relative to `base`.
pub fn read_rows(format: SourceFormat, files: Vec<PathBuf>, unit: TextUnit, base: &Path) -> Rows {
    let base = base.to_owned();
    Box::new(
        files
            .into_iter()
            .flat_map(move |file| -> Rows { read_file(format, file, unit, &base) }),
    )
}

/// Rows of one file; locations name it relative to `base`.
pub fn read_file(format: SourceFormat, file: PathBuf, unit: TextUnit, base: &Path) -> Rows {
    let shown = file
        .strip_prefix(base)
        .map_or_else(|_| file.clone(), Path::to_path_buf);
    match format {
        SourceFormat::Jsonl => jsonl::rows(file, shown),
        SourceFormat::Json => json::rows(file, shown),
        SourceFormat::Csv => delimited::rows(file, shown, b','),
        SourceFormat::Tsv => delimited::rows(file, shown, b'\t'),
        SourceFormat::Text => text::rows(file, shown, unit),
        SourceFormat::Parquet => parquet::rows(file, shown),
    }
}

/// How many bytes of a data file `peftc check` reads ([`peek`]).
pub const PEEK_BYTES: usize = 64 * 1024;

/// The first rows of a file, parsed by the same readers as a run, from `prefix`: the file's first
/// bytes (`whole` when they are the entire file). A prefix that stops mid-file is cut after its
/// last complete line, so no row is read half. `None` where a prefix cannot be read alone: a
/// JSON array longer than the prefix, and Parquet (its schema is in the footer, at the end).
pub fn peek(
    format: SourceFormat,
    prefix: Vec<u8>,
    whole: bool,
    file: PathBuf,
    unit: TextUnit,
) -> Option<Vec<Result<SourceRow, DataError>>> {
    let mut bytes = prefix;
    if !whole {
        let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(end);
    }
    let cursor = std::io::Cursor::new(bytes);
    let rows: Rows = match format {
        SourceFormat::Jsonl => jsonl::from_reader(Box::new(cursor), file),
        SourceFormat::Csv => delimited::from_reader(Box::new(cursor), file, b','),
        SourceFormat::Tsv => delimited::from_reader(Box::new(cursor), file, b'\t'),
        SourceFormat::Json if whole => {
            json::from_text(&String::from_utf8_lossy(cursor.get_ref()), file)
        }
        SourceFormat::Text if unit == TextUnit::Line || whole => {
            let text = String::from_utf8_lossy(cursor.get_ref()).into_owned();
            text::from_text(text, file, unit)
        }
        SourceFormat::Json | SourceFormat::Text | SourceFormat::Parquet => return None,
    };
    Some(rows.collect())
}

/// A stream that yields one error and ends.
fn failed(e: DataError) -> Rows {
    Box::new(std::iter::once(Err(e)))
}
