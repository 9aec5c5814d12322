//! Tests: peft_format (adapters saved by Hugging Face PEFT itself, `tests/fixtures/peft_format/`,
//! against peftc's loader and exporter, for every architecture and task class).
mod interop;
