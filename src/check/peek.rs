//! Data peeking: `peftc check` reads the first bytes ([`PEEK_BYTES`]) of every data file, parses
//! them with the run's own readers ([`source::peek`]) and maps each row with the run's own
//! mapping ([`map_row`], [`FieldMapping::from_roles`]), so a field name, a field type, a label or
//! a malformed row that the tokenize stage would refuse is refused here first, at the `.peft`
//! span that names it. What the prefix cannot show (a bad row in the middle of a 10 GB file, a
//! Parquet file, whose schema is in its footer) is left to the run. Reads only through
//! [`World::read_prefix`](super::World::read_prefix).

use super::cx::Cx;
use super::hir::*;
use super::suggest;
use crate::runtime::data::mapping::{keys_of, lookup, map_row, MappedRow};
use crate::runtime::data::render::CustomTemplate;
use crate::runtime::data::source::{self, SourceRow, PEEK_BYTES};
use crate::runtime::data::{DataError, FieldMapping, Roles, RolesError, SourceFormat, TextUnit};
use crate::syntax::{Code, Diagnostic, Loc, Span};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// At most this many files of one dataset are peeked at (a glob may match thousands).
const PEEK_FILES: usize = 4;

/// The rows read from the start of one file.
#[derive(Debug, Default)]
pub struct Peeked {
    pub rows: Vec<SourceRow>,
    /// Rows the reader refused (malformed records).
    pub errors: Vec<DataError>,
    /// Whether the prefix was the whole file (so `rows` are all its rows).
    pub whole: bool,
}

/// What the peeked rows of a dataset say, for the relation checks.
#[derive(Debug, Clone, Default)]
pub struct DataFacts {
    /// Rows read, over every peeked file.
    pub rows: u64,
    /// Whether every file was read whole: `rows` is then the dataset's size.
    pub complete: bool,
    /// Label counts of a classification dataset (by label text).
    pub labels: BTreeMap<String, u64>,
    /// Rows whose prompt alone has at least `max_len` words (the completion is cut off).
    pub prompt_fills_max_len: u64,
    /// Rows mapped without error.
    pub mapped: u64,
    /// Records the reader could not parse.
    pub unreadable: u64,
}

fn format_of(f: DataFormat) -> SourceFormat {
    match f {
        DataFormat::Jsonl => SourceFormat::Jsonl,
        DataFormat::Json => SourceFormat::Json,
        DataFormat::Csv => SourceFormat::Csv,
        DataFormat::Tsv => SourceFormat::Tsv,
        DataFormat::Text => SourceFormat::Text,
        DataFormat::Parquet => SourceFormat::Parquet,
    }
}

/// The roles as the run reads them: dotted paths.
fn roles(ds: &Dataset, labels: Option<Vec<String>>) -> Roles {
    let p = |f: &Option<FieldPath>| f.as_ref().map(|f| f.path.join("."));
    Roles {
        text: p(&ds.fields.text),
        label: p(&ds.fields.label),
        prompt: p(&ds.fields.prompt),
        completion: p(&ds.fields.completion),
        messages: p(&ds.fields.messages),
        labels,
    }
}

/// The `.peft` location of the role that maps `field` (a message's `messages.0.role` belongs to
/// `messages`).
fn role_loc(ds: &Dataset, field: &str) -> Option<Loc> {
    let f = &ds.fields;
    [&f.text, &f.label, &f.prompt, &f.completion, &f.messages]
        .into_iter()
        .flatten()
        .find(|p| {
            let path = p.path.join(".");
            field == path || field.starts_with(&format!("{path}."))
        })
        .map(|p| p.loc)
}

impl Cx<'_> {
    /// The first rows of `file`, read once per check.
    fn peek_file(&mut self, format: DataFormat, file: &Path, shown: PathBuf) -> Option<Rc<Peeked>> {
        if let Some(p) = self.peeked.get(file) {
            return p.clone();
        }
        let got = self
            .world
            .read_prefix(file, PEEK_BYTES + 1)
            .ok()
            .and_then(|mut bytes| {
                let whole = bytes.len() <= PEEK_BYTES;
                bytes.truncate(PEEK_BYTES);
                let rows = source::peek(format_of(format), bytes, whole, shown, TextUnit::Line)?;
                let mut p = Peeked {
                    whole,
                    ..Peeked::default()
                };
                for r in rows {
                    match r {
                        Ok(row) => p.rows.push(row),
                        Err(e) => p.errors.push(e),
                    }
                }
                Some(Rc::new(p))
            });
        self.peeked.insert(file.to_path_buf(), got.clone());
        got
    }

    /// Checks a dataset's mapped fields against the first rows of its files; `labels` are the
    /// classes of the classifier that reads it, if any.
    pub fn peek_dataset(
        &mut self,
        ds: &Dataset,
        labels: Option<Vec<String>>,
        dir: &Path,
    ) -> DataFacts {
        let mut facts = DataFacts {
            complete: true,
            ..DataFacts::default()
        };
        let declared_labels = labels.is_some();
        let mapping = match FieldMapping::from_roles(&roles(ds, labels)) {
            Ok(m) => m,
            Err(RolesError::NoLabels) => {
                // Labels unknown here (reported elsewhere): check the fields, not the values.
                let mut r = roles(ds, Some(Vec::new()));
                r.labels = Some(Vec::new());
                match FieldMapping::from_roles(&r) {
                    Ok(m) => m,
                    Err(_) => return facts,
                }
            }
            Err(RolesError::NoInput) => return facts,
        };
        if ds.source.files.is_empty() {
            return DataFacts::default();
        }
        let mut peeked = Vec::new();
        for file in ds.source.files.iter().take(PEEK_FILES) {
            let shown = file
                .strip_prefix(dir)
                .map_or_else(|_| file.clone(), Path::to_path_buf);
            match self.peek_file(ds.source.format, file, shown) {
                Some(p) => peeked.push(p),
                None => return DataFacts::default(),
            }
        }
        facts.complete = ds.source.files.len() <= PEEK_FILES && peeked.iter().all(|p| p.whole);
        facts.unreadable = peeked.iter().map(|p| p.errors.len() as u64).sum();
        if let Some(e) = peeked.iter().flat_map(|p| p.errors.iter()).next() {
            if !ds.skip_invalid {
                if let DataError::Malformed {
                    at,
                    format,
                    message,
                } = e
                {
                    self.emit(
                        Diagnostic::new(
                            Code::DataMalformed,
                            ds.source.loc.file,
                            ds.source.loc.span,
                            format!("{at} is not a valid {format} record: {message}"),
                        )
                        .with_label(format!("the run would stop at {at}"))
                        .with_help(
                            "fix the record, or set `skip_invalid = true` to drop unreadable rows",
                        ),
                    );
                }
            }
        }
        let rows: Vec<&SourceRow> = peeked.iter().flat_map(|p| p.rows.iter()).collect();
        facts.rows = rows.len() as u64;
        if rows.is_empty() {
            if facts.complete && peeked.iter().all(|p| p.errors.is_empty()) {
                self.emit(
                    Diagnostic::new(
                        Code::DataMalformed,
                        ds.source.loc.file,
                        ds.source.loc.span,
                        format!("`{}` has no rows", shown_files(ds, dir)),
                    )
                    .with_label("the run would stop: the dataset is empty")
                    .with_help("point the source at the data file, or fill the file"),
                );
            }
            return facts;
        }
        // The first error of each field, and how many rows have it.
        let mut missing: BTreeMap<String, (u64, String)> = BTreeMap::new();
        let mut first_other: Option<DataError> = None;
        let mut failed = 0u64;
        let template = match (&ds.template, ds.template_loc) {
            (Some(Template::Custom(t)), Some(loc)) => {
                CustomTemplate::parse(t).ok().map(|t| (t, loc))
            }
            _ => None,
        };
        let mut bad_holes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let label_names = match &mapping {
            FieldMapping::Classification { labels, .. } => labels.clone(),
            _ => Vec::new(),
        };
        for row in &rows {
            match map_row(&mapping, row, None) {
                Ok(m) => {
                    facts.mapped += 1;
                    if let Some((t, _)) = &template {
                        if let Err(DataError::UnknownHole { hole, keys, .. }) =
                            t.render(&m, row, None)
                        {
                            bad_holes.entry(hole).or_insert(keys);
                        }
                    }
                    match m {
                        MappedRow::Classification { label, .. } => {
                            let name = label_names
                                .get(label as usize)
                                .cloned()
                                .unwrap_or_else(|| label.to_string());
                            *facts.labels.entry(name).or_default() += 1;
                        }
                        MappedRow::Instruction { prompt, .. }
                            if prompt.split_whitespace().count() as u64
                                >= u64::from(ds.max_len) =>
                        {
                            facts.prompt_fills_max_len += 1;
                        }
                        _ => {}
                    }
                }
                Err(DataError::MissingField { at, field, .. }) => {
                    failed += 1;
                    let e = missing.entry(field).or_insert((0, at.to_string()));
                    e.0 += 1;
                }
                Err(DataError::UnknownLabel { .. }) if !declared_labels => {
                    facts.mapped += 1;
                }
                Err(e) => {
                    failed += 1;
                    if first_other.is_none() {
                        first_other = Some(e);
                    }
                }
            }
        }
        let n = rows.len() as u64;
        let where_ = if facts.complete && n == 1 {
            "its only row".to_string()
        } else if facts.complete {
            format!("its {n} rows")
        } else {
            format!("the first {n} rows")
        };
        let all_fail = failed == n;
        for (field, (count, first_at)) in &missing {
            let Some(loc) = role_loc(ds, field) else {
                continue;
            };
            if *count < n && ds.skip_invalid && !all_fail {
                continue;
            }
            let leaf = field.rsplit('.').next().unwrap_or(field);
            let nested_keys: Vec<String> = match field.rsplit_once('.') {
                Some((parent, _)) => rows
                    .iter()
                    .filter_map(|r| lookup(&r.value, parent))
                    .flat_map(keys_of)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                // The rows' keys, gathered only when a field is missing.
                None => rows
                    .iter()
                    .flat_map(|r| keys_of(&r.value))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            };
            let help = match suggest::did_you_mean(leaf, nested_keys.iter().map(String::as_str)) {
                Some(h) => h,
                None if nested_keys.is_empty() => "the rows have no fields".to_string(),
                None => format!("the rows have {}", quoted(&nested_keys)),
            };
            let (message, label) = if *count == n {
                (
                    format!(
                        "no row of `{}` has the field `{field}`",
                        shown_files(ds, dir)
                    ),
                    format!("not in {where_}"),
                )
            } else {
                (
                    format!("{first_at} has no field `{field}`"),
                    format!("missing in {count} of {where_}"),
                )
            };
            let help = if *count < n {
                format!("{help}; or set `skip_invalid = true` to drop such rows")
            } else {
                help
            };
            self.emit(
                Diagnostic::new(Code::DataFieldMissing, loc.file, loc.span, message)
                    .with_label(label)
                    .with_help(help),
            );
        }
        if let Some((_, loc)) = template {
            for (hole, keys) in bad_holes {
                let roles = match &mapping {
                    FieldMapping::Text { .. } => vec!["text"],
                    FieldMapping::Classification { .. } => vec!["text", "pair"],
                    FieldMapping::Instruction { .. } => vec!["prompt", "input", "completion"],
                    FieldMapping::Chat { .. } => vec![],
                };
                let mut names: Vec<&str> = roles.clone();
                names.extend(keys.iter().map(String::as_str));
                let help =
                    suggest::did_you_mean(&hole, names.iter().copied()).unwrap_or_else(|| {
                        format!(
                            "holes are the roles {} or a field of the rows ({})",
                            roles.join(", "),
                            quoted(&keys)
                        )
                    });
                self.emit(
                    Diagnostic::new(
                        Code::TemplateHole,
                        loc.file,
                        self.hole_span(loc, &hole),
                        format!("the template uses `{{{hole}}}`, which is neither a role nor a field of the data"),
                    )
                    .with_label(format!("`{{{hole}}}` is not mapped"))
                    .with_help(help),
                );
            }
        }
        if let Some(e) = first_other {
            if !ds.skip_invalid || all_fail {
                self.other_row_error(ds, e);
            }
        }
        facts
    }

    /// The span of `{hole}` inside the template string at `loc` (the whole string when the hole
    /// is written with escapes).
    fn hole_span(&self, loc: Loc, hole: &str) -> Span {
        let text = self
            .sources
            .get(loc.file)
            .map(|f| loc.span.text(&f.text))
            .unwrap_or("");
        let mut from = 0;
        while let Some(i) = text[from..].find('{') {
            let open = from + i;
            let rest = &text[open + 1..];
            if let Some(close) = rest.find('}') {
                if rest[..close].trim() == hole {
                    let start = loc.span.start as usize + open;
                    return Span::new(start, start + close + 2);
                }
            }
            from = open + 1;
        }
        loc.span
    }

    fn other_row_error(&mut self, ds: &Dataset, e: DataError) {
        match e {
            DataError::WrongType {
                at,
                field,
                expected,
                found,
                ..
            } => {
                let Some(loc) = role_loc(ds, &field) else {
                    return;
                };
                self.emit(
                    Diagnostic::new(
                        Code::DataFieldType,
                        loc.file,
                        loc.span,
                        format!("`{field}` is {found} at {at}, but this role needs {expected}"),
                    )
                    .with_label(format!("needs {expected}"))
                    .with_help(format!(
                        "map a field that holds {expected}, or convert the data; `skip_invalid = true` drops such rows"
                    )),
                );
            }
            DataError::UnknownLabel {
                at,
                field,
                value,
                known,
                ..
            } => {
                let Some(loc) = role_loc(ds, &field) else {
                    return;
                };
                self.emit(
                    Diagnostic::new(
                        Code::DataLabelUnknown,
                        loc.file,
                        loc.span,
                        format!("the label {value} at {at} is not one of the declared labels"),
                    )
                    .with_label(format!("labels are {}", quoted(&known)))
                    .with_help(format!(
                        "add {value} to `labels` (in the order of the class indices), or fix the row"
                    )),
                );
            }
            _ => {}
        }
    }
}

fn shown_files(ds: &Dataset, dir: &Path) -> String {
    let first = ds.source.patterns.first().cloned().unwrap_or_default();
    first
        .strip_prefix(dir)
        .map_or(first.clone(), Path::to_path_buf)
        .display()
        .to_string()
}

fn quoted(names: &[String]) -> String {
    let mut v: Vec<String> = names.iter().take(12).map(|k| format!("`{k}`")).collect();
    if names.len() > 12 {
        v.push(format!("and {} more", names.len() - 12));
    }
    v.join(", ")
}
