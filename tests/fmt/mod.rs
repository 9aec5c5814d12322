//! Tests of `peftc fmt`.
