//! A temporary project (the tiny BERT fixture, a labelled JSONL set, a pipeline) and the real
//! `peftc` binary run on it with `--executor slurm` or locally, plus what the tests ask Slurm.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether a Slurm cluster answers with an idle (or busy) node; prints why not when it does not.
/// Asked once per test binary (an unreachable controller makes `sinfo` wait).
pub fn cluster_up() -> bool {
    static WHY_NOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let why_not = WHY_NOT.get_or_init(|| {
        let out = Command::new("sinfo").args(["-h", "-o", "%t"]).output();
        let states = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            _ => {
                return Some(
                    "no Slurm cluster (start one as root with scripts/slurm-local.sh)".to_owned(),
                )
            }
        };
        let up = states
            .lines()
            .any(|s| s.starts_with("idle") || s.starts_with("mix") || s.starts_with("alloc"));
        (!up).then(|| format!("the Slurm cluster has no usable node ({states:?})"))
    });
    if let Some(why) = why_not {
        eprintln!("skipped: {why}");
    }
    why_not.is_none()
}

pub const BASE: &str = r#"model tiny = local("model") {
  task = classify(labels = ["negative", "positive"])
}

dataset reviews = jsonl("data.jsonl") {
  text  = field("text")
  label = field("label")
  split = { train = 75%, eval = 25%, seed = 3 }
  max_len = 16
}

adapter a = lora { r = 4, alpha = 8, targets = [query, value] }
"#;

pub struct Project {
    pub dir: tempfile::TempDir,
}

pub struct Outcome {
    pub code: i32,
    pub stderr: String,
}

impl Outcome {
    /// Stages that executed, by the names the progress lines give them.
    pub fn ran(&self) -> Vec<String> {
        self.lines("[run]")
    }

    /// `(stage name, job id)` of every submitted job.
    pub fn submitted(&self) -> Vec<(String, String)> {
        self.lines("[submit]")
            .into_iter()
            .filter_map(|l| {
                let (name, job) = l.rsplit_once(": job ")?;
                Some((name.to_owned(), job.trim().to_owned()))
            })
            .collect()
    }

    pub fn job_of(&self, stage: &str) -> Option<String> {
        self.submitted()
            .into_iter()
            .find(|(n, _)| n == stage)
            .map(|(_, j)| j)
    }

    fn lines(&self, prefix: &str) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|l| l.trim().to_string())
            .collect()
    }
}

impl Project {
    /// A project whose pipeline is [`BASE`] followed by `rest`.
    pub fn new(rest: &str) -> Self {
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
        std::fs::write(dir.path().join("pipeline.peft"), format!("{BASE}{rest}")).unwrap();
        let mut rows = String::new();
        for i in 0..40 {
            let (text, label) = if i % 2 == 0 {
                ("this movie was very good", "positive")
            } else {
                ("this film was not good it was bad", "negative")
            };
            let row = serde_json::json!({ "text": format!("{text} {}", ["a", "b", "c", "d"][i % 4]), "label": label });
            rows.push_str(&row.to_string());
            rows.push('\n');
        }
        std::fs::write(dir.path().join("data.jsonl"), rows).unwrap();
        Project { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `peftc SUBCOMMAND pipeline.peft ARGS` with the test environment.
    pub fn command(&self, sub: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_peftc"));
        c.arg(sub)
            .arg(self.path("pipeline.peft"))
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("PEFTC_CACHE_DIR")
            .env_remove("PEFTC_EXECUTOR")
            .env("PEFTC_SLURM_POLL_MS", "200");
        c
    }

    /// `peftc run --executor slurm` (two CPUs per heavy job, so three trains fit the node).
    pub fn run_slurm(&self) -> Outcome {
        self.outcome(self.command("run", &["--executor", "slurm", "--cpus-per-task", "2"]))
    }

    pub fn run_local(&self) -> Outcome {
        self.outcome(self.command("run", &[]))
    }

    fn outcome(&self, mut c: Command) -> Outcome {
        let out = c.output().expect("run peftc");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Stage id -> (key, output digest) from `peftc.lock`.
    pub fn locked(&self) -> Vec<(String, String, String)> {
        let lock: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.path("peftc.lock")).unwrap()).unwrap();
        lock["stages"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(id, s)| {
                (
                    id.clone(),
                    s["key"].as_str().unwrap_or("").to_owned(),
                    s["output"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }
}

/// A job's fields from `scontrol show job -o` (`JobState`, `StartTime`, `EndTime`, ...).
pub fn job_fields(job: &str) -> std::collections::BTreeMap<String, String> {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", job])
        .output()
        .expect("scontrol");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Every file under `dir` (relative path -> bytes).
pub fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}
