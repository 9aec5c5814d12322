//! check: see ARCHITECTURE.md.
