//! The per-step metrics log: one JSON object per line (`metrics.jsonl`). On resume the lines
//! after the checkpoint's step are dropped, so the log reads as one uninterrupted run.

use crate::runtime::train::error::{IoContext, TrainError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One optimizer step's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based optimizer step.
    pub step: u64,
    /// Fractional epoch at the end of the step.
    pub epoch: f64,
    /// Mean loss over the step's counted terms.
    pub loss: f64,
    /// Learning rate used (before group scaling).
    pub lr: f64,
    /// Global gradient norm before clipping (when clipping is on).
    pub grad_norm: Option<f64>,
    /// Real tokens in the step.
    pub tokens: u64,
    /// Throughput of the step.
    pub tokens_per_s: f64,
    /// Seconds the step took.
    pub step_s: f64,
}

/// Appends records to a JSONL file.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens `path` for appending, first dropping records with `step > keep_up_to`.
    pub fn open(path: &Path, keep_up_to: u64) -> Result<Self, TrainError> {
        if path.exists() {
            let text = std::fs::read_to_string(path).at(path)?;
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<StepRecord>(l)
                        .map(|r| r.step <= keep_up_to)
                        .unwrap_or(false)
                })
                .collect();
            let tmp = path.with_extension("jsonl.tmp");
            let mut body = kept.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            std::fs::write(&tmp, body).at(&tmp)?;
            std::fs::rename(&tmp, path).at(path)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .at(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &StepRecord) -> Result<(), TrainError> {
        let line = serde_json::to_string(record).map_err(|e| TrainError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        writeln!(self.file, "{line}").at(&self.path)
    }

    /// Reads every record of a log.
    pub fn read(path: &Path) -> Result<Vec<StepRecord>, TrainError> {
        let text = std::fs::read_to_string(path).at(path)?;
        text.lines()
            .map(|l| {
                serde_json::from_str(l).map_err(|e| TrainError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(e),
                })
            })
            .collect()
    }
}
