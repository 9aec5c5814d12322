//! Tests: exec.
