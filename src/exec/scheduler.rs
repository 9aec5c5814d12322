//! The scheduler: runs a [`Plan`] through a stage executor in dependency order, independent
//! stages concurrently up to [`RunConfig::jobs`]. For each stage it computes the key (files
//! hashed through the stat cache, inputs' *output digests* for early cutoff), takes the entry
//! lock, uses a verified cache entry or executes and publishes a new one. A failed stage or a
//! failed gate skips its dependants; unrelated branches go on. It must not interpret stage kinds.

use super::cache::Cache;
use super::error::Result;
use super::outcome::{CancelFlag, InputArtifact, StageContext, StageOutcome};
use super::progress::{NullReporter, Reporter, StageEvent};
use super::report_types::{RunReport, StageReport, StageRun};
use super::stage_run::run_stage;
use crate::plan::{Plan, Stage};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

/// How to run a plan.
#[derive(Clone)]
pub struct RunConfig {
    /// Folder that relative file inputs resolve against (the pipeline's folder).
    pub root: PathBuf,
    /// Most stages executing at once (at least 1).
    pub jobs: usize,
    /// Kinds that take the whole machine (training): at most one stage of these kinds runs at a
    /// time, while other stages may run beside it.
    pub exclusive_kinds: BTreeSet<String>,
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
            exclusive_kinds: BTreeSet::new(),
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
        let mut exclusive_busy = false;
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
                        done[i] = Some(StageReport::blank(stage, StageRun::NotSelected));
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
                            done[i] = Some(StageReport::blank(stage, state));
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
                                done[i] = Some(StageReport::blank(stage, StageRun::Cancelled));
                                progressed = true;
                                continue;
                            }
                            let exclusive = config.exclusive_kinds.contains(&stage.kind);
                            if running >= jobs || (exclusive && exclusive_busy) {
                                continue;
                            }
                            started[i] = true;
                            running += 1;
                            exclusive_busy |= exclusive;
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
                    if config.exclusive_kinds.contains(&stages[i].kind) {
                        exclusive_busy = false;
                    }
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
                .unwrap_or_else(|| StageReport::blank(&stages[i], StageRun::Cancelled))
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
