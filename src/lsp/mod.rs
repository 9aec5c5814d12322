//! # lsp: the language server
//!
//! `peftc lsp` speaks the Language Server Protocol over stdio ([`run_stdio`]) or any
//! [`lsp_server::Connection`] ([`serve`], used by tests and the bench with
//! `Connection::memory()`). It reuses the checker: every open document is checked (through a
//! world where open buffers shadow the disk) when its text changes, and only that document;
//! edits queued together are applied before one check (see [`ServerConfig::debounce`]).
//! Features: diagnostics, hover, completion, go to definition, references, rename, document
//! symbols, formatting (with [`crate::fmt`]) and quick fixes for "did you mean".
//! Positions are UTF-16 as LSP requires.
//!
//! This module knows LSP and JSON; it must not re-implement checking (the checker's results
//! are read from [`crate::check::Checked`]).

mod completion;
mod context;
mod diagnostics;
mod fields;
mod hover;
mod index;
mod navigate;
mod server;
mod state;
mod stdlib;
mod text;
mod transport;
mod world;

pub use server::{capabilities, serve, ServerConfig};
pub use text::{path_to_uri, uri_to_path, LineMap};
pub use transport::MAX_MESSAGE;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LspError {
    #[error("language server protocol error: {0}")]
    #[diagnostic(code(peftc::lsp::protocol))]
    Protocol(#[from] lsp_server::ProtocolError),
    #[error("cannot encode a message: {0}")]
    #[diagnostic(code(peftc::lsp::json))]
    Json(#[from] serde_json::Error),
    #[error("the stdio threads failed: {0}")]
    #[diagnostic(code(peftc::lsp::io))]
    Io(#[from] std::io::Error),
    #[error("the client sent `exit` before `shutdown`")]
    #[diagnostic(code(peftc::lsp::exit))]
    ExitWithoutShutdown,
    #[error("the client closed the connection")]
    #[diagnostic(code(peftc::lsp::disconnected))]
    Disconnected,
}

/// Runs the server on stdin/stdout until `exit` (reads bounded: see [`transport`]).
pub fn run_stdio() -> Result<(), LspError> {
    let (conn, io) =
        transport::connect(std::io::BufReader::new(std::io::stdin()), std::io::stdout());
    serve(&conn, ServerConfig::default())?;
    drop(conn);
    io.join()?;
    Ok(())
}
