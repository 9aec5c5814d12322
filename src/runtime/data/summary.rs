//! [`DataSummary`]: counts, token length histogram and label balance of a prepared dataset,
//! serialisable for the run record and printable for `peftc plan`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::runtime::batch::{Example, IGNORE_INDEX};

/// What preparation read, dropped and produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Files read, in order.
    pub files: Vec<String>,
    /// Rows read, valid or not.
    pub rows_read: usize,
    /// Invalid rows dropped under `skip_invalid`.
    pub invalid_rows: usize,
    /// Rows dropped as duplicates.
    pub duplicates: usize,
    /// Rows dropped as longer than `max_len` (`truncation = drop`).
    pub too_long: usize,
    /// Rows cut to `max_len`.
    pub truncated: usize,
    /// Rows left out by `limit`.
    pub over_limit: usize,
    /// One entry per split, in declaration order.
    pub splits: Vec<SplitSummary>,
}

/// One split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    pub name: String,
    /// Examples before packing.
    pub examples: usize,
    /// Sequences after packing (equal to `examples` without packing).
    pub sequences: usize,
    /// Tokens in all examples.
    pub tokens: usize,
    /// Tokens that take loss (causal LM only).
    pub trained_tokens: usize,
    pub min_len: usize,
    pub max_len: usize,
    pub mean_len: f64,
    /// Example lengths (before packing) in power-of-two buckets.
    pub length_histogram: Vec<LengthBucket>,
    /// Examples per declared label, in label order (classification only).
    pub labels: Vec<LabelCount>,
}

/// Examples with `from <= len < to` tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LengthBucket {
    pub from: usize,
    pub to: usize,
    pub count: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCount {
    pub label: String,
    pub count: usize,
}

impl SplitSummary {
    /// Summarise `examples` (unpacked); `labels` are the declared class names.
    pub fn of(name: &str, examples: &[Example], labels: &[String]) -> Self {
        let mut stats = SplitStats::new(name, labels);
        for e in examples {
            stats.add(e);
        }
        stats.finish()
    }
}

/// Builds a [`SplitSummary`] one example at a time, in constant memory.
#[derive(Clone, Debug)]
pub struct SplitStats {
    s: SplitSummary,
    buckets: Vec<usize>,
    per_label: Vec<usize>,
    labels: Vec<String>,
}

impl SplitStats {
    pub fn new(name: &str, labels: &[String]) -> Self {
        SplitStats {
            s: SplitSummary {
                name: name.to_owned(),
                min_len: usize::MAX,
                ..SplitSummary::default()
            },
            buckets: Vec::new(),
            per_label: vec![0; labels.len()],
            labels: labels.to_vec(),
        }
    }

    pub fn add(&mut self, e: &Example) {
        let s = &mut self.s;
        let n = e.input_ids.len();
        s.examples += 1;
        s.tokens += n;
        s.trained_tokens += e.labels.iter().filter(|&&l| l != IGNORE_INDEX).count();
        s.min_len = s.min_len.min(n);
        s.max_len = s.max_len.max(n);
        let b = (usize::BITS - n.leading_zeros()) as usize; // n in [2^(b-1), 2^b)
        if self.buckets.len() <= b {
            self.buckets.resize(b + 1, 0);
        }
        if let Some(c) = self.buckets.get_mut(b) {
            *c += 1;
        }
        if let Some(c) = e
            .class_label
            .and_then(|l| self.per_label.get_mut(l as usize))
        {
            *c += 1;
        }
    }

    pub fn finish(self) -> SplitSummary {
        let mut s = self.s;
        s.sequences = s.examples;
        if s.examples == 0 {
            s.min_len = 0;
        } else {
            s.mean_len = s.tokens as f64 / s.examples as f64;
        }
        s.length_histogram = self
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(b, &count)| LengthBucket {
                from: if b == 0 { 0 } else { 1 << (b - 1) },
                to: 1 << b,
                count,
            })
            .collect();
        s.labels = self
            .labels
            .into_iter()
            .zip(self.per_label)
            .map(|(label, count)| LabelCount { label, count })
            .collect();
        s
    }
}

impl fmt::Display for DataSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows read from {} file(s)",
            self.rows_read,
            self.files.len()
        )?;
        for (n, what) in [
            (self.invalid_rows, "invalid skipped"),
            (self.duplicates, "duplicates dropped"),
            (self.too_long, "too long dropped"),
            (self.truncated, "truncated"),
            (self.over_limit, "over limit"),
        ] {
            if n > 0 {
                write!(f, ", {n} {what}")?;
            }
        }
        writeln!(f)?;
        for s in &self.splits {
            write!(
                f,
                "  {}: {} examples, {} tokens (len {}..{}, mean {:.1})",
                s.name, s.examples, s.tokens, s.min_len, s.max_len, s.mean_len
            )?;
            if s.sequences != s.examples {
                write!(f, ", packed into {} sequences", s.sequences)?;
            }
            writeln!(f)?;
            if !s.labels.is_empty() {
                let l: Vec<String> = s
                    .labels
                    .iter()
                    .map(|l| format!("{} {}", l.label, l.count))
                    .collect();
                writeln!(f, "    labels: {}", l.join(", "))?;
            }
            let h: Vec<String> = s
                .length_histogram
                .iter()
                .map(|b| format!("[{},{}) {}", b.from, b.to, b.count))
                .collect();
            writeln!(f, "    lengths: {}", h.join(", "))?;
        }
        Ok(())
    }
}
