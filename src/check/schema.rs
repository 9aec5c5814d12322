//! Field names each declaration accepts (public for completion in the language server), and the spellings users bring from PEFT, Axolotl and
//! transformers with ours. Data only; the lowering steps use it.

/// Fields of `model`.
pub const MODEL: &[&str] = &["task", "dtype", "shape", "weights"];
/// Fields of a `shape = { .. }` record.
pub const SHAPE: &[&str] = &[
    "arch",
    "hidden",
    "intermediate",
    "layers",
    "heads",
    "kv_heads",
    "vocab",
    "context",
    "tied",
];
pub const QUANT: &[&str] = &["double_quant", "block", "compute"];
pub const LORA: &[&str] = &[
    "r", "alpha", "dropout", "targets", "rslora", "dora", "init", "lr_ratio",
];
pub const BOTTLENECK: &[&str] = &["size", "reduction", "placement", "activation"];
pub const DATASET: &[&str] = &[
    "text",
    "label",
    "prompt",
    "completion",
    "messages",
    "template",
    "labels",
    "split",
    "max_len",
    "packing",
    "completion_only",
    "dedupe",
    "skip_invalid",
    "limit",
];
pub const TRAIN: &[&str] = &[
    "model",
    "adapters",
    "data",
    "epochs",
    "max_steps",
    "batch",
    "accumulate",
    "lr",
    "schedule",
    "optimizer",
    "grad_clip",
    "seed",
    "checkpoint_every",
    "device",
];
pub const SCHEDULE: &[&str] = &["warmup"];
pub const ADAMW: &[&str] = &["weight_decay", "beta1", "beta2", "eps"];
pub const SGD: &[&str] = &["weight_decay", "momentum"];
pub const EVAL: &[&str] = &["model", "adapters", "data", "metrics", "batch"];
pub const EXPORT: &[&str] = &["serve_on", "outside_project"];
pub const DEVICE: &[&str] = &["memory"];

/// Our spelling of a key from another tool, and a note.
pub fn foreign(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "lora_alpha" => (
            "alpha",
            "PEFT's `lora_alpha` is `alpha` here; the scale is alpha / r",
        ),
        "lora_r" | "rank" => ("r", "the LoRA rank is `r`"),
        "lora_dropout" => ("dropout", "PEFT's `lora_dropout` is `dropout` here"),
        "target_modules" | "lora_target_modules" => (
            "targets",
            "write `targets = [q_proj, v_proj]` or `targets = all_linear`",
        ),
        "lora_target_linear" => (
            "targets",
            "Axolotl's `lora_target_linear: true` is `targets = all_linear`",
        ),
        "use_dora" | "peft_use_dora" => ("dora", "write `dora = true`"),
        "use_rslora" | "peft_use_rslora" => ("rslora", "write `rslora = true`"),
        "init_lora_weights" | "peft_init_lora_weights" => {
            ("init", "write `init = gaussian` (or default, pissa, olora)")
        }
        "loraplus_lr_ratio" => (
            "lr_ratio",
            "LoRA+'s ratio of B's to A's learning rate is `lr_ratio`",
        ),
        "learning_rate" | "lr_rate" => ("lr", "write `lr = 2e-4`"),
        "num_epochs" | "num_train_epochs" | "epoch" => ("epochs", "write `epochs = 3`"),
        "micro_batch_size" | "per_device_train_batch_size" | "batch_size" | "train_batch_size" => (
            "batch",
            "`batch` is the examples per forward pass; use `accumulate` for gradient accumulation",
        ),
        "gradient_accumulation_steps" | "grad_accum" => ("accumulate", "write `accumulate = 8`"),
        "lr_scheduler" | "lr_scheduler_type" | "scheduler" => {
            ("schedule", "write `schedule = cosine { warmup = 10% }`")
        }
        "warmup_steps" | "warmup_ratio" => (
            "schedule",
            "warmup is set on the schedule: `schedule = cosine { warmup = 10% }` (or a step count)",
        ),
        "max_grad_norm" | "gradient_clipping" => ("grad_clip", "write `grad_clip = 1.0`"),
        "weight_decay" => (
            "optimizer",
            "weight decay is set on the optimizer: `optimizer = adamw { weight_decay = 0.01 }`",
        ),
        "optim" => (
            "optimizer",
            "write `optimizer = adamw { .. }` or `optimizer = sgd { momentum = 0.9 }`",
        ),
        "max_seq_length" | "sequence_len" | "cutoff_len" | "max_length" | "seq_len" => {
            ("max_len", "write `max_len = 512`")
        }
        "sample_packing" => ("packing", "write `packing = true`"),
        "train_on_inputs" => (
            "completion_only",
            "Axolotl's `train_on_inputs: false` is `completion_only = true`",
        ),
        "save_steps" => ("checkpoint_every", "write `checkpoint_every = 100` (steps)"),
        "base_model" | "model_name_or_path" => (
            "model",
            "write `model = NAME` where NAME is a `model` declaration",
        ),
        "val_set_size" | "test_size" => (
            "split",
            "write `split = { train = 90%, eval = 10%, seed = 7 }`",
        ),
        "load_in_4bit" => (
            "model",
            "quantize the base with a `quant` declaration: `model = llama quantized q4`",
        ),
        "steps" | "num_steps" | "max_train_steps" => ("max_steps", "write `max_steps = 1000`"),
        "chat_template" => (
            "template",
            "write `template = chat_template` to use the tokenizer's own template",
        ),
        "num_labels" => (
            "task",
            "declare the classes: `task = classify(labels = [\"neg\", \"pos\"])`",
        ),
        "bnb_4bit_use_double_quant" => (
            "double_quant",
            "write `double_quant = true` on the `quant` declaration",
        ),
        "bnb_4bit_compute_dtype" => (
            "compute",
            "write `compute = bf16` on the `quant` declaration",
        ),
        _ => return None,
    })
}

/// Metric names of the Hugging Face Trainer and `evaluate` that peftc spells otherwise: ours and
/// a note.
pub fn foreign_metric(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "eval_loss" | "train_loss" => (
            "loss",
            "the Trainer prefixes metrics with `eval_`; peftc's evals name them plainly",
        ),
        "eval_accuracy" | "acc" => (
            "accuracy",
            "the Trainer prefixes metrics with `eval_`; peftc's evals name them plainly",
        ),
        "eval_f1" | "f1_score" | "macro_f1" => (
            "f1",
            "`f1` is the macro-averaged F1 (scikit-learn's `average=\"macro\"`)",
        ),
        "ppl" | "eval_perplexity" => (
            "perplexity",
            "perplexity is exp(loss) over the counted tokens",
        ),
        "em" | "eval_exact_match" | "exact" => (
            "exact_match",
            "`exact_match` compares the generated completion with the reference",
        ),
        _ => return None,
    })
}
