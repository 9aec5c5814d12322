//! JSONL: one JSON object per line, read line by line (blank lines are skipped). Never holds
//! more than one line. A line that is not UTF-8 is a row error at its line; a UTF-8 byte order
//! mark at the start of the file is dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use super::{failed, Rows, SourceRow};
use crate::runtime::data::error::{DataError, RowIndex, RowLocation};

pub(super) fn rows(open: PathBuf, file: PathBuf) -> Rows {
    let f = match crate::safe_fs::open_regular(&open) {
        Ok((f, _)) => f,
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
        buf: Vec::new(),
        done: false,
    })
}

struct JsonlRows {
    reader: Box<dyn BufRead>,
    file: PathBuf,
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl Iterator for JsonlRows {
    type Item = Result<SourceRow, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line += 1;
                    let at = RowLocation {
                        file: self.file.clone(),
                        at: RowIndex::Line(self.line),
                    };
                    let bytes = match self.line {
                        1 => strip_bom(&self.buf),
                        _ => &self.buf,
                    };
                    let text = match std::str::from_utf8(bytes) {
                        Ok(t) => t.trim(),
                        Err(e) => {
                            return Some(Err(DataError::Malformed {
                                at,
                                format: "JSONL",
                                message: invalid_utf8(bytes, &e),
                            }))
                        }
                    };
                    if text.is_empty() {
                        continue;
                    }
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

/// `bytes` without a leading UTF-8 byte order mark.
pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// What is wrong with a line that is not UTF-8, for messages: the column (1-based, in bytes) and
/// the offending byte.
pub(crate) fn invalid_utf8(line: &[u8], e: &std::str::Utf8Error) -> String {
    let at = e.valid_up_to();
    utf8_message(line.get(at).copied().unwrap_or_default(), at + 1)
}

/// The message for a byte that is not UTF-8 at `column` (1-based, in bytes) of its line.
pub(crate) fn utf8_message(byte: u8, column: usize) -> String {
    format!("invalid UTF-8 (byte 0x{byte:02X} at column {column}); data files must be UTF-8")
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
