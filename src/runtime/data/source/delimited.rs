//! CSV and TSV with a header row, streamed record by record. Every cell is a string; locations
//! are the line where the record starts. A record that is not UTF-8 is a row error at its line;
//! the `csv` reader drops a UTF-8 byte order mark before the header.

use std::fs::File;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::{failed, Rows, SourceRow};
use crate::runtime::data::error::{DataError, RowIndex, RowLocation};

pub(super) fn rows(open: PathBuf, file: PathBuf, delimiter: u8) -> Rows {
    let f: File = match crate::safe_fs::open_regular(&open) {
        Ok((f, _)) => f,
        Err(e) => return failed(DataError::io(file, e)),
    };
    from_reader(
        Box::new(std::io::BufReader::with_capacity(1 << 16, f)),
        file,
        delimiter,
    )
}

/// Rows of CSV / TSV text read from `reader` (a file, or the bytes `peftc check` peeks at).
pub(super) fn from_reader(reader: Box<dyn std::io::Read>, file: PathBuf, delimiter: u8) -> Rows {
    let format = if delimiter == b'\t' { "TSV" } else { "CSV" };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(reader);
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect(),
        Err(e) => {
            return failed(DataError::Malformed {
                at: RowLocation {
                    file,
                    at: RowIndex::Line(1),
                },
                format,
                message: e.to_string(),
            })
        }
    };
    let mut record = csv::StringRecord::new();
    let mut done = false;
    Box::new(std::iter::from_fn(move || {
        if done {
            return None;
        }
        match reader.read_record(&mut record) {
            Ok(false) => {
                done = true;
                None
            }
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line());
                let mut obj = Map::new();
                for (k, v) in headers.iter().zip(record.iter()) {
                    obj.insert(k.clone(), Value::String(v.to_owned()));
                }
                Some(Ok(SourceRow {
                    at: RowLocation {
                        file: file.clone(),
                        at: RowIndex::Line(line),
                    },
                    value: Value::Object(obj),
                }))
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    done = true;
                    return Some(Err(DataError::io(
                        file.clone(),
                        std::io::Error::other(e.to_string()),
                    )));
                }
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("{len} fields where the header has {expected_len}"),
                    csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 ({err})"),
                    _ => e.to_string(),
                };
                Some(Err(DataError::Malformed {
                    at: RowLocation {
                        file: file.clone(),
                        at: RowIndex::Line(line),
                    },
                    format,
                    message,
                }))
            }
        }
    }))
}
