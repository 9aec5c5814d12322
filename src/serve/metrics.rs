//! Counters and gauges of the server, rendered at `/metrics` in Prometheus' text format:
//! generated tokens (total and per second over the last decode steps), queue length, batch
//! occupancy, requests per model and outcome, adapters in memory. Updated by the handlers and
//! the scheduler; must not block either for long (atomics and one short lock).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Accepted requests not yet decoding (waiting for a slot or for their adapter).
    pub queued: AtomicUsize,
    /// Rows in the running batch.
    pub running: AtomicUsize,
    /// The batch bound.
    pub max_batch: usize,
    pub generated_tokens: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub decode_steps: AtomicU64,
    pub adapters_loaded: AtomicUsize,
    pub adapter_bytes: AtomicUsize,
    pub adapter_loads: AtomicU64,
    pub adapter_evictions: AtomicU64,
    /// Requests per model name.
    requests: Mutex<BTreeMap<String, u64>>,
    /// Requests ended per outcome (`stop`, `length`, `cancelled`, `error`).
    finished: Mutex<BTreeMap<&'static str, u64>>,
    /// Tokens per second, smoothed over recent steps (f64 bits).
    tokens_per_second: AtomicU64,
    started: Instant,
}

impl Metrics {
    pub fn new(max_batch: usize) -> Self {
        Self {
            queued: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            max_batch,
            generated_tokens: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            decode_steps: AtomicU64::new(0),
            adapters_loaded: AtomicUsize::new(0),
            adapter_bytes: AtomicUsize::new(0),
            adapter_loads: AtomicU64::new(0),
            adapter_evictions: AtomicU64::new(0),
            requests: Mutex::new(BTreeMap::new()),
            finished: Mutex::new(BTreeMap::new()),
            tokens_per_second: AtomicU64::new(0f64.to_bits()),
            started: Instant::now(),
        }
    }

    /// Counts one accepted request for `model`.
    pub fn request(&self, model: &str) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(model.to_string()).or_default() += 1;
    }

    /// Counts one ended request.
    pub fn finished(&self, outcome: &'static str) {
        let mut m = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(outcome).or_default() += 1;
    }

    /// Records a step that produced `tokens` tokens in `seconds`.
    pub fn step(&self, tokens: usize, seconds: f64) {
        self.generated_tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
        self.decode_steps.fetch_add(1, Ordering::Relaxed);
        if seconds > 0.0 {
            let now = tokens as f64 / seconds;
            let old = f64::from_bits(self.tokens_per_second.load(Ordering::Relaxed));
            let smoothed = if old == 0.0 {
                now
            } else {
                0.8 * old + 0.2 * now
            };
            self.tokens_per_second
                .store(smoothed.to_bits(), Ordering::Relaxed);
        }
    }

    /// Requests counted for `model`.
    pub fn requests_for(&self, model: &str) -> u64 {
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        m.get(model).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let g = |s: &mut String, name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let running = self.running.load(Ordering::Relaxed);
        g(
            &mut s,
            "peftc_generated_tokens_total",
            "Tokens generated.",
            "counter",
            self.generated_tokens.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut s,
            "peftc_prompt_tokens_total",
            "Prompt tokens processed.",
            "counter",
            self.prompt_tokens.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut s,
            "peftc_tokens_per_second",
            "Generated tokens per second over recent steps.",
            "gauge",
            format!(
                "{:.3}",
                f64::from_bits(self.tokens_per_second.load(Ordering::Relaxed))
            ),
        );
        g(
            &mut s,
            "peftc_queue_length",
            "Requests accepted and not yet decoding.",
            "gauge",
            self.queued.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut s,
            "peftc_batch_rows",
            "Requests in the running batch.",
            "gauge",
            running.to_string(),
        );
        g(
            &mut s,
            "peftc_batch_occupancy",
            "Running requests over the batch bound.",
            "gauge",
            format!("{:.4}", running as f64 / self.max_batch.max(1) as f64),
        );
        g(
            &mut s,
            "peftc_decode_steps_total",
            "Batched forward passes.",
            "counter",
            self.decode_steps.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut s,
            "peftc_adapters_loaded",
            "Adapters in memory.",
            "gauge",
            self.adapters_loaded.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut s,
            "peftc_adapter_bytes",
            "Bytes of adapter weights in memory.",
            "gauge",
            self.adapter_bytes.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut s,
            "peftc_adapter_loads_total",
            "Adapter loads from disk.",
            "counter",
            self.adapter_loads.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut s,
            "peftc_adapter_evictions_total",
            "Adapters dropped from memory to make room.",
            "counter",
            self.adapter_evictions.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut s,
            "peftc_uptime_seconds",
            "Seconds since start.",
            "gauge",
            format!("{:.1}", self.started.elapsed().as_secs_f64()),
        );
        let _ = writeln!(
            s,
            "# HELP peftc_requests_total Requests accepted, per model (base or adapter).\n# TYPE peftc_requests_total counter"
        );
        for (model, n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(s, "peftc_requests_total{{model=\"{}\"}} {n}", escape(model));
        }
        let _ = writeln!(
            s,
            "# HELP peftc_requests_finished_total Requests ended, per outcome.\n# TYPE peftc_requests_finished_total counter"
        );
        for (outcome, n) in self
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                s,
                "peftc_requests_finished_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        s
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_per_model_counts() {
        let m = Metrics::new(4);
        m.request("base");
        m.request("a\"b");
        m.request("base");
        m.running.store(2, Ordering::Relaxed);
        m.step(2, 0.5);
        let text = m.render();
        assert!(
            text.contains("peftc_requests_total{model=\"base\"} 2"),
            "{text}"
        );
        assert!(text.contains("peftc_requests_total{model=\"a\\\"b\"} 1"));
        assert!(text.contains("peftc_batch_occupancy 0.5000"));
        assert!(text.contains("peftc_tokens_per_second 4.000"));
        assert!(text.contains("# TYPE peftc_generated_tokens_total counter"));
    }
}
