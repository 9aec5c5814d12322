//! A minimal LSP client over the real `peftc lsp` process: Content-Length framing on its
//! stdin/stdout, requests with ids, and waiting for notifications. Plus the fixture project
//! (a tiny llama config, a jsonl file, a clean pipeline) the tests open.
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

pub const TINY_LLAMA: &str = r#"{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"max_position_embeddings":256}"#;

/// The clean pipeline the tests edit.
pub const MAIN: &str = r#"// A small pipeline for the language server tests.
use std.recipes.{lora_default}

/// The tiny llama.
model tiny = local("models/tiny")

/// Question/answer pairs.
dataset qa = jsonl("data/qa.jsonl") {
  prompt     = field("q")
  completion = field("a")
  template   = alpaca
  split      = { train = 90%, eval = 10%, seed = 1 }
}

/// The adapter under test.
adapter chat = lora_default {
  r       = 8
  alpha   = 16
  targets = [q_proj, v_proj]
}

train tune {
  model    = tiny
  adapters = [chat]
  data     = qa.train
  epochs   = 1
  batch    = 2
}

eval answers {
  model   = tune
  data    = qa.eval
  metrics = [loss]
  gate loss < baseline.loss
}
"#;

/// A folder with the model config and data `MAIN` refers to; `MAIN` is written as `main.peft`.
pub fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("models/tiny")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("models/tiny/config.json"), TINY_LLAMA).unwrap();
    // The checker also looks for the weights and tokenizer, and reads the data's rows.
    std::fs::write(dir.path().join("models/tiny/model.safetensors"), "").unwrap();
    std::fs::write(dir.path().join("models/tiny/tokenizer.json"), "{}").unwrap();
    let rows: String = (0..20)
        .map(|i| format!("{{\"q\":\"hi {i}\",\"a\":\"hello {i}\"}}\n"))
        .collect();
    std::fs::write(dir.path().join("data/qa.jsonl"), rows).unwrap();
    std::fs::write(dir.path().join("main.peft"), MAIN).unwrap();
    dir
}

pub fn uri(path: &Path) -> String {
    peftc::lsp::path_to_uri(path).unwrap().as_str().to_string()
}

/// The `(line, character)` of the `n`th occurrence of `needle` in `text` plus `delta` chars.
pub fn pos(text: &str, needle: &str, n: usize, delta: usize) -> Value {
    let off = text
        .match_indices(needle)
        .nth(n)
        .unwrap_or_else(|| panic!("no {needle:?}"))
        .0
        + delta;
    let before = &text[..off];
    let line = before.matches('\n').count();
    let col = before.rsplit('\n').next().unwrap().encode_utf16().count();
    json!({ "line": line, "character": col })
}

pub struct Client {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next_id: i64,
    /// Notifications received while waiting for something else.
    pub notes: Vec<Value>,
}

impl Client {
    /// Starts `peftc lsp` and runs the initialize handshake with `root`.
    pub fn start(root: &Path) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_peftc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut buf = vec![0; len];
                if r.read_exact(&mut buf).is_err() {
                    return;
                }
                let v: Value = serde_json::from_slice(&buf).unwrap();
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let mut c = Client {
            child,
            stdin,
            rx,
            next_id: 1,
            notes: Vec::new(),
        };
        let init = c
            .request(
                "initialize",
                json!({ "processId": null, "rootUri": uri(root), "capabilities": {} }),
            )
            .unwrap();
        assert_eq!(init["capabilities"]["positionEncoding"], "utf-16");
        assert_eq!(init["capabilities"]["textDocumentSync"], 2);
        assert_eq!(init["serverInfo"]["name"], "peftc");
        c.notify("initialized", json!({}));
        c
    }

    pub fn send(&mut self, v: &Value) {
        let body = serde_json::to_string(v).unwrap();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{}", body.len(), body).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Writes bytes as they are (malformed frames, oversized bodies).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Closes the server's stdin and returns its exit code (`None`: killed by a signal or hung).
    pub fn close_and_wait(self) -> Option<i32> {
        let Client {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        for _ in 0..200 {
            if let Some(s) = child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        None
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and returns its result (`Err` with the error object).
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let v = self
                .rx
                .recv_timeout(Duration::from_secs(30))
                .expect("no answer from peftc lsp");
            if v["id"] == json!(id) {
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                };
            }
            self.notes.push(v);
        }
    }

    /// The next notification `method` whose params satisfy `pred` (earlier ones included).
    pub fn wait_for(&mut self, method: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self
            .notes
            .iter()
            .position(|n| n["method"] == method && pred(&n["params"]))
        {
            return self.notes.remove(i)["params"].clone();
        }
        loop {
            let v = self
                .rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no {method} notification"));
            if v["method"] == method && pred(&v["params"]) {
                return v["params"].clone();
            }
            self.notes.push(v);
        }
    }

    pub fn open(&mut self, path: &Path, text: &str) {
        self.notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri(path), "languageId": "peft", "version": 1, "text": text } }));
    }

    /// Shutdown then exit; returns whether the process ended with status 0.
    pub fn stop(mut self) -> bool {
        assert_eq!(self.request("shutdown", Value::Null).unwrap(), Value::Null);
        self.notify("exit", Value::Null);
        for _ in 0..100 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        false
    }

    /// `exit` without `shutdown`; returns the process's exit code.
    pub fn exit_without_shutdown(mut self) -> Option<i32> {
        self.notify("exit", Value::Null);
        for _ in 0..100 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        None
    }
}
