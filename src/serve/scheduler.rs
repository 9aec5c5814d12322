//! The scheduler: one thread that owns the model and runs continuous batching across adapters.
//!
//! Requests arrive over a channel. Between two decode steps new requests join the running
//! batch (their prompt is run alone first, the prefill); every decode step runs all running
//! requests in one forward pass, each row with its own KV cache and its own adapter (gathered
//! LoRA, see [`RowAdapters`]). A request for an adapter not in memory waits while the adapter is
//! read on another thread; the batch keeps decoding meanwhile. The adapter is attached when it
//! fits in the byte budget, after dropping the least recently used adapters that no request
//! needs. A request whose client has gone is dropped before the next step. Events (text,
//! the end, errors) go back over each request's own channel. Must not block on the network.

use super::api::{Finish, GenParams, Usage};
use super::engine::Engine;
use super::error::ApiError;
use super::lru::Lru;
use super::metrics::Metrics;
use super::registry::{Registry, Target};
use super::text::TextStream;
use crate::runtime::adapters::attach::{remove_adapter, set_row_adapters};
use crate::runtime::adapters::linear::RowAdapters;
use crate::runtime::models::decoder::KvCache;
use crate::runtime::models::generate::{choose, Sampling};
use crate::runtime::peft_format::load::{attach_read, read_adapter, LayerShape, ReadAdapter};
use candle_core::{DType, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// What a request hears back.
#[derive(Debug)]
pub enum Event {
    /// New final text.
    Delta(String),
    /// The request ended; `ids` are every generated token (with the end-of-sequence token).
    Done {
        finish: Finish,
        usage: Usage,
        ids: Vec<u32>,
    },
    /// The request failed.
    Error(ApiError),
}

/// One accepted request.
#[derive(Debug)]
pub struct Job {
    pub target: Target,
    pub prompt: Vec<u32>,
    pub params: GenParams,
    pub events: UnboundedSender<Event>,
}

/// What the scheduler receives.
pub enum Msg {
    /// Generate for a request (already counted in `Metrics::queued`).
    Generate(Job),
    /// An adapter read on another thread (or the reason it could not be).
    Loaded {
        name: String,
        result: Result<ReadAdapter, String>,
    },
    /// Finish what is accepted, then stop.
    Shutdown,
}

/// Whether an adapter can be applied per row: LoRA only (no DoRA, no `modules_to_save`).
pub fn servable(name: &str, read: &ReadAdapter) -> Result<(), String> {
    if let Some((path, _, _)) = read.full_copies.first() {
        return Err(format!(
            "adapter `{name}` replaces `{path}` (modules_to_save); peftc serve applies LoRA per \
             request only: merge it (`merge` and `export .. as merged`) and serve the merged model"
        ));
    }
    if let Some((path, _)) = read.lora.iter().find(|(_, a)| a.magnitude.is_some()) {
        return Err(format!(
            "adapter `{name}` is DoRA (on `{path}`); peftc serve applies LoRA per request only: \
             merge it and serve the merged model"
        ));
    }
    Ok(())
}

struct Slot {
    job: Job,
    cache: KvCache,
    text: TextStream,
    ids: Vec<u32>,
    last: u32,
    pos: u32,
    rng: ChaCha8Rng,
}

/// The scheduler's state; [`Scheduler::run`] is its thread's body.
pub struct Scheduler {
    engine: Engine,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    max_batch: usize,
    rx: UnboundedReceiver<Msg>,
    tx: UnboundedSender<Msg>,
    shapes: Arc<Vec<LayerShape>>,
    lru: Lru,
    waiting: VecDeque<Job>,
    parked: BTreeMap<String, Vec<Job>>,
    loading: BTreeSet<String>,
    pending: Vec<(String, ReadAdapter)>,
    running: Vec<Slot>,
    shutdown: bool,
}

impl Scheduler {
    /// A scheduler over `engine`; `tx` is the sending side of `rx` (for adapter loaders).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Engine,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        limits: &super::config::Limits,
        rx: UnboundedReceiver<Msg>,
        tx: UnboundedSender<Msg>,
        shapes: Arc<Vec<LayerShape>>,
    ) -> Self {
        Self {
            engine,
            registry,
            metrics,
            max_batch: limits.max_batch.max(1),
            rx,
            tx,
            shapes,
            lru: Lru::new(limits.adapter_cache_bytes),
            waiting: VecDeque::new(),
            parked: BTreeMap::new(),
            loading: BTreeSet::new(),
            pending: Vec::new(),
            running: Vec::new(),
            shutdown: false,
        }
    }

    /// Runs until [`Msg::Shutdown`] and every accepted request has ended.
    pub fn run(mut self) {
        crate::runtime::ops::no_grad::no_grad(|| self.run_loop());
    }

    fn run_loop(&mut self) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                let nothing_left =
                    self.parked.is_empty() && self.loading.is_empty() && self.pending.is_empty();
                if self.shutdown && nothing_left {
                    break;
                }
                match self.rx.blocking_recv() {
                    Some(m) => self.handle(m),
                    None => break,
                }
            }
            while let Ok(m) = self.rx.try_recv() {
                self.handle(m);
            }
            self.drop_cancelled();
            self.attach_pending();
            self.admit();
            if !self.running.is_empty() {
                self.decode();
            }
            self.metrics
                .running
                .store(self.running.len(), Ordering::Relaxed);
        }
    }

    fn handle(&mut self, m: Msg) {
        match m {
            Msg::Generate(job) => self.accept(job),
            Msg::Loaded { name, result } => self.loaded(name, result),
            Msg::Shutdown => self.shutdown = true,
        }
    }

    fn unqueue(&self, n: usize) {
        self.metrics.queued.fetch_sub(n, Ordering::Relaxed);
    }

    fn fail(&self, job: Job, err: ApiError) {
        self.unqueue(1);
        self.metrics.finished("error");
        let _ = job.events.send(Event::Error(err));
    }

    fn accept(&mut self, job: Job) {
        if self.shutdown {
            return self.fail(job, ApiError::shutting_down());
        }
        let name = match &job.target {
            Target::Base => return self.waiting.push_back(job),
            Target::Adapter(n) => n.clone(),
        };
        if self.lru.contains(&name) {
            self.lru.touch(&name);
            return self.waiting.push_back(job);
        }
        self.parked.entry(name.clone()).or_default().push(job);
        let busy = self.loading.contains(&name) || self.pending.iter().any(|(n, _)| *n == name);
        if !busy {
            self.start_load(name);
        }
    }

    fn start_load(&mut self, name: String) {
        let Some(path) = self.registry.path(&name) else {
            let err = ApiError::unknown_model(&name, self.registry.names());
            for job in self.parked.remove(&name).unwrap_or_default() {
                self.fail(job, err.clone());
            }
            return;
        };
        self.loading.insert(name.clone());
        let (tx, shapes, device) = (
            self.tx.clone(),
            self.shapes.clone(),
            self.engine.device.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("peftc-load-{name}"))
            .spawn(move || {
                let result = read_adapter(&path, &shapes, &device).map_err(|e| e.to_string());
                let _ = tx.send(Msg::Loaded { name, result });
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start an adapter loader: {e}");
        }
    }

    fn loaded(&mut self, name: String, result: Result<ReadAdapter, String>) {
        self.loading.remove(&name);
        let checked = result.and_then(|read| {
            servable(&name, &read)?;
            if read.bytes() > self.lru.budget() {
                return Err(format!(
                    "adapter `{name}` needs {} bytes, more than the adapter cache holds ({} \
                     bytes): start the server with a larger --adapter-cache-mb",
                    read.bytes(),
                    self.lru.budget()
                ));
            }
            Ok(read)
        });
        match checked {
            Ok(read) => {
                self.metrics.adapter_loads.fetch_add(1, Ordering::Relaxed);
                if !self.lru.contains(&name) {
                    self.pending.push((name, read));
                }
            }
            Err(message) => {
                tracing::warn!("{message}");
                let err = ApiError {
                    status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    kind: "invalid_request_error",
                    code: "adapter_unavailable",
                    message,
                    models: None,
                };
                for job in self.parked.remove(&name).unwrap_or_default() {
                    self.fail(job, err.clone());
                }
            }
        }
    }

    /// Whether a queued or running request needs adapter `name`.
    fn in_use(&self, name: &str) -> bool {
        let uses = |t: &Target| matches!(t, Target::Adapter(n) if n == name);
        self.running.iter().any(|s| uses(&s.job.target))
            || self.waiting.iter().any(|j| uses(&j.target))
    }

    /// Attaches loaded adapters that fit, dropping unused ones as needed.
    fn attach_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for (name, read) in pending {
            let victims = self.lru.victims(read.bytes(), |n| self.in_use(n));
            let Some(victims) = victims else {
                if self.parked.contains_key(&name) {
                    self.pending.push((name, read));
                }
                continue;
            };
            let model = self.engine.model.as_adaptable_mut();
            for v in victims {
                if let Err(e) = remove_adapter(model, &v) {
                    tracing::error!("dropping adapter `{v}`: {e}");
                }
                self.lru.remove(&v);
                self.metrics
                    .adapter_evictions
                    .fetch_add(1, Ordering::Relaxed);
            }
            if let Err(e) = attach_read(model, &read, &name) {
                let err = ApiError::internal(format!("attaching adapter `{name}`: {e}"));
                for job in self.parked.remove(&name).unwrap_or_default() {
                    self.fail(job, err.clone());
                }
                continue;
            }
            self.lru.insert(&name, read.bytes());
            self.waiting
                .extend(self.parked.remove(&name).unwrap_or_default());
        }
        self.metrics
            .adapters_loaded
            .store(self.lru.len(), Ordering::Relaxed);
        self.metrics
            .adapter_bytes
            .store(self.lru.used(), Ordering::Relaxed);
    }

    fn drop_cancelled(&mut self) {
        let before = self.running.len();
        self.running.retain(|s| !s.job.events.is_closed());
        let gone = before - self.running.len();
        let before = self.waiting.len();
        self.waiting.retain(|j| !j.events.is_closed());
        let mut queued_gone = before - self.waiting.len();
        for jobs in self.parked.values_mut() {
            let before = jobs.len();
            jobs.retain(|j| !j.events.is_closed());
            queued_gone += before - jobs.len();
        }
        self.unqueue(queued_gone);
        for _ in 0..gone + queued_gone {
            self.metrics.finished("cancelled");
        }
    }

    fn set_rows(&mut self, targets: &[&Target]) -> candle_core::Result<()> {
        let mut groups: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (row, t) in targets.iter().enumerate() {
            if let Target::Adapter(name) = t {
                groups.entry(name.as_str()).or_default().push(row as u32);
            }
        }
        let device = &self.engine.device;
        let mut rows = RowAdapters {
            groups: Vec::with_capacity(groups.len()),
            rows: targets.len(),
        };
        for (name, idx) in groups {
            let n = idx.len();
            rows.groups
                .push((name.to_string(), Tensor::from_vec(idx, n, device)?));
        }
        set_row_adapters(self.engine.model.as_adaptable_mut(), Some(Arc::new(rows)));
        Ok(())
    }

    fn admit(&mut self) {
        while self.running.len() < self.max_batch {
            let Some(job) = self.waiting.pop_front() else {
                break;
            };
            self.unqueue(1);
            if let Target::Adapter(n) = &job.target {
                self.lru.touch(n);
            }
            match self.prefill(job) {
                Ok(Some(slot)) => self.running.push(slot),
                Ok(None) => {}
                Err((job, e)) => {
                    self.metrics.finished("error");
                    let _ = job
                        .events
                        .send(Event::Error(ApiError::internal(format!("prefill: {e}"))));
                }
            }
        }
    }

    /// Runs a new request's prompt; returns its slot unless it already ended.
    fn prefill(&mut self, job: Job) -> Result<Option<Slot>, (Job, candle_core::Error)> {
        let n = job.prompt.len();
        let run = |this: &mut Self, job: &Job| -> candle_core::Result<(KvCache, Vec<f32>)> {
            let device = this.engine.device.clone();
            this.set_rows(&[&job.target])?;
            let ids = Tensor::from_vec(job.prompt.clone(), (1, n), &device)?;
            let pos = Tensor::from_vec((0..n as u32).collect::<Vec<_>>(), (1, n), &device)?;
            let decoder = this
                .engine
                .model
                .decoder()
                .ok_or_else(|| candle_core::Error::Msg("not a causal model".into()))?;
            let mut caches = vec![decoder.new_cache()];
            let logits = decoder.step_rows(&ids, &pos, &mut caches)?;
            let last = logits
                .narrow(1, n - 1, 1)?
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            Ok((caches.pop().unwrap_or_default(), last))
        };
        let (cache, logits) = match run(self, &job) {
            Ok(r) => r,
            Err(e) => return Err((job, e)),
        };
        self.metrics
            .prompt_tokens
            .fetch_add(n as u64, Ordering::Relaxed);
        let seed = match &job.params.sampling {
            Sampling::Sample { seed, .. } => *seed,
            Sampling::Greedy => 0,
        };
        let mut slot = Slot {
            text: TextStream::new(job.params.stop.clone()),
            job,
            cache,
            ids: Vec::new(),
            last: 0,
            pos: n as u32,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        let tok = choose(&logits, &slot.job.params.sampling, &mut slot.rng);
        self.metrics.step(1, 0.0);
        Ok((!self.next_token(&mut slot, tok)).then_some(slot))
    }

    /// One forward pass over every running request.
    fn decode(&mut self) {
        let started = Instant::now();
        match self.decode_step() {
            Ok(rows) => {
                let b = self.running.len();
                let mut keep = Vec::with_capacity(b);
                let running = std::mem::take(&mut self.running);
                for (mut slot, logits) in running.into_iter().zip(rows) {
                    let tok = choose(&logits, &slot.job.params.sampling, &mut slot.rng);
                    slot.pos += 1;
                    if !self.next_token(&mut slot, tok) {
                        keep.push(slot);
                    }
                }
                self.metrics.step(b, started.elapsed().as_secs_f64());
                self.running = keep;
            }
            Err(e) => {
                tracing::error!("decode step failed: {e}");
                for slot in std::mem::take(&mut self.running) {
                    self.metrics.finished("error");
                    let _ = slot
                        .job
                        .events
                        .send(Event::Error(ApiError::internal(format!("decode: {e}"))));
                }
            }
        }
    }

    fn decode_step(&mut self) -> candle_core::Result<Vec<Vec<f32>>> {
        let b = self.running.len();
        let device = self.engine.device.clone();
        let targets: Vec<Target> = self.running.iter().map(|s| s.job.target.clone()).collect();
        self.set_rows(&targets.iter().collect::<Vec<_>>())?;
        let ids = Tensor::from_vec(
            self.running.iter().map(|s| s.last).collect::<Vec<_>>(),
            (b, 1),
            &device,
        )?;
        let pos = Tensor::from_vec(
            self.running.iter().map(|s| s.pos).collect::<Vec<_>>(),
            (b, 1),
            &device,
        )?;
        let mut caches: Vec<KvCache> = self
            .running
            .iter_mut()
            .map(|s| std::mem::take(&mut s.cache))
            .collect();
        let decoder = self
            .engine
            .model
            .decoder()
            .ok_or_else(|| candle_core::Error::Msg("not a causal model".into()))?;
        let logits = decoder.step_rows(&ids, &pos, &mut caches);
        for (slot, cache) in self.running.iter_mut().zip(caches) {
            slot.cache = cache;
        }
        logits?.squeeze(1)?.to_dtype(DType::F32)?.to_vec2::<f32>()
    }

    /// Takes a request's new token; true when the request has ended.
    fn next_token(&self, slot: &mut Slot, tok: u32) -> bool {
        slot.last = tok;
        slot.ids.push(tok);
        let tokenizer = self.engine.tokenizer.tokenizer();
        let send = |slot: &Slot, e: Event| slot.job.events.send(e).is_ok();
        // `flush`: release text held back for a possible stop string (not after a stop).
        let end = |slot: &mut Slot, finish: Finish, flush: bool| {
            let rest = if flush {
                slot.text.finish(tokenizer).unwrap_or_default()
            } else {
                String::new()
            };
            if !rest.is_empty() {
                send(slot, Event::Delta(rest));
            }
            self.metrics.finished(finish.as_str());
            send(
                slot,
                Event::Done {
                    finish,
                    usage: Usage {
                        prompt_tokens: slot.job.prompt.len(),
                        completion_tokens: slot.ids.len(),
                    },
                    ids: slot.ids.clone(),
                },
            );
            true
        };
        if !slot.job.params.ignore_eos && self.engine.eos.contains(&tok) {
            return end(slot, Finish::Stop, true);
        }
        let released = match slot.text.push(tokenizer, tok) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.finished("error");
                send(
                    slot,
                    Event::Error(ApiError::internal(format!("decoding tokens: {e}"))),
                );
                return true;
            }
        };
        if !released.text.is_empty() && !send(slot, Event::Delta(released.text)) {
            self.metrics.finished("cancelled");
            return true;
        }
        if released.stopped {
            return end(slot, Finish::Stop, false);
        }
        if slot.ids.len() >= slot.job.params.max_tokens {
            return end(slot, Finish::Length, true);
        }
        false
    }
}
