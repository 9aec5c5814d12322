//! Data preparation: the runtime side of `dataset` declarations.
//!
//! A [`DatasetSpec`] (built by the planner from the checked program) names files, a field
//! mapping, a template and length/split settings; [`prepare`] streams the files through
//! [`source`] readers, [`mapping`], [`render`] and [`encode`], and returns named splits of
//! [`Example`](crate::runtime::batch::Example)s with a [`DataSummary`]; [`collate`] pads them
//! into a [`Batch`](crate::runtime::batch::Batch). [`store`] writes and reads the cached
//! tokenized file; [`key`] lists what its content key depends on.
//!
//! Errors point into the data (file, line, field) and carry the `.peft` span of the
//! declaration when the caller passes one ([`MappingSpan`]). This module never reads `.peft`
//! syntax.

// Errors are cold and carry the `.peft` source for miette; boxing every variant's fields would
// make each diagnostic harder to build and read for no measurable gain.
#![allow(clippy::result_large_err)]

pub mod collate;
pub mod encode;
pub mod error;
pub mod key;
pub mod mapping;
pub mod pack;
pub mod pipeline;
pub mod render;
pub mod source;
pub mod spec;
pub mod split;
pub mod store;
pub mod summary;
pub mod tokenizer;

pub use collate::{collate, CollateConfig, CollateError, PaddingSide};
pub use error::{DataError, DataWarning, MappingSpan, RowIndex, RowLocation};
pub use key::{content_key_inputs, ContentKeyInputs};
pub use pack::pack;
pub use pipeline::{
    prepare, prepare_to_file, validate, PrepareOptions, PreparedDataset, PreparedSplit,
};
pub use spec::{
    DatasetSpec, FieldMapping, Roles, RolesError, SourceFormat, SourceSpec, SplitFiles, SplitPart,
    SplitSize, SplitSpec, Template, TextUnit, Truncation,
};
pub use store::{load, save, TokenFileWriter, TOKENIZED_FORMAT_VERSION};
pub use summary::DataSummary;
pub use tokenizer::{ModelTokenizer, TokenizerConfig};
