//! Tests: quant.
