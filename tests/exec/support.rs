//! Dummy stage kinds and a fixture: a temp folder with input files, a cache, a counter of
//! executions per stage, and the standard plan used by most tests:
//!
//! ```text
//! src_a (source, a.txt) --+
//!                         +-- join (concat) -- final (concat)
//! src_b (source, b.txt) --+
//! src_c (source, c.txt) ----- other (concat)
//! ```

use anyhow::{bail, Context};
use peftc::exec::{run, Cache, Lockfile, RunConfig, RunReport, StageContext, StageOutcome};
use peftc::plan::{Plan, Stage};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Executions per stage id, shared between threads.
#[derive(Clone, Default)]
pub struct Counter(pub Arc<Mutex<BTreeMap<String, usize>>>);

impl Counter {
    pub fn bump(&self, id: &str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(id.to_owned()).or_default() += 1;
        }
    }
    pub fn get(&self, id: &str) -> usize {
        self.0
            .lock()
            .map(|m| m.get(id).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// The dummy executor:
/// - `source`: copies file `data` to `out/data.txt`, prefixed by config `prefix` (config `note`
///   is ignored, so changing it rebuilds to identical output);
/// - `concat`: writes `out/out.txt` = the inputs' files in slot order joined by config `sep`;
/// - `metric`: outputs `{"score": config.score}`;
/// - `gate`: fails its gate when input `metric`'s score < config `min`;
/// - `fail`: returns an error;
/// - `slow`: sleeps config `ms` then behaves like `concat`.
pub fn executor(
    counter: Counter,
) -> impl Fn(&Stage, &StageContext) -> anyhow::Result<StageOutcome> + Sync {
    move |stage, ctx| {
        counter.bump(stage.id.as_str());
        match stage.kind.as_str() {
            "source" => {
                let path = ctx.files.get("data").context("no data file")?;
                let text = std::fs::read_to_string(path)?;
                let prefix = stage
                    .config
                    .get("prefix")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                std::fs::write(ctx.out_dir.join("data.txt"), format!("{prefix}{text}"))?;
                Ok(StageOutcome::done())
            }
            "concat" | "slow" => {
                if let Some(ms) = stage.config.get("ms").and_then(Value::as_u64) {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                }
                let sep = stage
                    .config
                    .get("sep")
                    .and_then(Value::as_str)
                    .unwrap_or("+");
                let mut parts = Vec::new();
                for input in ctx.inputs.values() {
                    let mut names: Vec<PathBuf> = std::fs::read_dir(&input.dir)?
                        .flatten()
                        .map(|e| e.path())
                        .collect();
                    names.sort();
                    for p in names {
                        parts.push(std::fs::read_to_string(p)?);
                    }
                }
                std::fs::write(ctx.out_dir.join("out.txt"), parts.join(sep))?;
                std::fs::write(&ctx.log_path, format!("joined {} parts\n", parts.len()))?;
                Ok(StageOutcome::with_output(json!({"parts": parts.len()})))
            }
            "metric" => {
                let score = stage
                    .config
                    .get("score")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                Ok(StageOutcome::with_output(json!({ "score": score })))
            }
            "gate" => {
                let score = ctx
                    .input("metric")
                    .and_then(|m| m.output.get("score"))
                    .and_then(Value::as_f64)
                    .context("gate needs a metric input")?;
                let min = stage
                    .config
                    .get("min")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                if score < min {
                    Ok(StageOutcome::gate_failed(
                        format!("score {score} < {min}"),
                        json!({"metric": "score", "value": score, "threshold": min}),
                    ))
                } else {
                    Ok(StageOutcome::with_output(json!({"passed": true})))
                }
            }
            "fail" => bail!("the {} stage broke on purpose", stage.id),
            other => bail!("unknown kind {other}"),
        }
    }
}

/// A temp folder with `a.txt`, `b.txt`, `c.txt`, a cache under `.peft`, and a counter.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub counter: Counter,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in [("a.txt", "alpha"), ("b.txt", "beta"), ("c.txt", "gamma")] {
            std::fs::write(dir.path().join(name), text).expect("write input");
        }
        Fixture {
            dir,
            counter: Counter::default(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.root().join(".peft")
    }

    pub fn cache(&self) -> Cache {
        Cache::open(self.cache_dir()).expect("open cache")
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.root().join(name), text).expect("write input");
    }

    pub fn config(&self) -> RunConfig {
        RunConfig::new(self.root())
    }

    /// Runs `plan` with a fresh `Cache` handle and the dummy executor.
    pub fn run(&self, plan: &Plan) -> RunReport {
        self.run_with(plan, &self.config())
    }

    pub fn run_with(&self, plan: &Plan, config: &RunConfig) -> RunReport {
        let exec = executor(self.counter.clone());
        run(plan, &self.cache(), config, &exec).expect("run")
    }

    /// Runs and returns the ids executed by this run (sorted), from the counter's difference.
    pub fn run_counting(&self, plan: &Plan) -> (RunReport, Vec<String>) {
        let before = self.counter.0.lock().map(|m| m.clone()).unwrap_or_default();
        let report = self.run(plan);
        let after = self.counter.0.lock().map(|m| m.clone()).unwrap_or_default();
        let ran = after
            .iter()
            .filter(|(k, v)| before.get(*k).copied().unwrap_or(0) < **v)
            .map(|(k, _)| k.clone())
            .collect();
        (report, ran)
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root().join("peftc.lock")
    }

    /// Writes `peftc.lock` after `report`, keeping the previous lock's unreached stages.
    pub fn write_lock(&self, plan: &Plan, report: &RunReport) -> Lockfile {
        let prev = Lockfile::read(&self.lock_path()).expect("read lock");
        let lock = Lockfile::update(prev.as_ref(), plan, report);
        lock.write(&self.lock_path()).expect("write lock");
        lock
    }
}

/// The standard plan; `join_sep` and `a_note` vary it.
pub fn standard_plan(join_sep: &str, a_note: &str) -> Plan {
    Plan::new(vec![
        Stage::new("src_a", "source", json!({"prefix": "A:", "note": a_note}))
            .file("data", "a.txt"),
        Stage::new("src_b", "source", json!({"prefix": "B:"})).file("data", "b.txt"),
        Stage::new("src_c", "source", json!({"prefix": "C:"})).file("data", "c.txt"),
        Stage::new("join", "concat", json!({"sep": join_sep}))
            .input("left", "src_a")
            .input("right", "src_b")
            .figure("params", "1.2 M"),
        Stage::new("final", "concat", json!({"sep": "|"})).input("only", "join"),
        Stage::new("other", "concat", json!({"sep": "-"}))
            .input("only", "src_c")
            .name("Other branch"),
    ])
    .expect("valid plan")
}

/// `metric -> gate -> export` plus an unrelated `side` source.
pub fn gate_plan(score: f64, min: f64) -> Plan {
    Plan::new(vec![
        Stage::new("metric", "metric", json!({ "score": score })),
        Stage::new("gate", "gate", json!({ "min": min })).input("metric", "metric"),
        Stage::new("export", "concat", json!({}))
            .input("model", "metric")
            .input("gate", "gate"),
        Stage::new("side", "source", json!({})).file("data", "a.txt"),
    ])
    .expect("valid plan")
}

/// Reads the text of a stage's output file.
pub fn read_out(report: &RunReport, id: &str, file: &str) -> String {
    let dir = report
        .get(id)
        .and_then(|r| r.out_dir.clone())
        .expect("stage has an output");
    std::fs::read_to_string(dir.join(file)).expect("read output")
}
