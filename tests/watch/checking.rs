//! `peftc watch --no-run`: diagnostics on every save, the plan comparison that says when nothing
//! changed, deleted files, data files, Ctrl-C.

use super::support::{bert_pipeline, save, write_data, Watch};

/// A causal pipeline over `hf("gpt2")`: the checker takes its shapes from the stdlib presets,
/// so no weights are needed.
fn gpt2_pipeline(r: u32) -> String {
    format!(
        r#"model m = hf("gpt2")
dataset qa = jsonl("d.jsonl") {{
  prompt = field("text")
  completion = field("label")
  split = {{ train = 90%, eval = 10%, seed = 1 }}
}}
adapter a = lora {{ r = {r}, alpha = 16, targets = [c_attn] }}
train t {{
  model = m
  adapters = [a]
  data = qa.train
}}
eval e {{
  model = t
  data = qa.eval
  metrics = [loss]
  gate loss < baseline.loss
}}
"#
    )
}

/// The verdict line that follows a clean check: nothing changed, or which stages did.
fn verdict(w: &mut Watch) -> String {
    w.wait_until("a plan verdict", |l| {
        l.starts_with("[watch] nothing to run") || l.starts_with("[watch] stages changed")
    })
}

#[test]
fn invalid_save_shows_the_diagnostic_and_fixing_it_resumes() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let file = dir.path().join("p.peft");
    let good = gpt2_pipeline(8);
    save(&file, &good);
    let mut w = Watch::start(&file, &["--no-run"]);
    assert_eq!(
        w.wait_for("[watch] check:"),
        "[watch] check: 0 errors, 0 warnings"
    );
    assert_eq!(
        verdict(&mut w),
        "[watch] stages changed: eval.e, gate.e, model.m, tokenize.qa, train.t"
    );

    save(&file, &good.replace("r = 8", "r 8"));
    w.wait_for(&format!("[watch] change: {}", file.display()));
    let cycle = w.collect_until("[watch] check:");
    assert!(
        cycle.iter().any(|l| l.trim() == "E0001"),
        "no E0001 in {cycle:?}"
    );
    assert!(
        cycle.iter().any(|l| l.contains("expected `=` or `:`")),
        "no message in {cycle:?}"
    );
    assert_eq!(
        cycle.last().map(String::as_str),
        Some("[watch] check: 1 errors, 0 warnings")
    );

    // Back to the last valid program: every stage is as before.
    save(&file, &good);
    assert_eq!(
        w.wait_for("[watch] check:"),
        "[watch] check: 0 errors, 0 warnings"
    );
    assert_eq!(verdict(&mut w), "[watch] nothing to run: no stage changed");

    // A comment and a formatting change leave every stage key the same.
    save(
        &file,
        &format!(
            "// tuned on Tuesday\n{}",
            good.replace("r = 8,", "r  =  8 ,")
        ),
    );
    assert_eq!(
        w.wait_for("[watch] check:"),
        "[watch] check: 0 errors, 0 warnings"
    );
    assert_eq!(verdict(&mut w), "[watch] nothing to run: no stage changed");

    // A rank change touches the train and what depends on it, not the model or the data.
    save(&file, &gpt2_pipeline(4));
    assert_eq!(
        verdict(&mut w),
        "[watch] stages changed: eval.e, gate.e, train.t"
    );
}

#[test]
fn a_deleted_pipeline_is_reported_and_watched_for_its_return() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let file = dir.path().join("p.peft");
    save(&file, &gpt2_pipeline(8));
    let mut w = Watch::start(&file, &["--no-run"]);
    w.wait_for("[watch] stages changed:");

    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        w.wait_for("[watch] deleted:"),
        format!(
            "[watch] deleted: {} (watching for its return)",
            file.display()
        )
    );
    w.wait_for("[watch] waiting:");

    save(&file, &gpt2_pipeline(8));
    w.wait_for(&format!("[watch] change: {}", file.display()));
    assert_eq!(
        w.wait_for("[watch] check:"),
        "[watch] check: 0 errors, 0 warnings"
    );
    assert_eq!(verdict(&mut w), "[watch] nothing to run: no stage changed");

    // A plain in-place write (no rename) is seen too.
    std::fs::write(&file, gpt2_pipeline(16)).unwrap();
    assert_eq!(
        verdict(&mut w),
        "[watch] stages changed: eval.e, gate.e, train.t"
    );
}

#[test]
fn a_data_file_edit_changes_the_stages_that_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_data(dir.path());
    let file = dir.path().join("p.peft");
    save(&file, &bert_pipeline("10%", 2, 4));
    let mut w = Watch::start(&file, &["--no-run"]);
    assert_eq!(
        w.wait_for("[watch] check:"),
        "[watch] check: 0 errors, 0 warnings"
    );
    w.wait_for("[watch] stages changed:");

    let mut text = std::fs::read_to_string(&data).unwrap();
    text.push_str("{\"text\": \"one more row mid\", \"label\": \"mid\"}\n");
    save(&data, &text);
    w.wait_for(&format!("[watch] change: {}", data.display()));
    assert_eq!(
        verdict(&mut w),
        "[watch] stages changed: eval.eb, gate.eb, tokenize.rev, train.tb"
    );

    // Deleting the data file is an error in the pipeline; it never stops the watcher.
    std::fs::remove_file(&data).unwrap();
    w.wait_for(&format!("[watch] deleted: {}", data.display()));
    let errors = w.wait_for("[watch] check:");
    assert_ne!(errors, "[watch] check: 0 errors, 0 warnings");
    save(&data, &text);
    assert_eq!(
        w.wait_for("[watch] check:"),
        "[watch] check: 0 errors, 0 warnings"
    );
    assert_eq!(verdict(&mut w), "[watch] nothing to run: no stage changed");
}

#[test]
fn ctrl_c_exits_with_130() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let file = dir.path().join("p.peft");
    save(&file, &gpt2_pipeline(8));
    let mut w = Watch::start(&file, &["--no-run"]);
    w.wait_for("[watch] stages changed:");
    let status = w.interrupt();
    assert_eq!(status.code(), Some(130));
}

#[test]
fn an_imported_file_is_watched_too() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let lib = dir.path().join("adapters.peft");
    save(
        &lib,
        "adapter a = lora { r = 8, alpha = 16, targets = [c_attn] }\n",
    );
    let main: String = gpt2_pipeline(8)
        .lines()
        .filter(|l| !l.starts_with("adapter "))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = dir.path().join("p.peft");
    save(&file, &format!("use \"adapters.peft\"\n{main}"));
    let mut w = Watch::start(&file, &["--no-run"]);
    assert_eq!(
        w.wait_for("[watch] check:"),
        "[watch] check: 0 errors, 0 warnings"
    );
    w.wait_for("[watch] stages changed:");

    save(
        &lib,
        "adapter a = lora { r = 4, alpha = 16, targets = [c_attn] }\n",
    );
    w.wait_for(&format!("[watch] change: {}", lib.display()));
    assert_eq!(
        verdict(&mut w),
        "[watch] stages changed: eval.e, gate.e, train.t"
    );

    save(
        &lib,
        "adapter a = lora { r = 4, alpha = 16, targets = [c_atn] }\n",
    );
    let errors = w.wait_for("[watch] check:");
    assert_ne!(errors, "[watch] check: 0 errors, 0 warnings");
    save(
        &lib,
        "adapter a = lora { r = 4, alpha = 16, targets = [c_attn] }\n",
    );
    assert_eq!(
        w.wait_for("[watch] check:"),
        "[watch] check: 0 errors, 0 warnings"
    );
    assert_eq!(verdict(&mut w), "[watch] nothing to run: no stage changed");

    // A deleted import is an error, and its return is seen.
    std::fs::remove_file(&lib).unwrap();
    w.wait_for(&format!("[watch] deleted: {}", lib.display()));
    let errors = w.wait_for("[watch] check:");
    assert_ne!(errors, "[watch] check: 0 errors, 0 warnings");
    save(
        &lib,
        "adapter a = lora { r = 4, alpha = 16, targets = [c_attn] }\n",
    );
    w.wait_for(&format!("[watch] change: {}", lib.display()));
    assert_eq!(
        w.wait_for("[watch] check:"),
        "[watch] check: 0 errors, 0 warnings"
    );
    assert_eq!(verdict(&mut w), "[watch] nothing to run: no stage changed");
}
