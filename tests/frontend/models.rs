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
    // A minimal GGUF v3: metadata for a 1-layer llama and one Q4_1 tensor [64, 64].
    let mut b: Vec<u8> = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    let kvs: Vec<(&str, u32)> = vec![
        ("llama.embedding_length", 64),
        ("llama.feed_forward_length", 128),
        ("llama.block_count", 1),
        ("llama.attention.head_count", 4),
        ("llama.vocab_size", 100),
    ];
    b.extend((kvs.len() as u64 + 1).to_le_bytes());
    let s = |b: &mut Vec<u8>, x: &str| {
        b.extend((x.len() as u64).to_le_bytes());
        b.extend(x.as_bytes());
    };
    s(&mut b, "general.architecture");
    b.extend(8u32.to_le_bytes());
    s(&mut b, "llama");
    for (k, v) in kvs {
        s(&mut b, k);
        b.extend(4u32.to_le_bytes());
        b.extend(v.to_le_bytes());
    }
    s(&mut b, "blk.0.attn_q.weight");
    b.extend(2u32.to_le_bytes());
    b.extend(64u64.to_le_bytes());
    b.extend(64u64.to_le_bytes());
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
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
}
