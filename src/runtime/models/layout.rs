//! Which files of a Hugging Face model folder hold its weights: the one rule the loader
//! ([`super::safetensors_source::SafetensorsSource::from_folder`]) and `peftc check` share, so a
//! folder the run would refuse is refused at check time. Pure: it looks at file names only and
//! must not open files or depend on candle.

use std::path::{Path, PathBuf};

/// The weights of a model folder, by file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `model.safetensors.index.json` names the shards.
    Index(PathBuf),
    /// One `model.safetensors`.
    Single(PathBuf),
    /// Other `.safetensors` files, sorted.
    Shards(Vec<PathBuf>),
    /// Only a pickled checkpoint (`.bin`, `.pt`, `.pth`): refused, it can run code when loaded.
    Pickled(PathBuf),
    /// No weights at all.
    Missing,
}

/// The layout of `folder` whose files are `entries` (any order; files of other folders are
/// ignored).
pub fn weight_layout(folder: &Path, entries: &[PathBuf]) -> WeightLayout {
    let mut files: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.parent() == Some(folder))
        .collect();
    files.sort();
    let named = |n: &str| files.iter().find(|p| p.file_name().is_some_and(|f| f == n));
    if let Some(p) = named("model.safetensors.index.json") {
        return WeightLayout::Index((*p).clone());
    }
    if let Some(p) = named("model.safetensors") {
        return WeightLayout::Single((*p).clone());
    }
    let ext = |p: &PathBuf, e: &[&str]| p.extension().is_some_and(|x| e.iter().any(|e| x == *e));
    if let Some(p) = files.iter().find(|p| ext(p, &["bin", "pt", "pth"])) {
        return WeightLayout::Pickled((*p).clone());
    }
    let shards: Vec<PathBuf> = files
        .iter()
        .filter(|p| ext(p, &["safetensors"]))
        .map(|p| (*p).clone())
        .collect();
    if shards.is_empty() {
        WeightLayout::Missing
    } else {
        WeightLayout::Shards(shards)
    }
}

/// The tokenizer file a model folder must hold.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
