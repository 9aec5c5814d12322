//! Figures before compute, per train stage: trainable parameters, adapter bytes, a peak-memory
//! estimate (base weights by dtype or quantization, adapter weights, gradients, optimizer
//! state, activations kept for backward (src/check/activations.rs), logits and their gradient,
//! the process floor) and FLOPs per optimizer step. Estimates, documented as such; the memory
//! estimate is checked against measured peaks by `bash benches/memory_estimate.sh`.

use super::hir::*;

/// Resident memory of a `peftc run` process around a stage, before any model: measured as the
/// peak of a train stage on a 100K-parameter BERT (`peftc run` reports it; see
/// `bash benches/memory_estimate.sh`).
pub const PROCESS_FLOOR: u64 = 20 << 20;

/// The figure inputs of train `t` as declared (`max_len` from its dataset). `seq` replaces the dataset's `max_len` (the run report uses the longest
/// batch a run really had).
pub fn train_config(prog: &Program, t: &Train, seq: Option<u64>) -> FigureConfig {
    let declared = t.quantized_with.as_ref().and_then(|q| prog.quant(q));
    let max_len = prog
        .dataset(&t.data.dataset)
        .map(|d| u64::from(d.max_len))
        .unwrap_or(512);
    FigureConfig {
        batch: u64::from(t.batch),
        accumulate: u64::from(t.accumulate),
        max_len: seq.unwrap_or(max_len),
        quant: declared.map(|q| (q.kind, q.block_size, q.double_quant)),
        compute: declared.and_then(|q| q.compute),
    }
}

/// Inputs that change the estimate (used to say "what would fit").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FigureConfig {
    pub batch: u64,
    pub accumulate: u64,
    pub max_len: u64,
    /// Base quantization: (kind, block, double_quant); `None` = the model's dtype.
    pub quant: Option<(QuantKind, u32, bool)>,
    /// The quantization's `compute` dtype, when written (else the model's dtype applies).
    pub compute: Option<Dtype>,
}

/// Bytes of the frozen base as the runtime holds it: a quantized base keeps its linear layers
/// in the quantized form (a GGML format keeps a layer dense when its input width is not a
/// multiple of the block) and everything else (embeddings, norms, head) dense in the compute
/// dtype; a GGUF base keeps its linear weights as stored unless `weights = dense`, and
/// dequantizes the token embedding and norms.
pub fn base_bytes(model: &Model, shape: &ModelShape, cfg: &FigureConfig) -> u64 {
    let dtype = cfg.compute.unwrap_or(model.dtype).bytes();
    if let Some((kind, block, dq)) = cfg.quant {
        let modules = super::arch::linear_modules(shape);
        let (mut quantized, mut dense) = (0f64, 0u64);
        let mut linear = 0u64;
        for m in &modules {
            let n = m.in_features * m.out_features;
            linear += n;
            match kind.ggml_block() {
                Some(b) if m.in_features % b != 0 => dense += n,
                _ => quantized += n as f64 * kind.bytes_per_param(block, dq),
            }
        }
        let rest = shape.params.saturating_sub(linear);
        return quantized as u64 + (dense + rest) * dtype;
    }
    match (&shape.gguf, &model.source) {
        (Some(g), ModelSource::Gguf { .. }) if !model.dense_weights => {
            g.linear_bytes + g.dense_params * dtype
        }
        _ => shape.params * dtype,
    }
}

/// Trainable parameters of one adapter on a model.
pub fn adapter_params(a: &Adapter, shape: &ModelShape) -> u64 {
    match &a.kind {
        AdapterKind::Lora(l) => {
            let r = u64::from(l.r);
            l.targets
                .modules
                .iter()
                .map(|m| {
                    r * (m.in_features + m.out_features) + if l.dora { m.out_features } else { 0 }
                })
                .sum()
        }
        AdapterKind::Bottleneck(b) => {
            let h = shape.hidden;
            let m = match b.size {
                BottleneckSize::Size(s) => u64::from(s),
                BottleneckSize::Reduction(r) => (h / u64::from(r.max(1))).max(1),
            };
            let per = 2 * h * m + m + h;
            let count = if b.placement == Placement::Houlsby {
                2
            } else {
                1
            };
            per * count * shape.layers
        }
    }
}

/// Computes the figures of a train.
pub fn compute(train: &Train, model: &Model, shape: &ModelShape, cfg: FigureConfig) -> Figures {
    let adapters: u64 = train
        .adapters
        .iter()
        .map(|a| adapter_params(a, shape))
        .sum();
    let head = match &model.task {
        Task::Classify { labels } => {
            // BERT's `classifier` has a bias; the decoders' `score` has none.
            let n = labels.len() as u64;
            shape.hidden * n + if shape.arch.is_encoder() { n } else { 0 }
        }
        Task::Causal => 0,
    };
    let trainable = adapters + head;
    let base = shape.params;
    let base_bytes = base_bytes(model, shape, &cfg);
    let tokens = cfg.batch * cfg.max_len;
    let act_bytes = cfg.compute.unwrap_or(model.dtype).bytes();
    // The fused LoRA op runs on the CPU in f32 over dense base weights (every linear layer of
    // an unquantized model, the layers a GGML format keeps dense, all of a GGUF base loaded
    // `weights = dense`) and over NF4 / FP4 / int8 ones (dequantized tile by tile in the op).
    let fused = act_bytes == 4 && train.device.is_none();
    let widths: std::collections::HashMap<String, u64> = super::arch::linear_modules(shape)
        .into_iter()
        .map(|m| (m.name.to_string(), m.in_features))
        .collect();
    let dense = |name: &str| match cfg.quant {
        Some((kind, ..)) => match kind.ggml_block() {
            None => true,
            Some(b) => widths.get(name).is_some_and(|w| w % b != 0),
        },
        None => !matches!(
            (&shape.gguf, &model.source),
            (Some(_), ModelSource::Gguf { .. }) if !model.dense_weights
        ),
    };
    let activations = super::activations::activation_bytes(
        train,
        shape,
        (cfg.batch, cfg.max_len),
        act_bytes,
        (fused, &dense),
    );
    let out_width = match &model.task {
        Task::Causal => shape.vocab,
        Task::Classify { labels } => labels.len() as u64,
    };
    // A llama-family causal LM on the CPU in f32 whose output layer is frozen and dense takes
    // its loss from the hidden states a chunk of 32 MiB of logits at a time, keeping a
    // `[tokens, hidden]` gradient (runtime/train/linear_cross_entropy.rs); otherwise the logits
    // and their gradient.
    let lm_head_adapted = train.adapters.iter().any(|a| match &a.kind {
        AdapterKind::Lora(l) => l.targets.modules.iter().any(|m| &*m.name == "lm_head"),
        _ => false,
    });
    let stored_quantized = matches!(
        (&shape.gguf, &model.source),
        (Some(_), ModelSource::Gguf { .. }) if !model.dense_weights
    );
    let fused_loss = fused
        && matches!(model.task, Task::Causal)
        && matches!(shape.arch, Arch::Llama | Arch::Mistral | Arch::Qwen2)
        && !lm_head_adapted
        && !stored_quantized;
    let logits = if fused_loss {
        // CHUNK_VALUES of runtime/train/linear_cross_entropy.rs (the front end has no candle).
        let chunk = ((8u64 << 20) / out_width.max(1)).clamp(1, tokens.max(1));
        chunk * out_width * 4 + tokens * shape.hidden * 4 * 2
    } else {
        tokens * out_width * 4 * 2
    };
    let optimizer_state = match train.optimizer.kind {
        OptimizerKind::AdamW => trainable * 8,
        OptimizerKind::Sgd if train.optimizer.momentum > 0.0 => trainable * 4,
        OptimizerKind::Sgd => 0,
    };
    let memory = MemoryEstimate {
        base_weights: base_bytes,
        adapter_weights: trainable * 4,
        gradients: trainable * 4,
        optimizer_state,
        activations,
        logits,
        process_floor: PROCESS_FLOOR,
        total: base_bytes + trainable * 8 + optimizer_state + activations + logits + PROCESS_FLOOR,
    };
    let step_tokens = tokens * cfg.accumulate;
    // Forward 2 N T; backward to the inputs 2 N T (frozen weights get no weight gradient);
    // adapter weight gradients 2 P T.
    let flops = (4.0 * base as f64 + 6.0 * trainable as f64) * step_tokens as f64;
    Figures {
        base_params: base,
        trainable_params: trainable,
        trainable_percent: if base + trainable > 0 {
            100.0 * trainable as f64 / (base + trainable) as f64
        } else {
            0.0
        },
        adapter_bytes: trainable * 4,
        memory,
        tokens_per_step: step_tokens,
        flops_per_step: flops,
    }
}

/// `1.23 GiB`, `512.0 MiB`, ...
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units.get(i).copied().unwrap_or("B"))
    }
}

/// `4.19M`, `6.7B`, ...
pub fn human_count(n: u64) -> String {
    let v = n as f64;
    if v >= 1e9 {
        format!("{:.2}B", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}K", v / 1e3)
    } else {
        n.to_string()
    }
}
