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
