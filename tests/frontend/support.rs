//! Shared helpers: an in-memory world with stand-in data and model files.
use peftc::check::{self, render, MemoryWorld};
use std::path::Path;

/// A tiny llama config.json.
pub const TINY_LLAMA: &str = r#"{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"max_position_embeddings":256}"#;

/// The world the UI cases run in: files under `/ui`.
pub fn ui_world() -> MemoryWorld {
    let mut w = MemoryWorld::new();
    // 20 question/answer rows and 40 reviews (half positive): enough for a 90/10 split and a
    // few optimizer steps, which the checker sizes from the data it reads.
    w.add(
        "/ui/data/qa.jsonl",
        (0..20)
            .map(|i| format!("{{\"q\":\"question {i}\",\"a\":\"answer {i}\"}}\n"))
            .collect::<String>(),
    );
    w.add(
        "/ui/data/reviews.jsonl",
        (0..40)
            .map(|i| {
                format!(
                    "{{\"text\":\"review {i}\",\"label\":\"{}\"}}\n",
                    ["neg", "pos"][i % 2]
                )
            })
            .collect::<String>(),
    );
    w.add("/ui/models/llama/config.json", TINY_LLAMA);
    w.add("/ui/models/llama/model.safetensors", "weights");
    w.add("/ui/models/llama/tokenizer.json", "{}");
    w.add("/ui/models/pickled/config.json", TINY_LLAMA);
    w.add("/ui/models/pickled/pytorch_model.bin", "pickle");
    w.add("/ui/models/pickled/tokenizer.json", "{}");
    w.add("/ui/models/no_tokenizer/config.json", TINY_LLAMA);
    w.add("/ui/models/no_tokenizer/model.safetensors", "weights");
    // Data the checker peeks at: nested and typed fields, a broken line, skewed labels, long
    // prompts, a small file.
    w.add(
        "/ui/data/posts.jsonl",
        "{\"meta\":{\"body\":\"fine\"},\"label\":\"pos\"}\n{\"meta\":{\"body\":\"bad\"},\"label\":\"neg\"}\n",
    );
    w.add(
        "/ui/data/broken.jsonl",
        "{\"text\":\"one\"}\n{\"text\": \"two\"\n{\"text\":\"three\"}\n",
    );
    w.add(
        "/ui/data/skewed.jsonl",
        (0..40)
            .map(|i| {
                format!(
                    "{{\"text\":\"review {i}\",\"label\":\"{}\"}}\n",
                    if i % 20 == 0 { "neg" } else { "pos" }
                )
            })
            .collect::<String>(),
    );
    w.add(
        "/ui/data/long.jsonl",
        (0..40)
            .map(|i| {
                format!(
                    "{{\"q\":\"{}\",\"a\":\"answer {i}\"}}\n",
                    "word ".repeat(40).trim_end()
                )
            })
            .collect::<String>(),
    );
    w.add(
        "/ui/data/small.jsonl",
        (0..10)
            .map(|i| format!("{{\"q\":\"question {i}\",\"a\":\"answer {i}\"}}\n"))
            .collect::<String>(),
    );
    w.add("/ui/data/blank.jsonl", "\n\n");
    w.add(
        "/ui/data/corpus.txt",
        (0..40)
            .map(|i| format!("line {i} of text\n"))
            .collect::<String>(),
    );
    w.add(
        "/ui/models/t5/config.json",
        r#"{"model_type":"t5","d_model":512}"#,
    );
    w.add("/ui/models/fake.gguf", "NOTAGGUF");
    w.add("/ui/models/unigram.gguf", tiny_gguf("llama", Some("t5")));
    w.add("/ui/models/bert.gguf", tiny_gguf("bert", Some("bert")));
    let qv: &[(&str, [u64; 2], [u64; 2])] = &[
        ("model.layers.0.self_attn.q_proj", [4, 64], [64, 4]),
        ("model.layers.0.self_attn.v_proj", [4, 64], [32, 4]),
    ];
    peft_folder(
        &mut w,
        "/ui/adapters/llama_qv",
        "LORA",
        "CAUSAL_LM",
        "models/llama",
        qv,
    );
    peft_folder(
        &mut w,
        "/ui/adapters/cls",
        "LORA",
        "SEQ_CLS",
        "models/llama",
        qv,
    );
    peft_folder(
        &mut w,
        "/ui/adapters/ia3",
        "IA3",
        "CAUSAL_LM",
        "models/llama",
        qv,
    );
    peft_folder(
        &mut w,
        "/ui/adapters/llama_big",
        "LORA",
        "CAUSAL_LM",
        "meta-llama/Llama-2-7b-hf",
        &[("model.layers.0.self_attn.q_proj", [4, 4096], [4096, 4])],
    );
    peft_folder(
        &mut w,
        "/ui/adapters/smol_other",
        "LORA",
        "CAUSAL_LM",
        "org/other",
        &[("model.layers.0.self_attn.q_proj", [4, 576], [576, 4])],
    );
    w
}

/// A PEFT adapter folder: `adapter_config.json` and a safetensors header naming each layer's
/// `lora_A` / `lora_B` shapes (the checker reads only the header).
fn peft_folder(
    w: &mut MemoryWorld,
    dir: &str,
    peft_type: &str,
    task: &str,
    base: &str,
    layers: &[(&str, [u64; 2], [u64; 2])],
) {
    let cfg = serde_json::json!({
        "peft_type": peft_type, "r": 4, "lora_alpha": 8, "task_type": task,
        "base_model_name_or_path": base, "bias": "none",
    });
    w.add(format!("{dir}/adapter_config.json"), cfg.to_string());
    let mut header = serde_json::Map::new();
    for (path, a, b) in layers {
        for (k, shape) in [("lora_A", a), ("lora_B", b)] {
            header.insert(
                format!("base_model.model.{path}.{k}.weight"),
                serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [0, 0] }),
            );
        }
    }
    let json = serde_json::Value::Object(header).to_string();
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json.as_bytes());
    w.add(format!("{dir}/adapter_model.safetensors"), bytes);
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
