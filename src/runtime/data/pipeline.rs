//! Preparation: source files to named splits of tokenized [`Example`]s plus a [`DataSummary`].
//!
//! Steps, in order: resolve files, stream rows, map fields, render the template, drop
//! duplicates, tokenize in chunks, collect row errors (fail, or skip with a warning), shuffle with
//! the seed, apply `limit`, cut the splits, summarise, pack. Rows are streamed; only tokenized
//! examples are kept ([`prepare`]) or not even those ([`prepare_to_file`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::encode::{EncodeConfig, Encoded, Encoder};
use super::error::{DataError, DataWarning, MappingSpan, PeftSpan, RowErrors, RowLocation};
use super::mapping::map_row;
use super::pack::{pack, Packer};
use super::render::{Rendered, Renderer};
use super::source::{read_rows, resolve_paths};
use super::spec::{DatasetSpec, FieldMapping, SplitSpec};
use super::split::{shuffled_indices, split_sizes};
use super::store::TokenFileWriter;
use super::summary::{DataSummary, SplitStats, SplitSummary};
use super::tokenizer::ModelTokenizer;
use crate::runtime::batch::Example;

/// Where preparation runs and what it can point at.
#[derive(Clone, Debug)]
pub struct PrepareOptions {
    /// Paths in the spec are relative to this (the `.peft` file's directory).
    pub base_dir: PathBuf,
    /// The `.peft` span of the dataset declaration, for diagnostics.
    pub span: Option<MappingSpan>,
    /// Rows tokenized together (parallel inside a chunk).
    pub chunk_rows: usize,
}

impl PrepareOptions {
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        PrepareOptions {
            base_dir: base_dir.into(),
            span: None,
            chunk_rows: 1024,
        }
    }

    pub fn with_span(mut self, span: Option<MappingSpan>) -> Self {
        self.span = span;
        self
    }
}

/// One named split.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedSplit {
    pub name: String,
    pub examples: Vec<Example>,
}

/// A prepared dataset: named splits in declaration order, the summary and the warnings.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedDataset {
    pub splits: Vec<PreparedSplit>,
    pub summary: DataSummary,
    pub warnings: Vec<DataWarning>,
}

impl PreparedDataset {
    /// The examples of split `name`.
    pub fn split(&self, name: &str) -> Option<&[Example]> {
        self.splits
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.examples.as_slice())
    }
}

/// Check settings that do not need the data.
pub fn validate(spec: &DatasetSpec, span: Option<&MappingSpan>) -> Result<(), DataError> {
    let invalid = |message: &str| {
        let s = PeftSpan::from_mapping(span);
        DataError::InvalidSpec {
            message: message.to_owned(),
            src: s.src,
            span: s.span,
        }
    };
    let classify = matches!(spec.mapping, FieldMapping::Classification { .. });
    if let FieldMapping::Classification { labels, .. } = &spec.mapping {
        if labels.is_empty() {
            return Err(invalid("classification needs a non-empty `labels` list"));
        }
    }
    if spec.max_len == Some(0) {
        return Err(invalid("`max_len` must be at least 1"));
    }
    if spec.packing && spec.max_len.is_none() {
        return Err(invalid("`packing = true` needs `max_len`"));
    }
    if spec.packing && classify {
        return Err(invalid("classification examples cannot be packed"));
    }
    let names: Vec<&str> = match &spec.split {
        SplitSpec::All { .. } => vec!["train"],
        SplitSpec::Sizes { parts, .. } => parts.iter().map(|p| p.name.as_str()).collect(),
        SplitSpec::Files { parts, .. } => parts.iter().map(|p| p.name.as_str()).collect(),
    };
    if names.is_empty() {
        return Err(invalid("`split` names no split"));
    }
    let unique: HashSet<&str> = names.iter().copied().collect();
    if unique.len() != names.len() {
        return Err(invalid("split names must be unique"));
    }
    Ok(())
}

/// Prepare `spec` in memory.
pub fn prepare(
    spec: &DatasetSpec,
    tok: &ModelTokenizer,
    opts: &PrepareOptions,
) -> Result<PreparedDataset, DataError> {
    validate(spec, opts.span.as_ref())?;
    let mut run = Run::new(spec, tok, opts)?;
    let groups = file_groups(spec, opts)?;
    let mut read: Vec<(String, Vec<Example>)> = Vec::new();
    // Without shuffling, `limit` is the first N rows and reading can stop there.
    let stop_at = match &spec.split {
        SplitSpec::All { seed: None } | SplitSpec::Files { seed: None, .. } => spec.limit,
        _ => None,
    };
    for (name, files) in groups {
        let mut examples = Vec::new();
        run.read(files, stop_at, &mut |e| {
            examples.push(e);
            Ok(())
        })?;
        read.push((name, examples));
    }
    let warnings = run.check_errors()?;
    let total: usize = read.iter().map(|(_, e)| e.len()).sum();
    if total == 0 {
        return Err(run.empty());
    }
    let mut summary = run.summary.clone();
    let mut splits: Vec<(String, Vec<Example>)> = Vec::new();
    match &spec.split {
        SplitSpec::All { seed } | SplitSpec::Files { seed, .. } => {
            for (name, examples) in read {
                let n = examples.len();
                let mut examples = match seed {
                    Some(seed) => permute(examples, &shuffled_indices(n, *seed)),
                    None => examples,
                };
                if let Some(limit) = spec.limit.filter(|_| seed.is_some()) {
                    summary.over_limit += n.saturating_sub(limit);
                    examples.truncate(limit);
                }
                splits.push((name, examples));
            }
        }
        SplitSpec::Sizes { parts, seed } => {
            let examples = read.into_iter().flat_map(|(_, e)| e).collect::<Vec<_>>();
            let n = examples.len();
            let mut order = shuffled_indices(n, *seed);
            if let Some(limit) = spec.limit {
                summary.over_limit += n.saturating_sub(limit);
                order.truncate(limit);
            }
            let sizes = split_sizes(parts, order.len())?;
            let mut slots: Vec<Option<Example>> = examples.into_iter().map(Some).collect();
            let mut at = 0;
            for (part, size) in parts.iter().zip(sizes) {
                let part_examples = order
                    .get(at..at + size)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
                    .collect();
                at += size;
                splits.push((part.name.clone(), part_examples));
            }
        }
    }
    let labels = class_names(spec);
    let mut out = Vec::with_capacity(splits.len());
    for (name, examples) in splits {
        if examples.is_empty() {
            return Err(DataError::EmptySplit { name, total });
        }
        let mut s: SplitSummary = SplitSummary::of(&name, &examples, &labels);
        let examples = match spec.max_len.filter(|_| spec.packing) {
            Some(max) => pack(&examples, max),
            None => examples,
        };
        s.sequences = examples.len();
        summary.splits.push(s);
        out.push(PreparedSplit { name, examples });
    }
    Ok(PreparedDataset {
        splits: out,
        summary,
        warnings,
    })
}

/// Prepare `spec` straight into a tokenized-data file at `out`, holding no examples: memory stays
/// flat however large the files are (deduplication keeps 16 bytes per distinct row). Rows keep
/// file order, so the split must be `SplitSpec::All` without a seed (`limit` = first N rows).
pub fn prepare_to_file(
    spec: &DatasetSpec,
    tok: &ModelTokenizer,
    opts: &PrepareOptions,
    out: &Path,
) -> Result<DataSummary, DataError> {
    validate(spec, opts.span.as_ref())?;
    if !matches!(spec.split, SplitSpec::All { seed: None }) {
        let s = PeftSpan::from_mapping(opts.span.as_ref());
        return Err(DataError::InvalidSpec {
            message: "streaming preparation keeps file order: it needs one split, unshuffled"
                .into(),
            src: s.src,
            span: s.span,
        });
    }
    let mut run = Run::new(spec, tok, opts)?;
    let files = resolve_paths(&spec.source.paths, &opts.base_dir, opts.span.as_ref())?;
    let labels = class_names(spec);
    let mut writer = TokenFileWriter::create(out)?;
    writer.begin_split("train");
    let mut stats = SplitStats::new("train", &labels);
    let mut packer = spec.max_len.filter(|_| spec.packing).map(Packer::new);
    let mut sequences = 0usize;
    run.read(files, spec.limit, &mut |e| {
        stats.add(&e);
        match packer.as_mut() {
            Some(p) => {
                if let Some(full) = p.push(&e) {
                    sequences += 1;
                    writer.write(&full)?;
                }
                Ok(())
            }
            None => {
                sequences += 1;
                writer.write(&e)
            }
        }
    })?;
    if let Some(last) = packer.as_mut().and_then(Packer::finish) {
        sequences += 1;
        writer.write(&last)?;
    }
    let warnings = run.check_errors()?;
    let mut split = stats.finish();
    if split.examples == 0 {
        return Err(run.empty());
    }
    split.sequences = sequences;
    let mut summary = run.summary.clone();
    summary.splits.push(split);
    writer.finish(&summary, &warnings)?;
    Ok(summary)
}

fn class_names(spec: &DatasetSpec) -> Vec<String> {
    match &spec.mapping {
        FieldMapping::Classification { labels, .. } => labels.clone(),
        _ => Vec::new(),
    }
}

fn permute(examples: Vec<Example>, order: &[usize]) -> Vec<Example> {
    let mut slots: Vec<Option<Example>> = examples.into_iter().map(Some).collect();
    order
        .iter()
        .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

fn display(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// The files of each group: one group per split for `SplitSpec::Files`, else one group.
fn file_groups(
    spec: &DatasetSpec,
    opts: &PrepareOptions,
) -> Result<Vec<(String, Vec<PathBuf>)>, DataError> {
    let span = opts.span.as_ref();
    match &spec.split {
        SplitSpec::Files { parts, .. } => parts
            .iter()
            .map(|p| {
                Ok((
                    p.name.clone(),
                    resolve_paths(&p.paths, &opts.base_dir, span)?,
                ))
            })
            .collect(),
        _ => Ok(vec![(
            "train".to_owned(),
            resolve_paths(&spec.source.paths, &opts.base_dir, span)?,
        )]),
    }
}

/// State of one preparation: the compiled template, the encoder, dedupe set, row errors, counts.
struct Run<'a> {
    spec: &'a DatasetSpec,
    opts: &'a PrepareOptions,
    renderer: Renderer,
    encoder: Encoder,
    seen: HashSet<[u8; 16]>,
    errors: RowErrors,
    summary: DataSummary,
}

impl<'a> Run<'a> {
    fn new(
        spec: &'a DatasetSpec,
        tok: &ModelTokenizer,
        opts: &'a PrepareOptions,
    ) -> Result<Self, DataError> {
        let renderer = Renderer::new(
            &spec.template,
            &spec.mapping,
            spec.completion_only,
            tok,
            opts.span.as_ref(),
        )?;
        let encoder = Encoder::new(
            tok,
            EncodeConfig {
                max_len: spec.max_len,
                truncation: spec.truncation,
            },
        )
        .map_err(|message| DataError::Tokenizer {
            path: PathBuf::from("tokenizer.json"),
            message,
        })?;
        Ok(Run {
            spec,
            opts,
            renderer,
            encoder,
            seen: HashSet::new(),
            errors: RowErrors::default(),
            summary: DataSummary::default(),
        })
    }

    /// Stream `files`, handing each example to `sink`; stop after `stop_at` examples.
    fn read(
        &mut self,
        files: Vec<PathBuf>,
        stop_at: Option<usize>,
        sink: &mut dyn FnMut(Example) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let span = self.opts.span.clone();
        let span = span.as_ref();
        self.summary
            .files
            .extend(files.iter().map(|f| display(f, &self.opts.base_dir)));
        let mut rows = read_rows(
            self.spec.source.format,
            files,
            self.spec.source.text_unit,
            &self.opts.base_dir,
        );
        let chunk = self.opts.chunk_rows.max(1);
        let mut rendered: Vec<Rendered> = Vec::with_capacity(chunk);
        let mut places: Vec<RowLocation> = Vec::with_capacity(chunk);
        let mut emitted = 0usize;
        loop {
            let next = rows.next();
            let done = next.is_none();
            if let Some(item) = next {
                self.summary.rows_read += 1;
                let row = match item {
                    Ok(row) => row,
                    Err(e) if e.is_row_error() => {
                        self.errors.push(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let r = map_row(&self.spec.mapping, &row, span)
                    .and_then(|m| self.renderer.render(&m, &row, span))
                    .map_err(|e| match e {
                        DataError::ChatTemplate { message } => DataError::TemplateRow {
                            at: row.at.clone(),
                            message,
                        },
                        other => other,
                    });
                match r {
                    Ok(r) => {
                        if self.spec.dedupe && !self.seen.insert(fingerprint(&r)) {
                            self.summary.duplicates += 1;
                            continue;
                        }
                        rendered.push(r);
                        places.push(row.at);
                    }
                    Err(e) => {
                        self.errors.push(e);
                        continue;
                    }
                }
            }
            if rendered.len() >= chunk || (done && !rendered.is_empty()) {
                let encoded =
                    self.encoder
                        .encode(&rendered)
                        .map_err(|message| DataError::Tokenize {
                            at: places.first().cloned().unwrap_or(RowLocation {
                                file: PathBuf::new(),
                                at: super::error::RowIndex::File,
                            }),
                            message,
                        })?;
                for (enc, at) in encoded.into_iter().zip(places.drain(..)) {
                    if stop_at.is_some_and(|n| emitted >= n) {
                        break;
                    }
                    match enc {
                        Encoded::Example { example, truncated } => {
                            self.summary.truncated += usize::from(truncated);
                            emitted += 1;
                            sink(example)?;
                        }
                        Encoded::TooLong(_) => self.summary.too_long += 1,
                        Encoded::Empty => self.errors.push(DataError::EmptyRow { at }),
                    }
                }
                rendered.clear();
                places.clear();
            }
            if done || stop_at.is_some_and(|n| emitted >= n) {
                break;
            }
        }
        Ok(())
    }

    /// Fail on row errors, or turn them into a warning under `skip_invalid`.
    fn check_errors(&mut self) -> Result<Vec<DataWarning>, DataError> {
        let errors = std::mem::take(&mut self.errors);
        if errors.count == 0 {
            return Ok(Vec::new());
        }
        if !self.spec.skip_invalid {
            let files = self.summary.files.join(", ");
            return Err(errors.into_error(files).unwrap_or(DataError::EmptyRow {
                at: RowLocation {
                    file: PathBuf::new(),
                    at: super::error::RowIndex::File,
                },
            }));
        }
        self.summary.invalid_rows = errors.count;
        let w = DataWarning {
            message: format!("skipped {} invalid rows", errors.count),
            examples: errors.first.iter().map(ToString::to_string).collect(),
        };
        tracing::warn!("{}: {}", w.message, w.examples.join("; "));
        Ok(vec![w])
    }

    fn empty(&self) -> DataError {
        let s = PeftSpan::from_mapping(self.opts.span.as_ref());
        DataError::EmptyDataset {
            files: self.summary.files.join(", "),
            src: s.src,
            span: s.span,
        }
    }
}

/// What dedupe compares: the rendered text, the pair and the label.
fn fingerprint(r: &Rendered) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(&(r.text.len() as u64).to_le_bytes());
    h.update(r.text.as_bytes());
    if let Some(p) = &r.pair {
        h.update(&[1]);
        h.update(p.as_bytes());
    }
    if let Some(c) = r.class_label {
        h.update(&[2]);
        h.update(&c.to_le_bytes());
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}
