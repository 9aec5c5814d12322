//! End-to-end runs of `peftc run` on a tiny real pipeline: a tiny BERT folder (the parity
//! fixture), a JSONL data set written here, LoRA training, eval, gates and a PEFT export. They
//! check what is cached and what re-runs after each kind of edit, that a failed gate exits 3 and
//! blocks the export, and that a corrupted cache entry is rebuilt.

mod adapters;
mod devices;
mod inputs;
mod memory_estimate;
mod outputs;
mod plan;
mod quant_formats;
mod searches;
mod support;

use support::{Outcome, Pipeline};

#[test]
fn a_second_run_does_no_work() {
    let p = Pipeline::new();
    let first = p.run();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first.ran(),
        [
            "model.tiny",
            "tokenize.reviews",
            "train t",
            "eval.check",
            "gate.check",
            "export.t.a"
        ]
    );
    let adapter = p.dir.path().join("out/a/adapter_config.json");
    assert!(adapter.is_file(), "export missing: {}", first.stderr);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(adapter).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert!(p.dir.path().join("out/a/peftc.lineage.json").is_file());
    assert!(p.dir.path().join("out/a/REPORT.md").is_file());
    let second = p.run();
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.ran().is_empty(),
        "second run executed {:?}",
        second.ran()
    );
    // The plan shows every stage cached, and the data summary of the tokenized set.
    let (code, plan) = p.plan();
    assert_eq!(code, 0, "{plan}");
    assert!(plan.contains("6 stages: 6 cached"), "{plan}");
    assert!(
        plan.contains("data of tokenize.reviews:\n40 rows read from 1 file(s)"),
        "{plan}"
    );
    assert!(plan.contains("train: 30 examples"), "{plan}");
    assert!(plan.contains("eval: 10 examples"), "{plan}");
}

#[test]
fn a_comment_edit_runs_nothing_and_a_gate_edit_runs_only_the_gate() {
    let p = Pipeline::new();
    assert_eq!(p.run().code, 0);
    p.edit(|s| format!("// a new comment at the top\n{s}"));
    let after_comment = p.run();
    assert!(
        after_comment.ran().is_empty(),
        "comment edit ran {:?}",
        after_comment.ran()
    );
    p.edit(|s| s.replace("gate accuracy >= 0.0", "gate accuracy >= 0.01"));
    let after_gate = p.run();
    assert_eq!(after_gate.code, 0, "{}", after_gate.stderr);
    let ran = after_gate.ran();
    assert!(ran.contains(&"gate.check".to_string()), "{ran:?}");
    for heavy in ["tokenize.reviews", "train t", "eval.check"] {
        assert!(
            !ran.contains(&heavy.to_string()),
            "{heavy} re-ran after a gate edit: {ran:?}"
        );
    }
}

#[test]
fn a_data_edit_reruns_its_branch_only() {
    let p = Pipeline::new();
    assert_eq!(p.run().code, 0);
    p.write_data(41);
    let again = p.run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    let ran = again.ran();
    assert!(ran.contains(&"tokenize.reviews".to_string()), "{ran:?}");
    assert!(!ran.contains(&"model.tiny".to_string()), "{ran:?}");
}

#[test]
fn a_failed_gate_exits_3_and_blocks_the_export() {
    let p = Pipeline::new();
    p.edit(|s| s.replace("gate accuracy >= 0.0", "gate loss <= 0.000001"));
    let run = p.run();
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("gate"), "{}", run.stderr);
    assert!(
        !p.dir.path().join("out/a").exists(),
        "export written despite a failed gate"
    );
}

#[test]
fn a_corrupted_cache_entry_is_rebuilt() {
    let p = Pipeline::new();
    assert_eq!(p.run().code, 0);
    // Damage the stored tokenized data of the tokenize stage.
    let mut damaged = 0;
    for entry in walk(&p.dir.path().join(".peft")) {
        if entry.file_name().and_then(|n| n.to_str()) == Some("data.bin") {
            std::fs::write(&entry, b"garbage").unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 1);
    let again = p.run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.ran().contains(&"tokenize.reviews".to_string()),
        "{:?}",
        again.ran()
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn two_concurrent_runs_on_one_cache_both_finish_and_train_once() {
    let p = Pipeline::new();
    let a = p.spawn();
    let b = p.spawn();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ea, eb) = (
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr),
    );
    assert_eq!(a.status.code(), Some(0), "{ea}");
    assert_eq!(b.status.code(), Some(0), "{eb}");
    let trained = [&ea, &eb]
        .iter()
        .filter(|e| {
            e.lines()
                .any(|l| l.starts_with("[run]") && l.contains("train t"))
        })
        .count();
    assert_eq!(trained, 1, "training ran {trained} times:\n{ea}\n---\n{eb}");
    assert!(p
        .dir
        .path()
        .join("out/a/adapter_model.safetensors")
        .is_file());
}

#[test]
fn a_run_killed_during_training_resumes_from_its_checkpoint() {
    let p = Pipeline::new();
    // Long enough to be killed mid-way, with a checkpoint after every step.
    p.edit(|s| {
        s.replace("max_steps = 3", "max_steps = 400")
            .replace("epochs    = 1", "epochs    = 100")
            .replace("seed      = 1", "seed      = 1\n  checkpoint_every = 1")
    });
    let mut child = p.spawn();
    let checkpoints = p.dir.path().join(".peft/checkpoints");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut found = false;
    while std::time::Instant::now() < deadline {
        // A published checkpoint (`step-N/`), not one still being written.
        let published = walk(&checkpoints).iter().any(|f| {
            f.file_name().and_then(|n| n.to_str()) == Some("trainer_state.json")
                && f.parent()
                    .and_then(|d| d.file_name())
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("step-"))
        });
        if published {
            found = true;
            break;
        }
        std::thread::yield_now();
    }
    assert!(found, "no checkpoint appeared");
    // SIGKILL: no chance to clean up.
    child.kill().unwrap();
    let _ = child.wait();
    let again = p.run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    // The run says that it resumes, from which step and which checkpoint.
    let note = again
        .stderr
        .lines()
        .find(|l| l.starts_with("[note]") && l.contains("resuming from the checkpoint after step"))
        .unwrap_or_else(|| panic!("no resume note:\n{}", again.stderr))
        .to_string();
    let summaries: Vec<serde_json::Value> = walk(&p.dir.path().join(".peft/entries"))
        .into_iter()
        .filter(|f| f.file_name().and_then(|n| n.to_str()) == Some("summary.json"))
        .filter_map(|f| serde_json::from_str(&std::fs::read_to_string(f).ok()?).ok())
        .filter(|v: &serde_json::Value| v.get("resumed_from").is_some())
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let resumed = summaries[0]["resumed_from"].as_u64();
    assert!(
        matches!(resumed, Some(n) if n >= 1),
        "training did not resume: {}",
        summaries[0]
    );
    assert_eq!(summaries[0]["steps"], 400);
    let step = resumed.unwrap();
    assert!(
        note.contains(&format!("after step {step} of 400 ("))
            && note.contains(&format!("/step-{step:08})")),
        "{note}"
    );
    assert!(
        note.contains(&p.dir.path().join(".peft/checkpoints").display().to_string()),
        "{note}"
    );
}

#[test]
fn bad_rows_fail_the_tokenize_stage_with_file_line_and_field() {
    let p = Pipeline::new();
    let data = p.dir.path().join("data.jsonl");
    let mut text = std::fs::read_to_string(&data).unwrap();
    // Past the first 64 KiB that `peftc check` reads (which would refuse these rows first):
    // a row in the middle of a large file is found by the run.
    let filler = 1200;
    for i in 0..filler {
        text.push_str(&format!(
            "{{\"text\": \"a longer filler review number {i}\", \"label\": \"positive\"}}\n"
        ));
    }
    text.push_str("{\"text\": \"fine\", \"label\": \"meh\"}\n{\"text\": broken\n");
    std::fs::write(&data, text).unwrap();
    let run = p.run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("2 invalid rows in data.jsonl"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("data.jsonl:{}: label \"meh\" in field `label` is not one of the declared labels [negative, positive]", 41 + filler)),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "data.jsonl:{}: malformed JSONL record",
            42 + filler
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("skip_invalid = true"), "{}", run.stderr);
    assert!(!p.dir.path().join("out/a").exists());
}

#[test]
fn a_train_without_adapters_is_a_linear_probe_of_the_head() {
    let p = Pipeline::new();
    p.edit(|s| {
        format!(
            "{s}\ntrain probe {{\n  model = tiny\n  adapters = []\n  data = reviews.train\n  max_steps = 6\n  batch = 8\n  lr = 5e-2\n}}\n\neval probe_check {{\n  model = probe\n  data = reviews.eval\n  metrics = [accuracy, loss]\n  gate loss < baseline.loss\n}}\n"
        )
    });
    let run = p.run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.ran().contains(&"train probe".to_string()),
        "{:?}",
        run.ran()
    );
    let gate = walk(&p.dir.path().join(".peft/entries"))
        .into_iter()
        .filter(|f| f.file_name().and_then(|n| n.to_str()) == Some("gates.json"))
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find(|t| t.contains("loss < baseline.loss"))
        .expect("the probe's gate result");
    let v: serde_json::Value = serde_json::from_str(&gate).unwrap();
    // The trained head beats the untrained one on the same frozen encoder.
    assert_eq!(v[0]["passed"], true, "{v}");
    assert!(
        v[0]["value"].as_f64().unwrap() < v[0]["baseline"].as_f64().unwrap(),
        "{v}"
    );
}

/// The tiny BERT has dropout 0.1 on embeddings, attention and sub-blocks: every mask comes from
/// the trainer's seeded stream, so two fresh runs (concurrent, as in CI) train the same bytes.
#[test]
fn two_fresh_runs_train_bit_identical_adapters() {
    let a = Pipeline::new();
    let b = Pipeline::new();
    let (ra, rb) = std::thread::scope(|s| {
        let h = s.spawn(|| a.run());
        let rb = b.run();
        (h.join().expect("run a"), rb)
    });
    assert_eq!(ra.code, 0, "{}", ra.stderr);
    assert_eq!(rb.code, 0, "{}", rb.stderr);
    let weights = |p: &Pipeline| {
        std::fs::read(p.dir.path().join("out/a/adapter_model.safetensors")).expect("adapter")
    };
    assert_eq!(weights(&a), weights(&b));
    let losses = |r: &Outcome| -> Vec<String> {
        r.stderr
            .lines()
            .filter(|l| l.contains("train t:") && l.contains("loss"))
            .map(|l| {
                l.split("loss")
                    .nth(1)
                    .unwrap_or("")
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(losses(&ra), losses(&rb));
}

/// A QLoRA-style run: the base is quantized to NF4 once by its own stage (every linear layer of
/// the encoder and the pooler, the classifier kept dense), training and evaluation read the
/// quantized weights from that stage, and a second run does nothing.
#[test]
fn a_quantized_base_is_quantized_once_and_trained_on() {
    let p = Pipeline::new();
    p.edit(|s| {
        s.replace(
            "adapter a = lora",
            "quant q4 = nf4 { double_quant = true }\n\nadapter a = lora",
        )
        .replace("  model     = tiny\n", "  model     = tiny quantized q4\n")
    });
    let run = p.run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ran = run.ran();
    let quantize: Vec<&String> = ran.iter().filter(|r| r.starts_with("quantize")).collect();
    assert_eq!(quantize.len(), 1, "{ran:?}");
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.dir.path().join("peftc.lock")).unwrap()).unwrap();
    let (_, entry) = lock["stages"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(id, _)| id.starts_with("quantize"))
        .expect("a quantize stage in the lock");
    let key = entry["key"].as_str().unwrap();
    let manifest = std::fs::read_to_string(
        p.dir
            .path()
            .join(".peft/entries")
            .join(key)
            .join("manifest.json"),
    )
    .unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    // 2 layers x (query, key, value, attention output, intermediate, output) + the pooler.
    assert_eq!(manifest["output"]["quantized"], 13, "{manifest}");
    assert!(p
        .dir
        .path()
        .join("out/a/adapter_model.safetensors")
        .is_file());
    let again = p.run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.ran().is_empty(), "{:?}", again.ran());
}

/// A merge of a classifier's LoRA (with its trained head, `modules_to_save`) is evaluated in
/// place, its gate on the metric drop passes, and the merged folder is exported with the head
/// and labels; transformers loads it with no missing key and, with `$PEFTC_PYTHON`, its logits
/// equal PEFT's `merge_and_unload` of the exported adapter within 1e-5.
#[test]
fn a_merged_classifier_is_evaluated_and_exported() {
    let p = Pipeline::new();
    p.edit(|s| format!("{s}\nmerge m = tiny + t.a\n\nexport m to \"out/m\" as merged\n"));
    let out = p.run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    for stage in [
        "merge.m",
        "eval.m.after_merge",
        "gate.m.after_merge",
        "export.m",
    ] {
        assert!(
            out.ran().iter().any(|r| r == stage),
            "{stage}: {:?}",
            out.ran()
        );
    }
    let dir = p.dir.path();
    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let config = read(&dir.join("out/m/config.json"));
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(config["id2label"]["1"], "positive");
    let lineage = read(&dir.join("out/m/peftc.lineage.json"));
    let adapter_lineage = read(&dir.join("out/a/peftc.lineage.json"));
    let before = adapter_lineage["metrics"]["check.loss"].as_f64().unwrap();
    let after = lineage["metrics"]["m.after_merge.loss"].as_f64().unwrap();
    assert!((before - after).abs() < 1e-5, "{before} vs {after}");
    assert_eq!(
        adapter_lineage["metrics"]["check.accuracy"],
        lineage["metrics"]["m.after_merge.accuracy"]
    );
    // The trained head is in the merged weights, not the base's.
    let tensors = |p: std::path::PathBuf| {
        candle_core::safetensors::load(p, &candle_core::Device::Cpu).unwrap()
    };
    let merged = tensors(dir.join("out/m/model.safetensors"));
    let base = tensors(dir.join("model/model.safetensors"));
    let adapter = tensors(dir.join("out/a/adapter_model.safetensors"));
    let mut names: Vec<&String> = merged.keys().collect();
    let mut base_names: Vec<&String> = base.keys().collect();
    names.sort();
    base_names.sort();
    assert_eq!(names, base_names);
    let head = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(
        head(&merged["classifier.weight"]),
        head(&adapter["base_model.model.classifier.weight"])
    );
    match std::env::var_os("PEFTC_PYTHON").filter(|p| std::path::Path::new(p).exists()) {
        Some(py) => {
            let ids = dir.join("ids.json");
            std::fs::write(&ids, "[[2, 5, 7, 9, 3], [2, 11, 4, 3]]").unwrap();
            let result = dir.join("check.json");
            let status = std::process::Command::new(py)
                .arg(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("tests/parity/check_merged_export.py"),
                )
                .args([
                    dir.join("model"),
                    dir.join("out/a"),
                    dir.join("out/m"),
                    ids,
                    result.clone(),
                ])
                .arg("seq_cls")
                .env("PYTHONWARNINGS", "ignore")
                .output()
                .unwrap();
            assert!(
                status.status.success(),
                "{}",
                String::from_utf8_lossy(&status.stderr)
            );
            let check = read(&result);
            assert_eq!(check["missing"], serde_json::json!([]), "{check}");
            assert_eq!(check["unexpected"], serde_json::json!([]), "{check}");
            let d = check["max_diff"].as_f64().unwrap();
            assert!(d < 1e-5, "merged classifier vs PEFT merge_and_unload: {d}");
            eprintln!("merged classifier vs PEFT merge_and_unload: logits within {d:.1e}");
        }
        None => {
            eprintln!("skipped: the transformers check of the merged folder (set PEFTC_PYTHON)")
        }
    }
}
