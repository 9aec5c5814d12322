//! Tests: train. Training and evaluation engine (`peftc::runtime::{train, eval}`) against
//! PyTorch / transformers reference numbers (`tests/fixtures/train/`, made by
//! `tests/parity/make_train_fixtures.py`) and hand-computed values.

mod checkpoints;
mod eval_metrics;
mod fixtures;
mod loop_parity;
mod losses;
mod optim_parity;
mod peft_bert;
mod peft_llama;
mod peft_llama_cls;
mod resume;
mod schedules;
mod tiny;
