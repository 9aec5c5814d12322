//! Generation with a KV cache equals greedy decoding by full recomputation; left-padded batches
//! decode each row as if alone; switching the active adapter needs no reload; sampling is
//! seeded. Also the tokenizer, merged-model export and PiSSA initialisation.

use super::common::{assert_logits, max_diff_on_tokens, parity_dir, reference};
use candle_core::{DType, Device, Tensor};
use peftc::runtime::adapters::attach::{attach_lora, merge_adapter, set_active, LoraConfig};
use peftc::runtime::adapters::lora::{LoraInit, LoraSpec};
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::models::generate::{generate, GenerateConfig, Sampling};
use peftc::runtime::models::load::{load_folder, LoadConfig, LoadedModel};
use peftc::runtime::models::tokenizer::load_tokenizer;
use peftc::runtime::peft_format::load::load_adapter;
use peftc::runtime::peft_format::merged::save_merged;

/// Greedy decoding by running the whole sequence through the training-path forward each step.
fn greedy_without_cache(model: &dyn LoadedModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let ids = Tensor::new(seq.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let mask = ids.ones_like().unwrap().to_dtype(DType::U8).unwrap();
        let logits = model.forward(&ids, &mask, false).unwrap();
        let last = logits.get(0).unwrap().get(seq.len() - 1).unwrap();
        seq.push(last.argmax(0).unwrap().to_scalar::<u32>().unwrap());
    }
    seq[prompt.len()..].to_vec()
}

fn greedy(n: usize) -> GenerateConfig {
    GenerateConfig {
        max_new_tokens: n,
        sampling: Sampling::Greedy,
        eos_token_ids: vec![],
        pad_token_id: 2,
    }
}

#[test]
fn cached_greedy_equals_recomputation_and_batches_pad_correctly() {
    for arch in ["llama", "gpt2"] {
        let model = load_folder(
            &parity_dir().join(arch).join("model"),
            &LoadConfig::default(),
        )
        .unwrap();
        let dec = model.decoder().expect("causal");
        let prompts = vec![vec![5u32, 17, 33, 8, 90], vec![44u32, 12]];
        let batched = generate(dec, &prompts, &greedy(6), &Device::Cpu).unwrap();
        for (p, got) in prompts.iter().zip(&batched) {
            let alone = generate(dec, std::slice::from_ref(p), &greedy(6), &Device::Cpu).unwrap();
            assert_eq!(
                &alone[0], got,
                "{arch}: batched row differs from the row alone"
            );
            assert_eq!(
                got,
                &greedy_without_cache(model.as_ref(), p, 6),
                "{arch}: cache changes the result"
            );
        }
    }
}

#[test]
fn switching_adapters_needs_no_reload() {
    let dir = parity_dir().join("llama");
    let mut model = load_folder(&dir.join("model"), &LoadConfig::default()).unwrap();
    load_adapter(model.as_adaptable_mut(), &dir.join("adapters/qv"), "qv").unwrap();
    load_adapter(
        model.as_adaptable_mut(),
        &dir.join("adapters/second"),
        "second",
    )
    .unwrap();
    let prompt = vec![9u32, 8, 7, 6];
    let mut outs = Vec::new();
    for name in ["qv", "second", "qv"] {
        set_active(model.as_adaptable_mut(), &[(name.to_string(), 1.0)]);
        let got = generate(
            model.decoder().unwrap(),
            std::slice::from_ref(&prompt),
            &greedy(8),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(
            got[0],
            greedy_without_cache(model.as_ref(), &prompt, 8),
            "{name}"
        );
        outs.push(got[0].clone());
    }
    assert_eq!(outs[0], outs[2]);
    let r = reference("llama");
    set_active(model.as_adaptable_mut(), &[("second".into(), 1.0)]);
    assert_logits(model.as_ref(), &r, "adapted.second", "after switching");
}

#[test]
fn sampling_is_seeded_and_stops_at_eos() {
    let model = load_folder(&parity_dir().join("gpt2/model"), &LoadConfig::default()).unwrap();
    let cfg = |seed| GenerateConfig {
        max_new_tokens: 12,
        sampling: Sampling::Sample {
            temperature: 1.5,
            top_k: Some(50),
            top_p: Some(0.95),
            seed,
        },
        eos_token_ids: vec![],
        pad_token_id: 2,
    };
    let p = vec![vec![3u32, 4, 5]];
    let a = generate(model.decoder().unwrap(), &p, &cfg(1), &Device::Cpu).unwrap();
    let b = generate(model.decoder().unwrap(), &p, &cfg(1), &Device::Cpu).unwrap();
    assert_eq!(a, b);
    assert_eq!(a[0].len(), 12);
    assert!(a[0].iter().all(|&t| t < 128));
    // Greedy's first token as end-of-sequence: generation stops right after it.
    let first = generate(model.decoder().unwrap(), &p, &greedy(1), &Device::Cpu).unwrap()[0][0];
    let stop = GenerateConfig {
        eos_token_ids: vec![first],
        ..greedy(10)
    };
    assert_eq!(
        generate(model.decoder().unwrap(), &p, &stop, &Device::Cpu).unwrap()[0],
        vec![first]
    );
}

#[test]
fn tokenizer_and_special_tokens_load() {
    let tok = load_tokenizer(&parity_dir().join("llama/model")).unwrap();
    assert_eq!(
        (tok.bos_id, tok.eos_id, tok.pad_id),
        (Some(0), Some(1), Some(2))
    );
    assert!(tok
        .config
        .chat_template
        .as_deref()
        .is_some_and(|t| t.contains("messages")));
    let enc = tok
        .tokenizer
        .encode("the cat sat on the mat", false)
        .unwrap();
    assert!(enc.get_ids().iter().all(|&i| i < 128));
    assert_eq!(
        tok.tokenizer.decode(enc.get_ids(), false).unwrap(),
        "the cat sat on the mat"
    );
}

#[test]
fn merged_model_saves_as_a_plain_folder() {
    for arch in ["llama", "gpt2"] {
        let dir = parity_dir().join(arch);
        let mut model = load_folder(&dir.join("model"), &LoadConfig::default()).unwrap();
        load_adapter(model.as_adaptable_mut(), &dir.join("adapters/all"), "all").unwrap();
        merge_adapter(model.as_adaptable_mut(), "all").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        save_merged(model.as_adaptable(), &dir.join("model"), tmp.path()).unwrap();
        assert!(tmp.path().join("tokenizer.json").is_file());
        let plain = load_folder(tmp.path(), &LoadConfig::default()).unwrap();
        assert_logits(
            plain.as_ref(),
            &reference(arch),
            "merged.all",
            &format!("{arch} merged export"),
        );
    }
}

#[test]
fn pissa_starts_equal_to_the_base() {
    let mut model = load_folder(&parity_dir().join("llama/model"), &LoadConfig::default()).unwrap();
    let r = reference("llama");
    let base = model.forward(&r.input_ids, &r.mask, false).unwrap();
    let cfg = LoraConfig {
        spec: LoraSpec {
            r: 4,
            alpha: 8.0,
            init: LoraInit::Pissa,
            ..Default::default()
        },
        target_modules: TargetModules::Names(vec!["q_proj".into(), "o_proj".into()]),
        ..Default::default()
    };
    attach_lora(model.as_adaptable_mut(), "pissa", &cfg).unwrap();
    let after = model.forward(&r.input_ids, &r.mask, false).unwrap();
    assert!(max_diff_on_tokens(&base, &after, &r.mask) < 1e-4);
    // The adapter carries the principal part: switching it off changes the output.
    set_active(model.as_adaptable_mut(), &[]);
    let residual_only = model.forward(&r.input_ids, &r.mask, false).unwrap();
    assert!(max_diff_on_tokens(&base, &residual_only, &r.mask) > 1e-2);
}

#[test]
fn text_generation_decodes_what_token_generation_produced() {
    use peftc::runtime::models::generate::generate_text;
    let dir = parity_dir().join("llama/model");
    let model = load_folder(&dir, &LoadConfig::default()).unwrap();
    let tok = load_tokenizer(&dir).unwrap();
    let text = generate_text(
        model.decoder().unwrap(),
        &tok,
        &["the cat sat"],
        &greedy(5),
        &Device::Cpu,
    )
    .unwrap();
    let ids = tok
        .tokenizer
        .encode("the cat sat", true)
        .unwrap()
        .get_ids()
        .to_vec();
    let mut toks = generate(
        model.decoder().unwrap(),
        &[ids],
        &GenerateConfig {
            eos_token_ids: vec![1],
            ..greedy(5)
        },
        &Device::Cpu,
    )
    .unwrap();
    toks[0].retain(|t| *t > 2);
    assert_eq!(text[0], tok.tokenizer.decode(&toks[0], true).unwrap());
}
