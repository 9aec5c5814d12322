//! `peftc.lock`: what it records, stable text, and drift detection against the previous lock.

use super::support::{standard_plan, Fixture};
use peftc::exec::{Drift, Lockfile};
use peftc::plan::Digest;
use serde_json::json;

#[test]
fn the_lock_records_files_stages_and_resolved_inputs() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "").with_resolved("model.revision", json!("abc123"));
    let report = fx.run(&plan);
    let lock = fx.write_lock(&plan, &report);
    assert_eq!(lock.stages.len(), 6);
    assert_eq!(
        lock.files.keys().collect::<Vec<_>>(),
        ["a.txt", "b.txt", "c.txt"]
    );
    assert_eq!(lock.files.get("a.txt"), Some(&Digest::of_bytes(b"alpha")));
    assert_eq!(lock.resolved.get("model.revision"), Some(&json!("abc123")));
    let join = lock.stages.get("join").expect("join");
    assert_eq!(
        Some(&join.key),
        report.get("join").and_then(|r| r.key.as_ref())
    );
    assert_eq!(join.stage_key.digest(), join.key);
    // Reading back gives the same lock; writing twice gives the same bytes.
    let read = Lockfile::read(&fx.lock_path())
        .expect("read")
        .expect("exists");
    assert_eq!(read, lock);
    assert_eq!(
        read.to_json(),
        std::fs::read_to_string(fx.lock_path()).expect("text")
    );
    let text = read.to_json();
    assert!(
        text.find("\"final\"") < text.find("\"join\""),
        "stage ids are sorted"
    );
}

#[test]
fn drift_names_changed_files_keys_and_resolved_inputs() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "").with_resolved("model.revision", json!("abc123"));
    let old = fx.write_lock(&plan, &fx.run(&plan));

    fx.write("c.txt", "gamma 2");
    let plan2 = standard_plan("+", "").with_resolved("model.revision", json!("def456"));
    let new = Lockfile::update(Some(&old), &plan2, &fx.run(&plan2));
    let drift = old.drift(&new);
    let c_new = Digest::of_bytes(b"gamma 2");
    assert!(drift.contains(&Drift::FileChanged {
        path: "c.txt".into(),
        old: Digest::of_bytes(b"gamma"),
        new: c_new
    }));
    assert!(drift.contains(&Drift::ResolvedChanged {
        name: "model.revision".into(),
        old: Some(json!("abc123")),
        new: Some(json!("def456"))
    }));
    let changed: Vec<&str> = drift
        .iter()
        .filter_map(|d| match d {
            Drift::StageKeyChanged { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(changed, ["other", "src_c"]);
    assert_eq!(drift.len(), 4);
    assert!(old.drift(&old).is_empty());
}

#[test]
fn the_same_key_with_another_output_is_reported_as_non_determinism() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let old = fx.write_lock(&plan, &fx.run(&plan));
    let mut new = old.clone();
    if let Some(s) = new.stages.get_mut("join") {
        s.output = Digest::of_bytes(b"something else");
    }
    let key = old.stages.get("join").map(|s| s.key.clone()).expect("join");
    assert_eq!(
        old.drift(&new),
        [Drift::OutputChanged {
            id: "join".into(),
            key: key.clone()
        }]
    );
    assert_eq!(
        old.drift(&new)[0].describe(),
        format!(
            "stage join gave a different output for the same key {} (not deterministic)",
            key.short()
        )
    );
}

#[test]
fn stages_not_reached_keep_their_previous_lock_entry() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let old = fx.write_lock(&plan, &fx.run(&plan));
    let mut config = fx.config();
    config.only = vec!["src_a".into()];
    let report = fx.run_with(&plan, &config);
    let new = Lockfile::update(Some(&old), &plan, &report);
    assert_eq!(new, old);
}

#[test]
fn current_files_match_the_lock_until_a_file_changes() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let lock = fx.write_lock(&plan, &fx.run(&plan));
    let hasher = peftc::exec::FileHasher::in_memory();
    assert_eq!(
        Lockfile::current_files(&plan, fx.root(), &hasher).expect("hash"),
        lock.files
    );
    fx.write("b.txt", "beta 2");
    let now = Lockfile::current_files(&plan, fx.root(), &hasher).expect("hash");
    assert_eq!(now.get("b.txt"), Some(&Digest::of_bytes(b"beta 2")));
    assert_eq!(now.get("a.txt"), lock.files.get("a.txt"));
}

#[test]
fn cache_and_lock_live_next_to_the_pipeline() {
    let pipeline = std::path::Path::new("examples/sentiment/main.peft");
    assert_eq!(
        peftc::exec::Cache::default_dir(pipeline),
        std::path::Path::new("examples/sentiment/.peft")
    );
    assert_eq!(
        Lockfile::default_path(pipeline),
        std::path::Path::new("examples/sentiment/peftc.lock")
    );
}
