//! A failed stage skips its dependants while unrelated branches finish; a failed gate is its
//! own outcome (exit code 3), blocks dependants, is cached, and re-runs alone when only its
//! threshold changes.

use super::support::{gate_plan, Fixture};
use peftc::exec::{PlainReporter, StageRun};
use peftc::plan::{Plan, Stage};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

#[test]
fn a_failed_stage_skips_its_dependants_and_unrelated_branches_finish() {
    let fx = Fixture::new();
    let plan = Plan::new(vec![
        Stage::new("bad", "fail", json!({})),
        Stage::new("after_bad", "concat", json!({})).input("x", "bad"),
        Stage::new("last", "concat", json!({})).input("x", "after_bad"),
        Stage::new("good", "source", json!({})).file("data", "a.txt"),
        Stage::new("after_good", "concat", json!({})).input("x", "good"),
    ])
    .expect("plan");
    let lines = Lines::default();
    let mut config = fx.config();
    config.reporter = Arc::new(PlainReporter::new(lines.clone()));
    config.jobs = 1;
    let report = fx.run_with(&plan, &config);
    assert_eq!(
        report.get("bad").map(|r| &r.state),
        Some(&StageRun::Failed {
            error: "the bad stage broke on purpose".into()
        })
    );
    assert_eq!(
        report.get("after_bad").map(|r| &r.state),
        Some(&StageRun::Skipped {
            because: "bad".into()
        })
    );
    assert_eq!(
        report.get("last").map(|r| &r.state),
        Some(&StageRun::Skipped {
            because: "after_bad".into()
        })
    );
    assert_eq!(
        report.get("after_good").map(|r| &r.state),
        Some(&StageRun::Ran)
    );
    assert_eq!(report.exit_code(), 1);
    assert_eq!(fx.counter.get("after_bad"), 0);
    let log = report
        .get("bad")
        .and_then(|r| r.log_path.clone())
        .expect("log");
    assert_eq!(
        std::fs::read_to_string(log).ok().as_deref(),
        Some("error: the bad stage broke on purpose\n")
    );
    let text = lines.text();
    let expected = [
        "[run]     bad",
        "[failed]  bad: the bad stage broke on purpose",
        "[skipped] after_bad: input bad did not succeed",
        "[skipped] last: input after_bad did not succeed",
        "[run]     good",
    ];
    for line in expected {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // A failure is not cached: the next run tries again.
    let report = fx.run(&plan);
    assert_eq!(fx.counter.get("bad"), 2);
    assert_eq!(
        report.get("after_good").map(|r| &r.state),
        Some(&StageRun::Cached)
    );
}

#[test]
fn a_gate_failure_blocks_dependants_and_is_reported_distinctly() {
    let fx = Fixture::new();
    let report = fx.run(&gate_plan(0.7, 0.8));
    assert_eq!(
        report.get("gate").map(|r| &r.state),
        Some(&StageRun::GateFailed {
            message: "score 0.7 < 0.8".into(),
            cached: false
        })
    );
    assert_eq!(
        report.get("export").map(|r| &r.state),
        Some(&StageRun::Skipped {
            because: "gate".into()
        })
    );
    assert_eq!(report.get("side").map(|r| &r.state), Some(&StageRun::Ran));
    assert_eq!(report.exit_code(), 3);
    assert_eq!(fx.counter.get("export"), 0);

    // The verdict is cached: the same gate fails again without re-evaluating.
    let report = fx.run(&gate_plan(0.7, 0.8));
    assert_eq!(
        report.get("gate").map(|r| &r.state),
        Some(&StageRun::GateFailed {
            message: "score 0.7 < 0.8".into(),
            cached: true
        })
    );
    assert_eq!(fx.counter.get("gate"), 1);
    assert_eq!(report.exit_code(), 3);

    // Lowering only the threshold re-runs only the gate, which passes; the export runs.
    let (report, ran) = fx.run_counting(&gate_plan(0.7, 0.6));
    assert_eq!(ran, ["export", "gate"]);
    assert_eq!(
        report.get("metric").map(|r| &r.state),
        Some(&StageRun::Cached)
    );
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn a_failing_stage_and_a_failed_gate_together_exit_with_the_error_code() {
    let fx = Fixture::new();
    let mut stages: Vec<Stage> = gate_plan(0.1, 0.5).stages().to_vec();
    stages.push(Stage::new("bad", "fail", json!({})));
    let report = fx.run(&Plan::new(stages).expect("plan"));
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn a_panicking_stage_is_a_failure_not_a_crash() {
    let fx = Fixture::new();
    let plan = Plan::new(vec![
        Stage::new("p", "x", json!({})),
        Stage::new("q", "source", json!({})).file("data", "a.txt"),
    ])
    .expect("plan");
    let exec = |stage: &Stage,
                _: &peftc::exec::StageContext|
     -> anyhow::Result<peftc::exec::StageOutcome> {
        if stage.id.as_str() == "p" {
            panic!("boom");
        }
        Ok(peftc::exec::StageOutcome::done())
    };
    let report = peftc::exec::run(&plan, &fx.cache(), &fx.config(), &exec).expect("run");
    assert_eq!(
        report.get("p").map(|r| &r.state),
        Some(&StageRun::Failed {
            error: "the stage panicked: boom".into()
        })
    );
    assert_eq!(report.get("q").map(|r| &r.state), Some(&StageRun::Ran));
}

#[test]
fn a_missing_input_file_fails_that_stage_with_its_path() {
    let fx = Fixture::new();
    let plan = Plan::new(vec![
        Stage::new("s", "source", json!({})).file("data", "missing.txt")
    ])
    .expect("plan");
    let report = fx.run(&plan);
    let Some(StageRun::Failed { error }) = report.get("s").map(|r| r.state.clone()) else {
        panic!("expected a failure: {report:?}");
    };
    assert!(
        error.starts_with("read metadata of ") && error.contains("missing.txt"),
        "{error}"
    );
}

#[test]
fn the_run_summary_shows_failures_and_gates_side_by_side() {
    let fx = Fixture::new();
    let mut stages: Vec<Stage> = gate_plan(0.7, 0.8).stages().to_vec();
    stages.push(Stage::new("bad", "fail", json!({})));
    let plan = Plan::new(stages).expect("plan");
    let report = fx.run(&plan);
    let text = peftc::exec::run_summary(&report);
    let log = fx.cache_dir().join("logs").join("bad.log");
    assert_eq!(
        text,
        format!(
            "gate failed: gate: score 0.7 < 0.8\n\
             \x20   metric                  value    threshold     baseline\n\
             \x20   score                     0.7          0.8            -\n\
             skipped: export (input gate did not succeed)\n\
             error: stage bad failed: the bad stage broke on purpose (log: {})\n\
             5 stages: 2 ran, 0 cached, 1 failed, 1 gate failed, 1 skipped\n",
            log.display()
        )
    );
}

#[test]
fn plain_progress_prints_inner_progress_every_tenth() {
    let lines = Lines::default();
    let reporter: Arc<dyn peftc::exec::Reporter> = Arc::new(PlainReporter::new(lines.clone()));
    let handle = peftc::exec::ProgressHandle::new("train".into(), "train r=8".into(), reporter);
    for step in 0..=40 {
        handle.set(step, 40, format!("loss {:.2}", 1.0 / (1.0 + step as f64)));
    }
    let text = lines.text();
    let printed: Vec<&str> = text.lines().collect();
    assert_eq!(printed.len(), 11, "{text}");
    assert_eq!(
        printed.first().copied(),
        Some("[..]      train r=8: 0/40 loss 1.00")
    );
    assert_eq!(
        printed.last().copied(),
        Some("[..]      train r=8: 40/40 loss 0.02")
    );
}
