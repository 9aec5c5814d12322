//! `peftc watch` with running: a real run of the tiny BERT fixture on 40 rows; a gate edit re-runs
//! only the gate; a change during a long training cancels it and starts the new run.

use super::support::{bert_pipeline, checkpoints, save, write_data, Watch};

#[test]
fn a_gate_threshold_edit_reruns_only_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let file = dir.path().join("p.peft");
    save(&file, &bert_pipeline("10%", 2, 4));
    let mut w = Watch::start(&file, &[]);
    assert_eq!(
        w.wait_for("[watch] run: ran:"),
        "[watch] run: ran: model.bert, tokenize.rev, train.tb, eval.eb, gate.eb; cached: -; failed: -"
    );

    save(&file, &bert_pipeline("100%", 2, 4));
    assert_eq!(
        w.wait_for("[watch] stages changed:"),
        "[watch] stages changed: gate.eb"
    );
    let cycle = w.collect_until("[watch] run: ran:");
    let gate = cycle
        .iter()
        .find(|l| l.starts_with("[watch] gate "))
        .cloned()
        .unwrap_or_default();
    assert!(
        gate.contains("failed"),
        "a 100% accuracy gate on a 2-step model passed: {cycle:?}"
    );
    assert_eq!(
        cycle.last().map(String::as_str),
        Some("[watch] run: ran: gate.eb; cached: model.bert, tokenize.rev, train.tb, eval.eb; failed: -")
    );

    // A comment changes no stage: nothing runs.
    save(
        &file,
        &format!("// try a lower bar next\n{}", bert_pipeline("100%", 2, 4)),
    );
    let verdict = w.wait_until("a verdict", |l| {
        l.starts_with("[watch] nothing to run") || l.starts_with("[watch] stages changed")
    });
    assert_eq!(verdict, "[watch] nothing to run: no stage changed");
}

#[test]
fn a_change_during_a_long_training_cancels_it_and_starts_the_new_run() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let file = dir.path().join("p.peft");
    save(&file, &bert_pipeline("10%", 1_000_000, 4));
    let mut w = Watch::start(&file, &[]);
    w.wait_until("training running", |l| {
        l.starts_with("[watch] stage train") && l.ends_with("running")
    });

    save(&file, &bert_pipeline("10%", 2, 8));
    let cycle = w.collect_until("[watch] cancelled stale run");
    assert!(
        cycle
            .iter()
            .any(|l| l.starts_with("[watch] run: cancelled")),
        "no cancelled run in {cycle:?}"
    );
    // The stopped training kept its checkpoint, to resume from if the change is undone.
    assert!(
        !checkpoints(dir.path()).is_empty(),
        "no checkpoint kept after the cancel"
    );
    assert_eq!(
        w.wait_for("[watch] run: ran:"),
        "[watch] run: ran: train.tb, eval.eb, gate.eb; cached: model.bert, tokenize.rev; failed: -"
    );
}

/// Training outputs carry f32 losses widened to f64; the cache entry's output digest is checked
/// against the manifest read back from disk, so such floats must parse back bit for bit (a
/// mismatch made about one cached train in five re-run on the next watch cycle).
#[test]
fn cache_entries_with_f32_losses_verify_after_reading_back() {
    use peftc::exec::{Cache, Lookup};
    use peftc::plan::{Stage, StageKey};
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join(".peft")).unwrap();
    let mut corrupt = 0;
    for i in 0..50u32 {
        let loss = f64::from(f32::from_bits(
            0x3f80_0000 | (i.wrapping_mul(2_654_435_761) >> 9),
        ));
        let stage = Stage::new("train.t", "train", serde_json::json!({ "i": i }));
        let key = StageKey::new(&stage, BTreeMap::new(), BTreeMap::new());
        let temp = cache.temp_entry(&key.digest()).unwrap();
        std::fs::write(temp.out_dir().join("summary.json"), b"{}").unwrap();
        let output = serde_json::json!({ "final_loss": loss, "steps": 2 });
        let new = peftc::exec::cache::NewEntry {
            stage_key: &key,
            stage_name: "t",
            output,
            gate: None,
            metadata: serde_json::json!({}),
        };
        cache.commit(temp, new).unwrap();
        if !matches!(cache.lookup(&key.digest()).unwrap(), Lookup::Hit(_)) {
            corrupt += 1;
        }
    }
    assert_eq!(corrupt, 0, "{corrupt} of 50 entries failed verification");
}

#[test]
fn ctrl_c_during_training_stops_at_a_safe_point_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let file = dir.path().join("p.peft");
    save(&file, &bert_pipeline("10%", 1_000_000, 4));
    let mut w = Watch::start(&file, &[]);
    w.wait_until("training running", |l| {
        l.starts_with("[watch] stage train") && l.ends_with("running")
    });
    let status = w.interrupt();
    assert_eq!(status.code(), Some(130));
    assert!(
        !checkpoints(dir.path()).is_empty(),
        "no checkpoint kept after Ctrl-C"
    );
}
