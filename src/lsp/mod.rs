//! lsp: see ARCHITECTURE.md.
