//! exec: see ARCHITECTURE.md.
