//! Tests: frontend.
