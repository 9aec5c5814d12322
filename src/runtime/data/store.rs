//! The tokenized-data file the executor caches: examples in a compact little-endian binary
//! form, split by split, then a JSON footer (split names and counts, summary, warnings).
//!
//! Layout: `PEFTTOK1`, then per example `u32 n, u8 flags, [u32 class], [u32 k, k×u32 packed
//! lengths], n×u32 ids, [n×i32 labels]` (flags: 1 = class label, 2 = labels, 4 = packed), then
//! the JSON footer, its `u64` length and
//! `PEFTTOK1` again. Written in one pass with no per-example state, so a writer's memory does
//! not grow with the data; read back whole. Must not decide what goes in it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{DataError, DataWarning};
use super::pipeline::{PreparedDataset, PreparedSplit};
use super::summary::DataSummary;
use crate::runtime::batch::Example;

const MAGIC: &[u8; 8] = b"PEFTTOK1";
/// Bumped whenever the layout or the meaning of the content changes (part of the content key).
pub const TOKENIZED_FORMAT_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Footer {
    version: u32,
    splits: Vec<(String, u64)>,
    summary: DataSummary,
    warnings: Vec<DataWarning>,
}

/// Writes a tokenized-data file example by example.
pub struct TokenFileWriter {
    out: BufWriter<File>,
    path: PathBuf,
    splits: Vec<(String, u64)>,
}

impl TokenFileWriter {
    pub fn create(path: &Path) -> Result<Self, DataError> {
        let f = File::create(path).map_err(|e| DataError::io(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        out.write_all(MAGIC).map_err(|e| DataError::io(path, e))?;
        Ok(TokenFileWriter {
            out,
            path: path.to_owned(),
            splits: Vec::new(),
        })
    }

    /// Start the next split; examples written from now on belong to it.
    pub fn begin_split(&mut self, name: &str) {
        self.splits.push((name.to_owned(), 0));
    }

    pub fn write(&mut self, e: &Example) -> Result<(), DataError> {
        if self.splits.is_empty() {
            self.begin_split("train");
        }
        if let Some(s) = self.splits.last_mut() {
            s.1 += 1;
        }
        let mut buf = Vec::with_capacity(9 + e.input_ids.len() * 8);
        buf.extend_from_slice(&(e.input_ids.len() as u32).to_le_bytes());
        let flags = u8::from(e.class_label.is_some())
            | (u8::from(!e.labels.is_empty()) << 1)
            | (u8::from(!e.packed.is_empty()) << 2);
        buf.push(flags);
        if let Some(c) = e.class_label {
            buf.extend_from_slice(&c.to_le_bytes());
        }
        if !e.packed.is_empty() {
            buf.extend_from_slice(&(e.packed.len() as u32).to_le_bytes());
            for len in &e.packed {
                buf.extend_from_slice(&len.to_le_bytes());
            }
        }
        for id in &e.input_ids {
            buf.extend_from_slice(&id.to_le_bytes());
        }
        if !e.labels.is_empty() {
            for &l in e
                .labels
                .iter()
                .chain(std::iter::repeat_n(
                    &-100,
                    e.input_ids.len().saturating_sub(e.labels.len()),
                ))
                .take(e.input_ids.len())
            {
                buf.extend_from_slice(&(l as i32).to_le_bytes());
            }
        }
        self.out
            .write_all(&buf)
            .map_err(|e| DataError::io(&self.path, e))
    }

    /// Write the footer and flush.
    pub fn finish(
        mut self,
        summary: &DataSummary,
        warnings: &[DataWarning],
    ) -> Result<(), DataError> {
        let footer = Footer {
            version: TOKENIZED_FORMAT_VERSION,
            splits: std::mem::take(&mut self.splits),
            summary: summary.clone(),
            warnings: warnings.to_vec(),
        };
        let json = serde_json::to_vec(&footer).map_err(|e| DataError::BadCache {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let io = |e| DataError::io(&self.path, e);
        self.out.write_all(&json).map_err(io)?;
        self.out
            .write_all(&(json.len() as u64).to_le_bytes())
            .map_err(io)?;
        self.out.write_all(MAGIC).map_err(io)?;
        self.out.flush().map_err(io)
    }
}

/// Write a prepared dataset to `path`.
pub fn save(data: &PreparedDataset, path: &Path) -> Result<(), DataError> {
    let mut w = TokenFileWriter::create(path)?;
    for s in &data.splits {
        w.begin_split(&s.name);
        for e in &s.examples {
            w.write(e)?;
        }
    }
    w.finish(&data.summary, &data.warnings)
}

/// Read a prepared dataset written by [`save`] or [`TokenFileWriter`].
pub fn load(path: &Path) -> Result<PreparedDataset, DataError> {
    let bad = |message: &str| DataError::BadCache {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    let io = |e| DataError::io(path, e);
    let mut f = File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len < 24 {
        return Err(bad("file too short"));
    }
    let mut tail = [0u8; 16];
    f.seek(SeekFrom::End(-16)).map_err(io)?;
    f.read_exact(&mut tail).map_err(io)?;
    let (len_bytes, magic) = tail.split_at(8);
    if magic != MAGIC {
        return Err(bad("bad trailer"));
    }
    let footer_len = u64::from_le_bytes(len_bytes.try_into().map_err(|_| bad("bad length"))?);
    let footer_start = len
        .checked_sub(16 + footer_len)
        .filter(|&s| s >= 8)
        .ok_or_else(|| bad("bad footer length"))?;
    f.seek(SeekFrom::Start(footer_start)).map_err(io)?;
    let mut json = vec![0u8; footer_len as usize];
    f.read_exact(&mut json).map_err(io)?;
    let footer: Footer = serde_json::from_slice(&json).map_err(|e| bad(&e.to_string()))?;
    if footer.version != TOKENIZED_FORMAT_VERSION {
        return Err(bad(&format!(
            "format version {} (expected {TOKENIZED_FORMAT_VERSION})",
            footer.version
        )));
    }
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut r = BufReader::with_capacity(1 << 20, f.take(footer_start));
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(io)?;
    if &magic != MAGIC {
        return Err(bad("bad magic"));
    }
    let mut splits = Vec::with_capacity(footer.splits.len());
    for (name, count) in footer.splits {
        let mut examples = Vec::with_capacity(count as usize);
        for _ in 0..count {
            examples.push(read_example(&mut r).map_err(|e| bad(&e.to_string()))?);
        }
        splits.push(PreparedSplit { name, examples });
    }
    Ok(PreparedDataset {
        splits,
        summary: footer.summary,
        warnings: footer.warnings,
    })
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_example(r: &mut impl Read) -> std::io::Result<Example> {
    let n = read_u32(r)? as usize;
    let mut flags = [0u8; 1];
    r.read_exact(&mut flags)?;
    let class_label = if flags[0] & 1 != 0 {
        Some(read_u32(r)?)
    } else {
        None
    };
    let packed = if flags[0] & 4 != 0 {
        let k = read_u32(r)? as usize;
        (0..k)
            .map(|_| read_u32(r))
            .collect::<std::io::Result<Vec<u32>>>()?
    } else {
        Vec::new()
    };
    let mut bytes = vec![0u8; n * 4];
    r.read_exact(&mut bytes)?;
    let input_ids = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let labels = if flags[0] & 2 != 0 {
        r.read_exact(&mut bytes)?;
        bytes
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Example {
        input_ids,
        labels,
        class_label,
        packed,
    })
}
