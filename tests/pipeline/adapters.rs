//! Adapter options through `peftc run`, equal to Hugging Face PEFT: PiSSA, OLoRA, LoRA+
//! (`lr_ratio`, PEFT's `create_loraplus_optimizer`), rsLoRA + DoRA on a PiSSA init, trained on the
//! tiny llama fixture, each compared with `tests/parity/make_pipeline_references.py` (same data
//! in one batch, 5 AdamW steps, lr 1e-2): every step's loss and the eval loss within 1e-4, the
//! exported adapter's config as PEFT saves it (rank and alpha doubled: the PiSSA / OLoRA adapter
//! converted to a LoRA on the original base) and its logits on the original base within 1e-4 of
//! the trained PEFT model's. A merge of the adapter is evaluated in place, exported `as merged`
//! and its logits equal the adapter's; with `$PEFTC_PYTHON` (a Python with the pinned
//! requirements), transformers loads the merged folder with no missing key and its logits equal
//! PEFT's `merge_and_unload` within 1e-5. The export's lineage is checked field by field against
//! the files and cache entries of the run that wrote it.

use candle_core::{DType, Device, Tensor};
use peftc::runtime::models::load::{load_folder, LoadConfig};
use peftc::runtime::peft_format::load::load_adapter;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn references() -> Value {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/pipeline/references.json"))
        .expect("references.json");
    serde_json::from_str(&text).expect("json")
}

const PIPELINE: &str = r#"model tiny = local("model")

dataset tr = jsonl("train.jsonl") { text = field("text") }
dataset ev = jsonl("eval.jsonl") { text = field("text") }

adapter a = lora { r = 4, alpha = 8, targets = [q_proj, v_proj], ADAPTER }

train t {
  model     = tiny
  adapters  = [a]
  data      = tr
  epochs    = 5
  max_steps = 5
  batch     = 8
  lr        = 1e-2
  seed      = 1
}

eval check {
  model   = t
  data    = ev
  metrics = [loss]
  gate loss <= baseline.loss + 1.0
}

merge m = tiny + t.a

export t.a to "out/a" as peft
export m to "out/m" as merged
"#;

/// A project with the tiny llama, the reference data and the pipeline with `options` on `a`.
fn project(options: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    let fixture = repo().join("tests/fixtures/parity/llama/model");
    for f in std::fs::read_dir(&fixture).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, model.join(f.file_name().unwrap())).unwrap();
    }
    let refs = references();
    for (split, file) in [("train", "train.jsonl"), ("eval", "eval.jsonl")] {
        let rows: String = refs[split]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| format!("{}\n", serde_json::json!({ "text": t })))
            .collect();
        std::fs::write(dir.path().join(file), rows).unwrap();
    }
    std::fs::write(
        dir.path().join("pipeline.peft"),
        PIPELINE.replace("ADAPTER", options),
    )
    .unwrap();
    dir
}

fn run(dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_peftc"))
        .arg("run")
        .arg(dir.join("pipeline.peft"))
        .env("NO_COLOR", "1")
        .env_remove("PEFTC_CACHE_DIR")
        .output()
        .expect("run peftc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Cache entries' output files named `name` (the run's only train writes `metrics.jsonl`).
fn entry_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join(".peft/entries")).unwrap() {
        let p = e.unwrap().path().join("out").join(name);
        if p.is_file() {
            out.push(p);
        }
    }
    out
}

fn losses(dir: &Path) -> Vec<f64> {
    let files = entry_files(dir, "metrics.jsonl");
    assert_eq!(files.len(), 1, "one train");
    std::fs::read_to_string(&files[0])
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

/// The eval rows right-padded, with their mask.
fn eval_batch(refs: &Value) -> (Tensor, Tensor) {
    let rows: Vec<Vec<u32>> = refs["eval_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect()
        })
        .collect();
    let n = rows.iter().map(Vec::len).max().unwrap();
    let ids: Vec<u32> = rows
        .iter()
        .flat_map(|r| r.iter().copied().chain(std::iter::repeat(2)).take(n))
        .collect();
    let mask: Vec<u32> = rows
        .iter()
        .flat_map(|r| (0..n).map(move |i| u32::from(i < r.len())))
        .collect();
    (
        Tensor::from_vec(ids, (rows.len(), n), &Device::Cpu).unwrap(),
        Tensor::from_vec(mask, (rows.len(), n), &Device::Cpu).unwrap(),
    )
}

/// Largest difference of two `[b, s, v]` logits over unpadded tokens.
fn diff_on_tokens(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let m = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .broadcast_mul(&m)
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn python() -> Option<PathBuf> {
    std::env::var_os("PEFTC_PYTHON")
        .map(PathBuf::from)
        .filter(|p| p.exists())
}

/// Runs the pipeline with `options` and compares it with reference `case`.
fn check_case(case: &str, options: &str) -> tempfile::TempDir {
    let refs = references();
    let want = &refs["cases"][case];
    let dir = project(options);
    let (code, stderr) = run(dir.path());
    assert_eq!(code, 0, "{stderr}");
    // Every training step's loss.
    let ours = losses(dir.path());
    let theirs: Vec<f64> = want["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(ours.len(), theirs.len());
    for (step, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((a - b).abs() < 1e-4, "{case} step {}: {a} vs {b}", step + 1);
    }
    // The eval after training, read from the export's lineage.
    let lineage = read_json(&dir.path().join("out/a/peftc.lineage.json"));
    let eval_loss = lineage["metrics"]["check.loss"].as_f64().unwrap();
    let want_eval = want["eval_loss"].as_f64().unwrap();
    assert!(
        (eval_loss - want_eval).abs() < 1e-4,
        "{case} eval loss {eval_loss} vs {want_eval}"
    );
    // The exported adapter is what PEFT saves with `path_initial_model_for_weight_conversion`.
    let config = read_json(&dir.path().join("out/a/adapter_config.json"));
    assert_eq!(config["r"], want["saved_r"], "{case}");
    assert!(
        (config["lora_alpha"].as_f64().unwrap() - want["saved_alpha"].as_f64().unwrap()).abs()
            < 1e-9
    );
    assert_eq!(config["init_lora_weights"], want["saved_init"], "{case}");
    // Its logits on the original base.
    let fixture = candle_core::safetensors::load(
        repo().join(format!("tests/fixtures/pipeline/{case}_logits.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let (ids, mask) = eval_batch(&refs);
    let mut model = load_folder(&dir.path().join("model"), &LoadConfig::default()).unwrap();
    load_adapter(model.as_adaptable_mut(), &dir.path().join("out/a"), "a").unwrap();
    let logits = model.forward(&ids, &mask, false).unwrap();
    let d = diff_on_tokens(&logits, &fixture["logits"], &mask);
    assert!(
        d < 1e-4,
        "{case}: exported adapter logits differ from PEFT's by {d}"
    );
    let loss_diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "{case}: losses within {loss_diff:.1e}, eval loss within {:.1e}, logits within {d:.1e}",
        (eval_loss - want_eval).abs()
    );
    dir
}

#[test]
fn pissa_trains_evaluates_merges_and_exports_as_peft_does() {
    let dir = check_case("pissa", "init = pissa");
    let refs = references();
    let (ids, mask) = eval_batch(&refs);
    // The merged model: evaluated in place, equal to the adapter on the base.
    let lineage = read_json(&dir.path().join("out/m/peftc.lineage.json"));
    let after = lineage["metrics"]["m.after_merge.loss"].as_f64().unwrap();
    let before = read_json(&dir.path().join("out/a/peftc.lineage.json"))["metrics"]["check.loss"]
        .as_f64()
        .unwrap();
    assert!((after - before).abs() < 1e-5, "{after} vs {before}");
    let gates = lineage["gates"].as_array().unwrap();
    assert!(
        gates
            .iter()
            .any(|g| g["gate"].as_str().unwrap().contains("after merge") && g["passed"] == true),
        "{gates:?}"
    );
    let merged = load_folder(&dir.path().join("out/m"), &LoadConfig::default()).unwrap();
    let fixture = candle_core::safetensors::load(
        repo().join("tests/fixtures/pipeline/pissa_logits.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let logits = merged.forward(&ids, &mask, false).unwrap();
    let d = diff_on_tokens(&logits, &fixture["logits"], &mask);
    assert!(
        d < 1e-4,
        "merged logits differ from PEFT's trained model by {d}"
    );
    // Same tensor names as the base checkpoint: nothing missing, nothing extra.
    let names = |p: &Path| {
        let mut k: Vec<String> = candle_core::safetensors::load(p, &Device::Cpu)
            .unwrap()
            .into_keys()
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        names(&dir.path().join("out/m/model.safetensors")),
        names(&dir.path().join("model/model.safetensors"))
    );
    match python() {
        Some(py) => {
            let ids_file = dir.path().join("ids.json");
            std::fs::write(&ids_file, refs["eval_ids"].to_string()).unwrap();
            let out_file = dir.path().join("check.json");
            let status = Command::new(py)
                .arg(repo().join("tests/parity/check_merged_export.py"))
                .arg(dir.path().join("model"))
                .arg(dir.path().join("out/a"))
                .arg(dir.path().join("out/m"))
                .arg(&ids_file)
                .arg(&out_file)
                .env("PYTHONWARNINGS", "ignore")
                .output()
                .expect("python");
            assert!(
                status.status.success(),
                "{}",
                String::from_utf8_lossy(&status.stderr)
            );
            let check = read_json(&out_file);
            assert_eq!(check["missing"], serde_json::json!([]), "{check}");
            assert_eq!(check["unexpected"], serde_json::json!([]), "{check}");
            let d = check["max_diff"].as_f64().unwrap();
            assert!(d < 1e-5, "merged export vs PEFT merge_and_unload: {d}");
            eprintln!("merged export vs PEFT merge_and_unload: logits within {d:.1e}");
        }
        None => {
            eprintln!("skipped: the transformers check of the merged folder (set PEFTC_PYTHON)")
        }
    }
}

#[test]
fn olora_equals_peft() {
    check_case("olora", "init = olora");
}

#[test]
fn lora_plus_lr_ratio_equals_peft_create_loraplus_optimizer() {
    check_case("pissa_loraplus", "init = pissa, lr_ratio = 16");
}

#[test]
fn pissa_with_rslora_and_dora_equals_peft() {
    check_case(
        "pissa_rslora_dora",
        "init = pissa, rslora = true, dora = true",
    );
}

#[test]
fn lineage_records_every_input_of_the_export() {
    let dir = project("init = pissa");
    let (code, stderr) = run(dir.path());
    assert_eq!(code, 0, "{stderr}");
    let lineage = read_json(&dir.path().join("out/a/peftc.lineage.json"));
    let hash = |p: &Path| {
        blake3::hash(&std::fs::read(p).unwrap())
            .to_hex()
            .to_string()
    };
    // Every base model file, by content.
    let files = lineage["base_model"]["files"].as_array().unwrap();
    let mut names: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    for f in files {
        let p = dir.path().join("model").join(f["path"].as_str().unwrap());
        assert_eq!(f["blake3"].as_str().unwrap(), hash(&p));
        assert_eq!(
            f["bytes"].as_u64().unwrap(),
            std::fs::metadata(&p).unwrap().len()
        );
    }
    // The data file and the tokenized set the adapter was trained on.
    let data = &lineage["data"];
    assert_eq!(
        data["tr:train.jsonl"].as_str().unwrap(),
        hash(&dir.path().join("train.jsonl"))
    );
    let sets: Vec<String> = entry_files(dir.path(), "data.bin")
        .iter()
        .map(|p| hash(p))
        .collect();
    assert!(
        sets.contains(&data["tr.tokenized"].as_str().unwrap().to_string()),
        "{data}"
    );
    assert!(
        data.get("ev.tokenized").is_none(),
        "only the training data: {data}"
    );
    let all = lineage["files"].as_array().unwrap();
    assert!(all
        .iter()
        .any(|f| f["role"] == "data" && f["path"] == "train.jsonl"));
    // The eval's metrics and baseline, as the eval stage wrote them.
    let evals: Vec<Value> = entry_files(dir.path(), "metrics.json")
        .iter()
        .map(|p| read_json(p))
        .collect();
    let check = evals
        .iter()
        .find(|e| e["baseline"].is_object())
        .expect("the eval with a baseline");
    assert_eq!(lineage["metrics"]["check.loss"], check["model"]["loss"]);
    assert_eq!(
        lineage["metrics"]["check.baseline.loss"],
        check["baseline"]["loss"]
    );
    // The gates and the resolved training config.
    let gate = &lineage["gates"][0];
    assert_eq!(gate["gate"], "loss <= baseline.loss + 1.0");
    assert_eq!(gate["value"], check["model"]["loss"]);
    assert_eq!(gate["passed"], true);
    let config = &lineage["train_config"];
    assert_eq!(config["lr"], 1e-2);
    assert_eq!(config["max_steps"], 5);
    assert_eq!(config["adapters"][0]["init"], "pissa");
    assert_eq!(config["adapters"][0]["r"], 4);
    // A merged export: the merged train's config and data, the re-evaluation after the merge.
    let merged = read_json(&dir.path().join("out/m/peftc.lineage.json"));
    assert_eq!(merged["train_config"]["t"], *config);
    assert_eq!(merged["data"]["tr:train.jsonl"], data["tr:train.jsonl"]);
    assert!(
        merged["metrics"]["m.after_merge.loss"].is_number(),
        "{merged}"
    );
    assert_eq!(
        merged["base_model"]["files"],
        lineage["base_model"]["files"]
    );
}

const COMBINED: &str = r#"model tiny = local("model")

dataset tr = jsonl("train.jsonl") { text = field("text") }
dataset ev = jsonl("eval.jsonl") { text = field("text") }

adapter a = lora { r = 4, alpha = 8, targets = [q_proj, v_proj], init = pissa }
adapter b = lora { r = 2, alpha = 4, targets = [q_proj, v_proj], init = olora }

train t {
  model     = tiny
  adapters  = [a]
  data      = tr
  epochs    = 5
  max_steps = 5
  batch     = 8
  lr        = 1e-2
  seed      = 1
}

train u = t { adapters = [b] }

eval mixed {
  model    = tiny
  adapters = mix { t.a: 0.7, u.b: 0.3 }
  data     = ev
  metrics  = [loss]
  gate loss <= 10
}

eval stacked {
  model    = tiny
  adapters = [t.a, u.b]
  data     = ev
  metrics  = [loss]
  gate loss <= 10
}

merge m = tiny + mix { t.a: 0.7, u.b: 0.3 }

export t.a to "out/a" as peft
export m to "out/m" as merged
"#;

/// A weighted `mix` of two trained adapters (different ranks: PEFT's `cat` combination) and a
/// stack of both, evaluated through `peftc run`, equal to PEFT's `add_weighted_adapter` and
/// `set_adapter([..])` on the same adapters within 1e-4; the mix merged and re-evaluated.
#[test]
fn mix_and_stack_equal_peft_add_weighted_adapter() {
    let refs = references();
    let dir = project("init = pissa");
    std::fs::write(dir.path().join("pipeline.peft"), COMBINED).unwrap();
    let (code, stderr) = run(dir.path());
    assert_eq!(code, 0, "{stderr}");
    let lineage = read_json(&dir.path().join("out/a/peftc.lineage.json"));
    for (eval, key) in [("mixed", "mix_eval_loss"), ("stacked", "stack_eval_loss")] {
        let ours = lineage["metrics"][format!("{eval}.loss")].as_f64().unwrap();
        let theirs = refs["combinations"][key].as_f64().unwrap();
        assert!(
            (ours - theirs).abs() < 1e-4,
            "{eval}: {ours} vs PEFT {theirs}"
        );
        eprintln!(
            "{eval}: eval loss within {:.1e} of PEFT",
            (ours - theirs).abs()
        );
    }
    let merged = read_json(&dir.path().join("out/m/peftc.lineage.json"));
    let after = merged["metrics"]["m.after_merge.loss"].as_f64().unwrap();
    let mix = refs["combinations"]["mix_eval_loss"].as_f64().unwrap();
    assert!(
        (after - mix).abs() < 1e-4,
        "merged mix {after} vs PEFT {mix}"
    );
}
