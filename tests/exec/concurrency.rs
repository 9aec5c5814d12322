//! Two runs on one cache at the same time (separate cache handles, as two processes would have)
//! both finish correctly and every stage executes exactly once.

use super::support::{executor, Counter, Fixture};
use peftc::exec::{run, Cache, StageRun};
use peftc::plan::{Plan, Stage};
use serde_json::json;

fn slow_plan() -> Plan {
    Plan::new(vec![
        Stage::new("a", "source", json!({})).file("data", "a.txt"),
        Stage::new("b", "source", json!({})).file("data", "b.txt"),
        Stage::new("ab", "slow", json!({"ms": 60}))
            .input("l", "a")
            .input("r", "b"),
        Stage::new("c", "slow", json!({"ms": 60})).input("x", "ab"),
        Stage::new("d", "slow", json!({"ms": 30})).input("x", "a"),
    ])
    .expect("plan")
}

#[test]
fn two_concurrent_runs_on_one_cache_both_finish_with_one_execution_per_stage() {
    let fx = Fixture::new();
    let counter = Counter::default();
    let plan = slow_plan();
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let counter = counter.clone();
                let plan = &plan;
                let fx = &fx;
                s.spawn(move || {
                    let cache = Cache::open(fx.cache_dir()).expect("cache");
                    let exec = executor(counter);
                    run(plan, &cache, &fx.config(), &exec).expect("run")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for id in ["a", "b", "ab", "c", "d"] {
        assert_eq!(
            counter.get(id),
            1,
            "stage {id} ran {} times",
            counter.get(id)
        );
    }
    for r in &reports {
        assert_eq!(r.exit_code(), 0);
        assert!(r
            .stages
            .iter()
            .all(|s| matches!(s.state, StageRun::Ran | StageRun::Cached)));
    }
    let (x, y) = (&reports[0], &reports[1]);
    for id in ["a", "b", "ab", "c", "d"] {
        assert_eq!(
            x.get(id).and_then(|r| r.output_digest.clone()),
            y.get(id).and_then(|r| r.output_digest.clone())
        );
    }
    let text = std::fs::read_to_string(
        x.get("c")
            .and_then(|r| r.out_dir.clone())
            .expect("c")
            .join("out.txt"),
    );
    assert_eq!(text.ok().as_deref(), Some("alpha+beta"));
    // No temporary folders are left behind.
    let tmp: Vec<_> = std::fs::read_dir(fx.cache_dir().join("tmp"))
        .expect("tmp")
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn independent_stages_run_concurrently_up_to_the_job_limit() {
    let fx = Fixture::new();
    let live = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stages: Vec<Stage> = (0..6)
        .map(|i| Stage::new(format!("s{i}"), "w", json!({ "i": i })))
        .collect();
    let plan = Plan::new(stages).expect("plan");
    let exec =
        |_: &Stage, _: &peftc::exec::StageContext| -> anyhow::Result<peftc::exec::StageOutcome> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = live.fetch_add(1, SeqCst) + 1;
            peak.fetch_max(now, SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(40));
            live.fetch_sub(1, SeqCst);
            Ok(peftc::exec::StageOutcome::done())
        };
    let mut config = fx.config();
    config.jobs = 3;
    let report = run(&plan, &fx.cache(), &config, &exec).expect("run");
    assert_eq!(report.executed().len(), 6);
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&peak), "peak concurrency {peak}");
}

/// Set in the children of [`two_processes_on_one_cache_build_each_stage_once`].
const CHILD_ENV: &str = "PEFTC_EXEC_TEST_CHILD_ROOT";

/// Runs in two modes: as the parent it starts two copies of this test binary (filtered to this
/// test) as separate processes on one cache; as a child (env var set) it runs the plan, logging
/// each execution to a shared file, and writes its exit code.
#[test]
fn two_processes_on_one_cache_build_each_stage_once() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        let root = std::path::PathBuf::from(root);
        let log = root.join("executions.log");
        let exec = move |stage: &Stage, ctx: &peftc::exec::StageContext| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&log)?;
            writeln!(f, "{} {}", std::process::id(), stage.id)?;
            executor(Counter::default())(stage, ctx)
        };
        let cache = Cache::open(root.join(".peft")).expect("cache");
        let report = run(
            &slow_plan(),
            &cache,
            &peftc::exec::RunConfig::new(&root),
            &exec,
        )
        .expect("run");
        let name = format!("exit-{}", std::process::id());
        std::fs::write(root.join(name), report.exit_code().to_string()).expect("write exit");
        return;
    }
    let fx = Fixture::new();
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "exec::concurrency::two_processes_on_one_cache_build_each_stage_once",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, fx.root())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success());
    }
    let log = std::fs::read_to_string(fx.root().join("executions.log")).expect("log");
    let mut ids: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "ab", "b", "c", "d"], "{log}");
    let exits: Vec<String> = std::fs::read_dir(fx.root())
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("exit-"))
        .map(|e| std::fs::read_to_string(e.path()).expect("exit"))
        .collect();
    assert_eq!(exits, ["0", "0"]);
}
