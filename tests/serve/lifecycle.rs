//! Chat through the model's chat template, stop strings, seeded sampling, metrics, and a
//! graceful shutdown that finishes the request in flight.

use super::support::{get, llama_dir, post, send, serve, Reference};
use peftc::runtime::data::mapping::Message;
use peftc::runtime::data::render::chat_template::ChatTemplate;
use peftc::runtime::data::tokenizer::ModelTokenizer;
use peftc::serve::Limits;
use serde_json::json;

#[test]
fn chat_uses_the_chat_template_and_equals_a_completion_of_the_rendered_prompt() {
    let server = serve(Limits::default());
    let addr = server.addr;
    let tok = ModelTokenizer::from_dir(&llama_dir().join("model")).unwrap();
    let template = ChatTemplate::new(
        tok.config().chat_template.as_deref().unwrap(),
        tok.config().special_tokens.clone(),
    )
    .unwrap();
    let messages = [Message {
        role: "user".into(),
        content: "hello world".into(),
    }];
    let rendered = template.render(&messages, true).unwrap();
    let prompt_ids = tok.tokenizer().encode(rendered.as_str(), false).unwrap();
    for stream in [false, true] {
        let reply = post(
            addr,
            "/v1/chat/completions",
            &json!({"model": "second", "messages": [{"role": "user", "content": "hello world"}],
                    "max_tokens": 8, "temperature": 0, "stream": stream}),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let text = if stream {
            let events = reply.events();
            let first: serde_json::Value = serde_json::from_str(&events[0]).unwrap();
            assert_eq!(first["object"], "chat.completion.chunk");
            assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
            events[..events.len() - 1]
                .iter()
                .map(|e| {
                    let v: serde_json::Value = serde_json::from_str(e).unwrap();
                    v["choices"][0]["delta"]["content"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect::<String>()
        } else {
            let v = reply.json();
            assert_eq!(v["object"], "chat.completion");
            assert_eq!(v["choices"][0]["message"]["role"], "assistant");
            assert_eq!(v["usage"]["prompt_tokens"], prompt_ids.get_ids().len());
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        };
        // The same prompt as a completion (no special tokens added: the template has them).
        let plain = post(
            addr,
            "/v1/completions",
            &json!({"model": "second", "prompt": rendered, "max_tokens": 8, "temperature": 0}),
        );
        let want = plain.json()["choices"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(text, want, "stream: {stream}");
    }
    server.shutdown().unwrap();
}

#[test]
fn stop_strings_end_the_text_before_them_and_sampling_is_seeded() {
    let r = Reference::load();
    let server = serve(Limits::default());
    let addr = server.addr;
    let tok = ModelTokenizer::from_dir(&llama_dir().join("model")).unwrap();
    let full = tok.tokenizer().decode(&r.output("qv", 1), true).unwrap();
    // A stop string from the middle of the greedy text.
    let mid = full.len() / 2;
    let start = (mid..full.len())
        .find(|&i| full.is_char_boundary(i))
        .unwrap();
    let end = (start + 2..=full.len())
        .find(|&i| full.is_char_boundary(i))
        .unwrap();
    let stop = &full[start..end];
    let cut = &full[..full.find(stop).unwrap()];
    for stream in [false, true] {
        let reply = post(
            addr,
            "/v1/completions",
            &json!({"model": "qv", "prompt": r.prompts[1].0, "max_tokens": r.max_new_tokens,
                    "temperature": 0, "stop": [stop], "stream": stream}),
        );
        let text: String = if stream {
            let events = reply.events();
            events[..events.len() - 1]
                .iter()
                .map(|e| {
                    let v: serde_json::Value = serde_json::from_str(e).unwrap();
                    v["choices"][0]["text"].as_str().unwrap().to_string()
                })
                .collect()
        } else {
            let v = reply.json();
            assert_eq!(v["choices"][0]["finish_reason"], "stop");
            v["choices"][0]["text"].as_str().unwrap().to_string()
        };
        assert_eq!(text, cut, "stop {stop:?} in {full:?} (stream: {stream})");
    }
    let sample = |seed: u64| {
        post(
            addr,
            "/v1/completions",
            &json!({"model": "all", "prompt": "hello", "max_tokens": 12, "temperature": 1.5,
                    "top_p": 0.9, "seed": seed, "ignore_eos": true, "return_token_ids": true}),
        )
        .json()["choices"][0]["token_ids"]
            .clone()
    };
    let (a, b, c) = (sample(7), sample(7), sample(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.as_array().unwrap().len(), 12);
    let metrics = get(addr, "/metrics").body;
    for name in [
        "peftc_tokens_per_second",
        "peftc_queue_length 0",
        "peftc_batch_occupancy",
        "peftc_requests_total{model=\"all\"} 3",
        "peftc_adapters_loaded 2",
    ] {
        assert!(metrics.contains(name), "{name}: {metrics}");
    }
    server.shutdown().unwrap();
}

#[test]
fn shutdown_finishes_the_request_in_flight_then_refuses_connections() {
    let server = serve(Limits::default());
    let addr = server.addr;
    let stream = send(
        addr,
        "POST",
        "/v1/completions",
        &json!({"model": "rslora", "prompt": "the cat", "max_tokens": 300, "stream": true,
                "ignore_eos": true, "temperature": 0})
        .to_string(),
    );
    let reader = std::thread::spawn(move || super::support::read_reply(stream));
    super::support::wait_until("the request is decoding", || {
        super::support::metric(addr, "peftc_batch_rows") == 1.0
    });
    server.shutdown().unwrap();
    let reply = reader.join().unwrap();
    let events = reply.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let last: serde_json::Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert!(std::net::TcpStream::connect(addr).is_err());
}
