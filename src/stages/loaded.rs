//! Builds the model a stage works on from its inputs: the `model` stage's record of where the
//! weights are (a Hugging Face folder or a GGUF file), an optional quantized-base cache, the task
//! head. Returns the model with adaptable layers and its tokenizer. It must not attach adapters
//! (the train and eval stages do) and must not write into any input's cache folder.

use super::model_stage::ModelRecord;
use crate::exec::StageContext;
use crate::plan::configs::{ModelBuild, QuantConfig};
use crate::runtime::data::tokenizer::ModelTokenizer;
use crate::runtime::model_api::{AdaptableModel, AdaptedModel};
use crate::runtime::models::bert::{BertHead, BertLoadConfig, BertModel};
use crate::runtime::models::bert_config::BertConfig;
use crate::runtime::models::config::ModelConfig;
use crate::runtime::models::decoder::Decoder;
use crate::runtime::models::gguf::{GgufLoadConfig, GgufModel, LinearFormat};
use crate::runtime::models::load::{load, load_classifier, LoadConfig, LoadedModel};
use crate::runtime::models::safetensors_source::SafetensorsSource;
use crate::runtime::models::source::{LoadError, TensorSource};
use crate::runtime::quant::{
    ComputeDType, QuantCacheConfig, QuantFormat, QuantSpec, QuantizingConfig, QuantizingSource,
};
use crate::runtime::weight::FrozenWeight;
use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;
use std::sync::Arc;

/// A model ready for a stage, with what the stage needs around it.
pub struct Loaded {
    pub model: Box<dyn LoadedModel>,
    pub tokenizer: ModelTokenizer,
    /// `model_type` from the config (`llama`, `gpt2`, `bert`...).
    pub arch: String,
    /// The Hugging Face folder of the base, when it is one (merged exports copy from it).
    pub folder: Option<PathBuf>,
    /// The base model's id for lineage.
    pub base_id: String,
    /// `base_model_name_or_path` of the adapter configs: the Hub id of an `hf(..)` base, the
    /// path of any other.
    pub name_or_path: String,
}

/// The device stages run on: `PEFTC_DEVICE` (`cpu`, `cuda:N`, `metal`), CPU by default.
pub fn device() -> anyhow::Result<Device> {
    let spec = std::env::var("PEFTC_DEVICE").unwrap_or_else(|_| "cpu".into());
    match spec.as_str() {
        "cpu" | "" => Ok(Device::Cpu),
        "metal" => Device::new_metal(0).context("no Metal device (build with --features metal)"),
        s if s.starts_with("cuda") => {
            let idx = s
                .strip_prefix("cuda")
                .and_then(|r| r.strip_prefix(':'))
                .unwrap_or("0");
            let idx: usize = idx
                .parse()
                .with_context(|| format!("bad device `{s}`: expected cuda:N"))?;
            cuda_device(idx)
        }
        other => bail!("unknown device `{other}`: expected cpu, cuda:N or metal"),
    }
}

/// Free and total memory of `device` in bytes, measured now: a CUDA device's (`cuMemGetInfo`);
/// `None` for the CPU and Metal, whose budget is the declared `memory` (checked by `peftc check`).
pub fn free_memory(device: &Device) -> Option<(u64, u64)> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        return crate::runtime::quant::cuda::mem_info(d).ok();
    }
    let _ = device;
    None
}

/// Opens CUDA device `idx`, or says clearly why not: a build without CUDA, no driver or GPU
/// (the driver's own answer is quoted), or a panic inside the CUDA bindings (caught, so a machine
/// without a GPU gets an error and exit status 2, never an abort).
fn cuda_device(idx: usize) -> anyhow::Result<Device> {
    if !cfg!(feature = "cuda") {
        bail!(
            "device cuda:{idx}: this peftc was built without CUDA; build it with \
             `cargo build --release --features cuda` (README: \"GPU\") or use --device cpu"
        );
    }
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| Device::new_cuda(idx));
    std::panic::set_hook(hook);
    let why = match opened {
        Ok(Ok(device)) => return Ok(device),
        // The driver's answer, without the backtrace candle appends under RUST_BACKTRACE.
        Ok(Err(e)) => e.to_string().lines().next().unwrap_or_default().to_string(),
        Err(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the CUDA bindings panicked".into()),
    };
    bail!(
        "no usable CUDA GPU cuda:{idx} on this machine (the CUDA driver answered: {why}); \
         run on a machine with an NVIDIA GPU and its driver, or use --device cpu"
    )
}

fn dtype(name: &str) -> DType {
    match name {
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        _ => DType::F32,
    }
}

/// The quantization spec of a `quant` declaration.
pub fn quant_spec(q: &QuantConfig) -> anyhow::Result<QuantSpec> {
    let format = QuantFormat::parse(&q.kind)
        .with_context(|| format!("unknown quantization `{}`", q.kind))?;
    let mut spec = QuantSpec::new(format);
    if matches!(format, QuantFormat::Nf4 | QuantFormat::Fp4) {
        spec.block_size = q.block_size as usize;
        spec.double_quant = q.double_quant;
    }
    spec.compute = match q.compute.as_str() {
        "bf16" => ComputeDType::Bf16,
        "f16" => ComputeDType::F16,
        _ => ComputeDType::F32,
    };
    Ok(spec)
}

/// Loads the model of `build` from the stage's `model` input (and `quant` input when quantized).
pub fn load_model(ctx: &StageContext, build: &ModelBuild) -> anyhow::Result<Loaded> {
    load_model_with(ctx, build, &|src| quantized(ctx, build, src))
}

/// Wraps the weights' source before the model is built from it (the quantizing source).
pub type WrapSource<'a> =
    dyn Fn(Arc<dyn TensorSource>) -> anyhow::Result<Arc<dyn TensorSource>> + 'a;

/// [`load_model`] with the source wrapped by `wrap` instead of the build's quantization.
pub fn load_model_with(
    ctx: &StageContext,
    build: &ModelBuild,
    wrap: &WrapSource<'_>,
) -> anyhow::Result<Loaded> {
    let record = ModelRecord::from_input(ctx)?;
    let device = device()?;
    let how = LoadConfig {
        dtype: dtype(&build.dtype),
        device: device.clone(),
    };
    match &record.gguf {
        Some(gguf_path) => {
            // The file's own quantized weights (Q4_1 for SmolLM2) stay as stored: the forward runs
            // the quantized kernel, the backward hands the input its gradient. `weights = dense`
            // dequantizes them; a `quant` re-quantizes them through the quantizing source.
            let format = if build.dense_weights {
                LinearFormat::Dense
            } else {
                LinearFormat::Stored
            };
            let gguf = GgufModel::open(
                gguf_path,
                &device,
                GgufLoadConfig {
                    linear_format: format,
                },
            )
            .with_context(|| format!("opening {}", gguf_path.display()))?;
            let config = ModelConfig::from_json(
                &gguf.config_json()?.to_string(),
                &gguf_path.display().to_string(),
            )?;
            let src: Arc<dyn TensorSource> = Arc::new(gguf);
            let src = wrap(src)?;
            let model = load_decoder(&config, build, src.as_ref(), &how)?;
            let tokenizer = ModelTokenizer::from_dir(&record.hf_files)?;
            Ok(Loaded {
                model,
                tokenizer,
                arch: config.model_type.clone(),
                folder: None,
                name_or_path: record.name_or_path(),
                base_id: record.id,
            })
        }
        None => {
            let mut loaded = load_folder_with(build, record.path.clone(), record.id.clone(), wrap)?;
            loaded.name_or_path = record.name_or_path();
            Ok(loaded)
        }
    }
}

/// Loads a Hugging Face model folder (the base, or a merged model) with the head of `build`.
pub fn load_folder(
    ctx: &StageContext,
    build: &ModelBuild,
    folder: PathBuf,
    base_id: String,
) -> anyhow::Result<Loaded> {
    load_folder_with(build, folder, base_id, &|src| quantized(ctx, build, src))
}

/// Loads a Hugging Face folder as the stages build it: the head of `build` (a BERT checkpoint
/// without a classifier gets the seeded new head), the base quantized as `build` says (without
/// a quantize stage's cache).
pub fn load_local(build: &ModelBuild, folder: PathBuf) -> anyhow::Result<Loaded> {
    let id = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    load_folder_with(build, folder, id, &|src| quantizing(build, src, None))
}

fn load_folder_with(
    build: &ModelBuild,
    folder: PathBuf,
    base_id: String,
    wrap: &WrapSource<'_>,
) -> anyhow::Result<Loaded> {
    let device = device()?;
    let how = LoadConfig {
        dtype: dtype(&build.dtype),
        device: device.clone(),
    };
    let config = ModelConfig::from_folder(&folder)?;
    let src: Arc<dyn TensorSource> = Arc::new(SafetensorsSource::from_folder(&folder, &device)?);
    let src = wrap(src)?;
    let tokenizer = ModelTokenizer::from_dir(&folder)?;
    let model: Box<dyn LoadedModel> = if config.model_type == "bert" {
        Box::new(load_bert(&folder, build, src.as_ref(), how.dtype)?)
    } else {
        let named = ModelConfig {
            file: folder.display().to_string(),
            ..config.clone()
        };
        load_decoder(&named, build, src.as_ref(), &how)?
    };
    Ok(Loaded {
        model,
        tokenizer,
        arch: config.model_type.clone(),
        name_or_path: folder.display().to_string(),
        folder: Some(folder),
        base_id,
    })
}

/// A decoder (llama, mistral, qwen2, gpt2), with a `score` head over the last non-padding
/// token when the build classifies (`*ForSequenceClassification`). A checkpoint without a head
/// gets a new one, drawn as transformers does (normal, std = `initializer_range`) from a fixed
/// seed so every stage builds the same head.
fn load_decoder(
    config: &ModelConfig,
    build: &ModelBuild,
    src: &dyn TensorSource,
    how: &LoadConfig,
) -> anyhow::Result<Box<dyn LoadedModel>> {
    let Some(labels) = &build.labels else {
        return Ok(load(config, src, how)?);
    };
    let field = |k: &str| config.raw.get(k).and_then(|v| v.as_u64());
    let hidden = field("hidden_size")
        .or_else(|| field("n_embd"))
        .with_context(|| format!("{}: no hidden size in the config", config.file))?;
    let with_head = HeadSource {
        inner: src,
        name: crate::runtime::models::score_head::SCORE,
        bias: false,
        labels: labels.len(),
        hidden: hidden as usize,
        std: config
            .raw
            .get("initializer_range")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.02),
    };
    Ok(load_classifier(config, &with_head, how, labels.len())?)
}

/// Wraps the source in a quantizing source reading the `quant` stage's cache, when quantized.
fn quantized(
    ctx: &StageContext,
    build: &ModelBuild,
    src: Arc<dyn TensorSource>,
) -> anyhow::Result<Arc<dyn TensorSource>> {
    let cache = ctx.input("quant").map(|i| QuantCacheConfig {
        dir: i.dir.clone(),
        source_id: "base".into(),
    });
    quantizing(build, src, cache)
}

/// The source quantized as `build` says (the head and `lm_head` kept dense), reading `cache`.
fn quantizing(
    build: &ModelBuild,
    src: Arc<dyn TensorSource>,
    cache: Option<QuantCacheConfig>,
) -> anyhow::Result<Arc<dyn TensorSource>> {
    let Some(q) = &build.quant else {
        return Ok(src);
    };
    let spec = quant_spec(q)?;
    let config = QuantizingConfig {
        cache,
        keep_dense: vec!["lm_head".into(), "classifier".into(), "score".into()],
    };
    Ok(Arc::new(QuantizingSource::new(src, spec, config)?))
}

/// BERT with a sequence-classification head for the declared labels. A checkpoint without a head
/// (a sentence encoder) gets a new one, initialised as transformers does (normal, std =
/// `initializer_range`, zero bias) from a fixed seed so every stage builds the same head.
fn load_bert(
    folder: &std::path::Path,
    build: &ModelBuild,
    src: &dyn TensorSource,
    dt: DType,
) -> anyhow::Result<BertModel> {
    let mut config = BertConfig::from_file(&folder.join("config.json"))?;
    let head = if let Some(labels) = &build.labels {
        config.num_labels = labels.len();
        BertHead::SequenceClassification
    } else {
        BertHead::None
    };
    let with_head = HeadSource {
        inner: src,
        name: "classifier",
        bias: true,
        labels: config.num_labels,
        hidden: config.hidden_size,
        std: 0.02,
    };
    Ok(BertModel::load(
        &with_head,
        &config,
        BertLoadConfig { head, dtype: dt },
    )?)
}

/// A source that adds a freshly initialised head (`classifier` with a bias for BERT, `score`
/// without one for the decoders) when the checkpoint has none, or one sized for other labels.
struct HeadSource<'a> {
    inner: &'a dyn TensorSource,
    /// Module path of the head.
    name: &'static str,
    bias: bool,
    labels: usize,
    hidden: usize,
    std: f64,
}

impl HeadSource<'_> {
    fn weight_name(&self) -> String {
        format!("{}.weight", self.name)
    }
    fn bias_name(&self) -> String {
        format!("{}.bias", self.name)
    }
    fn head_weight(&self) -> Result<Tensor, LoadError> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_c1a5);
        // Box-Muller: N(0, std^2) from two uniforms.
        let data: Vec<f32> = (0..self.labels * self.hidden)
            .map(|_| {
                let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
                let u2: f64 = rng.gen();
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * self.std) as f32
            })
            .collect();
        Tensor::from_vec(data, (self.labels, self.hidden), &Device::Cpu)
            .map_err(|e| other(self.name, e.to_string()))
    }
    /// Whether `name` is the new head: absent from the checkpoint, or sized for other labels
    /// (as transformers' `ignore_mismatched_sizes`).
    fn is_head(&self, name: &str) -> bool {
        let weight = self.weight_name();
        if name != weight && !(self.bias && name == self.bias_name()) {
            return false;
        }
        match self.inner.shape(&weight) {
            Ok(shape) => shape.first() != Some(&self.labels),
            Err(_) => true,
        }
    }
}

fn other(file: &str, message: String) -> LoadError {
    LoadError::Other {
        file: file.into(),
        message,
    }
}

impl TensorSource for HeadSource<'_> {
    fn contains(&self, name: &str) -> bool {
        self.is_head(name) || self.inner.contains(name)
    }
    fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError> {
        if self.is_head(name) {
            return Ok(if name == self.weight_name() {
                vec![self.labels, self.hidden]
            } else {
                vec![self.labels]
            });
        }
        self.inner.shape(name)
    }
    fn tensor(&self, name: &str, dtype: DType) -> Result<Tensor, LoadError> {
        if self.is_head(name) {
            let t = if name == self.weight_name() {
                self.head_weight()?
            } else {
                Tensor::zeros(self.labels, DType::F32, &Device::Cpu)
                    .map_err(|e| other(self.name, e.to_string()))?
            };
            return t
                .to_dtype(dtype)
                .map_err(|e| other(self.name, e.to_string()));
        }
        self.inner.tensor(name, dtype)
    }
    fn linear(&self, name: &str, dtype: DType) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        if self.is_head(name) {
            let w = self
                .head_weight()?
                .to_dtype(dtype)
                .map_err(|e| other(self.name, e.to_string()))?;
            return Ok(Arc::new(crate::runtime::dense::DenseWeight::new(w)));
        }
        self.inner.linear(name, dtype)
    }
    fn conv1d(&self, name: &str, dtype: DType) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        self.inner.conv1d(name, dtype)
    }
}

impl LoadedModel for BertModel {
    fn architecture(&self) -> &str {
        "bert"
    }
    fn decoder(&self) -> Option<&dyn Decoder> {
        None
    }
    fn as_adaptable(&self) -> &dyn AdaptableModel {
        self
    }
    fn as_adaptable_mut(&mut self) -> &mut dyn AdaptableModel {
        self
    }
}

/// Lets a boxed model be used where `&dyn AdaptedModel` is wanted.
pub fn adapted(model: &dyn LoadedModel) -> &dyn AdaptedModel {
    model.as_adaptable()
}
