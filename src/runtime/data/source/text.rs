//! Plain text: each non-empty line, or each whole file, becomes a row `{"text": ...}`. A line
//! (or file) that is not UTF-8 is a row error naming its line; a UTF-8 byte order mark at the
//! start of a file is dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::jsonl::{invalid_utf8, strip_bom, utf8_message};
use super::{failed, Rows, SourceRow};
use crate::runtime::data::error::{DataError, RowIndex, RowLocation};
use crate::runtime::data::spec::TextUnit;

pub(super) fn rows(open: PathBuf, file: PathBuf, unit: TextUnit) -> Rows {
    let f = match crate::safe_fs::open_regular(&open) {
        Ok((f, _)) => f,
        Err(e) => return failed(DataError::io(file, e)),
    };
    match unit {
        TextUnit::File => {
            let mut bytes = Vec::new();
            if let Err(e) = BufReader::new(f).read_to_end(&mut bytes) {
                return failed(DataError::io(file, e));
            }
            whole_file(&bytes, file)
        }
        TextUnit::Line => lines(Box::new(BufReader::with_capacity(1 << 16, f)), file),
    }
}

/// Rows of text already read (the bytes `peftc check` peeks at).
pub(super) fn from_text(text: String, file: PathBuf, unit: TextUnit) -> Rows {
    match unit {
        TextUnit::File => whole_file(text.as_bytes(), file),
        TextUnit::Line => lines(Box::new(std::io::Cursor::new(text.into_bytes())), file),
    }
}

fn malformed(file: &Path, line: u64, message: String) -> DataError {
    DataError::Malformed {
        at: RowLocation {
            file: file.to_path_buf(),
            at: RowIndex::Line(line),
        },
        format: "text",
        message,
    }
}

fn whole_file(bytes: &[u8], file: PathBuf) -> Rows {
    let bytes = strip_bom(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Box::new(std::iter::once(Ok(SourceRow {
            at: RowLocation {
                file,
                at: RowIndex::File,
            },
            value: json!({ "text": text }),
        }))),
        Err(e) => {
            let before = &bytes[..e.valid_up_to()];
            let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            let start = before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let message = utf8_message(
                bytes.get(e.valid_up_to()).copied().unwrap_or_default(),
                e.valid_up_to() - start + 1,
            );
            failed(malformed(&file, line, message))
        }
    }
}

fn lines(mut reader: Box<dyn BufRead>, file: PathBuf) -> Rows {
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut done = false;
    Box::new(std::iter::from_fn(move || {
        while !done {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => done = true,
                Ok(_) => {
                    line += 1;
                    let bytes = if line == 1 { strip_bom(&buf) } else { &buf };
                    let text = match std::str::from_utf8(bytes) {
                        Ok(t) => t.trim_end_matches(['\n', '\r']),
                        Err(e) => {
                            return Some(Err(malformed(&file, line, invalid_utf8(bytes, &e))))
                        }
                    };
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
