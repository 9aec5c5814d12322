//! Tests: train.
