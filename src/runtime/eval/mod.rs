//! eval: see ARCHITECTURE.md.
