//! The front end's fuzz harness: a seeded structural and byte-level mutator over `examples/`,
//! `tests/ui/*.peft` and `stdlib/`, driving the parser, the checker, the renderer, the formatter
//! (formatting twice changes nothing, the formatted file checks the same) and the language
//! server in-process. Every case must return without a panic, with spans inside the file on
//! char boundaries. `PEFTC_FUZZ_CASES` sets the number of cases (default
//! [`DEFAULT_CASES`]), `PEFTC_FUZZ_SEED` the seed. A failing case is written to
//! `target/fuzz-failures/` and belongs in `tests/frontend/fuzz_corpus/` once fixed
//! (`regressions.rs` runs every file there).
use super::support::ui_world;
use lsp_server::{Connection, Message, Notification, Request, RequestId};
use peftc::check::{self, render, MemoryWorld};
use peftc::syntax::Diagnostic;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Cases run by default (about a minute in a debug build on one core).
pub const DEFAULT_CASES: usize = 2000;

/// Fragments the structural mutator inserts: keywords, punctuation, units, non-ASCII text,
/// line breaks, comments and values that once crashed the front end.
const DICT: &[&str] = &[
    "model",
    "adapter",
    "dataset",
    "train",
    "eval",
    "gate",
    "merge",
    "export",
    "use",
    "let",
    "sweep",
    "escalate",
    "mix",
    "quantized",
    "baseline",
    "to",
    "as",
    "on",
    "true",
    "false",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "=",
    "==",
    ">=",
    "<",
    ",",
    ".",
    ":",
    ";",
    "-",
    "+",
    "*",
    "/",
    "%",
    "GiB",
    "\"",
    "\"é\"",
    "\"模型\"",
    "// 模型\n",
    "// café\n",
    "/// doc é\n",
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "é",
    "模",
    "😀",
    "\u{FEFF}",
    "\u{0}",
    "\u{2028}",
    "1",
    "8",
    "2e-4",
    "10%",
    "1_000",
    "99999999999999999999",
    "-1",
    "lora",
    "hf(\"gpt2\")",
    "gguf(\"/dev/zero\")",
    "use \"/dev/zero\"\n",
    "use \"fuzz.peft\"\n",
    "targets = [q_proj, v_proj]",
    "r = ",
    "{ r = 8 }",
    "x.y.z",
    "\\",
    "\\\"",
];

/// Every seed file: examples, UI cases and the stdlib.
pub fn seeds() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "examples",
        "tests/ui",
        "stdlib",
        "tests/frontend/fuzz_corpus",
    ] {
        collect(&root.join(dir), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|p| Some((p.clone(), std::fs::read_to_string(&p).ok()?)))
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "peft") {
            out.push(p);
        }
    }
}

/// Tokens (words, single punctuation and whitespace chars) of `src`, concatenating back to it.
fn tokens(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in src.char_indices() {
        if !(c.is_alphanumeric() || c == '_') {
            if start < i {
                out.push(src[start..i].to_string());
            }
            out.push(c.to_string());
            start = i + c.len_utf8();
        }
    }
    if start < src.len() {
        out.push(src[start..].to_string());
    }
    out
}

/// One mutated text from `seed` (and `other`, for splices).
pub fn mutate(rng: &mut ChaCha8Rng, seed: &str, other: &str) -> String {
    let mut t = tokens(seed);
    for _ in 0..rng.gen_range(1..=4) {
        let n = t.len().max(1);
        match rng.gen_range(0..12) {
            0 if !t.is_empty() => {
                t.remove(rng.gen_range(0..t.len()));
            }
            1 if !t.is_empty() => {
                let i = rng.gen_range(0..t.len());
                let dup = t[i].clone();
                t.insert(i, dup);
            }
            2 if !t.is_empty() => {
                let (a, b) = (rng.gen_range(0..t.len()), rng.gen_range(0..t.len()));
                t.swap(a, b);
            }
            3 | 4 => {
                let w = DICT[rng.gen_range(0..DICT.len())].to_string();
                t.insert(rng.gen_range(0..=t.len()), w);
            }
            5 => {
                // Splice a run of tokens from another seed.
                let o = tokens(other);
                if !o.is_empty() {
                    let a = rng.gen_range(0..o.len());
                    let b = (a + rng.gen_range(1..40)).min(o.len());
                    let at = rng.gen_range(0..=t.len());
                    t.splice(at..at, o[a..b].iter().cloned());
                }
            }
            6 => {
                // Deep nesting around a token: brackets, signs or a long chain.
                let i = rng.gen_range(0..n.min(t.len().max(1)));
                let k = rng.gen_range(1..400);
                let (open, close) = match rng.gen_range(0..5) {
                    0 => ("[".repeat(k), "]".repeat(k)),
                    1 => ("(".repeat(k), ")".repeat(k)),
                    2 => ("{ a = ".repeat(k), " }".repeat(k)),
                    3 => ("-".repeat(k * 10), String::new()),
                    _ => (String::new(), " + 1".repeat(k * 5)),
                };
                if i < t.len() {
                    t.insert(i + 1, close);
                    t.insert(i, open);
                } else {
                    t.push(open);
                    t.push(close);
                }
            }
            7 if !t.is_empty() => {
                // A very long line.
                let i = rng.gen_range(0..t.len());
                t.insert(i, "x = 1, ".repeat(rng.gen_range(100..12_000)));
            }
            8 if !t.is_empty() => {
                let cut = rng.gen_range(0..t.len());
                t.truncate(cut);
            }
            _ => {
                // Byte-level: flip bytes (kept as UTF-8 through lossy decoding).
                let mut b = t.concat().into_bytes();
                if !b.is_empty() {
                    for _ in 0..rng.gen_range(1..4) {
                        let i = rng.gen_range(0..b.len());
                        b[i] = rng.gen();
                    }
                }
                t = tokens(&String::from_utf8_lossy(&b));
            }
        }
    }
    t.concat()
}

/// Checks every invariant of one text; panics (with the reason) when one fails.
pub fn check_case(world: &MemoryWorld, text: &str) {
    let (file, diags) = peftc::syntax::parse(text);
    assert_eq!(file.span.end as usize, text.len());
    spans_ok(&diags, |_| Some(text));
    let checked = check::check_source(world, Path::new("/ui/fuzz.peft"), text);
    spans_ok(&checked.diagnostics, |f| {
        checked.sources.get(f).map(|s| s.text.as_str())
    });
    let out = render::human_all(
        &checked.diagnostics,
        &checked.sources,
        render::Style::plain(),
    );
    // Output is bounded: at most MAX_SHOWN reports of bounded size.
    assert!(
        out.len() <= 400 + render::MAX_SHOWN * 40_000,
        "{} bytes",
        out.len()
    );
    for d in checked.diagnostics.iter().take(5) {
        let _ = render::json(d, &checked.sources);
    }
    if let Ok(formatted) = peftc::fmt::format_source(text) {
        let again = peftc::fmt::format_source(&formatted).expect("formatted text formats");
        assert_eq!(again, formatted, "formatting is not idempotent");
        let after = check::check_source(world, Path::new("/ui/fuzz.peft"), &formatted);
        assert_eq!(
            messages(&checked.diagnostics),
            messages(&after.diagnostics),
            "the formatted file checks differently"
        );
    }
}

/// Each diagnostic's code and message, without whitespace: a message may quote the source as
/// written (a gate), which formatting re-spaces.
fn messages(d: &[Diagnostic]) -> Vec<String> {
    let mut v: Vec<String> = d
        .iter()
        .map(|d| {
            let m: String = d.message.split_whitespace().collect();
            format!("{} {m}", d.code.as_str())
        })
        .collect();
    v.sort();
    v
}

fn spans_ok<'a>(diags: &[Diagnostic], text: impl Fn(peftc::syntax::FileId) -> Option<&'a str>) {
    for d in diags {
        let t = text(d.loc.file).expect("diagnostic file exists");
        let (s, e) = (d.loc.span.start as usize, d.loc.span.end as usize);
        assert!(
            s <= e && e <= t.len() && t.is_char_boundary(s) && t.is_char_boundary(e),
            "bad span {s}..{e} in a file of {} bytes: {d:?}",
            t.len()
        );
    }
}

/// The language server in-process, one document edited case after case.
pub struct Server {
    conn: Connection,
    thread: Option<std::thread::JoinHandle<()>>,
    next: i32,
    version: i32,
    uri: String,
}

impl Server {
    pub fn start() -> Server {
        let (server, client) = Connection::memory();
        let thread = std::thread::spawn(move || {
            let _ = peftc::lsp::serve(&server, peftc::lsp::ServerConfig::default());
        });
        let mut s = Server {
            conn: client,
            thread: Some(thread),
            next: 1,
            version: 1,
            uri: "file:///ui/fuzz_lsp.peft".into(),
        };
        s.request("initialize", json!({ "capabilities": {} }))
            .expect("initialize");
        s.notify("initialized", json!({}));
        let uri = s.uri.clone();
        s.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "peft", "version": 1, "text": "" } }),
        );
        s
    }

    pub fn notify(&self, method: &str, params: Value) {
        self.conn
            .sender
            .send(Message::Notification(Notification::new(
                method.into(),
                params,
            )))
            .expect("server alive");
    }

    /// A request's result, or its error object. Panics on an internal error (a handler that
    /// panicked) or a log message saying one happened.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next;
        self.next += 1;
        self.conn
            .sender
            .send(Message::Request(Request::new(
                RequestId::from(id),
                method.into(),
                params,
            )))
            .expect("server alive");
        loop {
            let m = self
                .conn
                .receiver
                .recv_timeout(std::time::Duration::from_secs(120))
                .expect("the server answers");
            match m {
                Message::Response(r) if r.id == RequestId::from(id) => {
                    return match r.response_result {
                        Err(e) => {
                            assert_ne!(
                                e.code, -32603,
                                "internal error in `{method}`: {}",
                                e.message
                            );
                            Err(json!({ "code": e.code, "message": e.message }))
                        }
                        Ok(v) => Ok(v),
                    };
                }
                Message::Notification(n) if n.method == "window/logMessage" => {
                    let text = n.params["message"].as_str().unwrap_or("").to_string();
                    assert!(!text.contains("internal error"), "{text}");
                }
                _ => {}
            }
        }
    }

    /// Replaces the document's text and asks for hover, completion, symbols and formatting.
    pub fn exercise(&mut self, rng: &mut ChaCha8Rng, text: &str) {
        self.version += 1;
        let uri = self.uri.clone();
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": self.version }, "contentChanges": [{ "text": text }] }),
        );
        let lines = text.split('\n').count() as u32;
        let at = json!({ "line": rng.gen_range(0..lines + 1), "character": rng.gen_range(0..80) });
        let doc = json!({ "uri": uri });
        let _ = self.request(
            "textDocument/hover",
            json!({ "textDocument": doc, "position": at }),
        );
        let _ = self.request(
            "textDocument/completion",
            json!({ "textDocument": doc, "position": at }),
        );
        // The heavier requests on every fourth case.
        if rng.gen_range(0..4) != 0 {
            return;
        }
        let _ = self.request(
            "textDocument/definition",
            json!({ "textDocument": doc, "position": at }),
        );
        let _ = self.request(
            "textDocument/documentSymbol",
            json!({ "textDocument": doc }),
        );
        let _ = self.request(
            "textDocument/formatting",
            json!({ "textDocument": doc, "options": { "tabSize": 2, "insertSpaces": true } }),
        );
    }

    pub fn stop(mut self) {
        let _ = self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Runs one case, writing its text to `target/fuzz-failures/` when it fails.
fn run_case(world: &MemoryWorld, server: &mut Server, rng: &mut ChaCha8Rng, case: u64, text: &str) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check_case(world, text);
        server.exercise(rng, text);
    }));
    if let Err(e) = r {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("case-{case}.peft"));
        let _ = std::fs::write(&path, text);
        let why = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!(
            "case {case} failed ({why}); input written to {}",
            path.display()
        );
    }
}

#[test]
fn mutated_sources_never_panic_and_keep_every_invariant() {
    let cases = env_number("PEFTC_FUZZ_CASES", DEFAULT_CASES as u64);
    let seed = env_number("PEFTC_FUZZ_SEED", 7);
    let seeds = seeds();
    assert!(seeds.len() >= 80, "only {} seed files", seeds.len());
    let world = ui_world();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut server = Server::start();
    let started = std::time::Instant::now();
    for case in 0..cases {
        let (_, a) = &seeds[rng.gen_range(0..seeds.len())];
        let (_, b) = &seeds[rng.gen_range(0..seeds.len())];
        let text = mutate(&mut rng, a, b);
        run_case(&world, &mut server, &mut rng, case, &text);
        if (case + 1) % 10_000 == 0 {
            eprintln!(
                "fuzz: {} cases in {:.0} s",
                case + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    server.stop();
    eprintln!(
        "fuzz: {cases} cases (seed {seed}) in {:.1} s, no failure",
        started.elapsed().as_secs_f64()
    );
}
