//! Plain text: each non-empty line, or each whole file, becomes a row `{"text": ...}`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde_json::{json, Value};

use super::{failed, Rows, SourceRow};
use crate::runtime::data::error::{DataError, RowIndex, RowLocation};
use crate::runtime::data::spec::TextUnit;

pub(super) fn rows(open: PathBuf, file: PathBuf, unit: TextUnit) -> Rows {
    match unit {
        TextUnit::File => match std::fs::read_to_string(&open) {
            Ok(text) => whole_file(text, file),
            Err(e) => failed(DataError::io(file, e)),
        },
        TextUnit::Line => match File::open(&open) {
            Ok(f) => lines(Box::new(BufReader::with_capacity(1 << 16, f)), file),
            Err(e) => failed(DataError::io(file, e)),
        },
    }
}

/// Rows of text already read (the bytes `peftc check` peeks at).
pub(super) fn from_text(text: String, file: PathBuf, unit: TextUnit) -> Rows {
    match unit {
        TextUnit::File => whole_file(text, file),
        TextUnit::Line => lines(Box::new(std::io::Cursor::new(text.into_bytes())), file),
    }
}

fn whole_file(text: String, file: PathBuf) -> Rows {
    Box::new(std::iter::once(Ok(SourceRow {
        at: RowLocation {
            file,
            at: RowIndex::File,
        },
        value: json!({ "text": text }),
    })))
}

fn lines(mut reader: Box<dyn BufRead>, file: PathBuf) -> Rows {
    let mut buf = String::new();
    let mut line = 0u64;
    let mut done = false;
    Box::new(std::iter::from_fn(move || {
        while !done {
            buf.clear();
            match reader.read_line(&mut buf) {
                Ok(0) => done = true,
                Ok(_) => {
                    line += 1;
                    let text = buf.trim_end_matches(['\n', '\r']);
                    if text.trim().is_empty() {
                        continue;
                    }
                    return Some(Ok(SourceRow {
                        at: RowLocation {
                            file: file.clone(),
                            at: RowIndex::Line(line),
                        },
                        value: Value::Object(
                            [("text".to_owned(), Value::String(text.to_owned()))]
                                .into_iter()
                                .collect(),
                        ),
                    }));
                }
                Err(e) => {
                    done = true;
                    return Some(Err(DataError::io(file.clone(), e)));
                }
            }
        }
        None
    }))
}
