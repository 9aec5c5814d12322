//! `sweep [...]` and `escalate [...]` end to end on the tiny BERT pipeline: a sweep trains and
//! evaluates every point and exports the best point whose gates pass; a sweep where no point
//! passes blocks the export with exit code 3; an escalation retries with the next value while
//! a gate fails, and a second run replays the whole search from the cache.

use super::support::Pipeline;
use std::path::{Path, PathBuf};

const SWEEP: &str = "
train swept {
  model     = tiny
  adapters  = [a]
  data      = reviews.train
  max_steps = 4
  batch     = 8
  lr        = sweep [1e-5, 1e-2, 1e-3]
}

eval swept_check {
  model   = swept
  data    = reviews.eval
  metrics = [loss, accuracy]
  gate loss < baseline.loss
}

export swept.a to \"out/swept\" as peft
";

/// The `out/` folder of stage `stage`'s cache entry, found through `peftc.lock`.
fn entry_dir(root: &Path, stage: &str) -> PathBuf {
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("peftc.lock")).unwrap()).unwrap();
    let key = lock["stages"][stage]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("`{stage}` is not in peftc.lock"));
    root.join(".peft/entries").join(key).join("out")
}

#[test]
fn a_sweep_evaluates_every_point_and_exports_the_best_passing_one() {
    let p = Pipeline::new();
    p.edit(|s| format!("{s}{SWEEP}"));
    let run = p.run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ran = run.ran();
    for lr in ["0.00001", "0.01", "0.001"] {
        assert!(ran.contains(&format!("train swept[lr={lr}]")), "{ran:?}");
        assert!(
            ran.contains(&format!("eval swept_check[lr={lr}]")),
            "{ran:?}"
        );
    }
    assert!(ran.contains(&"select swept".to_string()), "{ran:?}");

    // The selection: every point with its loss, the lowest passing one chosen.
    let dir = entry_dir(p.dir.path(), "select.swept");
    let sel: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("selection.json")).unwrap()).unwrap();
    assert_eq!(sel["rank"], "loss");
    let points = sel["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    let best = points
        .iter()
        .filter(|q| q["passed"] == true)
        .min_by(|a, b| {
            a["score"]
                .as_f64()
                .partial_cmp(&b["score"].as_f64())
                .unwrap()
        })
        .expect("a passing point");
    let chosen = best["point"].as_str().unwrap();
    assert!(
        run.stderr.contains(&format!("* {chosen}")),
        "the summary marks the chosen point\n{}",
        run.stderr
    );

    // The export holds exactly the chosen point's adapter.
    let train_dir = entry_dir(p.dir.path(), &format!("train.swept[{chosen}]"));
    let adapter = std::fs::read_dir(train_dir.join("adapters"))
        .unwrap()
        .flatten()
        .next()
        .expect("one adapter")
        .path();
    let trained = std::fs::read(adapter.join("adapter_model.safetensors")).unwrap();
    let exported = std::fs::read(p.dir.path().join("out/swept/adapter_model.safetensors")).unwrap();
    assert_eq!(trained, exported);

    // Nothing changed: nothing runs.
    let again = p.run();
    assert_eq!(again.code, 0);
    assert!(again.ran().is_empty(), "{:?}", again.ran());
}

#[test]
fn a_sweep_where_no_point_passes_exits_3_and_blocks_the_export() {
    let p = Pipeline::new();
    p.edit(|s| {
        format!(
            "{s}{}",
            // A bar no tiny model reaches (`loss < 0` can never pass and is refused by check).
            SWEEP.replace("gate loss < baseline.loss", "gate loss < 0.000001")
        )
    });
    let run = p.run();
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no point of the sweep passed its gates"),
        "{}",
        run.stderr
    );
    for lr in ["0.00001", "0.01", "0.001"] {
        assert!(
            run.stderr
                .contains(&format!("lr={lr}: gate `loss < 0.000001` failed")),
            "{}",
            run.stderr
        );
    }
    assert!(!p.dir.path().join("out/swept").exists());
}

#[test]
fn escalation_retries_with_the_next_value_until_the_gate_passes() {
    let p = Pipeline::new();
    p.edit(|s| {
        format!(
            "{s}
train esc {{
  model     = tiny
  adapters  = [a]
  data      = reviews.train
  max_steps = 4
  batch     = 8
  lr        = escalate [1e-9, 1e-2]
}}

eval esc_check {{
  model   = esc
  data    = reviews.eval
  metrics = [loss]
  gate loss < baseline.loss - 0.01
}}

export esc.a to \"out/esc\" as peft
"
        )
    });
    let run = p.run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("escalating `esc`: a gate failed with lr = 0.000000001; trying lr = 0.01"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("`esc` passed its gates with lr = 0.01"),
        "{}",
        run.stderr
    );
    // Both values were trained, in order; the export is the second.
    let trains = run
        .ran()
        .into_iter()
        .filter(|r| r.starts_with("train esc"))
        .count();
    assert_eq!(trains, 2, "{:?}", run.ran());
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.dir.path().join("out/esc/peftc.lineage.json")).unwrap(),
    )
    .unwrap();
    assert!(config.to_string().contains("0.01"), "{config}");

    // A second run replays the search from the cache: nothing executes, same verdict.
    let again = p.run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.ran().is_empty(), "{:?}", again.ran());
    assert!(again
        .stderr
        .contains("`esc` passed its gates with lr = 0.01"));
}
