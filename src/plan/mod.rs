//! plan: see ARCHITECTURE.md.
