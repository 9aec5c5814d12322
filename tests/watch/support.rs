//! A `peftc watch` child process whose stdout lines are read with timeouts, and atomic file writes
//! (write to a temporary file, then rename into place, as editors save).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long any expected line may take (generous: CI machines are slow and shared).
const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Watch {
    child: Child,
    lines: Receiver<String>,
    /// Everything read so far, for failure messages.
    seen: Vec<String>,
}

impl Watch {
    /// Starts `peftc watch FILE ARGS...` in the file's folder.
    pub fn start(file: &Path, args: &[&str]) -> Watch {
        let dir = file.parent().unwrap_or(Path::new("."));
        let mut child = Command::new(env!("CARGO_BIN_EXE_peftc"))
            .arg("watch")
            .arg(file)
            .args(args)
            .current_dir(dir)
            .env_remove("PEFTC_CACHE_DIR")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start peftc watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watch {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `needle`; returns it. Panics with the output on timeout.
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.wait_until(needle, |l| l.contains(needle))
    }

    /// Reads lines until `pred` holds for one; returns it.
    pub fn wait_until(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line matching `{what}`; output:\n{}",
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "peftc watch ended before `{what}`; output:\n{}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// Reads the lines up to one containing `until` and returns them (that one included).
    pub fn collect_until(&mut self, until: &str) -> Vec<String> {
        let start = self.seen.len();
        self.wait_for(until);
        self.seen[start..].to_vec()
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit status.
    pub fn interrupt(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -INT failed");
        self.child.wait().expect("wait for peftc watch")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes `text` to `path` the way editors save: a temporary file renamed into place.
pub fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("peft-tmp~");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// A small classification JSONL (40 rows, three labels) in `dir`.
pub fn write_data(dir: &Path) -> PathBuf {
    let labels = ["neg", "pos", "mid"];
    let rows: Vec<String> = (0..40)
        .map(|i| {
            let l = labels[i % 3];
            format!("{{\"text\": \"this is sample {i} {l}\", \"label\": \"{l}\"}}")
        })
        .collect();
    let path = dir.join("d.jsonl");
    std::fs::write(&path, rows.join("\n") + "\n").expect("write data");
    path
}

/// The tiny BERT fixture folder (config.json, model.safetensors, tokenizer.json).
pub fn tiny_bert() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/bert/base")
}

/// A classification pipeline over the tiny BERT and `d.jsonl`; `gate` is the accuracy threshold,
/// `steps` the training steps (`max_steps` overrides epochs, so that many steps really run).
pub fn bert_pipeline(gate: &str, steps: u32, r: u32) -> String {
    format!(
        r#"model bert = local("{}") {{
  task = classify(labels = ["neg", "pos", "mid"])
}}
dataset rev = jsonl("d.jsonl") {{
  text = field("text")
  label = field("label")
  split = {{ train = 80%, eval = 20%, seed = 1 }}
}}
adapter s = lora {{ r = {r}, alpha = 8, targets = [query, value] }}
train tb {{
  model = bert
  adapters = [s]
  data = rev.train
  max_steps = {steps}
  batch = 4
}}
eval eb {{
  model = tb
  data = rev.eval
  metrics = [accuracy]
  gate accuracy >= {gate}
}}
"#,
        tiny_bert().display(),
    )
}

/// The training checkpoints kept under the cache folder `.peft` of `dir` (`step-*` folders).
pub fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(keys) = std::fs::read_dir(dir.join(".peft/checkpoints")) else {
        return out;
    };
    for key in keys.flatten() {
        let Ok(steps) = std::fs::read_dir(key.path().join("checkpoints")) else {
            continue;
        };
        out.extend(
            steps
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("adapter_model.safetensors").is_file()),
        );
    }
    out
}
