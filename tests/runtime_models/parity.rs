//! Logits of peftc's llama, qwen2, mistral and gpt2 equal transformers + PEFT (fixtures made by
//! `tests/parity/make_fixtures.py`) within 1e-4: base, each adapter (q,v; all-linear; rsLoRA;
//! DoRA), merged, unmerged, and weighted combinations (linear, cat).

use super::common::{assert_logits, parity_dir, reference};
use peftc::runtime::adapters::attach::{
    merge_adapter, remove_adapter, set_active, unmerge_adapter,
};
use peftc::runtime::adapters::combine::{add_weighted_adapter, Combination};
use peftc::runtime::models::load::{load_folder, LoadConfig};
use peftc::runtime::peft_format::load::load_adapter;

const VARIANTS: &[&str] = &["qv", "all", "rslora", "dora", "second"];

fn check_arch(arch: &str) {
    let dir = parity_dir().join(arch);
    let r = reference(arch);
    let mut model = load_folder(&dir.join("model"), &LoadConfig::default()).expect("load model");
    assert_logits(model.as_ref(), &r, "base", &format!("{arch} base"));
    for v in VARIANTS {
        let m = model.as_adaptable_mut();
        load_adapter(m, &dir.join("adapters").join(v), v).expect("load adapter");
        assert_logits(
            model.as_ref(),
            &r,
            &format!("adapted.{v}"),
            &format!("{arch} {v}"),
        );
        merge_adapter(model.as_adaptable_mut(), v).expect("merge");
        assert_logits(
            model.as_ref(),
            &r,
            &format!("merged.{v}"),
            &format!("{arch} {v} merged"),
        );
        unmerge_adapter(model.as_adaptable_mut(), v).expect("unmerge");
        assert_logits(
            model.as_ref(),
            &r,
            &format!("adapted.{v}"),
            &format!("{arch} {v} unmerged"),
        );
        set_active(model.as_adaptable_mut(), &[]);
        assert_logits(
            model.as_ref(),
            &r,
            "base",
            &format!("{arch} after deactivating {v}"),
        );
    }
    let sources = [("qv".to_string(), 0.7), ("second".to_string(), 0.4)];
    let m = model.as_adaptable_mut();
    add_weighted_adapter(m, &sources, "lin", Combination::Linear).expect("linear combination");
    add_weighted_adapter(m, &sources, "cat", Combination::Cat).expect("cat combination");
    set_active(m, &[("lin".into(), 1.0)]);
    assert_logits(
        model.as_ref(),
        &r,
        "combo.linear",
        &format!("{arch} linear combination"),
    );
    set_active(model.as_adaptable_mut(), &[("cat".into(), 1.0)]);
    assert_logits(
        model.as_ref(),
        &r,
        "combo.cat",
        &format!("{arch} cat combination"),
    );
    for v in VARIANTS {
        remove_adapter(model.as_adaptable_mut(), v).expect("remove");
    }
}

#[test]
fn llama_matches_transformers_and_peft() {
    check_arch("llama");
}

#[test]
fn qwen2_matches_transformers_and_peft() {
    check_arch("qwen2");
}

#[test]
fn gpt2_matches_transformers_and_peft() {
    check_arch("gpt2");
}

#[test]
fn mistral_matches_transformers_and_peft() {
    check_arch("mistral");
}
