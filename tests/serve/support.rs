//! Shared by the serve tests: the tiny llama parity model and its LoRA adapters, the
//! transformers + PEFT reference generations, an in-process server, and a minimal HTTP/1.1
//! client over a loopback socket (no client crate: requests are written by hand).

use peftc::serve::{start, AdapterSpec, BaseSource, BaseSpec, Limits, ServeConfig, ServerHandle};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

pub const ADAPTERS: [&str; 4] = ["qv", "second", "all", "rslora"];

pub fn llama_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/llama")
}

pub fn adapter_dir(name: &str) -> PathBuf {
    llama_dir().join("adapters").join(name)
}

/// `tests/fixtures/serve/greedy.json`: prompts and transformers + PEFT greedy outputs.
pub struct Reference {
    pub max_new_tokens: usize,
    pub prompts: Vec<(String, Vec<u32>)>,
    /// Per model (`base` or an adapter), per prompt, the generated ids.
    pub outputs: serde_json::Map<String, Value>,
}

impl Reference {
    pub fn load() -> Self {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/serve/greedy.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let prompts = v["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["text"].as_str().unwrap().to_string(), ids(&p["ids"])))
            .collect();
        Self {
            max_new_tokens: v["max_new_tokens"].as_u64().unwrap() as usize,
            prompts,
            outputs: v["outputs"].as_object().unwrap().clone(),
        }
    }

    pub fn output(&self, model: &str, prompt: usize) -> Vec<u32> {
        ids(&self.outputs[model][prompt])
    }
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

pub fn config(limits: Limits) -> ServeConfig {
    ServeConfig {
        base: BaseSpec {
            source: BaseSource::Folder(llama_dir().join("model")),
            name: "base".into(),
            quant: None,
        },
        adapters: ADAPTERS
            .iter()
            .map(|a| AdapterSpec {
                name: a.to_string(),
                path: adapter_dir(a),
            })
            .collect(),
        addr: "127.0.0.1:0".parse().unwrap(),
        limits,
    }
}

pub fn serve(limits: Limits) -> ServerHandle {
    start(config(limits), false).expect("server starts")
}

/// A response: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `data:` payloads of a server-sent-events body.
    pub fn events(&self) -> Vec<String> {
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }
}

fn request_text(method: &str, path: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Opens a connection and sends a request; the caller reads (or drops) the stream.
pub fn send(addr: SocketAddr, method: &str, path: &str, body: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(request_text(method, path, body).as_bytes())
        .unwrap();
    s
}

/// Reads a whole response (the server closes the connection after it).
pub fn read_reply(s: TcpStream) -> Reply {
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap() == 0 {
                break;
            }
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut body).unwrap();
    }
    Reply {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

pub fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    read_reply(send(addr, method, path, body))
}

pub fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    call(addr, "POST", path, &body.to_string())
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    call(addr, "GET", path, "")
}

/// The value of a metric line `name value` (or `name{labels} value`) in `/metrics`.
pub fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = get(addr, "/metrics").body;
    text.lines()
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == name).then(|| v.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// Polls until `f` holds (at most 60 s).
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
