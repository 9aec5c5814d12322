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
