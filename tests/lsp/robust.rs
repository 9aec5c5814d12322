//! `peftc lsp` against hostile traffic: every document that once crashed the front end,
//! notifications and requests with missing or mistyped params, bodies that are not JSON and a
//! `Content-Length` past the limit. The server answers each request (an error where the
//! request is malformed), logs and ignores each bad notification, and still answers `hover`.
use super::client::{pos, project, uri, Client, MAIN};
use serde_json::{json, Value};

fn hover_still_works(c: &mut Client, main: &std::path::Path) {
    let r = c
        .request(
            "textDocument/hover",
            json!({ "textDocument": { "uri": uri(main) }, "position": pos(MAIN, "[chat]", 0, 1) }),
        )
        .expect("hover answers");
    let h = r["contents"]["value"].as_str().unwrap_or("");
    assert!(h.contains("adapter chat = lora_default"), "{h}");
}

#[test]
fn crashing_documents_and_malformed_traffic_leave_the_server_serving() {
    let dir = project();
    let main = dir.path().join("main.peft");
    let mut c = Client::start(dir.path());
    c.open(&main, MAIN);
    hover_still_works(&mut c, &main);

    // Every document that once crashed the front end, opened and then edited.
    let mut docs: Vec<(String, String)> = crate::frontend::regressions::generated()
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/frontend/fuzz_corpus");
    for e in std::fs::read_dir(corpus).unwrap() {
        let p = e.unwrap().path();
        docs.push((
            p.file_stem().unwrap().to_string_lossy().into_owned(),
            std::fs::read_to_string(&p).unwrap(),
        ));
    }
    for (name, text) in &docs {
        let path = dir.path().join(format!("{name}.peft"));
        c.open(&path, text);
        let u = uri(&path);
        c.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": u, "version": 2 }, "contentChanges": [{ "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 1 } }, "text": "é" }] }),
        );
        let syms = c
            .request(
                "textDocument/documentSymbol",
                json!({ "textDocument": { "uri": u } }),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(syms.is_array(), "{name}: {syms}");
        let published = c.wait_for("textDocument/publishDiagnostics", |p| {
            p["uri"] == json!(u) && p["version"] == json!(2)
        });
        assert!(
            !published["diagnostics"].as_array().unwrap().is_empty(),
            "{name}: no diagnostics"
        );
        let f = c.request(
            "textDocument/formatting",
            json!({ "textDocument": { "uri": u }, "options": { "tabSize": 2, "insertSpaces": true } }),
        );
        assert!(f.is_ok(), "{name}: {f:?}");
    }
    hover_still_works(&mut c, &main);

    // Notifications with missing or mistyped params: logged, ignored.
    for (method, params) in [
        ("textDocument/didOpen", Value::Null),
        ("textDocument/didOpen", json!({ "textDocument": 5 })),
        (
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri(&main), "text": 7 } }),
        ),
        ("textDocument/didChange", json!({})),
        (
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri(&main), "version": "x" }, "contentChanges": [] }),
        ),
        (
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri(&main), "version": 3 }, "contentChanges": [{ "range": 1, "text": "" }] }),
        ),
        ("textDocument/didClose", json!([1, 2])),
    ] {
        c.notify(method, params);
        let log = c.wait_for("window/logMessage", |p| {
            p["message"].as_str().unwrap_or("").contains(method)
        });
        assert!(
            log["message"]
                .as_str()
                .unwrap()
                .contains("malformed params"),
            "{log}"
        );
    }
    // Requests with malformed params: an InvalidParams error each.
    for (method, params) in [
        ("textDocument/hover", json!({})),
        (
            "textDocument/hover",
            json!({ "textDocument": { "uri": uri(&main) }, "position": "here" }),
        ),
        ("textDocument/completion", Value::Null),
        ("textDocument/formatting", json!({ "textDocument": 1 })),
        (
            "textDocument/rename",
            json!({ "textDocument": { "uri": uri(&main) }, "position": { "line": 0, "character": 0 } }),
        ),
    ] {
        let e = c.request(method, params).expect_err(method);
        assert_eq!(e["code"], -32602, "{method}: {e}");
    }
    hover_still_works(&mut c, &main);

    // A body that is not JSON-RPC, one without Content-Length, then one past the size limit
    // (sent in full: the server skips it without holding it and stays in step).
    c.send_raw(b"Content-Length: 5\r\n\r\nhello");
    c.wait_for("window/logMessage", |p| {
        p["message"].as_str().unwrap_or("").contains("not JSON-RPC")
    });
    c.send_raw(b"X-Other: 1\r\n\r\n");
    c.wait_for("window/logMessage", |p| {
        p["message"]
            .as_str()
            .unwrap_or("")
            .contains("without `Content-Length`")
    });
    let n = peftc::lsp::MAX_MESSAGE + 1;
    c.send_raw(format!("Content-Length: {n}\r\n\r\n").as_bytes());
    let chunk = vec![b' '; 1 << 20];
    let mut left = n as usize;
    while left > 0 {
        let k = left.min(chunk.len());
        c.send_raw(&chunk[..k]);
        left -= k;
    }
    c.wait_for("window/logMessage", |p| {
        p["message"].as_str().unwrap_or("").contains("more than")
    });
    hover_still_works(&mut c, &main);
    assert!(c.stop());
}

#[test]
fn a_content_length_past_any_limit_is_refused_without_allocating() {
    let dir = project();
    let mut c = Client::start(dir.path());
    // 10^22 bytes: the server neither allocates nor aborts; it waits for the body and ends
    // cleanly when the client hangs up.
    c.send_raw(b"Content-Length: 10000000000000000000000\r\n\r\n{}");
    assert_eq!(c.close_and_wait(), Some(1));
}
