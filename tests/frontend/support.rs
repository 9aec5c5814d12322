//! Shared helpers: an in-memory world with stand-in data and model files.
use peftc::check::{self, render, MemoryWorld};
use std::path::Path;

/// A tiny llama config.json.
pub const TINY_LLAMA: &str = r#"{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"max_position_embeddings":256}"#;

/// The world the UI cases run in: files under `/ui`.
pub fn ui_world() -> MemoryWorld {
    let mut w = MemoryWorld::new();
    w.add("/ui/data/qa.jsonl", "{\"q\":\"hi\",\"a\":\"hello\"}\n");
    w.add(
        "/ui/data/reviews.jsonl",
        "{\"text\":\"good\",\"label\":\"pos\"}\n",
    );
    w.add("/ui/models/llama/config.json", TINY_LLAMA);
    w.add(
        "/ui/models/t5/config.json",
        r#"{"model_type":"t5","d_model":512}"#,
    );
    w.add("/ui/models/fake.gguf", "NOTAGGUF");
    w.add("/ui/models/spm.gguf", tiny_gguf("llama", Some("llama")));
    w
}

/// Checks `src` as `/ui/NAME.peft` and renders every diagnostic plainly.
pub fn render_check(world: &MemoryWorld, name: &str, src: &str) -> (check::Checked, String) {
    let checked = check::check_source(world, Path::new(&format!("/ui/{name}.peft")), src);
    let mut out = String::new();
    for d in &checked.diagnostics {
        out.push_str(&render::human(d, &checked.sources, render::Style::plain()));
    }
    (checked, out)
}

/// A minimal GGUF v3 header: metadata for a 1-layer llama-shaped model of architecture `arch`
/// (hidden 64, vocab 100), `tokenizer.ggml.model` when given, and one Q4_1 tensor
/// `blk.0.attn_q.weight` [64, 64] (no tensor data: the checker reads headers only).
pub fn tiny_gguf(arch: &str, tokenizer: Option<&str>) -> Vec<u8> {
    let mut b: Vec<u8> = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    let kvs: Vec<(String, u32)> = [
        ("embedding_length", 64),
        ("feed_forward_length", 128),
        ("block_count", 1),
        ("attention.head_count", 4),
        ("vocab_size", 100),
    ]
    .iter()
    .map(|(k, v)| (format!("{arch}.{k}"), *v))
    .collect();
    let strings: Vec<(&str, &str)> = std::iter::once(("general.architecture", arch))
        .chain(tokenizer.map(|t| ("tokenizer.ggml.model", t)))
        .collect();
    b.extend(((kvs.len() + strings.len()) as u64).to_le_bytes());
    let s = |b: &mut Vec<u8>, x: &str| {
        b.extend((x.len() as u64).to_le_bytes());
        b.extend(x.as_bytes());
    };
    for (k, v) in strings {
        s(&mut b, k);
        b.extend(8u32.to_le_bytes());
        s(&mut b, v);
    }
    for (k, v) in kvs {
        s(&mut b, &k);
        b.extend(4u32.to_le_bytes());
        b.extend(v.to_le_bytes());
    }
    s(&mut b, "blk.0.attn_q.weight");
    b.extend(2u32.to_le_bytes());
    b.extend(64u64.to_le_bytes());
    b.extend(64u64.to_le_bytes());
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b
}
