//! JSON: one array of objects per file. The file is parsed whole (JSON arrays cannot be streamed
//! cheaply): use JSONL for large data. Locations are element numbers, 1-based.

use std::path::PathBuf;

use serde_json::Value;

use super::jsonl::kind_of;
use super::{failed, Rows, SourceRow};
use crate::runtime::data::error::{DataError, RowIndex, RowLocation};

pub(super) fn rows(open: PathBuf, file: PathBuf) -> Rows {
    let text = match std::fs::read_to_string(&open) {
        Ok(t) => t,
        Err(e) => return failed(DataError::io(file, e)),
    };
    from_text(&text, file)
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
