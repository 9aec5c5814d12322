//! Language-server latency on a generated 10,000-line pipeline, in process over
//! `Connection::memory()`: didChange to publishDiagnostics (one small edit, the whole file
//! re-checked), hover and completion. Prints median, p95 and max of each; the goal for
//! diagnostics is under 20 ms. Then a small document whose model is a real GGUF file
//! (SmolLM2-135M Q4_1 from `scripts/fetch-assets.sh`; skipped without it): per-keystroke
//! didChange to publishDiagnostics, goal under 2 ms (the header is read once per process), and
//! a fresh check of 2,000 `model` declarations of that one file. Run: `cargo bench --bench lsp`.

use lsp_server::{Connection, Message, Notification, Request, RequestId};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ITERS: usize = 40;

/// A pipeline of about `lines` lines: one model and dataset, then adapter/train/eval groups.
fn generate(lines: usize, data: &str) -> String {
    let mut s = format!(
        "use std.recipes.{{lora_default}}\n\n/// The base.\nmodel base = hf(\"meta-llama/Llama-2-7b-hf\")\n\n/// Pairs.\ndataset qa = jsonl(\"{data}\") {{\n  prompt     = field(\"q\")\n  completion = field(\"a\")\n  template   = alpaca\n  split      = {{ train = 90%, eval = 10%, seed = 1 }}\n}}\n"
    );
    let mut i = 0;
    while s.lines().count() < lines {
        s.push_str(&format!(
            "\n/// Adapter {i}.\nadapter a{i} = lora_default {{\n  r       = 8\n  alpha   = 16\n  targets = [q_proj, v_proj]\n}}\n\ntrain t{i} {{\n  model    = base\n  adapters = [a{i}]\n  data     = qa.train\n  epochs   = 1\n  batch    = 2\n  lr       = 2e-4\n}}\n\neval e{i} {{\n  model   = t{i}\n  data    = qa.eval\n  metrics = [loss]\n  gate loss < baseline.loss\n}}\n"
        ));
        i += 1;
    }
    s
}

fn send(c: &Connection, m: Message) {
    c.sender.send(m).unwrap_or_else(|_| panic!("server gone"));
}

fn request(c: &Connection, id: i32, method: &str, params: Value) -> Value {
    send(
        c,
        Message::Request(Request::new(
            RequestId::from(id),
            method.to_string(),
            params,
        )),
    );
    loop {
        match c.receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(Message::Response(r)) if r.id == RequestId::from(id) => {
                return r.response_result.ok().unwrap_or(Value::Null)
            }
            Ok(_) => {}
            Err(_) => panic!("no answer to {method}"),
        }
    }
}

fn wait_diagnostics(c: &Connection, version: i32) -> usize {
    loop {
        match c.receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(Message::Notification(n))
                if n.method == "textDocument/publishDiagnostics"
                    && n.params["version"] == version =>
            {
                return n.params["diagnostics"]
                    .as_array()
                    .map(Vec::len)
                    .unwrap_or(0);
            }
            Ok(_) => {}
            Err(_) => panic!("no diagnostics for version {version}"),
        }
    }
}

fn report(name: &str, mut t: Vec<Duration>) {
    t.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p = |q: f64| t[((t.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<40} median {:>8.2} ms   p95 {:>8.2} ms   max {:>8.2} ms   (n = {})",
        ms(p(0.5)),
        ms(p(0.95)),
        ms(p(1.0)),
        t.len()
    );
}

fn main() {
    let dir = std::env::temp_dir().join(format!("peftc-lsp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_default();
    let data = dir.join("qa.jsonl");
    std::fs::write(&data, "{\"q\":\"hi\",\"a\":\"hello\"}\n").unwrap_or_default();
    let text = generate(10_000, &data.display().to_string());
    let path = dir.join("big.peft");
    let uri = peftc::lsp::path_to_uri(&path)
        .map(|u| u.as_str().to_string())
        .unwrap_or_default();
    let lines = text.lines().count();

    // Where the time goes: the checker alone, and its parse alone.
    let world = peftc::check::RealWorld::from_env();
    let (mut parse, mut check) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        let _ = peftc::syntax::parse(&text);
        parse.push(t.elapsed());
        let t = Instant::now();
        let _ = peftc::check::check_source(&world, &path, &text);
        check.push(t.elapsed());
    }
    report("check::check_source (no server)", check);
    report("  of which syntax::parse", parse);
    let small = generate(1_000, &data.display().to_string());
    let small_check: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let _ = peftc::check::check_source(&world, &path, &small);
            t.elapsed()
        })
        .collect();
    report("check::check_source, 1,000 lines", small_check);
    let (server, client) = Connection::memory();
    let thread =
        std::thread::spawn(move || peftc::lsp::serve(&server, peftc::lsp::ServerConfig::default()));
    request(
        &client,
        0,
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    send(
        &client,
        Message::Notification(Notification::new("initialized".into(), json!({}))),
    );

    let t0 = Instant::now();
    send(
        &client,
        Message::Notification(Notification::new(
            "textDocument/didOpen".into(),
            json!({ "textDocument": { "uri": uri, "languageId": "peft", "version": 1, "text": text } }),
        )),
    );
    let n = wait_diagnostics(&client, 1);
    println!(
        "file: {lines} lines, {} bytes; didOpen -> publishDiagnostics {:.2} ms ({n} diagnostics)",
        text.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );

    // Toggle the rank of the adapter in the middle of the file: `r       = 8` <-> `= 9`.
    let line = text
        .lines()
        .position(|l| l.starts_with("adapter a250 "))
        .unwrap_or(20)
        + 1;
    let mut change = Vec::new();
    for i in 0..ITERS {
        let v = 2 + i as i32;
        let new = if i % 2 == 0 { "9" } else { "8" };
        let edit = json!({ "textDocument": { "uri": uri, "version": v },
            "contentChanges": [{ "range": { "start": { "line": line, "character": 12 }, "end": { "line": line, "character": 13 } }, "text": new }] });
        let t = Instant::now();
        send(
            &client,
            Message::Notification(Notification::new("textDocument/didChange".into(), edit)),
        );
        wait_diagnostics(&client, v);
        change.push(t.elapsed());
    }
    report("didChange -> publishDiagnostics", change);

    let adapter_ref = text
        .lines()
        .position(|l| l.contains("adapters = [a250]"))
        .unwrap_or(0);
    let mut hover = Vec::new();
    for i in 0..ITERS {
        let t = Instant::now();
        let h = request(
            &client,
            100 + i as i32,
            "textDocument/hover",
            json!({ "textDocument": { "uri": uri }, "position": { "line": adapter_ref, "character": 15 } }),
        );
        hover.push(t.elapsed());
        assert!(h["contents"]["value"]
            .as_str()
            .unwrap_or("")
            .contains("adapter a250"));
    }
    report("hover (adapter with figures)", hover);

    let mut completion = Vec::new();
    for i in 0..ITERS {
        let t = Instant::now();
        let items = request(
            &client,
            200 + i as i32,
            "textDocument/completion",
            json!({ "textDocument": { "uri": uri }, "position": { "line": adapter_ref, "character": 14 } }),
        );
        completion.push(t.elapsed());
        assert!(items.as_array().map(Vec::len).unwrap_or(0) > 100);
    }
    report("completion (adapter names)", completion);

    let target = text
        .lines()
        .position(|l| l.contains("targets = [q_proj"))
        .unwrap_or(0);
    let mut targets = Vec::new();
    for i in 0..ITERS {
        let t = Instant::now();
        request(
            &client,
            300 + i as i32,
            "textDocument/completion",
            json!({ "textDocument": { "uri": uri }, "position": { "line": target, "character": 13 } }),
        );
        targets.push(t.elapsed());
    }
    report("completion (targets)", targets);

    gguf_document(&client, &dir, &data);

    request(&client, 999, "shutdown", Value::Null);
    send(
        &client,
        Message::Notification(Notification::new("exit".into(), Value::Null)),
    );
    let _ = thread.join();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The real GGUF model, if fetched.
fn gguf_asset() -> Option<std::path::PathBuf> {
    let root = std::env::var_os("PEFTC_TEST_ASSETS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/assets"));
    let p = root.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    p.is_file().then_some(p)
}

/// Keystrokes in a document whose model is a real GGUF file, and 2,000 declarations of it.
fn gguf_document(client: &Connection, dir: &std::path::Path, data: &std::path::Path) {
    let Some(gguf) = gguf_asset() else {
        println!("GGUF document: skipped (run scripts/fetch-assets.sh)");
        return;
    };
    // 2,000 declarations of the same GGUF file, checked in a fresh process: the header is
    // read once, the other 1,999 declarations find it in the process's metadata cache.
    let mut many = String::new();
    for i in 0..2_000 {
        many.push_str(&format!("model g{i} = gguf(\"{}\")\n", gguf.display()));
    }
    let world = peftc::check::RealWorld::from_env();
    let t = Instant::now();
    let checked = peftc::check::check_source(&world, &dir.join("many.peft"), &many);
    println!(
        "GGUF model: check of 2,000 declarations of one GGUF file {:.1} ms ({} diagnostics)",
        t.elapsed().as_secs_f64() * 1e3,
        checked.diagnostics.len()
    );
    let text = format!(
        "model g = gguf(\"{}\")\ndataset qa = jsonl(\"{}\") {{\n  prompt = field(\"q\")\n  completion = field(\"a\")\n  split = {{ train = 90%, eval = 10%, seed = 1 }}\n}}\nadapter a = lora {{\n  r = 8\n  alpha = 16\n  targets = [q_proj, v_proj]\n}}\ntrain t {{\n  model = g\n  adapters = [a]\n  data = qa.train\n}}\n",
        gguf.display(),
        data.display()
    );
    let uri = peftc::lsp::path_to_uri(&dir.join("gguf.peft"))
        .map(|u| u.as_str().to_string())
        .unwrap_or_default();
    send(
        client,
        Message::Notification(Notification::new(
            "textDocument/didOpen".into(),
            json!({ "textDocument": { "uri": uri, "languageId": "peft", "version": 1, "text": text } }),
        )),
    );
    wait_diagnostics(client, 1);
    let line = text.lines().position(|l| l.contains("r = 8")).unwrap_or(0);
    let mut change = Vec::new();
    for i in 0..ITERS * 5 {
        let v = 2 + i as i32;
        let new = if i % 2 == 0 { "9" } else { "8" };
        let edit = json!({ "textDocument": { "uri": uri, "version": v },
            "contentChanges": [{ "range": { "start": { "line": line, "character": 6 }, "end": { "line": line, "character": 7 } }, "text": new }] });
        let t = Instant::now();
        send(
            client,
            Message::Notification(Notification::new("textDocument/didChange".into(), edit)),
        );
        wait_diagnostics(client, v);
        change.push(t.elapsed());
    }
    report("GGUF model: didChange -> publishDiagnostics", change);
}
