//! The reverse direction: an adapter saved by peftc loads in Python PEFT and gives the same
//! logits (within 1e-4), adapted and merged. Runs `tests/parity/check_peftc_adapter.py` when
//! `$PEFTC_PYTHON` names a Python with PEFT; otherwise compares with the committed
//! output of that script (`tests/fixtures/parity/reverse/<arch>/peft_logits.safetensors`).
//! With `PEFTC_UPDATE_FIXTURES=1` the Python output is written back to the fixtures.

use super::common::{max_diff_on_tokens, parity_dir, reference};
use candle_core::{Device, Tensor};
use peftc::runtime::adapters::attach::{attach_lora, LoraConfig};
use peftc::runtime::adapters::lora::{LoraInit, LoraSpec};
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::models::load::{load_folder, LoadConfig};
use peftc::runtime::peft_format::adapter_config::AdapterConfig;
use peftc::runtime::peft_format::lineage::Lineage;
use peftc::runtime::peft_format::load::load_adapter;
use peftc::runtime::peft_format::save::save_adapter;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PEFTC_PYTHON") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    None
}

fn lora_for(arch: &str) -> LoraConfig {
    let (targets, rslora, dora) = match arch {
        "llama" => (TargetModules::AllLinear, true, false),
        _ => (
            TargetModules::Names(vec!["c_attn".into(), "c_fc".into()]),
            false,
            true,
        ),
    };
    LoraConfig {
        spec: LoraSpec {
            r: 4,
            alpha: 8.0,
            use_rslora: rslora,
            use_dora: dora,
            init: LoraInit::RandomBoth { std: 0.2 },
            seed: 11,
            ..Default::default()
        },
        target_modules: targets,
        modules_to_save: if arch == "llama" {
            vec!["lm_head".into()]
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

fn python_logits(
    py: &Path,
    model_dir: &Path,
    adapter: &Path,
    arch: &str,
    out: &Path,
) -> HashMap<String, Tensor> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/parity/check_peftc_adapter.py");
    let reference = parity_dir().join(arch).join("reference.safetensors");
    let status = std::process::Command::new(py)
        .arg(&script)
        .arg(model_dir)
        .arg(adapter)
        .arg(&reference)
        .arg(out)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .expect("run python");
    assert!(
        status.status.success(),
        "python check failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    candle_core::safetensors::load(out, &Device::Cpu).expect("python output")
}

fn check(arch: &str) {
    let model_dir = parity_dir().join(arch).join("model");
    let mut model = load_folder(&model_dir, &LoadConfig::default()).expect("load");
    let lora = lora_for(arch);
    attach_lora(model.as_adaptable_mut(), "default", &lora).expect("attach");
    // A trained `modules_to_save` copy must reach PEFT too: perturb the lm_head copy.
    for layer in model.as_adaptable_mut().linears_mut() {
        if let Some(copy) = layer.full_copy("default") {
            let w = copy.weight.as_tensor();
            copy.weight.set(&(w * 1.1).expect("scale")).expect("set");
        }
    }
    let cfg = AdapterConfig::from_model(
        model.as_adaptable(),
        "default",
        &lora,
        "../../model",
        "CAUSAL_LM",
    );
    assert_eq!(cfg.fan_in_fan_out, arch == "gpt2");
    let tmp = tempfile::tempdir().expect("tempdir");
    let adapter_dir = tmp.path().join("adapter");
    let lineage = Lineage::for_base("tiny", Some(&model_dir)).expect("lineage");
    save_adapter(
        model.as_adaptable(),
        "default",
        &cfg,
        &lineage,
        &adapter_dir,
    )
    .expect("save");
    assert!(adapter_dir.join("peftc.lineage.json").is_file());
    let r = reference(arch);
    let ours = model
        .forward(&r.input_ids, &r.mask, false)
        .expect("forward");
    // Our own round trip: reload into a fresh model.
    let mut again = load_folder(&model_dir, &LoadConfig::default()).expect("load");
    load_adapter(again.as_adaptable_mut(), &adapter_dir, "default").expect("reload");
    let reloaded = again
        .forward(&r.input_ids, &r.mask, false)
        .expect("forward");
    assert!(max_diff_on_tokens(&ours, &reloaded, &r.mask) < 1e-6);

    let fixture = parity_dir().join("reverse").join(arch);
    let committed = fixture.join("peft_logits.safetensors");
    let theirs = match python() {
        Some(py) => {
            let out = tmp.path().join("peft_logits.safetensors");
            let t = python_logits(&py, &model_dir, &adapter_dir, arch, &out);
            if std::env::var("PEFTC_UPDATE_FIXTURES").is_ok() {
                std::fs::create_dir_all(&fixture).expect("mkdir");
                std::fs::copy(&out, &committed).expect("copy");
            }
            t
        }
        None => {
            println!("python with peft not found: comparing with the committed PEFT output");
            candle_core::safetensors::load(&committed, &Device::Cpu).expect("committed fixture")
        }
    };
    let d = max_diff_on_tokens(&ours, &theirs["logits"], &r.mask);
    assert!(
        d < 1e-4,
        "{arch}: PEFT logits of the peftc adapter differ by {d}"
    );
    let d = max_diff_on_tokens(&ours, &theirs["merged"], &r.mask);
    assert!(d < 1e-4, "{arch}: PEFT merged logits differ by {d}");
}

#[test]
fn llama_adapter_saved_by_peftc_loads_in_peft() {
    check("llama");
}

#[test]
fn gpt2_dora_adapter_saved_by_peftc_loads_in_peft() {
    check("gpt2");
}
