//! Adapters move between Hugging Face PEFT and peftc for every architecture and task class.
//!
//! `tests/parity/make_peft_format_fixtures.py` (PEFT 0.21.2, pinned in
//! `tests/parity/requirements-peft-format.txt`) saved one adapter per case with PEFT itself and
//! recorded PEFT's logits. Here, for each case:
//! - PEFT -> peftc: the folder loads onto the model as the stages build it, and the logits equal
//!   PEFT's within 1e-5;
//! - peftc -> PEFT: peftc's export of that adapter has exactly PEFT's key set (bit-equal tensors)
//!   and PEFT's `adapter_config.json` fields; with `$PEFTC_PYTHON` (a Python with the pinned
//!   packages) `tests/parity/check_peft_export.py` loads the export in PEFT, which must report
//!   no missing and no unexpected key and give the same logits within 1e-5.

use candle_core::{DType, Device, Tensor};
use peftc::plan::configs::ModelBuild;
use peftc::runtime::adapters::attach::LoraConfig;
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::peft_format::adapter_config::AdapterConfig;
use peftc::runtime::peft_format::lineage::Lineage;
use peftc::runtime::peft_format::load::load_adapter;
use peftc::runtime::peft_format::save::save_adapter;
use peftc::stages::{load_unquantized, Loaded};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Every case of `tests/fixtures/peft_format/`.
pub const CASES: [&str; 7] = [
    "llama_qv",
    "llama_all",
    "mistral_dora",
    "qwen2_all",
    "gpt2_attn",
    "bert_cls",
    "bert_bare_cls",
];

/// PEFT's logits and peftc's agree within this (f32, same weights).
pub const TOL: f32 = 1e-5;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One fixture case: its base, task, inputs and PEFT's logits.
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    /// The base folder, and its path relative to `tests/fixtures` (PEFT's config names it so).
    pub base: PathBuf,
    pub base_rel: String,
    pub labels: Option<usize>,
    pub task_type: String,
    pub tensors: HashMap<String, Tensor>,
}

impl Case {
    pub fn open(name: &str) -> Case {
        let dir = fixtures().join("peft_format").join(name);
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
        let base_rel = meta["base"].as_str().unwrap().to_string();
        let tensors =
            candle_core::safetensors::load(dir.join("logits.safetensors"), &Device::Cpu).unwrap();
        Case {
            name: name.into(),
            base: fixtures().join(&base_rel),
            base_rel,
            labels: meta["labels"].as_u64().map(|n| n as usize),
            task_type: meta["task_type"].as_str().unwrap().to_string(),
            tensors,
            dir,
        }
    }

    pub fn adapter(&self) -> PathBuf {
        self.dir.join("adapter")
    }

    /// The base as the stages build it (a classifier for SEQ_CLS cases).
    pub fn load_base(&self) -> Loaded {
        let build = ModelBuild {
            labels: self
                .labels
                .map(|n| (0..n).map(|i| format!("LABEL_{i}")).collect()),
            dtype: "f32".into(),
            quant: None,
            dense_weights: false,
        };
        load_unquantized(&build, self.base.clone()).unwrap()
    }

    /// Largest difference between `logits` and PEFT's (causal: on real tokens only).
    pub fn diff(&self, logits: &Tensor, key: &str) -> f32 {
        let want = &self.tensors[key];
        let d = (logits - want).unwrap().abs().unwrap();
        let d = if d.rank() == 3 {
            let m = self.tensors["attention_mask"]
                .to_dtype(DType::F32)
                .unwrap()
                .unsqueeze(2)
                .unwrap();
            d.broadcast_mul(&m).unwrap()
        } else {
            d
        };
        d.max_all().unwrap().to_scalar::<f32>().unwrap()
    }

    pub fn forward(&self, loaded: &Loaded) -> Tensor {
        let ids = self.tensors["input_ids"].to_dtype(DType::U32).unwrap();
        let mask = self.tensors["attention_mask"].to_dtype(DType::U8).unwrap();
        loaded.model.forward(&ids, &mask, false).unwrap()
    }
}

/// Tensors of a safetensors file by name.
fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Loads the case's PEFT folder, then exports it with peftc into `out`. Returns the model.
fn load_and_export(case: &Case, lora: Option<LoraConfig>, out: &Path) -> Loaded {
    let mut loaded = case.load_base();
    let theirs = load_adapter(loaded.model.as_adaptable_mut(), &case.adapter(), "default")
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let lora = lora.unwrap_or_else(|| theirs.to_lora());
    let config = AdapterConfig::from_model(
        loaded.model.as_adaptable(),
        "default",
        &lora,
        &case.base_rel,
        &case.task_type,
    );
    let lineage = Lineage::for_base(&case.base_rel, None).unwrap();
    save_adapter(
        loaded.model.as_adaptable(),
        "default",
        &config,
        &lineage,
        out,
    )
    .unwrap();
    loaded
}

#[test]
fn adapters_saved_by_peft_give_peft_logits() {
    for name in CASES {
        let case = Case::open(name);
        let mut loaded = case.load_base();
        // A bare checkpoint's new head is random on both sides (the adapter's
        // `modules_to_save` copy replaces it); every other base must agree already.
        if name != "bert_bare_cls" {
            let base = case.forward(&loaded);
            let d = case.diff(&base, "base_logits");
            assert!(d < TOL, "{name}: base logits differ by {d}");
        }
        load_adapter(loaded.model.as_adaptable_mut(), &case.adapter(), "default")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let d = case.diff(&case.forward(&loaded), "logits");
        assert!(d < TOL, "{name}: logits differ from PEFT's by {d}");
    }
}

/// Fields of PEFT's config a peftc export of the same adapter does not reproduce, and why.
const NOT_COMPARED: [(&str, &str); 3] = [
    ("peft_version", "left out: PEFT fills it in on load"),
    (
        "init_lora_weights",
        "the fixtures use `false` (random A and B) to make every weight count",
    ),
    (
        "target_modules",
        "a Python set: PEFT writes it in any order (compared as a set)",
    ),
];

#[test]
fn peftc_exports_have_peft_keys_and_config_fields() {
    let tmp = tempfile::tempdir().unwrap();
    for name in CASES {
        let case = Case::open(name);
        let out = tmp.path().join(name);
        load_and_export(&case, None, &out);
        let theirs = tensors(&case.adapter().join("adapter_model.safetensors"));
        let ours = tensors(&out.join("adapter_model.safetensors"));
        let keys = |m: &HashMap<String, Tensor>| m.keys().cloned().collect::<BTreeSet<_>>();
        assert_eq!(keys(&ours), keys(&theirs), "{name}: key sets differ");
        for (k, t) in &theirs {
            let d = (t - &ours[k]).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{name}: `{k}` changed");
        }
        let mut want = json(&case.adapter().join("adapter_config.json"));
        let mut got = json(&out.join("adapter_config.json"));
        assert_eq!(
            set(&got["target_modules"]),
            set(&want["target_modules"]),
            "{name}: target_modules"
        );
        for (field, _) in NOT_COMPARED {
            want.as_object_mut().unwrap().remove(field);
            got.as_object_mut().unwrap().remove(field);
        }
        assert_eq!(got, want, "{name}: adapter_config.json differs from PEFT's");
        // Written as PEFT writes it: keys sorted, two-space indent.
        let text = std::fs::read_to_string(out.join("adapter_config.json")).unwrap();
        let sorted: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  \""))
            .map(|l| l.trim_start())
            .collect();
        let mut again = sorted.clone();
        again.sort();
        assert_eq!(sorted, again, "{name}: keys are not sorted");
    }
}

/// `all_linear` declared in peftc expands to the same modules, named as PEFT names them
/// (`bert.pooler.dense` for a bare BERT checkpoint, no classifier).
#[test]
fn all_linear_expands_to_peft_module_paths() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["llama_all", "qwen2_all", "bert_bare_cls"] {
        let case = Case::open(name);
        let theirs = AdapterConfig::read(&case.adapter()).unwrap();
        let mut lora = theirs.to_lora();
        lora.target_modules = TargetModules::AllLinear;
        let out = tmp.path().join(name);
        load_and_export(&case, Some(lora), &out);
        let want = json(&case.adapter().join("adapter_config.json"));
        let got = json(&out.join("adapter_config.json"));
        assert_eq!(
            set(&got["target_modules"]),
            set(&want["target_modules"]),
            "{name}"
        );
    }
}

/// The Python that runs the reference scripts: `$PEFTC_PYTHON` (with the packages of
/// `tests/parity/requirements-peft-format.txt`).
pub fn python() -> Option<PathBuf> {
    std::env::var_os("PEFTC_PYTHON")
        .map(PathBuf::from)
        .filter(|p| p.exists())
}

#[test]
fn peftc_exports_load_in_peft_without_missing_keys() {
    let Some(py) = python() else {
        println!("skipped: set PEFTC_PYTHON to a Python with tests/parity/requirements-peft-format.txt to load peftc's exports in PEFT");
        return;
    };
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/parity/check_peft_export.py");
    let tmp = tempfile::tempdir().unwrap();
    for name in CASES {
        let case = Case::open(name);
        let out = tmp.path().join(name);
        load_and_export(&case, None, &out);
        let report = tmp.path().join(format!("{name}.json"));
        let run = std::process::Command::new(&py)
            .arg(&script)
            .arg(&case.dir)
            .arg(&out)
            .arg(&report)
            .env("PYTHONWARNINGS", "ignore")
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let r = json(&report);
        assert_eq!(
            r["missing"],
            Value::Array(vec![]),
            "{name}: PEFT misses keys"
        );
        assert_eq!(
            r["unexpected"],
            Value::Array(vec![]),
            "{name}: unexpected keys"
        );
        let logits: Vec<f32> = flatten(&r["logits"]);
        let want = case.tensors["logits"].clone();
        let got = Tensor::from_vec(logits, want.dims(), &Device::Cpu).unwrap();
        let d = case.diff(&got, "logits");
        assert!(
            d < TOL,
            "{name}: PEFT's logits of peftc's export differ by {d}"
        );
    }
}

fn flatten(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(flatten).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        _ => Vec::new(),
    }
}
