//! Data preparation: sources, mapping, templates, tokenization, masking, packing, splits,
//! summary, the tokenized-data file, collation, and errors pointing into the data.
//!
//! Tokenizers are the tiny ones under `tests/fixtures/data/` (made by `make_fixtures.py`, which
//! also records what transformers renders and tokenizes for the chat-template tests).

mod collate;
mod encoding;
mod errors;
mod masking;
mod packing;
mod real;
mod sources;
mod spec;
mod splits;
mod store;
mod templates;

use std::path::{Path, PathBuf};

use peftc::runtime::data::{
    prepare, DatasetSpec, FieldMapping, ModelTokenizer, PrepareOptions, PreparedDataset,
    SourceFormat, SourceSpec,
};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data")
}

pub fn tokenizer(name: &str) -> ModelTokenizer {
    ModelTokenizer::from_dir(&fixtures().join(name)).unwrap()
}

/// A temporary folder to write data files into.
pub struct Dir(pub tempfile::TempDir);

impl Dir {
    pub fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn write(&self, name: &str, content: &str) -> &Self {
        let p = self.0.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn opts(&self) -> PrepareOptions {
        PrepareOptions::new(self.path())
    }
}

pub fn spec(format: SourceFormat, path: &str, mapping: FieldMapping) -> DatasetSpec {
    DatasetSpec::new(
        SourceSpec {
            format,
            paths: vec![path.to_owned()],
            text_unit: Default::default(),
        },
        mapping,
    )
}

pub fn classify(text: &str, label: &str, labels: &[&str]) -> FieldMapping {
    FieldMapping::Classification {
        text: text.into(),
        text_pair: None,
        label: label.into(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn instruction(prompt: &str, completion: &str) -> FieldMapping {
    FieldMapping::Instruction {
        prompt: prompt.into(),
        input: None,
        completion: completion.into(),
        system: None,
    }
}

pub fn run(spec: &DatasetSpec, tok: &ModelTokenizer, dir: &Dir) -> PreparedDataset {
    prepare(spec, tok, &dir.opts()).unwrap()
}

/// Decode ids back to text with special tokens kept.
pub fn decode(tok: &ModelTokenizer, ids: &[u32]) -> String {
    tok.tokenizer().decode(ids, false).unwrap()
}

/// The ids the tokenizer gives `text` without special tokens.
pub fn ids(tok: &ModelTokenizer, text: &str) -> Vec<u32> {
    tok.tokenizer()
        .encode(text, false)
        .unwrap()
        .get_ids()
        .to_vec()
}

/// Render a diagnostic as `peftc` prints it, without colours.
pub fn render_diag(d: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, d)
        .unwrap();
    out
}
