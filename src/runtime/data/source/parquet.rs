//! Parquet through the `parquet` crate's record API (no Arrow): rows are read one row group at a
//! time and turned into JSON objects. Locations are row numbers, 1-based.

use std::fs::File;
use std::path::PathBuf;

use parquet::file::reader::SerializedFileReader;

use super::{failed, Rows, SourceRow};
use crate::runtime::data::error::{DataError, RowIndex, RowLocation};

pub(super) fn rows(open: PathBuf, file: PathBuf) -> Rows {
    let f: File = match crate::safe_fs::open_regular(&open) {
        Ok((f, _)) => f,
        Err(e) => return failed(DataError::io(file, e)),
    };
    let malformed = |file: &PathBuf, row: u64, message: String| DataError::Malformed {
        at: RowLocation {
            file: file.clone(),
            at: if row == 0 {
                RowIndex::File
            } else {
                RowIndex::Row(row)
            },
        },
        format: "Parquet",
        message,
    };
    let reader = match SerializedFileReader::new(f) {
        Ok(r) => r,
        Err(e) => return failed(malformed(&file, 0, e.to_string())),
    };
    let iter = reader.into_iter();
    let mut n = 0u64;
    Box::new(iter.map(move |r| {
        n += 1;
        match r {
            Ok(row) => Ok(SourceRow {
                at: RowLocation {
                    file: file.clone(),
                    at: RowIndex::Row(n),
                },
                value: row.to_json_value(),
            }),
            Err(e) => Err(malformed(&file, n, e.to_string())),
        }
    }))
}
