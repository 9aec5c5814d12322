//! `peftc serve`: per-row adapters in one batch equal each adapter alone (and transformers +
//! PEFT), concurrent HTTP requests across adapters show no bleed, errors and limits, hot
//! adapters, metrics, shutdown, and a real OpenAI client.
mod batching;
mod errors;
mod lifecycle;
mod no_bleed;
mod openai_client;
mod support;
