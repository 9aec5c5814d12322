//! Tests: runtime_models.
