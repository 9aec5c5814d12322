//! Model awareness against real files: a tiny HF-style folder and an HF cache layout in a temp
//! dir, read with `RealWorld`; targets expand to real module names with the config's shapes.
use super::support::TINY_LLAMA;
use peftc::check::{self, hir, RealWorld};

const PIPE: &str = "model m = SOURCE\ndataset d = jsonl(\"d.jsonl\") { text = field(\"t\") }\nadapter a = lora { r = 4, alpha = 8, targets = [q_proj, k_proj] }\ntrain t { model = m, adapters = [a], data = d }\n";

fn run(dir: &std::path::Path, source: &str, world: &RealWorld) -> check::Checked {
    std::fs::write(dir.join("d.jsonl"), "{\"t\":\"x\"}\n").unwrap();
    let file = dir.join("p.peft");
    std::fs::write(&file, PIPE.replace("SOURCE", source)).unwrap();
    check::check(world, &file).unwrap()
}

fn assert_tiny_llama(c: &check::Checked) {
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    let t = &c.program.trains[0];
    let hir::AdapterKind::Lora(l) = &t.adapters[0].kind else {
        panic!("not lora")
    };
    let names: Vec<&str> = l.targets.modules.iter().map(|m| &*m.name).collect();
    assert_eq!(
        names,
        [
            "model.layers.0.self_attn.q_proj",
            "model.layers.1.self_attn.q_proj",
            "model.layers.0.self_attn.k_proj",
            "model.layers.1.self_attn.k_proj"
        ]
    );
    // q_proj 64 -> 4 heads x 16 = 64; k_proj 64 -> 2 kv heads x 16 = 32.
    assert_eq!(
        (
            l.targets.modules[0].in_features,
            l.targets.modules[0].out_features
        ),
        (64, 64)
    );
    assert_eq!(
        (
            l.targets.modules[2].in_features,
            l.targets.modules[2].out_features
        ),
        (64, 32)
    );
    // 2 layers x (4 x (64 + 64) + 4 x (64 + 32)) = 1792 trainable parameters.
    assert_eq!(t.figures.as_ref().unwrap().trainable_params, 1792);
}

#[test]
fn local_folder_config_gives_targets_and_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("tiny")).unwrap();
    std::fs::write(tmp.path().join("tiny/config.json"), TINY_LLAMA).unwrap();
    std::fs::write(tmp.path().join("tiny/model.safetensors"), "").unwrap();
    std::fs::write(tmp.path().join("tiny/tokenizer.json"), "{}").unwrap();
    let c = run(tmp.path(), "local(\"tiny\")", &RealWorld::default());
    assert_tiny_llama(&c);
    assert_eq!(
        c.program.models[0].resolved.as_deref(),
        Some(tmp.path().join("tiny").as_path())
    );
}

#[test]
fn hf_cache_layout_is_read_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("hf/hub/models--acme--tiny-llama");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(repo.join("snapshots/abc123")).unwrap();
    std::fs::write(repo.join("refs/main"), "abc123").unwrap();
    std::fs::write(repo.join("snapshots/abc123/config.json"), TINY_LLAMA).unwrap();
    let world = RealWorld::with_hf_home(tmp.path().join("hf"));
    let c = run(tmp.path(), "hf(\"acme/tiny-llama\")", &world);
    assert_tiny_llama(&c);
    assert_eq!(
        c.program.models[0].resolved.as_deref(),
        Some(repo.join("snapshots/abc123").as_path())
    );
    // An unknown target gets "did you mean".
    let file = tmp.path().join("p.peft");
    std::fs::write(
        &file,
        PIPE.replace("SOURCE", "hf(\"acme/tiny-llama\")")
            .replace("k_proj", "k_prj"),
    )
    .unwrap();
    let c = check::check(&world, &file).unwrap();
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == check::Code::UnknownTarget)
        .unwrap();
    assert!(d
        .help
        .as_deref()
        .unwrap()
        .contains("did you mean `k_proj`?"));
}

#[test]
fn gguf_header_is_read_without_weights() {
    let b = super::support::tiny_gguf("llama", None);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("m.gguf"), &b).unwrap();
    let c = run(tmp.path(), "gguf(\"m.gguf\")", &RealWorld::default());
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    let shape = c.program.models[0].shape.as_ref().unwrap();
    assert_eq!(
        (shape.hidden, shape.layers, shape.heads, shape.vocab),
        (64, 1, 4, 100)
    );
    assert_eq!(shape.params, 4096);
    // Q4_1: 20 bytes per 32 weights.
    assert_eq!(shape.stored_bytes, Some(4096 / 32 * 20));
    // The 2-D weight stays in its stored form at run time.
    let held = shape.gguf.as_ref().unwrap();
    assert_eq!(
        (held.linear_bytes, held.linear_params, held.dense_params),
        (4096 / 32 * 20, 4096, 0)
    );
    assert_eq!(held.tokenizer, None);
}

#[test]
fn gguf_tokenizer_kind_is_read_and_only_supported_kinds_pass_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    for (file, arch, tok) in [
        ("bpe.gguf", "llama", "gpt2"),
        ("spm.gguf", "llama", "llama"),
        ("t5.gguf", "llama", "t5"),
        ("gpt2.gguf", "gpt2", "gpt2"),
        ("bert.gguf", "bert", "bert"),
    ] {
        std::fs::write(
            tmp.path().join(file),
            super::support::tiny_gguf(arch, Some(tok)),
        )
        .unwrap();
    }
    for (file, tok) in [
        ("bpe.gguf", "gpt2"),
        ("spm.gguf", "llama"),
        ("gpt2.gguf", "gpt2"),
    ] {
        let c = run(
            tmp.path(),
            &format!("gguf(\"{file}\")"),
            &RealWorld::default(),
        );
        // (The pipeline's llama target names are unknown to gpt2; only E1102 matters here.)
        let codes: Vec<_> = c.diagnostics.iter().map(|d| d.code).collect();
        assert!(
            !codes.contains(&check::Code::GgufUnsupported),
            "{file}: {codes:?}"
        );
        let held = c.program.models[0].shape.as_ref().unwrap().gguf.clone();
        assert_eq!(held.unwrap().tokenizer.as_deref(), Some(tok));
    }
    for file in ["t5.gguf", "bert.gguf"] {
        let c = run(
            tmp.path(),
            &format!("gguf(\"{file}\")"),
            &RealWorld::default(),
        );
        let codes: Vec<_> = c.diagnostics.iter().map(|d| d.code).collect();
        assert!(
            codes.contains(&check::Code::GgufUnsupported),
            "{file}: {codes:?}"
        );
    }
}

/// Every quant format the language accepts, with its stored bytes per parameter in
/// `peftc check --figures`.
#[test]
fn figures_list_every_quant_format_with_its_bytes_per_param() {
    let world = super::support::ui_world();
    let src = "quant a = nf4 { double_quant = true }\nquant b = fp4\nquant c = int8\n\
               quant d = q8_0\nquant e = q4k\nquant f = q5k\nquant g = q6k { compute = bf16 }\n";
    let checked = check::check_source(&world, std::path::Path::new("/ui/q.peft"), src);
    let table = peftc::cli::check::figures_table(&checked.program);
    for row in [
        "a                nf4           0.5159  model dtype",
        "b                fp4           0.5625  model dtype",
        "c                int8          1.0000  model dtype",
        "d                q8_0          1.0625  model dtype",
        "e                q4k           0.5625  model dtype",
        "f                q5k           0.6875  model dtype",
        "g                q6k           0.8203  bf16",
    ] {
        assert!(table.contains(row), "{row}\n{table}");
    }
}
