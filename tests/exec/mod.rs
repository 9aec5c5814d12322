//! Tests: exec. The planning and execution engine driven with dummy stage kinds (see
//! `support.rs`): cache hits, re-runs and their reasons, early cutoff, corruption, failures,
//! gates, concurrency, the stat cache, lockfile drift, renderings, reports and watching.

mod cache_cli;
mod caching;
mod concurrency;
mod failures;
mod hashing;
mod lock;
mod render;
mod report;
mod support;
mod watch;
