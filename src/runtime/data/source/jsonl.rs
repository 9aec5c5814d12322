//! JSONL: one JSON object per line, read line by line (blank lines are skipped). Never holds
//! more than one line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use super::{failed, Rows, SourceRow};
use crate::runtime::data::error::{DataError, RowIndex, RowLocation};

pub(super) fn rows(open: PathBuf, file: PathBuf) -> Rows {
    let f = match File::open(&open) {
        Ok(f) => f,
        Err(e) => return failed(DataError::io(file, e)),
    };
    from_reader(Box::new(BufReader::with_capacity(1 << 16, f)), file)
}

/// Rows of JSONL text read from `reader` (a file, or the bytes `peftc check` peeks at).
pub(super) fn from_reader(reader: Box<dyn BufRead>, file: PathBuf) -> Rows {
    Box::new(JsonlRows {
        reader,
        file,
        line: 0,
        buf: String::new(),
        done: false,
    })
}

struct JsonlRows {
    reader: Box<dyn BufRead>,
    file: PathBuf,
    line: u64,
    buf: String,
    done: bool,
}

impl Iterator for JsonlRows {
    type Item = Result<SourceRow, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buf.clear();
            match self.reader.read_line(&mut self.buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line += 1;
                    let text = self.buf.trim();
                    if text.is_empty() {
                        continue;
                    }
                    let at = RowLocation {
                        file: self.file.clone(),
                        at: RowIndex::Line(self.line),
                    };
                    return Some(match serde_json::from_str(text) {
                        Ok(value @ serde_json::Value::Object(_)) => Ok(SourceRow { at, value }),
                        Ok(other) => Err(DataError::Malformed {
                            at,
                            format: "JSONL",
                            message: format!("expected an object, found {}", kind_of(&other)),
                        }),
                        Err(e) => Err(DataError::Malformed {
                            at,
                            format: "JSONL",
                            // The line is already named: keep only the column.
                            message: e.to_string().replace(" at line 1 column ", " at column "),
                        }),
                    });
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(DataError::io(self.file.clone(), e)));
                }
            }
        }
        None
    }
}

/// A JSON value's type in words, for messages.
pub(crate) fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}
