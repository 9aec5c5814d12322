//! data: see ARCHITECTURE.md.
