//! `peftc watch` with running: a real run of the tiny BERT fixture on 40 rows; a gate edit re-runs
//! only the gate; a change during a long training cancels it and starts the new run.

use super::support::{bert_pipeline, save, write_data, Watch};

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
    assert_eq!(w.wait_for("[watch] stages changed:"), "[watch] stages changed: gate.eb");
    let cycle = w.collect_until("[watch] run: ran:");
    let gate = cycle.iter().find(|l| l.starts_with("[watch] gate ")).cloned().unwrap_or_default();
    assert!(gate.contains("failed"), "a 100% accuracy gate on a 2-step model passed: {cycle:?}");
    assert_eq!(
        cycle.last().map(String::as_str),
        Some("[watch] run: ran: gate.eb; cached: model.bert, tokenize.rev, train.tb, eval.eb; failed: -")
    );

    // A comment changes no stage: nothing runs.
    save(&file, &format!("// try a lower bar next\n{}", bert_pipeline("100%", 2, 4)));
    let verdict = w.wait_until("a verdict", |l| l.starts_with("[watch] nothing to run") || l.starts_with("[watch] stages changed"));
    assert_eq!(verdict, "[watch] nothing to run: no stage changed");
}

#[test]
fn a_change_during_a_long_training_cancels_it_and_starts_the_new_run() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let file = dir.path().join("p.peft");
    save(&file, &bert_pipeline("10%", 1_000_000, 4));
    let mut w = Watch::start(&file, &[]);
    w.wait_until("training running", |l| l.starts_with("[watch] stage train") && l.ends_with("running"));

    save(&file, &bert_pipeline("10%", 2, 8));
    let cycle = w.collect_until("[watch] cancelled stale run");
    assert!(cycle.iter().any(|l| l.starts_with("[watch] run: cancelled")), "no cancelled run in {cycle:?}");
    assert_eq!(
        w.wait_for("[watch] run: ran:"),
        "[watch] run: ran: train.tb, eval.eb, gate.eb; cached: model.bert, tokenize.rev; failed: -"
    );
}
