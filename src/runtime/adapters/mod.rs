//! adapters: see ARCHITECTURE.md.
