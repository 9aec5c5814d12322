//! Errors and limits over HTTP, checked with a hand-written client: unknown model (404 with
//! the served list), bad JSON and out-of-range fields (400), a full queue (429), a client
//! that disconnects (its slot is freed and the queued request runs), a DoRA adapter (refused
//! with the fix), and adapters added while serving through `POST /admin/adapters`.

use super::support::{
    adapter_dir, call, get, metric, post, send, serve, wait_until, Reference, ADAPTERS,
};
use peftc::serve::Limits;
use serde_json::json;
use std::io::{BufRead, BufReader};

#[test]
fn models_lists_the_base_and_every_adapter_and_errors_are_openai_shaped() {
    let server = serve(Limits::default());
    let addr = server.addr;
    let models = get(addr, "/v1/models").json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["base", "qv", "second", "all", "rslora"]);
    assert_eq!(models["data"][1]["parent"], "base");

    let unknown = post(
        addr,
        "/v1/completions",
        &json!({"model": "nope", "prompt": "hi"}),
    );
    assert_eq!(unknown.status, 404);
    let e = unknown.json();
    assert_eq!(e["error"]["code"], "model_not_found");
    assert_eq!(
        e["error"]["models"],
        json!(["base", "qv", "second", "all", "rslora"])
    );
    assert!(e["error"]["message"].as_str().unwrap().contains("qv"));

    let bad = call(addr, "POST", "/v1/completions", "{\"model\": ");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["code"], "invalid_json");
    let missing = post(addr, "/v1/chat/completions", &json!({"model": "base"}));
    assert_eq!(missing.status, 400, "{}", missing.body);

    let too_long = post(
        addr,
        "/v1/completions",
        &json!({"model": "qv", "prompt": "hi", "max_tokens": 1_000_000}),
    );
    assert_eq!(too_long.status, 400);
    assert_eq!(too_long.json()["error"]["code"], "max_tokens_out_of_range");
    let hot = post(
        addr,
        "/v1/completions",
        &json!({"model": "qv", "prompt": "hi", "temperature": 7}),
    );
    assert_eq!(hot.status, 400);
    let two = post(
        addr,
        "/v1/completions",
        &json!({"model": "qv", "prompt": ["a", "b"]}),
    );
    assert_eq!(two.status, 400);
    assert_eq!(get(addr, "/v2/nothing").status, 404);
    // None of these reached the model.
    assert_eq!(metric(addr, "peftc_prompt_tokens_total"), 0.0);
    server.shutdown().unwrap();
}

#[test]
fn a_full_queue_answers_429_and_a_disconnected_client_frees_its_slot() {
    let server = serve(Limits {
        max_batch: 1,
        max_queue: 1,
        ..Limits::default()
    });
    let addr = server.addr;
    // A long streamed request holds the only slot.
    let long = send(
        addr,
        "POST",
        "/v1/completions",
        &json!({"model": "qv", "prompt": "the cat", "max_tokens": 2000, "stream": true,
                "ignore_eos": true, "temperature": 0})
        .to_string(),
    );
    let mut reader = BufReader::new(long);
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    assert_eq!(metric(addr, "peftc_batch_rows"), 1.0);
    // A second request waits in the queue ...
    let queued = std::thread::spawn(move || {
        post(
            addr,
            "/v1/completions",
            &json!({"model": "second", "prompt": "hello", "max_tokens": 3, "temperature": 0}),
        )
    });
    wait_until("one queued request", || {
        metric(addr, "peftc_queue_length") == 1.0
    });
    // ... and a third finds the queue full.
    let full = post(
        addr,
        "/v1/completions",
        &json!({"model": "base", "prompt": "hello", "max_tokens": 3}),
    );
    assert_eq!(full.status, 429, "{}", full.body);
    assert_eq!(full.json()["error"]["code"], "queue_full");
    // The streaming client goes away: its slot is freed and the queued request runs.
    drop(reader);
    let reply = queued.join().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["usage"]["completion_tokens"], 3);
    let text = get(addr, "/metrics").body;
    assert!(
        text.contains("peftc_requests_finished_total{outcome=\"cancelled\"} 1"),
        "{text}"
    );
    assert!(text.contains("peftc_requests_finished_total{outcome=\"rejected\"} 1"));
    server.shutdown().unwrap();
}

#[test]
fn adapters_added_while_serving_answer_and_dora_is_refused_with_the_fix() {
    let r = Reference::load();
    let server = serve(Limits::default());
    let addr = server.addr;
    let added = post(
        addr,
        "/admin/adapters",
        &json!({"name": "late", "path": adapter_dir("all")}),
    );
    assert_eq!(added.status, 201, "{}", added.body);
    let again = post(
        addr,
        "/admin/adapters",
        &json!({"name": "late", "path": adapter_dir("qv")}),
    );
    assert_eq!(again.status, 409);
    let base_name = post(
        addr,
        "/admin/adapters",
        &json!({"name": "base", "path": adapter_dir("qv")}),
    );
    assert_eq!(base_name.status, 409);
    let nowhere = post(
        addr,
        "/admin/adapters",
        &json!({"name": "x", "path": "/nonexistent/adapter"}),
    );
    assert_eq!(nowhere.status, 400);
    assert!(
        nowhere.body.contains("adapter_config.json"),
        "{}",
        nowhere.body
    );
    let dora = post(
        addr,
        "/admin/adapters",
        &json!({"name": "d", "path": adapter_dir("dora")}),
    );
    assert_eq!(dora.status, 400);
    assert!(dora.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("merge it"));
    let ids: Vec<String> = get(addr, "/v1/models").json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), ADAPTERS.len() + 2);
    assert_eq!(ids.last().map(String::as_str), Some("late"));
    // The added adapter is the `all` adapter under another name.
    let reply = post(
        addr,
        "/v1/completions",
        &json!({"model": "late", "prompt": r.prompts[1].0, "max_tokens": r.max_new_tokens,
                "temperature": 0, "return_token_ids": true}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        super::support::ids(&reply.json()["choices"][0]["token_ids"]),
        r.output("all", 1)
    );
    server.shutdown().unwrap();
}
