//! The checked program: names resolved, extensions and recipes applied, defaults filled, values
//! typed, paths absolute. This is what the planner and runner read; it holds no syntax and no
//! candle types. Every item keeps its declaration name, location and doc comment in [`Meta`].

use crate::syntax::Loc;
use std::path::PathBuf;

/// Name, location and doc comment of a declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub name: String,
    pub loc: Loc,
    pub doc: Option<String>,
}

/// A whole checked pipeline. Lists are in declaration order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Program {
    /// The `.peft` file that was checked (absolute).
    pub file: PathBuf,
    pub devices: Vec<Device>,
    pub quants: Vec<Quant>,
    pub models: Vec<Model>,
    pub datasets: Vec<Dataset>,
    /// Adapter declarations (recipes applied). Trains hold their own copies.
    pub adapters: Vec<Adapter>,
    /// Existing PEFT adapters (`adapter x = peft("folder")`), used where trained ones are.
    pub imported: Vec<PeftImport>,
    pub trains: Vec<Train>,
    pub merges: Vec<Merge>,
    pub evals: Vec<Eval>,
    pub exports: Vec<Export>,
}

impl Program {
    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.meta.name == name)
    }
    pub fn quant(&self, name: &str) -> Option<&Quant> {
        self.quants.iter().find(|m| m.meta.name == name)
    }
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|m| m.meta.name == name)
    }
    pub fn adapter(&self, name: &str) -> Option<&Adapter> {
        self.adapters.iter().find(|m| m.meta.name == name)
    }
    pub fn imported(&self, name: &str) -> Option<&PeftImport> {
        self.imported.iter().find(|m| m.meta.name == name)
    }
    pub fn train(&self, name: &str) -> Option<&Train> {
        self.trains.iter().find(|m| m.meta.name == name)
    }
    pub fn merge(&self, name: &str) -> Option<&Merge> {
        self.merges.iter().find(|m| m.meta.name == name)
    }
    pub fn eval(&self, name: &str) -> Option<&Eval> {
        self.evals.iter().find(|m| m.meta.name == name)
    }
    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|m| m.meta.name == name)
    }
}

// ---- devices and quantization ---------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Cuda,
    Metal,
}

impl DeviceKind {
    /// Whether this build of peftc can run on the device: the one definition `peftc check`
    /// and `peftc run` share (the `cuda` and `metal` cargo features).
    pub fn built(self) -> bool {
        match self {
            DeviceKind::Cpu => true,
            DeviceKind::Cuda => cfg!(feature = "cuda"),
            DeviceKind::Metal => cfg!(feature = "metal"),
        }
    }
    /// The cargo feature that enables the device.
    pub fn feature_name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
            DeviceKind::Metal => "metal",
        }
    }
}

/// `device gpu = cuda(0) { memory = 24GiB }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub meta: Meta,
    pub kind: DeviceKind,
    pub index: u32,
    /// Memory budget in bytes, when declared.
    pub memory: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }
    pub fn bytes(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantKind {
    /// 4-bit NormalFloat (QLoRA), blocks of `block_size` with an absmax scale.
    Nf4,
    /// bitsandbytes' 4-bit float, blocks of `block_size` with an absmax scale.
    Fp4,
    /// 8-bit, one absmax scale per output row.
    Int8,
    /// GGML Q8_0.
    Q8_0,
    /// GGML Q4_K.
    Q4k,
    /// GGML Q5_K.
    Q5k,
    /// GGML Q6_K.
    Q6k,
}

impl QuantKind {
    /// Every format, in the order the language lists them.
    pub const ALL: [QuantKind; 7] = [
        QuantKind::Nf4,
        QuantKind::Fp4,
        QuantKind::Int8,
        QuantKind::Q8_0,
        QuantKind::Q4k,
        QuantKind::Q5k,
        QuantKind::Q6k,
    ];

    /// The name written in `.peft` files.
    pub fn name(self) -> &'static str {
        match self {
            QuantKind::Nf4 => "nf4",
            QuantKind::Fp4 => "fp4",
            QuantKind::Int8 => "int8",
            QuantKind::Q8_0 => "q8_0",
            QuantKind::Q4k => "q4k",
            QuantKind::Q5k => "q5k",
            QuantKind::Q6k => "q6k",
        }
    }

    /// Whether `block` and `double_quant` apply (the bitsandbytes 4-bit formats).
    pub fn has_blocks(self) -> bool {
        matches!(self, QuantKind::Nf4 | QuantKind::Fp4)
    }

    /// Values per GGML block (`in_features` must be a multiple, else the layer stays dense).
    pub fn ggml_block(self) -> Option<u64> {
        match self {
            QuantKind::Q8_0 => Some(32),
            QuantKind::Q4k | QuantKind::Q5k | QuantKind::Q6k => Some(256),
            _ => None,
        }
    }

    /// Bytes per weight including scales, as the runtime stores them: 4-bit codes with an f32
    /// absmax per block (or an 8-bit one plus an f32 per 256 blocks with double quantization);
    /// int8 with one f32 per row (counted as 1 byte); GGML block sizes from ggml's tables.
    pub fn bytes_per_param(self, block: u32, double_quant: bool) -> f64 {
        let block = f64::from(block.max(1));
        match self {
            QuantKind::Nf4 | QuantKind::Fp4 if double_quant => {
                0.5 + 1.0 / block + 4.0 / (block * 256.0)
            }
            QuantKind::Nf4 | QuantKind::Fp4 => 0.5 + 4.0 / block,
            QuantKind::Int8 => 1.0,
            QuantKind::Q8_0 => 34.0 / 32.0,
            QuantKind::Q4k => 144.0 / 256.0,
            QuantKind::Q5k => 176.0 / 256.0,
            QuantKind::Q6k => 210.0 / 256.0,
        }
    }
}

/// `quant q4 = nf4 { double_quant = true, compute = bf16 }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quant {
    pub meta: Meta,
    pub kind: QuantKind,
    pub double_quant: bool,
    pub block_size: u32,
    /// Dtype of the activations (and of the weights kept dense) when this quantization is used;
    /// `None` when not written (the model's `dtype` applies).
    pub compute: Option<Dtype>,
}

// ---- models ---------------------------------------------------------------------------

/// Where the base weights come from (paths absolute, relative ones taken from the `.peft` file).
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A Hugging Face repo id, read from the local cache (offline first).
    Hf { repo: String, revision: String },
    /// A local Hugging Face style folder (`config.json`, safetensors, tokenizer).
    Local { path: PathBuf },
    /// A GGUF file (already quantized weights; tokenizer and chat template in its metadata).
    Gguf { path: PathBuf },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Next-token prediction (language modelling, instruction tuning).
    Causal,
    /// Sequence classification: a trainable head over `labels`.
    Classify { labels: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Mistral,
    Qwen2,
    Gpt2,
    Bert,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Mistral => "mistral",
            Arch::Qwen2 => "qwen2",
            Arch::Gpt2 => "gpt2",
            Arch::Bert => "bert",
        }
    }
    pub fn parse(s: &str) -> Option<Arch> {
        Some(match s {
            "llama" => Arch::Llama,
            "mistral" => Arch::Mistral,
            "qwen2" => Arch::Qwen2,
            "gpt2" => Arch::Gpt2,
            "bert" => Arch::Bert,
            _ => return None,
        })
    }
    /// Encoder-only architectures (need a classification task).
    pub fn is_encoder(self) -> bool {
        matches!(self, Arch::Bert)
    }
}

/// Where a model's shape came from.
#[derive(Debug, Clone, PartialEq)]
pub enum ShapeOrigin {
    /// `config.json` at this path.
    ConfigJson(PathBuf),
    /// The metadata header of this GGUF file.
    GgufHeader(PathBuf),
    /// A stdlib preset (`std.models`) of this name.
    Preset(String),
    /// A `shape = { .. }` field in the declaration.
    Declared,
}

/// Sizes of a transformer, enough for module names, shapes, parameters and memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelShape {
    pub arch: Arch,
    pub hidden: u64,
    pub intermediate: u64,
    pub layers: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub vocab: u64,
    pub context: u64,
    pub tied_embeddings: bool,
    /// `head_dim` when the config sets it apart from `hidden / heads` (Mistral, Qwen3 style).
    pub explicit_head_dim: Option<u64>,
    /// Exact parameter count when known (GGUF tensors), else computed from the sizes.
    pub params: u64,
    /// Exact bytes of the stored weights when known (GGUF), for memory estimates.
    pub stored_bytes: Option<u64>,
    /// GGUF: what the runtime holds in which form.
    pub gguf: Option<GgufHeld>,
    pub origin: ShapeOrigin,
}

/// What a GGUF base occupies once loaded: its 2-D linear weights stay in their stored
/// (quantized) form; the token embedding and the 1-D tensors (norms, biases) are dequantized to
/// the model's dtype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufHeld {
    /// Stored bytes of the linear weights (every 2-D tensor but the token embedding).
    pub linear_bytes: u64,
    /// Parameters of the linear weights.
    pub linear_params: u64,
    /// Parameters held dense (token embedding, norms, biases).
    pub dense_params: u64,
    /// `tokenizer.ggml.model` (`gpt2`, `llama`, ...), when present.
    pub tokenizer: Option<String>,
}

impl ModelShape {
    pub fn head_dim(&self) -> u64 {
        self.explicit_head_dim
            .unwrap_or(self.hidden / self.heads.max(1))
    }
}

/// One linear layer of a model: full name, and `[out, in]` like its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearModule {
    /// The full module path, e.g. `model.layers.0.self_attn.q_proj`.
    pub name: std::sync::Arc<str>,
    pub in_features: u64,
    pub out_features: u64,
}

/// `model x = hf("..") { task = classify(labels = [..]) }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub meta: Meta,
    pub source: ModelSource,
    /// The folder or file found on disk (the HF cache snapshot folder, the local folder, the
    /// GGUF file), when it exists.
    pub resolved: Option<PathBuf>,
    pub task: Task,
    pub shape: Option<ModelShape>,
    /// Dtype the base is loaded in when not quantized.
    pub dtype: Dtype,
    /// `dtype` was written (not the default).
    pub dtype_declared: bool,
    /// GGUF only, `weights = dense`: linear weights dequantized on purpose instead of kept in
    /// the file's quantized form.
    pub dense_weights: bool,
    /// The GGUF file's chat template is available (a `chat_template` dataset template works).
    pub has_chat_template: bool,
}

// ---- adapters -------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraInit {
    /// PEFT's default: A Kaiming-uniform, B zeros.
    Default,
    Gaussian,
    Pissa,
    Olora,
}

/// The requested targets and what they expand to in the base model.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// As written (`q_proj`, `all_linear`, ...), or the architecture's default when not written.
    pub requested: Vec<String>,
    pub all_linear: bool,
    /// Full module names with shapes; empty when the model's shape is unknown.
    pub modules: Vec<LinearModule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lora {
    pub r: u32,
    pub alpha: f64,
    pub dropout: f64,
    pub targets: Targets,
    pub rslora: bool,
    pub dora: bool,
    pub init: LoraInit,
    /// LoRA+: learning rate of B divided by that of A.
    pub lr_ratio: Option<f64>,
}

impl Lora {
    /// `alpha / r`, or `alpha / sqrt(r)` with rsLoRA.
    pub fn scale(&self) -> f64 {
        let r = f64::from(self.r.max(1));
        if self.rslora {
            self.alpha / r.sqrt()
        } else {
            self.alpha / r
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BottleneckSize {
    Size(u32),
    Reduction(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// After attention and after the feed-forward block.
    Houlsby,
    /// After the feed-forward block only.
    Pfeiffer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Gelu,
    Silu,
    Tanh,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bottleneck {
    pub size: BottleneckSize,
    pub placement: Placement,
    pub activation: Activation,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AdapterKind {
    Lora(Lora),
    Bottleneck(Bottleneck),
}

/// An adapter with its recipe applied. In a train, `meta.name` is the adapter's name there.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapter {
    pub meta: Meta,
    pub kind: AdapterKind,
}

/// Where an existing PEFT adapter folder is.
#[derive(Debug, Clone, PartialEq)]
pub enum PeftSource {
    /// A folder (absolute).
    Local { path: PathBuf },
    /// A Hugging Face repo, read from the local cache (offline).
    Hf { repo: String, revision: String },
}

/// One adapted layer of a PEFT adapter, from its safetensors header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeftLayer {
    /// The module path as the file names it (after `base_model.model.`).
    pub path: String,
    pub r: u64,
    pub in_features: u64,
    pub out_features: u64,
}

/// What `adapter_config.json` and the weights' header say about a PEFT adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct PeftInfo {
    pub r: u64,
    pub alpha: f64,
    pub task_type: Option<String>,
    pub base_model: Option<String>,
    pub use_dora: bool,
    pub use_rslora: bool,
    pub layers: Vec<PeftLayer>,
    /// Module paths saved whole (`modules_to_save`), e.g. `classifier`.
    pub saved_modules: Vec<String>,
}

/// `adapter x = peft("folder")` or `peft(hf("org/repo"))`: an adapter trained elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct PeftImport {
    pub meta: Meta,
    pub source: PeftSource,
    /// The folder holding `adapter_config.json`, when found.
    pub resolved: Option<PathBuf>,
    /// Read from the folder, when it is a LoRA adapter peftc loads.
    pub info: Option<PeftInfo>,
}

/// A trained adapter: `train.adapter`, or an imported one (`train` and `adapter` are both the
/// import's name).
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterRef {
    pub train: String,
    pub adapter: String,
    pub loc: Loc,
}

/// How several trained adapters are combined.
#[derive(Debug, Clone, PartialEq)]
pub enum Combination {
    /// Active together, deltas added (as trained in one stack).
    Stack(Vec<AdapterRef>),
    /// A weighted combination (PEFT `add_weighted_adapter`, linear).
    Mix(Vec<(AdapterRef, f64)>),
}

impl Combination {
    pub fn refs(&self) -> Vec<&AdapterRef> {
        match self {
            Combination::Stack(v) => v.iter().collect(),
            Combination::Mix(v) => v.iter().map(|(r, _)| r).collect(),
        }
    }
}

// ---- data -----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    Jsonl,
    Json,
    Csv,
    Tsv,
    Text,
    Parquet,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    pub format: DataFormat,
    /// Absolute paths or glob patterns as declared.
    pub patterns: Vec<PathBuf>,
    /// Files found for the patterns (sorted).
    pub files: Vec<PathBuf>,
    /// The source call as written (`jsonl("..")`).
    pub loc: Loc,
}

/// A field of the source rows, `field("a.b")` is the nested path `["a", "b"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    pub path: Vec<String>,
    pub loc: Loc,
}

/// Which source fields play which role.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldMap {
    pub text: Option<FieldPath>,
    pub label: Option<FieldPath>,
    pub prompt: Option<FieldPath>,
    pub completion: Option<FieldPath>,
    pub messages: Option<FieldPath>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Alpaca,
    Chatml,
    /// The tokenizer's own chat template (tokenizer_config.json or GGUF metadata).
    ChatTemplate,
    /// A custom string with `{field}` holes.
    Custom(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SplitAmount {
    /// A fraction of the examples (0..=1).
    Fraction(f64),
    Count(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SplitPart {
    pub name: String,
    pub amount: SplitAmount,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SplitSpec {
    pub parts: Vec<SplitPart>,
    pub seed: u64,
}

/// `dataset d = jsonl("..") { .. }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub meta: Meta,
    pub source: DataSource,
    pub fields: FieldMap,
    pub template: Option<Template>,
    /// Where the template is set.
    pub template_loc: Option<Loc>,
    /// Declared classes (classification).
    pub labels: Option<Vec<String>>,
    pub split: Option<SplitSpec>,
    pub max_len: u32,
    pub packing: bool,
    /// Loss only on the completion / assistant turns.
    pub completion_only: bool,
    pub dedupe: bool,
    pub skip_invalid: bool,
    /// Use only the first N examples.
    pub limit: Option<u64>,
}

/// `dataset.split` (or the whole dataset when `split` is `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct DataRef {
    pub dataset: String,
    pub split: Option<String>,
    pub loc: Loc,
}

// ---- training -------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    Constant,
    Linear,
    Cosine,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Warmup {
    /// A fraction of the total steps.
    Fraction(f64),
    Steps(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub warmup: Warmup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    AdamW,
    Sgd,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    pub weight_decay: f64,
    /// SGD momentum (0 for AdamW).
    pub momentum: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    /// Every value is trained (a fan-out).
    Sweep,
    /// Values in order, the next only while a downstream gate fails.
    Escalate,
}

/// A `sweep [...]` or `escalate [...]` on one field; the train's own field holds the first value.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub mode: SearchMode,
    /// The field, e.g. `lr` or `adapters.chat.r`.
    pub field: String,
    pub values: Vec<f64>,
    pub loc: Loc,
}

/// Memory estimate of one training step, in bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryEstimate {
    pub base_weights: u64,
    pub adapter_weights: u64,
    pub gradients: u64,
    pub optimizer_state: u64,
    pub activations: u64,
    pub logits: u64,
    /// What the `peftc` process holds before any model (code, allocator, tokenizer, threads).
    pub process_floor: u64,
    pub total: u64,
}

/// Figures known before compute.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub base_params: u64,
    pub trainable_params: u64,
    /// Trainable / (base + trainable), in percent.
    pub trainable_percent: f64,
    /// Size of the saved adapter (f32 safetensors, without the header).
    pub adapter_bytes: u64,
    pub memory: MemoryEstimate,
    /// Tokens in one optimizer step (batch x accumulate x max_len).
    pub tokens_per_step: u64,
    pub flops_per_step: f64,
}

/// `train t { .. }` (extensions applied).
#[derive(Debug, Clone, PartialEq)]
pub struct Train {
    pub meta: Meta,
    /// The base model's declaration name.
    pub model: String,
    /// `model = m quantized q`: the quant declaration's name.
    pub quantized_with: Option<String>,
    /// The trained adapters (a stack when several), inline overrides applied.
    pub adapters: Vec<Adapter>,
    pub data: DataRef,
    pub epochs: u32,
    /// Stop after this many optimizer steps (overrides `epochs` when reached first).
    pub max_steps: Option<u64>,
    pub batch: u32,
    pub accumulate: u32,
    pub lr: f64,
    pub schedule: Schedule,
    pub optimizer: Optimizer,
    pub grad_clip: Option<f64>,
    pub seed: u64,
    pub checkpoint_every: Option<u64>,
    /// The device declaration's name (`on gpu` or `device = gpu`); `None` = CPU.
    pub device: Option<String>,
    pub searches: Vec<Search>,
    /// Figures, when the model's shape is known.
    pub figures: Option<Figures>,
}

// ---- evaluation, merge, export --------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Loss,
    Perplexity,
    Accuracy,
    F1,
    ExactMatch,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::Loss,
        Metric::Perplexity,
        Metric::Accuracy,
        Metric::F1,
        Metric::ExactMatch,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Metric::Loss => "loss",
            Metric::Perplexity => "perplexity",
            Metric::Accuracy => "accuracy",
            Metric::F1 => "f1",
            Metric::ExactMatch => "exact_match",
        }
    }
    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// What an eval measures.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalSubject {
    /// The base model alone.
    Base { model: String },
    /// A train's base with its adapters applied.
    Train { train: String },
    /// A merged model.
    Merge { merge: String },
    /// A base with a combination of trained adapters.
    Combined {
        model: String,
        adapters: Combination,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// A typed gate operand.
#[derive(Debug, Clone, PartialEq)]
pub enum GateExpr {
    /// A metric this eval computes.
    Metric(Metric),
    /// The same metric of the base model on the same data.
    Baseline(Metric),
    /// A metric of another eval.
    Run {
        eval: String,
        metric: Metric,
    },
    Literal(f64),
    Binary {
        op: ArithOp,
        lhs: Box<GateExpr>,
        rhs: Box<GateExpr>,
    },
    Neg(Box<GateExpr>),
}

/// `gate LHS OP RHS`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub lhs: GateExpr,
    pub op: CmpOp,
    pub rhs: GateExpr,
    /// The gate as written.
    pub text: String,
    pub loc: Loc,
}

/// `eval e { .. }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Eval {
    pub meta: Meta,
    pub subject: EvalSubject,
    pub data: DataRef,
    pub metrics: Vec<Metric>,
    pub gates: Vec<Gate>,
    pub batch: u32,
    /// Evals whose metrics the gates read.
    pub needs_evals: Vec<String>,
}

/// `merge m = base + adapters`.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    pub meta: Meta,
    pub model: String,
    pub quantized_with: Option<String>,
    pub adapters: Combination,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `adapter_config.json` + `adapter_model.safetensors`.
    Peft,
    /// A full Hugging Face model folder with the adapters merged in.
    Merged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeOn {
    Vllm,
    Lorax,
    Peft,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExportSource {
    /// One trained adapter, `train.adapter`.
    Adapter(AdapterRef),
    /// Every adapter of a train.
    Train(String),
    /// A merged model.
    Merge(String),
}

/// `export SRC to "PATH" as FORMAT { serve_on = .., outside_project = .. }`. `meta.name` is the source as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub meta: Meta,
    pub source: ExportSource,
    /// Absolute destination folder.
    pub path: PathBuf,
    /// The destination string as written, and where.
    pub dest: String,
    pub dest_loc: Loc,
    /// `outside_project = true`: the user accepts a destination outside the project folder.
    pub outside_project: bool,
    pub format: ExportFormat,
    pub serve_on: Option<ServeOn>,
}
