//! A temporary project with the tiny BERT fixture, a data set and a pipeline, and a way to run
//! the real `peftc` binary on it.

use std::path::Path;
use std::process::Command;

pub struct Pipeline {
    pub dir: tempfile::TempDir,
}

pub struct Outcome {
    pub code: i32,
    pub stderr: String,
}

impl Outcome {
    /// Stages that executed, by the names the progress lines give them.
    pub fn ran(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("[run]"))
            .map(|l| l.trim().to_string())
            .collect()
    }
}

const PIPELINE: &str = r#"model tiny = local("model") {
  task = classify(labels = ["negative", "positive"])
}

dataset reviews = jsonl("data.jsonl") {
  text  = field("text")
  label = field("label")
  split = { train = 75%, eval = 25%, seed = 3 }
  max_len = 16
}

adapter a = lora { r = 4, alpha = 8, targets = [query, value] }

train t {
  model     = tiny
  adapters  = [a]
  data      = reviews.train
  epochs    = 1
  max_steps = 3
  batch     = 8
  lr        = 1e-3
  seed      = 1
}

eval check {
  model   = t
  data    = reviews.eval
  metrics = [accuracy, loss]
  gate accuracy >= 0.0
}

export t.a to "out/a" as peft
"#;

impl Pipeline {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/bert/base");
        let model = dir.path().join("model");
        std::fs::create_dir_all(&model).unwrap();
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "vocab.txt",
        ] {
            std::fs::copy(fixture.join(f), model.join(f)).unwrap();
        }
        std::fs::write(dir.path().join("pipeline.peft"), PIPELINE).unwrap();
        let p = Pipeline { dir };
        p.write_data(40);
        p
    }

    /// Writes `n` labelled rows.
    pub fn write_data(&self, n: usize) {
        let mut rows = String::new();
        for i in 0..n {
            let (text, label) = if i % 2 == 0 {
                ("this movie was very good", "positive")
            } else {
                ("this film was not good it was bad", "negative")
            };
            rows.push_str(&serde_json::json!({ "text": format!("{text} {}", ["a", "b", "c", "d"][i % 4]), "label": label }).to_string());
            rows.push('\n');
        }
        std::fs::write(self.dir.path().join("data.jsonl"), rows).unwrap();
    }

    pub fn edit(&self, f: impl Fn(&str) -> String) {
        let path = self.dir.path().join("pipeline.peft");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, f(&text)).unwrap();
    }

    /// Starts `peftc run` without waiting for it.
    pub fn spawn(&self) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_peftc"))
            .arg("run")
            .arg(self.dir.path().join("pipeline.peft"))
            .env("NO_COLOR", "1")
            .env_remove("PEFTC_CACHE_DIR")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn peftc")
    }

    /// `peftc plan` on the pipeline: (exit code, stdout).
    pub fn plan(&self) -> (i32, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_peftc"))
            .arg("plan")
            .arg(self.dir.path().join("pipeline.peft"))
            .env("NO_COLOR", "1")
            .env_remove("PEFTC_CACHE_DIR")
            .output()
            .expect("plan");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `peftc SUB FILE EXTRA..` with `file` relative to the project folder; fails the test when
    /// it does not finish within `secs` seconds (a hang), killing it.
    pub fn peftc(&self, sub: &str, file: &str, extra: &[&str], secs: u64) -> Outcome {
        let mut child = Command::new(env!("CARGO_BIN_EXE_peftc"))
            .arg(sub)
            .arg(self.dir.path().join(file))
            .args(extra)
            .env("NO_COLOR", "1")
            .env_remove("PEFTC_CACHE_DIR")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn peftc");
        // Read stderr on a thread so a chatty child cannot block on a full pipe.
        let mut err = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("peftc {sub} {file} did not finish within {secs} s (hung)");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        Outcome {
            code: status.code().unwrap_or(-1),
            stderr: reader.join().unwrap_or_default(),
        }
    }

    pub fn run(&self) -> Outcome {
        let out = Command::new(env!("CARGO_BIN_EXE_peftc"))
            .arg("run")
            .arg(self.dir.path().join("pipeline.peft"))
            .env("NO_COLOR", "1")
            .env_remove("PEFTC_CACHE_DIR")
            .output()
            .expect("run peftc");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
