//! No adapter bleed over HTTP: twenty concurrent greedy requests spread over the base and four
//! adapters each get exactly the tokens of their own model run alone (transformers + PEFT's
//! tokens, which peftc's single-adapter generation equals: see `batching`), in text and ids,
//! streamed or not; and an adapter dropped from the cache and loaded again still answers the
//! same.

use super::support::{post, serve, Reference, ADAPTERS};
use peftc::runtime::data::tokenizer::ModelTokenizer;
use peftc::serve::Limits;
use serde_json::json;
use std::sync::{Arc, Barrier};

fn tokenizer() -> ModelTokenizer {
    ModelTokenizer::from_dir(&super::support::llama_dir().join("model")).unwrap()
}

#[test]
fn concurrent_requests_across_adapters_equal_each_adapter_alone() {
    let r = Arc::new(Reference::load());
    let server = serve(Limits {
        max_batch: 32,
        ..Limits::default()
    });
    let addr = server.addr;
    let models: Vec<&str> = std::iter::once("base").chain(ADAPTERS).collect();
    let jobs: Vec<(String, usize, bool)> = models
        .iter()
        .flat_map(|m| (0..r.prompts.len()).map(move |p| (m.to_string(), p, p % 2 == 1)))
        .collect();
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(model, p, stream)| {
            let (r, barrier) = (r.clone(), barrier.clone());
            std::thread::spawn(move || {
                let body = json!({
                    "model": model,
                    "prompt": r.prompts[p].0,
                    "max_tokens": r.max_new_tokens,
                    "temperature": 0,
                    "stream": stream,
                    "return_token_ids": true,
                });
                barrier.wait();
                (model, p, stream, post(addr, "/v1/completions", &body))
            })
        })
        .collect();
    let tok = tokenizer();
    for h in handles {
        let (model, p, stream, reply) = h.join().unwrap();
        assert_eq!(reply.status, 200, "{model} {p}: {}", reply.body);
        let want = r.output(&model, p);
        let want_text = tok.tokenizer().decode(&want, true).unwrap();
        if stream {
            assert!(reply
                .headers
                .iter()
                .any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream")));
            let events = reply.events();
            assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
            let mut text = String::new();
            let mut finish = None;
            for e in &events[..events.len() - 1] {
                let v: serde_json::Value = serde_json::from_str(e).unwrap();
                assert_eq!(v["object"], "text_completion");
                assert_eq!(v["model"], model.as_str());
                text.push_str(v["choices"][0]["text"].as_str().unwrap());
                if !v["choices"][0]["finish_reason"].is_null() {
                    finish = Some(
                        v["choices"][0]["finish_reason"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    );
                }
            }
            assert_eq!(text, want_text, "{model}, prompt {p} (streamed)");
            let expect = if want.last() == Some(&1) {
                "stop"
            } else {
                "length"
            };
            assert_eq!(finish.as_deref(), Some(expect));
        } else {
            let v = reply.json();
            let choice = &v["choices"][0];
            assert_eq!(
                super::support::ids(&choice["token_ids"]),
                want,
                "{model}, prompt {p}"
            );
            assert_eq!(choice["text"], want_text.as_str());
            assert_eq!(v["usage"]["completion_tokens"], want.len());
            assert_eq!(v["usage"]["prompt_tokens"], r.prompts[p].1.len());
        }
    }
    let text = super::support::get(addr, "/metrics").body;
    for m in &models {
        assert!(
            text.contains(&format!("peftc_requests_total{{model=\"{m}\"}} 4")),
            "{m}: {text}"
        );
    }
    server.shutdown().unwrap();
}

#[test]
fn an_adapter_dropped_from_the_cache_and_loaded_again_answers_the_same() {
    let r = Reference::load();
    let size = |a: &str| {
        std::fs::metadata(super::support::adapter_dir(a).join("adapter_model.safetensors"))
            .unwrap()
            .len() as usize
    };
    // Room for one of the two adapters at a time.
    let server = serve(Limits {
        adapter_cache_bytes: size("qv").max(size("second")),
        ..Limits::default()
    });
    for model in ["qv", "second", "qv", "second"] {
        let reply = post(
            server.addr,
            "/v1/completions",
            &json!({"model": model, "prompt": r.prompts[0].0, "max_tokens": r.max_new_tokens,
                    "temperature": 0, "return_token_ids": true}),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            super::support::ids(&reply.json()["choices"][0]["token_ids"]),
            r.output(model, 0),
            "{model}"
        );
    }
    assert_eq!(
        super::support::metric(server.addr, "peftc_adapter_evictions_total"),
        3.0
    );
    assert_eq!(
        super::support::metric(server.addr, "peftc_adapters_loaded"),
        1.0
    );
    server.shutdown().unwrap();
}
