//! What every HTTP handler shares: the scheduler's inbox, the registry of served names, the
//! metrics, the limits, the tokenizer and chat template (prompts are tokenized in the
//! handler, not in the scheduler), and the layer shapes adapters are checked against.
//! Submitting a request here is where the queue bound (429) is enforced.

use super::api::GenParams;
use super::config::Limits;
use super::error::ApiError;
use super::metrics::Metrics;
use super::registry::{Registry, Target};
use super::scheduler::{Event, Job, Msg};
use crate::runtime::data::render::chat_template::ChatTemplate;
use crate::runtime::data::tokenizer::ModelTokenizer;
use crate::runtime::peft_format::load::LayerShape;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Shared by the handlers.
pub struct AppState {
    pub tx: UnboundedSender<Msg>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub tokenizer: ModelTokenizer,
    pub chat: Option<ChatTemplate>,
    pub shapes: Arc<Vec<LayerShape>>,
    pub device: candle_core::Device,
    pub next_id: AtomicU64,
}

impl AppState {
    /// A fresh request number.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// What the request's `model` selects, or 404 with the served names.
    pub fn resolve(&self, model: &str) -> Result<Target, ApiError> {
        self.registry
            .resolve(model)
            .ok_or_else(|| ApiError::unknown_model(model, self.registry.names()))
    }

    /// Token ids of `text`; `special`: add the tokenizer's special tokens (BOS) as
    /// transformers does for a plain prompt (a rendered chat template already has them).
    pub fn tokenize(&self, text: &str, special: bool) -> Result<Vec<u32>, ApiError> {
        let enc = self
            .tokenizer
            .tokenizer()
            .encode(text, special)
            .map_err(|e| ApiError::bad_request("bad_prompt", format!("tokenizing: {e}")))?;
        let ids = enc.get_ids().to_vec();
        if ids.is_empty() {
            return Err(ApiError::bad_request(
                "empty_prompt",
                "the prompt has no tokens",
            ));
        }
        Ok(ids)
    }

    /// Queues a request; 429 when the queue is full.
    pub fn submit(
        &self,
        model: &str,
        target: Target,
        prompt: Vec<u32>,
        params: GenParams,
    ) -> Result<UnboundedReceiver<Event>, ApiError> {
        let bound = self.limits.max_queue;
        let queued = self.metrics.queued.fetch_add(1, Ordering::SeqCst);
        if queued >= bound {
            self.metrics.queued.fetch_sub(1, Ordering::SeqCst);
            self.metrics.finished("rejected");
            return Err(ApiError::queue_full(bound));
        }
        let (events, rx) = unbounded_channel();
        let job = Job {
            target,
            prompt,
            params,
            events,
        };
        if self.tx.send(Msg::Generate(job)).is_err() {
            self.metrics.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::shutting_down());
        }
        self.metrics.request(model);
        Ok(rx)
    }
}
