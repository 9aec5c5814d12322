//! JSON: one array of objects per file. The file is parsed whole (JSON arrays cannot be streamed
//! cheaply): use JSONL for large data. Locations are element numbers, 1-based. A UTF-8 byte
//! order mark is dropped; a file that is not UTF-8 fails whole, naming the line of the first
//! bad byte.

use std::path::PathBuf;

use serde_json::Value;

use super::jsonl::{kind_of, strip_bom, utf8_message};
use super::{failed, Rows, SourceRow};
use crate::runtime::data::error::{DataError, RowIndex, RowLocation};

pub(super) fn rows(open: PathBuf, file: PathBuf) -> Rows {
    let bytes = match crate::safe_fs::read_limited(&open, u64::MAX - 1) {
        Ok(b) => b,
        Err(e) => return failed(DataError::io(file, e)),
    };
    let bytes = strip_bom(&bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let before = &bytes[..e.valid_up_to()];
            let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            let start = before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            return failed(DataError::NotUtf8 {
                at: RowLocation {
                    file,
                    at: RowIndex::Line(line),
                },
                format: "JSON",
                message: utf8_message(
                    bytes.get(e.valid_up_to()).copied().unwrap_or_default(),
                    e.valid_up_to() - start + 1,
                ),
            });
        }
    };
    from_text(text, file)
}

/// Rows of a JSON array given as text.
pub(super) fn from_text(text: &str, file: PathBuf) -> Rows {
    let whole = RowLocation {
        file: file.clone(),
        at: RowIndex::File,
    };
    let items = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(other) => {
            return failed(DataError::Malformed {
                at: whole,
                format: "JSON",
                message: format!("expected an array of objects, found {}", kind_of(&other)),
            })
        }
        Err(e) => {
            return failed(DataError::Malformed {
                at: whole,
                format: "JSON",
                message: e.to_string(),
            })
        }
    };
    Box::new(items.into_iter().enumerate().map(move |(i, value)| {
        let at = RowLocation {
            file: file.clone(),
            at: RowIndex::Element(i as u64 + 1),
        };
        match value {
            Value::Object(_) => Ok(SourceRow { at, value }),
            other => Err(DataError::Malformed {
                at,
                format: "JSON",
                message: format!("expected an object, found {}", kind_of(&other)),
            }),
        }
    }))
}
