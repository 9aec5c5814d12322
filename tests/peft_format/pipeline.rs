//! `adapter x = peft(..)` through `peftc run`: adapters that PEFT saved (a local folder, or a
//! Hugging Face cache snapshot read offline) are evaluated and re-exported; the eval's loss and
//! accuracy equal what PEFT's own logits give on the same rows (relative 1e-5), and an `hf(..)`
//! base is named by its Hub id in exported adapter configs.

use super::interop::{fixtures, Case};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Puts `folder` into a Hugging Face cache under `hf_home` as `repo` (refs/main -> a snapshot).
fn into_hf_cache(hf_home: &Path, repo: &str, folder: &Path) {
    let root = hf_home
        .join("hub")
        .join(format!("models--{}", repo.replace('/', "--")));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    copy_dir(folder, &root.join("snapshots").join(commit));
    std::fs::create_dir_all(root.join("refs")).unwrap();
    std::fs::write(root.join("refs/main"), commit).unwrap();
}

pub(super) struct Project {
    dir: tempfile::TempDir,
}

pub(super) struct Run {
    pub code: i32,
    pub stderr: String,
}

impl Project {
    pub fn new(case: &Case, data: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&case.base, &dir.path().join("model"));
        copy_dir(&case.adapter(), &dir.path().join("adapter"));
        std::fs::write(dir.path().join("data.jsonl"), data).unwrap();
        Project { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn run(&self, cmd: &str, pipeline: &str) -> Run {
        std::fs::write(self.path("pipeline.peft"), pipeline).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_peftc"))
            .arg(cmd)
            .arg(self.path("pipeline.peft"))
            .env("NO_COLOR", "1")
            .env("HF_HOME", self.path("hf"))
            .env_remove("PEFTC_CACHE_DIR")
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stderr: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// The `metrics.json` of the eval stage in the cache.
    fn metrics(&self) -> Value {
        let mut stack = vec![self.path(".peft")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().and_then(|n| n.to_str()) == Some("metrics.json") {
                    return serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                }
            }
        }
        panic!("no metrics.json under .peft")
    }
}

pub(super) fn data_rows(case: &Case) -> String {
    let eval = &case_json(case)["eval"];
    let mut rows = String::new();
    match case.labels {
        Some(_) => {
            let sentences: Vec<String> = serde_json::from_str(
                &std::fs::read_to_string(fixtures().join("parity/bert/sentences.json")).unwrap(),
            )
            .unwrap();
            for (s, y) in sentences.iter().zip(eval["labels"].as_array().unwrap()) {
                let label = format!("LABEL_{}", y.as_u64().unwrap());
                rows.push_str(&serde_json::json!({ "text": s, "label": label }).to_string());
                rows.push('\n');
            }
        }
        None => {
            for t in eval["texts"].as_array().unwrap() {
                rows.push_str(&serde_json::json!({ "text": t }).to_string());
                rows.push('\n');
            }
        }
    }
    rows
}

fn case_json(case: &Case) -> Value {
    serde_json::from_str(&std::fs::read_to_string(case.dir.join("case.json")).unwrap()).unwrap()
}

pub(super) fn pipeline(case: &Case, model: &str, adapter: &str) -> String {
    let task = match case.labels {
        Some(n) => {
            let labels: Vec<String> = (0..n).map(|i| format!("\"LABEL_{i}\"")).collect();
            format!(
                " {{\n  task = classify(labels = [{}])\n}}",
                labels.join(", ")
            )
        }
        None => String::new(),
    };
    let metrics = if case.labels.is_some() {
        "[accuracy, loss]"
    } else {
        "[loss]"
    };
    format!(
        r#"model base = {model}{task}

dataset rows = jsonl("data.jsonl") {{
  text    = field("text")
  {label}max_len = 64
  split   = {{ eval = 100%, seed = 1 }}
}}

adapter hub = {adapter}

eval with_hub {{
  model    = base
  adapters = [hub]
  data     = rows.eval
  metrics  = {metrics}
  batch    = 8
  gate loss < 100
}}

export hub to "out/hub" as peft
"#,
        label = if case.labels.is_some() {
            "label   = field(\"label\")\n  "
        } else {
            ""
        },
    )
}

pub(super) fn assert_metrics(case: &Case, p: &Project) {
    let want = &case_json(case)["eval"];
    let got = &p.metrics()["model"];
    let (w, g) = (
        want["loss"].as_f64().unwrap(),
        got["loss"].as_f64().unwrap(),
    );
    assert!(
        (w - g).abs() <= 1e-5 * w.abs().max(1.0),
        "{}: eval loss {g}, PEFT {w}",
        case.name
    );
    if let Some(acc) = want["accuracy"].as_f64() {
        assert_eq!(got["accuracy"].as_f64(), Some(acc), "{}", case.name);
    }
}

#[test]
fn peft_folders_evaluate_through_peftc_run_as_in_peft() {
    for name in super::interop::CASES {
        let case = Case::open(name);
        let p = Project::new(&case, &data_rows(&case));
        let run = p.run(
            "run",
            &pipeline(&case, "local(\"model\")", "peft(\"adapter\")"),
        );
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_metrics(&case, &p);
        // The re-export is PEFT's folder, unchanged.
        for f in ["adapter_config.json", "adapter_model.safetensors"] {
            assert_eq!(
                std::fs::read(p.path("out/hub").join(f)).unwrap(),
                std::fs::read(case.adapter().join(f)).unwrap(),
                "{name}: {f}"
            );
        }
    }
}

#[test]
fn hub_adapters_and_models_are_read_from_the_cache_offline() {
    let case = Case::open("bert_cls");
    let p = Project::new(&case, &data_rows(&case));
    into_hf_cache(&p.path("hf"), "test/tiny-bert", &case.base);
    into_hf_cache(&p.path("hf"), "test/tiny-bert-sst", &case.adapter());
    let mut text = pipeline(
        &case,
        "hf(\"test/tiny-bert\")",
        "peft(hf(\"test/tiny-bert-sst\"))",
    );
    // A train on the same hub base: its export names the base by its Hub id.
    text.push_str(
        "\nadapter fresh = lora { r = 2, alpha = 4, targets = [query] }\n\ntrain t {\n  model = base\n  adapters = [fresh]\n  data = rows.eval\n  max_steps = 1\n  batch = 4\n}\n\nexport t.fresh to \"out/fresh\" as peft\n",
    );
    let check = p.run("check", &text);
    // The adapter's config names its base `parity/bert/base`: a warning, not an error.
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(check.stderr.contains("W1050"), "{}", check.stderr);
    let run = p.run("run", &text);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_metrics(&case, &p);
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(p.path("out/fresh/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["base_model_name_or_path"], "test/tiny-bert");
    assert_eq!(cfg["task_type"], "SEQ_CLS");
    assert_eq!(
        cfg["modules_to_save"],
        serde_json::json!(["classifier", "score"])
    );
}

#[test]
fn peft_adapters_that_do_not_fit_are_refused_by_check() {
    // A BERT classifier's adapter on the causal llama: wrong task and modules.
    let bert = Case::open("bert_cls");
    let llama = Case::open("llama_qv");
    let p = Project::new(&llama, &data_rows(&llama));
    copy_dir(&bert.adapter(), &p.path("bert_adapter"));
    let text = pipeline(&llama, "local(\"model\")", "peft(\"bert_adapter\")");
    let check = p.run("check", &text);
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(check.stderr.contains("E1053"), "{}", check.stderr);
    assert!(check.stderr.contains("E1052"), "{}", check.stderr);
    // `peftc run` checks first and runs nothing.
    let run = p.run("run", &text);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!p.path(".peft/entries").exists(), "{}", run.stderr);
}
