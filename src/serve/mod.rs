//! `peftc serve`: many adapters on one base model over an OpenAI-compatible HTTP API, switched
//! per request, with continuous batching across adapters.
//!
//! The base is loaded once ([`engine`]); a scheduler thread owns it ([`scheduler`]) and runs
//! every running request in one forward pass per step, each row with its own KV cache and its
//! own LoRA adapter (gathered per row, see
//! [`RowAdapters`](crate::runtime::adapters::linear::RowAdapters)). Adapters load lazily on
//! another thread and live in a byte-bounded LRU ([`lru`]). HTTP is axum on tokio
//! ([`routes`], [`stream`]); [`server`] starts and stops it. This layer sits on top like
//! `cli` and `lsp`: it uses the runtime's models and must not re-implement one.

pub mod api;
pub mod config;
pub mod engine;
pub mod error;
pub mod lru;
pub mod metrics;
pub mod pipeline;
pub mod registry;
pub mod routes;
pub mod scheduler;
pub mod server;
pub mod state;
pub mod stream;
pub mod text;

pub use config::{AdapterSpec, BaseSource, BaseSpec, Limits, ServeConfig};
pub use server::{start, ServerHandle};
