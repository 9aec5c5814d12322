//! The canonical configs of the pipeline's stage kinds: what the planner writes into each
//! [`Stage`](super::Stage) and what the stage executors read back. These structs are a
//! serialisation boundary (they are hashed into content keys), so they hold no declaration names
//! and no file paths (files enter keys by content), and every field change bumps nothing but the
//! keys of the stages it concerns. Bump a kind's [`version`](StageKind::version) when its
//! semantics change.

use serde::{Deserialize, Serialize};

/// The stage kinds of a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Resolve the base model's files (their hashes enter every dependant's key).
    Model,
    /// Quantize the frozen base into a cached file.
    Quantize,
    /// Read, template, tokenize and split a dataset.
    Tokenize,
    /// Train adapters.
    Train,
    /// Evaluate a model (and its baseline) on a split.
    Eval,
    /// Decide an eval's gates.
    Gate,
    /// Choose one point of a swept train: the best whose gates pass.
    Select,
    /// Merge adapters into the base.
    Merge,
    /// Write an adapter or merged model to its destination.
    Export,
    /// Take in an existing PEFT adapter folder (`adapter x = peft(..)`).
    Import,
}

impl StageKind {
    /// The kind's name in plans and keys.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Model => "model",
            StageKind::Quantize => "quantize",
            StageKind::Tokenize => "tokenize",
            StageKind::Train => "train",
            StageKind::Eval => "eval",
            StageKind::Gate => "gate",
            StageKind::Select => "select",
            StageKind::Merge => "merge",
            StageKind::Export => "export",
            StageKind::Import => "import",
        }
    }

    /// Parses a kind name.
    pub fn parse(name: &str) -> Option<StageKind> {
        [
            StageKind::Model,
            StageKind::Quantize,
            StageKind::Tokenize,
            StageKind::Train,
            StageKind::Eval,
            StageKind::Gate,
            StageKind::Select,
            StageKind::Merge,
            StageKind::Export,
            StageKind::Import,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }

    /// Version of the kind's semantics; part of every key of this kind. Train 2: `max_steps`
    /// overrides `epochs` (Hugging Face Trainer) instead of being capped at the epochs' steps.
    pub fn version(self) -> u32 {
        match self {
            // 2: the record says whether the id is a Hub id (adapter configs name the base by it).
            // 3: SentencePiece GGUF tokenizers and gpt2 GGUF bases are built (they were
            // refused), and the written `tokenizer_config.json` says `add_eos_token`.
            StageKind::Model => 3,
            // 2: GGUF bases stay quantized as stored (they were dequantized to f32); a quant's
            // `compute` dtype is honoured; the quantize stage quantizes from f32 weights.
            StageKind::Quantize => 2,
            // 2: the output holds the source files' and the tokenized set's hashes (lineage).
            // 3: rows with invalid UTF-8 are row errors at their line; a leading BOM is dropped.
            StageKind::Tokenize => 3,
            // 2: the export is built in the cache entry (`out/export/`) and published from there.
            StageKind::Export => 2,
            // 2: PiSSA / OLoRA adapters are saved converted to plain LoRAs on the original base,
            // and the resolved config is part of the output (lineage).
            // 3: saved adapters use PEFT's key names for the task class (`bert.` for a BERT
            // classifier) and write every field of PEFT's `adapter_config.json`.
            // 4: GGUF bases stay quantized; the quant's `compute` dtype is honoured.
            // 5: `max_steps` overrides `epochs` (as in HF Trainer) instead of being capped by them.
            // 6: BERT's layer norm and attention softmax are the fused ops with a backward pass
            // (rounding may differ); the summary records the longest batch.
            // 7: the exact GELU has its own backward pass (1/sqrt(2 pi) unrounded: gradients
            // differ from candle's by up to 3e-7 relative).
            // 8: on the CPU a layer with one LoRA adapter over a dense base is one fused op, and
            // decoders' rotary embedding + attention is one op (rounding may differ by a few ulp).
            // 9: on the CPU, f32 attention softmax, token cross-entropy and SwiGLU use a
            // vectorised exp (within 2 ulp of libm's).
            // 10: a layer with one LoRA adapter over an NF4 / FP4 / int8 base is the fused op
            // too (the base dequantized tile by tile inside it; rounding may differ), and a
            // llama-family causal LM's loss over a frozen dense output layer is taken from the
            // hidden states a chunk of logits at a time (runtime/train/linear_cross_entropy.rs).
            // 11: on the CPU a transformer block's attention part and feed-forward part are one
            // op each (runtime/ops/lora_attention.rs, lora_mlp.rs), a llama-family one with its
            // RMSNorm and residual add inside (rounding may differ by a few ulp).
            // 12: on the CPU the f32 exact GELU uses a vectorised erf (libm's algorithm, within
            // 2 ulp; it differs from libm's `erff` in the last bit or two), and attention
            // computes only the key columns a block of queries sees (rounding may differ).
            // 13: RMSNorm's and LayerNorm's backward passes sum each row in 16 lanes (input
            // gradients differ in the last bits).
            // 14: a LoRA layer's `u = g B`, `dB` and `dA` are summed over chunks of tokens
            // (runtime/ops/lora_grads.rs; the adapters' gradients differ in the last bits).
            StageKind::Train => 14,
            // 2: a merged model is evaluated in place (it used to be refused), and a trained
            // bottleneck adapter is loaded as one (it was taken for a PEFT folder).
            // 3: GGUF bases stay quantized; the quant's `compute` dtype is honoured.
            // 4: BERT's layer norm and attention softmax are the fused ops (rounding may differ).
            // 5: on the CPU a LoRA layer over a dense base and decoders' attention are fused ops.
            // 6: on the CPU, f32 attention softmax, token cross-entropy and SwiGLU use a
            // vectorised exp (within 2 ulp of libm's).
            // 7: LoRA layers over NF4 / FP4 / int8 bases are the fused op too.
            // 8: on the CPU a block's attention and feed-forward parts are one op each.
            // 9: on the CPU the f32 exact GELU uses a vectorised erf (within 2 ulp of libm's),
            // and attention computes only the key columns a block of queries sees.
            StageKind::Eval => 9,
            // 2: a trained classification head and its labels are written into the merged model;
            // a GGUF base is merged (it used to be refused).
            // 3: GGUF bases stay quantized; the quant's `compute` dtype is honoured.
            StageKind::Merge => 3,
            _ => 1,
        }
    }
}

/// Where the base model comes from. Local paths are not part of the key: the files are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ModelConfig {
    Hf { repo: String, revision: String },
    Local,
    Gguf,
}

/// The task head and load dtype, shared by every stage that builds the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelBuild {
    /// `None` for causal LM; the class names for classification.
    pub labels: Option<Vec<String>>,
    /// Dtype of dense base weights: `f32`, `f16`, `bf16`.
    pub dtype: String,
    /// Quantization of the frozen base, if any.
    pub quant: Option<QuantConfig>,
    /// GGUF bases: dequantize the linear weights (`weights = dense`) instead of keeping them
    /// in the file's quantized form.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dense_weights: bool,
}

/// `quant q = nf4 { .. }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantConfig {
    /// `nf4`, `fp4`, `int8`, `q8_0`, `q4k`, `q5k`, `q6k`.
    pub kind: String,
    pub double_quant: bool,
    pub block_size: u32,
    pub compute: String,
}

/// A role's source field, as a nested path.
pub type FieldPath = Vec<String>;

/// `dataset d = jsonl(..) { .. }`, without the file paths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenizeConfig {
    /// `jsonl`, `json`, `csv`, `tsv`, `text`, `parquet`.
    pub format: String,
    pub text: Option<FieldPath>,
    pub label: Option<FieldPath>,
    pub prompt: Option<FieldPath>,
    pub completion: Option<FieldPath>,
    pub messages: Option<FieldPath>,
    /// `alpaca`, `chatml`, `chat_template`, or `custom:<string>`.
    pub template: Option<String>,
    pub labels: Option<Vec<String>>,
    /// `(name, fraction)` or `(name, count)` parts; empty = one split `all`.
    pub split: Vec<SplitPartConfig>,
    pub seed: u64,
    pub max_len: u32,
    pub packing: bool,
    pub completion_only: bool,
    pub dedupe: bool,
    pub skip_invalid: bool,
    pub limit: Option<u64>,
}

/// One named split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitPartConfig {
    pub name: String,
    pub fraction: Option<f64>,
    pub count: Option<u64>,
}

/// One adapter of a train, by position in the stack (names are not part of the key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdapterConfig {
    Lora {
        r: u32,
        alpha: f64,
        dropout: f64,
        /// Module name suffixes or full names as PEFT's `target_modules`.
        targets: Vec<String>,
        rslora: bool,
        dora: bool,
        init: String,
        lr_ratio: Option<f64>,
    },
    Bottleneck {
        size: Option<u32>,
        reduction: Option<u32>,
        placement: String,
        activation: String,
    },
}

/// `train t { .. }` at one sweep / escalation point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainStageConfig {
    pub build: ModelBuild,
    pub adapters: Vec<AdapterConfig>,
    /// The split of the tokenize input to train on.
    pub split: String,
    pub epochs: u32,
    pub max_steps: Option<u64>,
    pub batch: u32,
    pub accumulate: u32,
    pub lr: f64,
    pub schedule: String,
    pub warmup_fraction: Option<f64>,
    pub warmup_steps: Option<u64>,
    pub optimizer: String,
    pub weight_decay: f64,
    pub momentum: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub grad_clip: Option<f64>,
    pub seed: u64,
    pub checkpoint_every: Option<u64>,
}

/// What an eval stage measures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "subject", rename_all = "snake_case")]
pub enum EvalSubjectConfig {
    /// The base model alone (input `model`).
    Base,
    /// The base with trained adapters, combined by weights when mixed.
    Adapters {
        picks: Vec<AdapterPick>,
        weights: Option<Vec<f64>>,
    },
    /// A merged model (input `merged`).
    Merged,
}

/// `eval e { .. }` without its gates (they are a stage of their own, so a threshold edit
/// re-runs only the gate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalStageConfig {
    pub build: ModelBuild,
    pub subject: EvalSubjectConfig,
    pub split: String,
    pub metrics: Vec<String>,
    pub batch: u32,
    /// Whether the base model is measured too (a gate reads `baseline`).
    pub baseline: bool,
}

/// A gate operand, with other evals referred to by input slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GateExprConfig {
    Metric {
        metric: String,
    },
    Baseline {
        metric: String,
    },
    Run {
        slot: String,
        metric: String,
    },
    Literal {
        value: f64,
    },
    Binary {
        arith: String,
        lhs: Box<GateExprConfig>,
        rhs: Box<GateExprConfig>,
    },
    Neg {
        expr: Box<GateExprConfig>,
    },
}

/// One gate: `lhs cmp rhs`, with its text for reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateConfig {
    pub text: String,
    pub lhs: GateExprConfig,
    pub cmp: String,
    pub rhs: GateExprConfig,
}

/// The gates of one eval (input `eval`, other evals as `run.NAME` slots).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateStageConfig {
    pub gates: Vec<GateConfig>,
}

/// The choice among the points of a swept train. Inputs: `point.I` (the train at point I),
/// `eval.K.I` (the K-th eval of the train, at point I) and `run.NAME` (other evals the gates
/// read). A point qualifies when every gate of every eval holds at it; the best qualifying point
/// by `rank` is chosen (the first on ties), and its trained adapters become this stage's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectStageConfig {
    /// Each point's label, e.g. `lr=0.0001`.
    pub points: Vec<String>,
    /// The gates of each eval of the train (`evals[K]` for the `eval.K.I` inputs).
    pub evals: Vec<GateStageConfig>,
    pub rank: RankConfig,
}

/// How points are compared: an eval metric of the first eval, or the final training loss when
/// no eval measures the train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankConfig {
    /// `None`: the final training loss.
    pub metric: Option<String>,
    pub higher_is_better: bool,
}

/// Trained adapters taken from a train input: `slot` names the input, `index` the adapter's
/// position in that train's stack (`None`: all of them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdapterPick {
    pub slot: String,
    pub index: Option<usize>,
}

/// `merge m = base + adapters`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeStageConfig {
    pub build: ModelBuild,
    pub picks: Vec<AdapterPick>,
    /// Weight of each pick, 1.0 for a stack.
    pub weights: Vec<f64>,
}

/// `adapter x = peft(..)`: the folder (file slot `adapter`) enters the key by content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportStageConfig {
    /// The Hub repo and revision of `peft(hf(..))`, `None` for a folder.
    pub hub: Option<(String, String)>,
}

/// `export src to "path" as fmt`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportStageConfig {
    /// `peft` or `merged`.
    pub format: String,
    /// Destination folder (absolute).
    pub path: String,
    pub serve_on: Option<String>,
    /// Which adapters of the train input to export (positions); empty = all.
    pub adapters: Vec<usize>,
    /// The adapters' declared names, for folder names and lineage.
    pub names: Vec<String>,
}
