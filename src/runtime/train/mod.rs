//! train: see ARCHITECTURE.md.
