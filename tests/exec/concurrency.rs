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

/// Waits until `n` callers have arrived in the current round (or 5 s pass); true if they did.
/// Proves concurrency without timing: serial execution would never complete a round.
struct Rendezvous {
    n: usize,
    state: std::sync::Mutex<(usize, usize)>,
    cv: std::sync::Condvar,
}

impl Rendezvous {
    fn new(n: usize) -> Self {
        Rendezvous {
            n,
            state: std::sync::Mutex::new((0, 0)),
            cv: std::sync::Condvar::new(),
        }
    }

    fn arrive(&self) -> bool {
        let Ok(mut g) = self.state.lock() else {
            return false;
        };
        let round = g.1;
        g.0 += 1;
        if g.0 == self.n {
            *g = (0, round + 1);
            self.cv.notify_all();
            return true;
        }
        let timeout = std::time::Duration::from_secs(5);
        match self.cv.wait_timeout_while(g, timeout, |g| g.1 == round) {
            Ok((_, t)) => !t.timed_out(),
            Err(_) => false,
        }
    }
}

#[test]
fn independent_stages_run_concurrently_up_to_the_job_limit() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let fx = Fixture::new();
    let (live, peak, all_met) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicBool::new(true),
    );
    let meet = Rendezvous::new(3);
    let stages: Vec<Stage> = (0..6)
        .map(|i| Stage::new(format!("s{i}"), "w", json!({ "i": i })))
        .collect();
    let plan = Plan::new(stages).expect("plan");
    let exec =
        |_: &Stage, _: &peftc::exec::StageContext| -> anyhow::Result<peftc::exec::StageOutcome> {
            peak.fetch_max(live.fetch_add(1, SeqCst) + 1, SeqCst);
            if !meet.arrive() {
                all_met.store(false, SeqCst);
            }
            live.fetch_sub(1, SeqCst);
            Ok(peftc::exec::StageOutcome::done())
        };
    let mut config = fx.config();
    config.jobs = 3;
    let report = run(&plan, &fx.cache(), &config, &exec).expect("run");
    assert_eq!(report.executed().len(), 6);
    assert!(
        all_met.load(SeqCst),
        "three stages never ran at the same time"
    );
    assert_eq!(peak.load(SeqCst), 3);
}

#[test]
fn exclusive_kinds_never_run_beside_each_other() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let fx = Fixture::new();
    let (live_train, peak_train, met) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicBool::new(false),
    );
    let meet = Rendezvous::new(2);
    let mut stages: Vec<Stage> = (0..3)
        .map(|i| Stage::new(format!("train{i}"), "train", json!({ "i": i })))
        .collect();
    stages.push(Stage::new("tok", "tokenize", json!({})));
    let plan = Plan::new(stages).expect("plan");
    let exec = |stage: &Stage,
                _: &peftc::exec::StageContext|
     -> anyhow::Result<peftc::exec::StageOutcome> {
        let train = stage.kind == "train";
        if train {
            peak_train.fetch_max(live_train.fetch_add(1, SeqCst) + 1, SeqCst);
        }
        // The first training stage and the tokenize stage meet: they run side by side.
        if stage.id.as_str() == "train0" || stage.id.as_str() == "tok" {
            met.fetch_or(meet.arrive(), SeqCst);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        if train {
            live_train.fetch_sub(1, SeqCst);
        }
        Ok(peftc::exec::StageOutcome::done())
    };
    let mut config = fx.config();
    config.jobs = 4;
    config.exclusive_kinds = ["train".to_owned()].into();
    let report = run(&plan, &fx.cache(), &config, &exec).expect("run");
    assert_eq!(report.executed().len(), 4);
    assert_eq!(peak_train.load(SeqCst), 1);
    assert!(
        met.load(SeqCst),
        "a light stage did not run beside a training stage"
    );
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
            // One write per line: with O_APPEND a single write is never interleaved with the
            // other process's (`writeln!` may split a line into several writes).
            f.write_all(format!("{} {}\n", std::process::id(), stage.id).as_bytes())?;
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
