//! Cache hits, what re-runs after a change (config, file, early cutoff), corrupt entries,
//! `--only` / `--force`, and cancellation.

use super::support::{read_out, standard_plan, Fixture};
use peftc::exec::{plan_status, CancelFlag, StageRun, StatusConfig};
use peftc::plan::{Reason, StageState};
use std::path::PathBuf;

fn status_of(fx: &Fixture, plan: &peftc::plan::Plan) -> peftc::plan::PlanStatus {
    let prev = peftc::exec::Lockfile::read(&fx.lock_path()).expect("read lock");
    let config = StatusConfig {
        root: fx.root().to_path_buf(),
        previous: prev.as_ref(),
        ..Default::default()
    };
    plan_status(plan, &fx.cache(), &config).expect("status")
}

#[test]
fn a_plan_run_twice_runs_nothing_the_second_time() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let (first, ran) = fx.run_counting(&plan);
    assert_eq!(ran, ["final", "join", "other", "src_a", "src_b", "src_c"]);
    assert_eq!(first.exit_code(), 0);
    assert_eq!(read_out(&first, "join", "out.txt"), "A:alpha+B:beta");
    assert_eq!(read_out(&first, "final", "out.txt"), "A:alpha+B:beta");
    fx.write_lock(&plan, &first);

    let status = status_of(&fx, &plan);
    assert!(
        status.stages.iter().all(|s| s.state == StageState::Cached),
        "{status:?}"
    );

    let (second, ran) = fx.run_counting(&plan);
    assert!(ran.is_empty(), "ran {ran:?}");
    assert!(second.stages.iter().all(|s| s.state == StageRun::Cached));
    assert_eq!(second.summary(), "6 stages: 0 ran, 6 cached");
    for (a, b) in first.stages.iter().zip(&second.stages) {
        assert_eq!(a.key, b.key);
        assert_eq!(a.output_digest, b.output_digest);
    }
}

#[test]
fn changing_one_config_reruns_the_stage_and_its_dependants_only() {
    let fx = Fixture::new();
    let report = fx.run(&standard_plan("+", ""));
    fx.write_lock(&standard_plan("+", ""), &report);

    let changed = standard_plan("*", "");
    let status = status_of(&fx, &changed);
    let join = status.get("join").expect("join");
    assert_eq!(join.state, StageState::ToRun);
    assert_eq!(
        join.reasons,
        [Reason::ConfigChanged {
            fields: vec!["sep".into()]
        }]
    );
    assert_eq!(
        status.get("final").map(|s| s.state),
        Some(StageState::Waiting)
    );
    assert_eq!(
        status.get("other").map(|s| s.state),
        Some(StageState::Cached)
    );

    let (report, ran) = fx.run_counting(&changed);
    assert_eq!(ran, ["final", "join"]);
    assert_eq!(read_out(&report, "final", "out.txt"), "A:alpha*B:beta");
}

#[test]
fn changing_a_file_reruns_only_its_branch() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let report = fx.run(&plan);
    fx.write_lock(&plan, &report);

    fx.write("c.txt", "gamma, edited");
    let status = status_of(&fx, &plan);
    let src_c = status.get("src_c").expect("src_c");
    assert_eq!(
        src_c.reasons,
        [Reason::FileChanged {
            slot: "data".into(),
            path: PathBuf::from("c.txt")
        }]
    );
    let other = status.get("other").expect("other");
    assert_eq!(other.state, StageState::Waiting);
    assert_eq!(
        other.reasons,
        [Reason::InputPending {
            slot: "only".into(),
            stage: "src_c".into()
        }]
    );

    let (report, ran) = fx.run_counting(&plan);
    assert_eq!(ran, ["other", "src_c"]);
    assert_eq!(read_out(&report, "other", "out.txt"), "C:gamma, edited");
    fx.write_lock(&plan, &report);
    // Once run, the dependant's reason names the changed input if its entry is gone.
    let status = status_of(&fx, &plan);
    assert!(status.stages.iter().all(|s| s.state == StageState::Cached));
}

#[test]
fn early_cutoff_keeps_dependants_cached_when_a_rebuilt_output_is_identical() {
    let fx = Fixture::new();
    let report = fx.run(&standard_plan("+", ""));
    fx.write_lock(&standard_plan("+", ""), &report);
    let before = report.get("src_a").and_then(|r| r.output_digest.clone());

    let plan = standard_plan("+", "a comment that changes nothing");
    let status = status_of(&fx, &plan);
    assert_eq!(
        status.get("src_a").map(|s| s.reasons.clone()),
        Some(vec![Reason::ConfigChanged {
            fields: vec!["note".into()]
        }])
    );
    assert_eq!(
        status.get("join").map(|s| s.state),
        Some(StageState::Waiting)
    );

    let (report, ran) = fx.run_counting(&plan);
    assert_eq!(ran, ["src_a"]);
    assert_eq!(report.get("src_a").map(|r| &r.state), Some(&StageRun::Ran));
    assert_eq!(
        report.get("src_a").and_then(|r| r.output_digest.clone()),
        before
    );
    assert_eq!(
        report.get("join").map(|r| &r.state),
        Some(&StageRun::Cached)
    );
    assert_eq!(
        report.get("final").map(|r| &r.state),
        Some(&StageRun::Cached)
    );
}

#[test]
fn a_corrupted_entry_is_detected_removed_and_rebuilt() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let report = fx.run(&plan);
    let join_out = report
        .get("join")
        .and_then(|r| r.out_dir.clone())
        .expect("join out");
    std::fs::write(join_out.join("out.txt"), "A:alpha+B:bete").expect("corrupt");

    let (report, ran) = fx.run_counting(&plan);
    assert_eq!(ran, ["join"]);
    let join = report.get("join").expect("join");
    assert_eq!(join.state, StageRun::Ran);
    assert_eq!(
        join.corrupt_removed.as_deref(),
        Some("out/out.txt does not match its hash")
    );
    assert_eq!(read_out(&report, "join", "out.txt"), "A:alpha+B:beta");
    // The rebuilt output is identical, so the dependant stays cached.
    assert_eq!(
        report.get("final").map(|r| &r.state),
        Some(&StageRun::Cached)
    );

    // A broken manifest and an extra file are corrupt too.
    let src_b = report
        .get("src_b")
        .and_then(|r| r.out_dir.clone())
        .expect("src_b out");
    std::fs::write(
        src_b.parent().expect("entry").join("manifest.json"),
        "{not json",
    )
    .expect("corrupt");
    let other = report
        .get("other")
        .and_then(|r| r.out_dir.clone())
        .expect("other out");
    std::fs::write(other.join("stray.txt"), "x").expect("add file");
    let (report, ran) = fx.run_counting(&plan);
    assert_eq!(ran, ["other", "src_b"]);
    assert!(report
        .get("src_b")
        .and_then(|r| r.corrupt_removed.clone())
        .is_some_and(|w| w.starts_with("manifest.json is not valid")));
    assert_eq!(
        report
            .get("other")
            .and_then(|r| r.corrupt_removed.clone())
            .as_deref(),
        Some("unexpected file out/stray.txt")
    );
    assert_eq!(fx.run_counting(&plan).1, Vec::<String>::new());
}

#[test]
fn only_runs_the_selection_and_force_reruns_a_cached_stage() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let mut config = fx.config();
    config.only = vec!["join".into()];
    let report = fx.run_with(&plan, &config);
    assert_eq!(report.executed(), ["src_a", "src_b", "join"]);
    assert_eq!(
        report.get("other").map(|r| &r.state),
        Some(&StageRun::NotSelected)
    );
    assert_eq!(
        report.get("final").map(|r| &r.state),
        Some(&StageRun::NotSelected)
    );

    let mut config = fx.config();
    config.force = vec!["src_a".into()];
    let before = fx.counter.get("src_a");
    let report = fx.run_with(&plan, &config);
    assert_eq!(fx.counter.get("src_a"), before + 1);
    // Forced, identical output: join stays cached; final and other run for the first time.
    assert_eq!(
        report.get("join").map(|r| &r.state),
        Some(&StageRun::Cached)
    );
    assert_eq!(report.executed(), ["src_a", "src_c", "final", "other"]);

    let mut config = fx.config();
    config.only = vec!["nope".into()];
    let exec = super::support::executor(fx.counter.clone());
    let err = peftc::exec::run(&plan, &fx.cache(), &config, &exec).expect_err("unknown stage");
    assert!(
        err.to_string().starts_with("no stage `nope` in the plan"),
        "{err}"
    );
}

#[test]
fn cancel_stops_running_stages_and_starts_no_new_ones() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let cancel = CancelFlag::new();
    let mut config = fx.config();
    config.cancel = cancel.clone();
    config.jobs = 1;
    let counter = fx.counter.clone();
    let inner = super::support::executor(counter);
    let exec = move |stage: &peftc::plan::Stage, ctx: &peftc::exec::StageContext| {
        if stage.id.as_str() == "src_b" {
            ctx.cancel.cancel();
            // A safe point: the stage returns `Cancelled`.
            ctx.cancel.check()?;
        }
        inner(stage, ctx)
    };
    let report = peftc::exec::run(&plan, &fx.cache(), &config, &exec).expect("run");
    assert_eq!(report.get("src_a").map(|r| &r.state), Some(&StageRun::Ran));
    for id in ["src_b", "src_c", "join", "final", "other"] {
        assert_eq!(
            report.get(id).map(|r| &r.state),
            Some(&StageRun::Cancelled),
            "{id}"
        );
    }
    assert_eq!(report.exit_code(), 130);
    // Nothing half-written stays: the next run builds what was missing.
    let (_, ran) = fx.run_counting(&plan);
    assert_eq!(ran, ["final", "join", "other", "src_b", "src_c"]);
}

#[test]
fn renaming_and_reordering_stages_changes_no_key() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let first = fx.run(&plan);
    // The same work declared in another order, under other ids and names.
    let renamed = peftc::plan::Plan::new(
        plan.stages()
            .iter()
            .rev()
            .map(|s| {
                let mut s = s.clone();
                s.id = format!("renamed_{}", s.id).into();
                s.name = format!("Renamed {}", s.name);
                s.inputs = s
                    .inputs
                    .into_iter()
                    .map(|(k, v)| (k, format!("renamed_{v}").into()))
                    .collect();
                s
            })
            .collect(),
    )
    .expect("plan");
    let (second, ran) = fx.run_counting(&renamed);
    assert!(ran.is_empty(), "{ran:?}");
    for r in &first.stages {
        let other = second
            .get(&format!("renamed_{}", r.id))
            .expect("renamed stage");
        assert_eq!(other.key, r.key);
    }
}

#[test]
fn a_stage_s_tracing_events_go_to_its_log_file() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let exec = |stage: &peftc::plan::Stage,
                _: &peftc::exec::StageContext|
     -> anyhow::Result<peftc::exec::StageOutcome> {
        tracing::info!(loss = 0.5, "{} step 3", stage.id);
        tracing::debug!("not at the default level");
        Ok(peftc::exec::StageOutcome::done())
    };
    let report = peftc::exec::run(&plan, &fx.cache(), &fx.config(), &exec).expect("run");
    let log = report
        .get("join")
        .and_then(|r| r.log_path.clone())
        .expect("log path");
    assert_eq!(log.file_name().and_then(|n| n.to_str()), Some("join.log"));
    assert_eq!(
        std::fs::read_to_string(log).ok().as_deref(),
        // The empty timestamp keeps its separator: the subscriber keeps span timings.
        Some("  INFO join step 3 loss=0.5\n")
    );
}

#[test]
fn the_plan_names_a_corrupt_entry() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let report = fx.run(&plan);
    let out = report
        .get("src_c")
        .and_then(|r| r.out_dir.clone())
        .expect("out");
    std::fs::remove_file(out.join("data.txt")).expect("remove");
    let status = status_of(&fx, &plan);
    assert_eq!(
        status.get("src_c").map(|s| s.reasons.clone()),
        Some(vec![Reason::CorruptEntry {
            detail: "missing file out/data.txt".into()
        }])
    );
    assert_eq!(
        status.get("other").map(|s| s.state),
        Some(StageState::Waiting)
    );
}

#[test]
fn a_stage_stopped_midway_finds_its_checkpoint_on_the_next_run() {
    let fx = Fixture::new();
    let plan = peftc::plan::Plan::new(vec![peftc::plan::Stage::new(
        "train",
        "train",
        serde_json::json!({"steps": 10}),
    )])
    .expect("plan");
    // First run: writes a checkpoint at step 5, then dies (an error stands in for a kill).
    let crash = |_: &peftc::plan::Stage,
                 ctx: &peftc::exec::StageContext|
     -> anyhow::Result<peftc::exec::StageOutcome> {
        std::fs::write(ctx.checkpoint_dir.join("step"), "5")?;
        anyhow::bail!("killed at step 6")
    };
    let report = peftc::exec::run(&plan, &fx.cache(), &fx.config(), &crash).expect("run");
    assert!(matches!(
        report.get("train").map(|r| &r.state),
        Some(StageRun::Failed { .. })
    ));
    // Second run, same key: the checkpoint is there to resume from.
    let resume = |_: &peftc::plan::Stage,
                  ctx: &peftc::exec::StageContext|
     -> anyhow::Result<peftc::exec::StageOutcome> {
        let from: u64 = std::fs::read_to_string(ctx.checkpoint_dir.join("step"))?
            .trim()
            .parse()?;
        Ok(peftc::exec::StageOutcome::with_output(
            serde_json::json!({ "resumed_from": from }),
        ))
    };
    let report = peftc::exec::run(&plan, &fx.cache(), &fx.config(), &resume).expect("run");
    let train = report.get("train").expect("train");
    assert_eq!(train.state, StageRun::Ran);
    assert_eq!(train.output, serde_json::json!({"resumed_from": 5}));
    // Once the result is published the checkpoint folder is gone.
    let key = train.key.clone().expect("key");
    assert!(!fx.cache().checkpoint_dir(&key).exists());
}
