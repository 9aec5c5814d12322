//! The scheduler: runs a [`Plan`] through a stage executor in dependency order, independent
//! stages concurrently up to [`RunConfig::jobs`]. For each stage it computes the key (files
//! hashed through the stat cache, inputs' *output digests* for early cutoff), takes the entry
//! lock, uses a verified cache entry or executes and publishes a new one. A failed stage or a
//! failed gate skips its dependants; unrelated branches go on. It must not interpret stage kinds.

use super::cache::{Cache, Lookup, NewEntry};
use super::error::{ExecError, Result};
use super::outcome::{CancelFlag, InputArtifact, StageContext, StageOutcome};
use super::progress::{NullReporter, ProgressHandle, Reporter, StageEvent};
use super::report_types::{RunReport, StageReport, StageRun};
use crate::plan::{Plan, Stage, StageKey};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// How to run a plan.
#[derive(Clone)]
pub struct RunConfig {
    /// Folder that relative file inputs resolve against (the pipeline's folder).
    pub root: PathBuf,
    /// Most stages executing at once (at least 1).
    pub jobs: usize,
    /// `--only`: run just these stages and what they need. Empty: all.
    pub only: Vec<String>,
    /// `--force`: execute these stages even when cached.
    pub force: Vec<String>,
    /// Set on Ctrl-C.
    pub cancel: CancelFlag,
    /// Where stage events go.
    pub reporter: Arc<dyn Reporter>,
    /// Filter for the `tracing` events a stage emits on its thread, which go to its log file
    /// (`info`, `peftc=debug`, ...).
    pub stage_log_filter: String,
}

impl RunConfig {
    /// Defaults: 2 jobs, everything selected, nothing forced, no output.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunConfig {
            root: root.into(),
            jobs: 2,
            only: Vec::new(),
            force: Vec::new(),
            cancel: CancelFlag::new(),
            reporter: Arc::new(NullReporter),
            stage_log_filter: "info".to_owned(),
        }
    }
}

/// The stage executor's signature.
pub trait StageExecutor: Fn(&Stage, &StageContext) -> anyhow::Result<StageOutcome> + Sync {}
impl<F: Fn(&Stage, &StageContext) -> anyhow::Result<StageOutcome> + Sync> StageExecutor for F {}

/// Indices selected by `--only` (with their ancestors), or all.
pub(crate) fn selection(plan: &Plan, only: &[String]) -> Result<BTreeSet<usize>> {
    if only.is_empty() {
        return Ok((0..plan.stages().len()).collect());
    }
    let roots = only
        .iter()
        .map(|id| plan.require(id))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(plan.ancestors_of(&roots))
}

/// Indices named by `--force`.
pub(crate) fn forced(plan: &Plan, force: &[String]) -> Result<BTreeSet<usize>> {
    Ok(force
        .iter()
        .map(|id| plan.require(id))
        .collect::<std::result::Result<BTreeSet<_>, _>>()?)
}

/// Resolves a stage's file input against the run root.
pub(crate) fn resolve(root: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    }
}

/// Runs `plan` with `executor`, using and filling `cache`. Engine errors before any stage runs
/// (unknown `--only` id, unusable cache) are `Err`; everything after is in the report.
pub fn run(
    plan: &Plan,
    cache: &Cache,
    config: &RunConfig,
    executor: &dyn StageExecutor,
) -> Result<RunReport> {
    let selected = selection(plan, &config.only)?;
    let forced = forced(plan, &config.force)?;
    let _shared = cache.lock_shared()?;
    let stages = plan.stages();
    let n = stages.len();
    let mut done: Vec<Option<StageReport>> = vec![None; n];
    let mut started = vec![false; n];
    let jobs = config.jobs.max(1);
    let (tx, rx) = mpsc::channel::<(usize, StageReport)>();

    std::thread::scope(|scope| {
        let mut running = 0usize;
        loop {
            let mut progressed = true;
            while progressed {
                progressed = false;
                for &i in plan.order() {
                    let stage = &stages[i];
                    if started[i] || done[i].is_some() {
                        continue;
                    }
                    if !selected.contains(&i) {
                        done[i] = Some(blank(stage, StageRun::NotSelected));
                        progressed = true;
                        continue;
                    }
                    match input_state(plan, stage, &done) {
                        InputState::Pending => continue,
                        InputState::Blocked(state) => {
                            let event = match &state {
                                StageRun::Skipped { because } => StageEvent::Skipped {
                                    because: because.clone(),
                                },
                                _ => StageEvent::Cancelled,
                            };
                            config.reporter.event(&stage.id, &stage.name, &event);
                            done[i] = Some(blank(stage, state));
                            progressed = true;
                            continue;
                        }
                        InputState::Ready(inputs) => {
                            if config.cancel.is_cancelled() {
                                config.reporter.event(
                                    &stage.id,
                                    &stage.name,
                                    &StageEvent::Cancelled,
                                );
                                done[i] = Some(blank(stage, StageRun::Cancelled));
                                progressed = true;
                                continue;
                            }
                            if running >= jobs {
                                continue;
                            }
                            started[i] = true;
                            running += 1;
                            let tx = tx.clone();
                            let force = forced.contains(&i);
                            scope.spawn(move || {
                                let report =
                                    run_stage(stage, inputs, force, cache, config, executor);
                                let _ = tx.send((i, report));
                            });
                        }
                    }
                }
            }
            if running == 0 {
                break;
            }
            match rx.recv() {
                Ok((i, report)) => {
                    running -= 1;
                    done[i] = Some(report);
                }
                Err(_) => break,
            }
        }
    });
    cache.save_stat_cache()?;
    let stages = plan
        .order()
        .iter()
        .map(|&i| {
            done[i]
                .take()
                .unwrap_or_else(|| blank(&stages[i], StageRun::Cancelled))
        })
        .collect();
    Ok(RunReport { stages })
}

enum InputState {
    Pending,
    Blocked(StageRun),
    Ready(BTreeMap<String, InputArtifact>),
}

fn input_state(plan: &Plan, stage: &Stage, done: &[Option<StageReport>]) -> InputState {
    let mut inputs = BTreeMap::new();
    let mut pending = false;
    for (slot, from) in &stage.inputs {
        let report = plan
            .index_of(from)
            .and_then(|j| done.get(j))
            .and_then(Option::as_ref);
        match report {
            None => pending = true,
            Some(r) if r.state.succeeded() => {
                if let (Some(dir), Some(digest)) = (&r.out_dir, &r.output_digest) {
                    let art = InputArtifact {
                        dir: dir.clone(),
                        output: r.output.clone(),
                        digest: digest.clone(),
                    };
                    inputs.insert(slot.clone(), art);
                }
            }
            Some(r) if matches!(r.state, StageRun::Cancelled) => {
                return InputState::Blocked(StageRun::Cancelled)
            }
            Some(_) => {
                return InputState::Blocked(StageRun::Skipped {
                    because: from.clone(),
                })
            }
        }
    }
    if pending {
        InputState::Pending
    } else {
        InputState::Ready(inputs)
    }
}

fn blank(stage: &Stage, state: StageRun) -> StageReport {
    StageReport {
        id: stage.id.clone(),
        name: stage.name.clone(),
        kind: stage.kind.clone(),
        state,
        key: None,
        stage_key: None,
        output_digest: None,
        output: Value::Null,
        out_dir: None,
        log_path: None,
        corrupt_removed: None,
        seconds: 0.0,
    }
}

fn run_stage(
    stage: &Stage,
    inputs: BTreeMap<String, InputArtifact>,
    force: bool,
    cache: &Cache,
    config: &RunConfig,
    executor: &dyn StageExecutor,
) -> StageReport {
    match try_run_stage(stage, inputs, force, cache, config, executor) {
        Ok(report) => report,
        Err(e) => {
            let error = e.to_string();
            config.reporter.event(
                &stage.id,
                &stage.name,
                &StageEvent::Failed {
                    error: error.clone(),
                },
            );
            blank(stage, StageRun::Failed { error })
        }
    }
}

fn try_run_stage(
    stage: &Stage,
    inputs: BTreeMap<String, InputArtifact>,
    force: bool,
    cache: &Cache,
    config: &RunConfig,
    executor: &dyn StageExecutor,
) -> Result<StageReport> {
    let reporter = &config.reporter;
    let event = |e: StageEvent| reporter.event(&stage.id, &stage.name, &e);
    let files: BTreeMap<String, PathBuf> = stage
        .files
        .iter()
        .map(|(slot, p)| (slot.clone(), resolve(&config.root, p)))
        .collect();
    let mut file_digests = BTreeMap::new();
    for (slot, path) in &files {
        file_digests.insert(slot.clone(), cache.hasher().hash(path)?);
    }
    let input_digests = inputs
        .iter()
        .map(|(s, a)| (s.clone(), a.digest.clone()))
        .collect();
    let stage_key = StageKey::new(stage, input_digests, file_digests);
    let key = stage_key.digest();
    let mut report = blank(stage, StageRun::Cancelled);
    report.key = Some(key.clone());
    report.stage_key = Some(stage_key.clone());

    let Some(_lock) =
        cache.lock_entry(&key, &config.cancel, || event(StageEvent::WaitingForLock))?
    else {
        event(StageEvent::Cancelled);
        return Ok(report);
    };
    if !force {
        match cache.lookup(&key)? {
            Lookup::Hit(entry) => {
                report.output_digest = Some(entry.manifest.output_digest.clone());
                report.output = entry.manifest.output.clone();
                report.out_dir = Some(entry.out_dir.clone());
                report.state = match &entry.manifest.gate {
                    Some(g) => {
                        event(StageEvent::GateFailed {
                            message: g.message.clone(),
                        });
                        StageRun::GateFailed {
                            message: g.message.clone(),
                            cached: true,
                        }
                    }
                    None => {
                        event(StageEvent::Cached);
                        StageRun::Cached
                    }
                };
                return Ok(report);
            }
            Lookup::Corrupt(why) => {
                event(StageEvent::Warning {
                    message: format!(
                        "cache entry {} is corrupt ({why}); removed, rebuilding",
                        key.short()
                    ),
                });
                cache.remove(&key)?;
                report.corrupt_removed = Some(why);
            }
            Lookup::Miss => {}
        }
    }
    if config.cancel.is_cancelled() {
        event(StageEvent::Cancelled);
        return Ok(report);
    }

    let temp = cache.temp_entry(&key)?;
    let log_path = cache
        .log_dir()
        .join(format!("{}.log", sanitize(stage.id.as_str())));
    std::fs::write(&log_path, b"").map_err(ExecError::io("create log", &log_path))?;
    let checkpoint_dir = cache.checkpoint_dir(&key);
    std::fs::create_dir_all(&checkpoint_dir).map_err(ExecError::io("create", &checkpoint_dir))?;
    report.log_path = Some(log_path.clone());
    let ctx = StageContext {
        key: key.clone(),
        stage_key: stage_key.clone(),
        inputs,
        files,
        out_dir: temp.out_dir(),
        log_path: log_path.clone(),
        checkpoint_dir,
        cancel: config.cancel.clone(),
        progress: ProgressHandle::new(stage.id.clone(), stage.name.clone(), reporter.clone()),
    };
    event(StageEvent::Running);
    let t0 = Instant::now();
    let subscriber = stage_subscriber(&log_path, &config.stage_log_filter)?;
    let result = tracing::subscriber::with_default(subscriber, || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| executor(stage, &ctx)))
    });
    report.seconds = t0.elapsed().as_secs_f64();
    let outcome = match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) if config.cancel.is_cancelled() => {
            append_log(&log_path, &format!("cancelled: {e:#}"));
            event(StageEvent::Cancelled);
            return Ok(report);
        }
        Ok(Err(e)) => {
            let error = format!("{e:#}");
            append_log(&log_path, &format!("error: {error}"));
            event(StageEvent::Failed {
                error: error.clone(),
            });
            report.state = StageRun::Failed { error };
            return Ok(report);
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let error = format!("the stage panicked: {msg}");
            append_log(&log_path, &error);
            event(StageEvent::Failed {
                error: error.clone(),
            });
            report.state = StageRun::Failed { error };
            return Ok(report);
        }
    };
    let gate = outcome.gate.clone();
    let entry = cache.commit(
        temp,
        NewEntry {
            stage_key: &stage_key,
            stage_name: &stage.name,
            output: outcome.output,
            gate: outcome.gate,
            metadata: outcome.metadata,
        },
    )?;
    // The result is published: checkpoints of this key are no longer needed.
    let _ = std::fs::remove_dir_all(&ctx.checkpoint_dir);
    report.output_digest = Some(entry.manifest.output_digest.clone());
    report.output = entry.manifest.output.clone();
    report.out_dir = Some(entry.out_dir.clone());
    report.state = match gate {
        Some(g) => {
            event(StageEvent::GateFailed {
                message: g.message.clone(),
            });
            StageRun::GateFailed {
                message: g.message,
                cached: false,
            }
        }
        None => {
            event(StageEvent::Done {
                seconds: report.seconds,
            });
            StageRun::Ran
        }
    };
    Ok(report)
}

/// A `tracing` subscriber writing plain lines to the stage's log file, installed as the
/// thread's default while the stage executes.
fn stage_subscriber(
    log_path: &Path,
    filter: &str,
) -> Result<impl tracing::Subscriber + Send + Sync> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(log_path)
        .map_err(ExecError::io("open log", log_path))?;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    Ok(tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .with_writer(std::sync::Mutex::new(file))
        .finish())
}

fn append_log(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// A file-name-safe version of a stage id.
pub(crate) fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
