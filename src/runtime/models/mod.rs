//! models: see ARCHITECTURE.md.
