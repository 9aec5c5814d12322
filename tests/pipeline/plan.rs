//! The planner on checked programs: which stages a pipeline compiles to, how they are wired,
//! and that keys ignore names, order and comments. Snapshots of the rendered plan.

use peftc::check::{check_source, RealWorld};
use peftc::exec::{plan_status, Cache, StatusConfig};
use peftc::plan::lower::{lower, EscalationChoice};
use peftc::plan::{render, Plan};
use std::path::Path;

const MERGE: &str = r#"model m = hf("gpt2")
dataset d = jsonl("d.jsonl") {
  prompt = field("q")
  completion = field("a")
  split = { train = 80%, eval = 20%, seed = 1 }
}
adapter a = lora { r = 8, alpha = 16, targets = [c_attn] }
train t {
  model = m
  adapters = [a]
  data = d.train
  max_steps = 10
}
eval e {
  model = t
  data = d.eval
  metrics = [loss, perplexity]
  gate loss <= baseline.loss
}
merge mm = m + t.a
export mm to "out/merged" as merged
"#;

/// Checks `src` as `x.peft` in `dir` (which gets the data file) and lowers it.
fn plan_in(dir: &Path, src: &str) -> Plan {
    // Enough rows for every split part (the checker sizes splits from the rows it reads).
    let rows: String = (0..20)
        .map(|i| format!("{{\"q\": \"hi {i}\", \"a\": \"there\"}}\n"))
        .collect();
    std::fs::write(dir.join("d.jsonl"), rows).unwrap();
    let world = RealWorld::with_hf_home(dir.join("no-hf-cache"));
    let checked = check_source(&world, &dir.join("x.peft"), src);
    let errors: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    lower(&checked.program, &EscalationChoice::new()).expect("plan")
}

fn plan_of(src: &str) -> Plan {
    let tmp = tempfile::tempdir().unwrap();
    plan_in(tmp.path(), src)
}

fn ids(plan: &Plan) -> Vec<String> {
    plan.ordered().map(|s| s.id.to_string()).collect()
}

#[test]
fn a_merge_is_re_evaluated_and_its_export_waits_for_that_gate() {
    let plan = plan_of(MERGE);
    let all = ids(&plan);
    for id in [
        "model.m",
        "tokenize.d",
        "train.t",
        "eval.e",
        "gate.e",
        "merge.mm",
        "eval.mm.after_merge",
        "gate.mm.after_merge",
        "export.mm",
    ] {
        assert!(all.contains(&id.to_string()), "{id} missing from {all:?}");
    }
    let export = plan
        .stages()
        .iter()
        .find(|s| s.id.as_str() == "export.mm")
        .unwrap();
    let inputs: Vec<&str> = export.inputs.values().map(|v| v.as_str()).collect();
    assert!(inputs.contains(&"gate.mm.after_merge"), "{inputs:?}");
    let recheck = plan
        .stages()
        .iter()
        .find(|s| s.id.as_str() == "gate.mm.after_merge")
        .unwrap();
    let text = recheck.config.to_string();
    assert!(
        text.contains("loss <= e.loss * 1.05 (after merge)"),
        "{text}"
    );
    assert!(
        text.contains("perplexity <= e.perplexity * 1.05 (after merge)"),
        "{text}"
    );
}

#[test]
fn keys_ignore_names_order_and_comments() {
    let tmp = tempfile::tempdir().unwrap();
    let a = plan_in(tmp.path(), MERGE);
    let renamed = MERGE
        .replace("train t", "train tuned")
        .replace("+ t.a", "+ tuned.a")
        .replace("model = t\n", "model = tuned\n");
    let b = plan_in(tmp.path(), &format!("// a comment\n{renamed}"));
    let configs = |p: &Plan| -> Vec<String> {
        let mut v: Vec<String> = p
            .stages()
            .iter()
            .map(|s| format!("{} {}", s.kind, s.config))
            .collect();
        v.sort();
        v
    };
    assert_eq!(configs(&a), configs(&b));
}

#[test]
fn the_rendered_plan_of_a_new_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = plan_in(tmp.path(), MERGE);
    let cache = Cache::open(tmp.path().join(".peft")).unwrap();
    let status = plan_status(
        &plan,
        &cache,
        &StatusConfig {
            root: tmp.path().into(),
            ..Default::default()
        },
    )
    .unwrap();
    insta::assert_snapshot!(render::text(&plan, &status));
}
