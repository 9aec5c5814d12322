//! [`DatasetSpec`]: the plain, serialisable description of one dataset that the planner builds
//! from a checked `dataset` declaration and that data preparation consumes.
//!
//! It holds no `.peft` syntax and no spans (spans travel separately, see
//! [`super::error::MappingSpan`]); it does no I/O and no validation beyond what the types say.

use serde::{Deserialize, Serialize};

/// Everything data preparation needs to know about one dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Where the rows come from.
    pub source: SourceSpec,
    /// Which source fields feed which roles.
    pub mapping: FieldMapping,
    /// How rows become one training string.
    #[serde(default)]
    pub template: Template,
    /// Take loss only on the completion / assistant turns (causal LM roles only).
    #[serde(default = "yes")]
    pub completion_only: bool,
    /// Longest example in tokens, special tokens included; `None` for no limit.
    #[serde(default)]
    pub max_len: Option<usize>,
    /// What to do with an example longer than `max_len`.
    #[serde(default)]
    pub truncation: Truncation,
    /// Concatenate short causal LM examples into sequences of `max_len` tokens.
    #[serde(default)]
    pub packing: bool,
    /// Named splits.
    #[serde(default)]
    pub split: SplitSpec,
    /// Drop rows whose rendered text was already seen (keeps the first).
    #[serde(default)]
    pub dedupe: bool,
    /// Drop invalid rows with a warning instead of failing.
    #[serde(default)]
    pub skip_invalid: bool,
    /// Keep only the first N rows after shuffling (before splitting).
    #[serde(default)]
    pub limit: Option<usize>,
}

fn yes() -> bool {
    true
}

/// The file format of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// One JSON object per line.
    Jsonl,
    /// One JSON array of objects per file (read whole: use JSONL for large data).
    Json,
    /// Comma-separated with a header row.
    Csv,
    /// Tab-separated with a header row.
    Tsv,
    /// Plain text: the field `text` holds a line or a whole file (see [`TextUnit`]).
    Text,
    /// Apache Parquet, read row by row.
    Parquet,
}

/// What one example is in a plain-text source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextUnit {
    /// Each non-empty line is an example.
    #[default]
    Line,
    /// Each file is an example.
    File,
}

/// Files of one format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub format: SourceFormat,
    /// Paths or glob patterns, relative to the base directory given to preparation. Files are
    /// read in the order given; the matches of one glob in sorted order.
    pub paths: Vec<String>,
    /// For [`SourceFormat::Text`] only.
    #[serde(default)]
    pub text_unit: TextUnit,
}

/// A path into a record: `a.b.0.c` walks objects by key and arrays by index. A key that itself
/// contains dots is found first when it exists as written.
pub type FieldPath = String;

/// Which source fields feed the roles a task needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldMapping {
    /// Causal LM on raw text.
    Text { text: FieldPath },
    /// Sequence classification: `text` (and an optional second segment) and a label among `labels`.
    Classification {
        text: FieldPath,
        #[serde(default)]
        text_pair: Option<FieldPath>,
        label: FieldPath,
        /// Declared classes in index order. A string label must be one of them; an integer label
        /// is matched as a string first, then taken as an index.
        labels: Vec<String>,
    },
    /// Instruction tuning: prompt (plus optional input) and completion.
    Instruction {
        prompt: FieldPath,
        #[serde(default)]
        input: Option<FieldPath>,
        completion: FieldPath,
        /// A system message for chat templates.
        #[serde(default)]
        system: Option<String>,
    },
    /// Chat data: a list of `{role, content}` objects.
    Chat {
        messages: FieldPath,
        #[serde(default = "role_key")]
        role_key: String,
        #[serde(default = "content_key")]
        content_key: String,
    },
}

/// The fields a dataset maps to each role (dotted paths), before a mapping is chosen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Roles {
    pub text: Option<FieldPath>,
    pub label: Option<FieldPath>,
    pub prompt: Option<FieldPath>,
    pub completion: Option<FieldPath>,
    pub messages: Option<FieldPath>,
    /// The classes of a classifier, when the model is one.
    pub labels: Option<Vec<String>>,
}

/// Why no [`FieldMapping`] fits the roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RolesError {
    #[error("the dataset maps no `text`, `prompt`/`completion` or `messages` field")]
    NoInput,
    #[error("a classification dataset needs its labels")]
    NoLabels,
}

impl FieldMapping {
    /// The one rule that picks a mapping from the roles a dataset maps, used by the tokenize
    /// stage and by `peftc check` on the rows it peeks at: `messages` first, then `prompt` with
    /// `completion`, then `text` with `label` (a classifier), then `text`.
    pub fn from_roles(r: &Roles) -> Result<FieldMapping, RolesError> {
        if let Some(messages) = &r.messages {
            return Ok(FieldMapping::Chat {
                messages: messages.clone(),
                role_key: role_key(),
                content_key: content_key(),
            });
        }
        if let (Some(prompt), Some(completion)) = (&r.prompt, &r.completion) {
            return Ok(FieldMapping::Instruction {
                prompt: prompt.clone(),
                input: None,
                completion: completion.clone(),
                system: None,
            });
        }
        match (&r.text, &r.label) {
            (Some(text), Some(label)) => Ok(FieldMapping::Classification {
                text: text.clone(),
                text_pair: None,
                label: label.clone(),
                labels: r.labels.clone().ok_or(RolesError::NoLabels)?,
            }),
            (Some(text), None) => Ok(FieldMapping::Text { text: text.clone() }),
            (None, _) => Err(RolesError::NoInput),
        }
    }
}

fn role_key() -> String {
    "role".into()
}
fn content_key() -> String {
    "content".into()
}

/// How a row becomes text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "template", rename_all = "snake_case")]
pub enum Template {
    /// No template: the `text` role as is (text and classification mappings), or prompt followed
    /// directly by completion (instruction mapping).
    #[default]
    Plain,
    /// The Stanford Alpaca prompt format.
    Alpaca,
    /// `<|im_start|>role\ncontent<|im_end|>\n` turns.
    Chatml,
    /// The tokenizer's own `chat_template` from `tokenizer_config.json`.
    ChatTemplate,
    /// A string with `{field}` holes: a role name (`text`, `prompt`, `input`, `completion`) or a
    /// source field path. `{{` and `}}` are literal braces. With `completion_only`, loss is
    /// taken from the `{completion}` hole to the end.
    Custom(String),
}

/// What to do with an example longer than `max_len`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// Keep the first `max_len` tokens.
    #[default]
    Right,
    /// Keep the last `max_len` tokens.
    Left,
    /// Drop the example (counted in the summary).
    Drop,
}

/// The size of one named split.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitSize {
    /// A percentage of the (shuffled, limited) rows, 0 to 100.
    Percent(f64),
    /// An exact number of rows.
    Count(usize),
}

/// One named split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitPart {
    pub name: String,
    pub size: SplitSize,
}

/// How rows are divided into named splits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SplitSpec {
    /// Everything in one split named `train`, shuffled with `seed` when given.
    All {
        #[serde(default)]
        seed: Option<u64>,
    },
    /// Shuffle with `seed`, then cut consecutive parts in the order given.
    Sizes { parts: Vec<SplitPart>, seed: u64 },
    /// Each split is its own set of files (paths or globs), in the source's format.
    Files {
        parts: Vec<SplitFiles>,
        #[serde(default)]
        seed: Option<u64>,
    },
}

impl Default for SplitSpec {
    fn default() -> Self {
        SplitSpec::All { seed: None }
    }
}

/// The files of one named split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFiles {
    pub name: String,
    pub paths: Vec<String>,
}

impl DatasetSpec {
    /// A spec with defaults for everything but the source and mapping.
    pub fn new(source: SourceSpec, mapping: FieldMapping) -> Self {
        DatasetSpec {
            source,
            mapping,
            template: Template::Plain,
            completion_only: true,
            max_len: None,
            truncation: Truncation::Right,
            packing: false,
            split: SplitSpec::default(),
            dedupe: false,
            skip_invalid: false,
            limit: None,
        }
    }
}
