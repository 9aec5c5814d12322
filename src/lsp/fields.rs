//! What the editor offers inside each kind of block: the fields with their types and a line of
//! documentation, the builtin heads of each declaration kind, and the named options of fields
//! that take one. Data only, mirroring the checker's schema (`check::schema` is private).

use crate::syntax::ast::DeclKind;

/// One field a block accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    pub name: &'static str,
    /// The type as shown to users.
    pub ty: &'static str,
    pub doc: &'static str,
}

const fn f(name: &'static str, ty: &'static str, doc: &'static str) -> FieldInfo {
    FieldInfo { name, ty, doc }
}

pub const MODEL: &[FieldInfo] = &[
    f(
        "task",
        "causal | classify(labels = [..])",
        "What the model is trained for; `classify` adds a trainable head.",
    ),
    f(
        "dtype",
        "f32 | f16 | bf16",
        "Dtype the base weights are loaded in.",
    ),
    f(
        "weights",
        "stored | dense",
        "GGUF bases: keep the linear weights quantized as stored (default) or dequantize them.",
    ),
    f(
        "shape",
        "{ arch, hidden, layers, .. }",
        "The architecture's sizes, when no config.json is at hand.",
    ),
];
pub const SHAPE: &[FieldInfo] = &[
    f(
        "arch",
        "llama | mistral | qwen2 | gpt2 | bert",
        "Architecture family.",
    ),
    f("hidden", "int", "Hidden size."),
    f("intermediate", "int", "Feed-forward size."),
    f("layers", "int", "Number of transformer blocks."),
    f("heads", "int", "Attention heads."),
    f(
        "kv_heads",
        "int",
        "Key/value heads (grouped-query attention).",
    ),
    f("vocab", "int", "Vocabulary size."),
    f("context", "int", "Maximum context length."),
    f("tied", "bool", "Input and output embeddings shared."),
];
pub const QUANT: &[FieldInfo] = &[
    f(
        "double_quant",
        "bool",
        "Quantize the block scales too (QLoRA's double quantization).",
    ),
    f(
        "block",
        "int",
        "nf4 / fp4: weights per quantization block (64).",
    ),
    f(
        "compute",
        "f32 | f16 | bf16",
        "Dtype of the activations and of the weights kept dense (embeddings, norms, head).",
    ),
];
pub const LORA: &[FieldInfo] = &[
    f(
        "r",
        "int",
        "LoRA rank: the inner size of the A and B matrices.",
    ),
    f(
        "alpha",
        "number",
        "Scale numerator: the update is scaled by alpha / r (alpha / sqrt(r) with rslora).",
    ),
    f(
        "dropout",
        "number in [0, 1)",
        "Dropout on the adapter's input.",
    ),
    f(
        "targets",
        "[module, ..] | all_linear",
        "The model's linear modules the adapter wraps (`q_proj`, `c_attn`, `query`, ..).",
    ),
    f("rslora", "bool", "Rank-stabilised scaling alpha / sqrt(r)."),
    f(
        "dora",
        "bool",
        "Weight-decomposed LoRA (a trainable magnitude per output).",
    ),
    f(
        "init",
        "default | gaussian | pissa | olora",
        "How A and B start.",
    ),
    f("lr_ratio", "number", "LoRA+: learning rate of B over A."),
];
pub const BOTTLENECK: &[FieldInfo] = &[
    f("size", "int", "Bottleneck width."),
    f(
        "reduction",
        "int",
        "Bottleneck width as hidden / reduction.",
    ),
    f(
        "placement",
        "houlsby | pfeiffer",
        "After attention and feed-forward (houlsby) or after feed-forward only (pfeiffer).",
    ),
    f(
        "activation",
        "relu | gelu | silu | tanh",
        "Non-linearity inside the bottleneck.",
    ),
];
pub const DATASET: &[FieldInfo] = &[
    f(
        "text",
        "field(\"..\")",
        "The text column (classification, language modelling).",
    ),
    f(
        "label",
        "field(\"..\")",
        "The label column (classification).",
    ),
    f(
        "prompt",
        "field(\"..\")",
        "The prompt column (instruction tuning).",
    ),
    f(
        "completion",
        "field(\"..\")",
        "The answer column (instruction tuning).",
    ),
    f(
        "messages",
        "field(\"..\")",
        "A chat column of role/content messages.",
    ),
    f(
        "template",
        "alpaca | chatml | chat_template | \"..\"",
        "How prompt and completion become one text.",
    ),
    f(
        "labels",
        "[string, ..]",
        "The label values, in class order.",
    ),
    f(
        "split",
        "{ train = 90%, eval = 10%, seed = N }",
        "Named splits by percentage or count.",
    ),
    f(
        "max_len",
        "int",
        "Tokens per example (longer ones are cut).",
    ),
    f(
        "packing",
        "bool",
        "Pack several examples into one sequence.",
    ),
    f(
        "completion_only",
        "bool",
        "Loss on the completion tokens only.",
    ),
    f("dedupe", "bool", "Drop repeated examples."),
    f(
        "skip_invalid",
        "bool",
        "Skip rows that lack a field instead of failing.",
    ),
    f("limit", "int", "Use only the first N examples."),
];
pub const SPLIT: &[FieldInfo] = &[
    f("train", "percent | int", "The training part."),
    f("eval", "percent | int", "The held-out part."),
    f("seed", "int", "Shuffle seed."),
];
pub const TRAIN: &[FieldInfo] = &[
    f("model", "model | model quantized QUANT", "The base model."),
    f(
        "adapters",
        "[adapter, ..]",
        "The adapters trained together (a stack).",
    ),
    f("data", "dataset.split", "The training data."),
    f("epochs", "int", "Passes over the data."),
    f("max_steps", "int", "Stop after this many optimizer steps."),
    f("batch", "int", "Examples per forward pass."),
    f(
        "accumulate",
        "int",
        "Batches per optimizer step (gradient accumulation).",
    ),
    f("lr", "number", "Learning rate."),
    f(
        "schedule",
        "constant | linear | cosine { warmup = .. }",
        "Learning-rate schedule.",
    ),
    f(
        "optimizer",
        "adamw { .. } | sgd { .. }",
        "Optimizer and its settings.",
    ),
    f(
        "grad_clip",
        "number",
        "Clip the gradient norm to this value.",
    ),
    f("seed", "int", "Random seed."),
    f(
        "checkpoint_every",
        "int",
        "Save a checkpoint every N steps.",
    ),
    f("device", "device", "Where to train."),
];
pub const SCHEDULE: &[FieldInfo] = &[f(
    "warmup",
    "percent | int",
    "Warm-up as a share of the steps or a step count.",
)];
pub const ADAMW: &[FieldInfo] = &[
    f("weight_decay", "number", "Decoupled weight decay."),
    f("beta1", "number", "First-moment decay."),
    f("beta2", "number", "Second-moment decay."),
    f("eps", "number", "Denominator epsilon."),
];
pub const SGD: &[FieldInfo] = &[
    f("weight_decay", "number", "Weight decay."),
    f("momentum", "number", "Momentum."),
];
pub const EVAL: &[FieldInfo] = &[
    f("model", "model | train | merge", "What is evaluated."),
    f(
        "adapters",
        "[adapter, ..] | mix { .. }",
        "Trained adapters applied to a base model.",
    ),
    f("data", "dataset.split", "The evaluation data."),
    f(
        "metrics",
        "[loss | perplexity | accuracy | f1 | exact_match, ..]",
        "Metrics computed.",
    ),
    f("batch", "int", "Examples per forward pass."),
];
pub const MERGE: &[FieldInfo] = &[];
pub const EXPORT: &[FieldInfo] = &[
    f(
        "serve_on",
        "vllm | lorax | peft",
        "The serving runtime the export must load in.",
    ),
    f(
        "outside_project",
        "bool",
        "Allow a destination outside the folder of the .peft file (default false: a warning in check, an error in run).",
    ),
];
pub const DEVICE: &[FieldInfo] = &[f(
    "memory",
    "size (24GiB)",
    "Memory budget for the estimate check.",
)];

/// Fields of a declaration body; adapters depend on their head (`lora` or `bottleneck`).
pub fn for_decl(kind: DeclKind, head: Option<&str>) -> &'static [FieldInfo] {
    match kind {
        DeclKind::Model => MODEL,
        DeclKind::Quant => QUANT,
        DeclKind::Adapter if head == Some("bottleneck") => BOTTLENECK,
        DeclKind::Adapter => LORA,
        DeclKind::Dataset => DATASET,
        DeclKind::Train => TRAIN,
        DeclKind::Eval => EVAL,
        DeclKind::Merge => MERGE,
        DeclKind::Device => DEVICE,
        DeclKind::Let => &[],
    }
}

/// Fields of a nested record by the key it is the value of (`split = { .. }`) or its base
/// (`cosine { .. }`).
pub fn for_record(key: &str, base: Option<&str>) -> &'static [FieldInfo] {
    match (key, base) {
        (_, Some("adamw")) => ADAMW,
        (_, Some("sgd")) => SGD,
        (_, Some("cosine" | "linear" | "constant")) => SCHEDULE,
        ("shape", _) => SHAPE,
        ("split", _) => SPLIT,
        ("schedule", _) => SCHEDULE,
        ("optimizer", _) => ADAMW,
        _ => &[],
    }
}

/// Looks a field up in every table (for hover on a key).
pub fn find(name: &str, kind: Option<DeclKind>) -> Option<FieldInfo> {
    let primary: &[FieldInfo] = kind.map(|k| for_decl(k, None)).unwrap_or(&[]);
    let all = [
        primary, MODEL, SHAPE, QUANT, LORA, BOTTLENECK, DATASET, SPLIT, TRAIN, SCHEDULE, ADAMW,
        SGD, EVAL, EXPORT, DEVICE,
    ];
    all.iter()
        .flat_map(|t| t.iter())
        .find(|f| f.name == name)
        .copied()
}

/// Builtin heads a declaration may start from (`adapter a = lora`).
pub fn heads(kind: DeclKind) -> &'static [&'static str] {
    match kind {
        DeclKind::Model => &["hf", "local", "gguf"],
        DeclKind::Quant => &["nf4", "fp4", "int8", "q8_0", "q4k", "q5k", "q6k"],
        DeclKind::Adapter => &["lora", "bottleneck"],
        DeclKind::Dataset => &["jsonl", "json", "csv", "tsv", "text", "parquet"],
        DeclKind::Device => &["cpu", "cuda", "metal"],
        _ => &[],
    }
}

/// Named options of a field (`schedule = cosine`).
pub fn options(key: &str) -> &'static [&'static str] {
    match key {
        "task" => &["causal", "classify"],
        "dtype" | "compute" => &["f32", "f16", "bf16"],
        "weights" => &["stored", "dense"],
        "arch" => &["llama", "mistral", "qwen2", "gpt2", "bert"],
        "init" => &["default", "gaussian", "pissa", "olora"],
        "placement" => &["houlsby", "pfeiffer"],
        "activation" => &["relu", "gelu", "silu", "tanh"],
        "template" => &["alpaca", "chatml", "chat_template"],
        "schedule" => &["constant", "linear", "cosine"],
        "optimizer" => &["adamw", "sgd"],
        "serve_on" => &["vllm", "lorax", "peft"],
        "rslora" | "dora" | "packing" | "completion_only" | "dedupe" | "skip_invalid"
        | "double_quant" | "tied" | "outside_project" => &["true", "false"],
        _ => &[],
    }
}

/// Declaration kinds a reference in field `key` may name.
pub fn ref_kinds(key: &str, decl: Option<DeclKind>) -> &'static [DeclKind] {
    match key {
        "model" if decl == Some(DeclKind::Eval) => {
            &[DeclKind::Model, DeclKind::Train, DeclKind::Merge]
        }
        "model" => &[DeclKind::Model],
        "adapters" => &[DeclKind::Adapter],
        "data" => &[DeclKind::Dataset],
        "device" => &[DeclKind::Device],
        _ => &[DeclKind::Let],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::schema;

    fn names(t: &[FieldInfo]) -> Vec<&'static str> {
        t.iter().map(|f| f.name).collect()
    }

    /// The editor offers exactly the fields the checker accepts.
    #[test]
    fn tables_match_the_checker_schema() {
        let pairs: [(&[FieldInfo], &[&str]); 14] = [
            (MODEL, schema::MODEL),
            (SHAPE, schema::SHAPE),
            (QUANT, schema::QUANT),
            (LORA, schema::LORA),
            (BOTTLENECK, schema::BOTTLENECK),
            (DATASET, schema::DATASET),
            (TRAIN, schema::TRAIN),
            (SCHEDULE, schema::SCHEDULE),
            (ADAMW, schema::ADAMW),
            (SGD, schema::SGD),
            (EVAL, schema::EVAL),
            (EXPORT, schema::EXPORT),
            (DEVICE, schema::DEVICE),
            (MERGE, &[]),
        ];
        for (ours, theirs) in pairs {
            let mut a = names(ours);
            let mut b = theirs.to_vec();
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b);
        }
    }
}
