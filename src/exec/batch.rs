//! The batch scheduler: runs a [`Plan`] through a job system ([`BatchExecutor`], e.g. Slurm)
//! instead of threads. The scheduling decisions are the in-process scheduler's: the same
//! `--only` selection and `--force`, a stage whose key is known and cached is used from the
//! cache and never submitted, a failed stage or gate skips its dependants. What differs is who
//! runs a stage: every stage that must run is submitted at once as one job, depending on the jobs
//! of its inputs (`afterok`), so the job system runs independent stages in parallel and cancels
//! the dependants of a failed job. The driver then follows the jobs and, as each one ends, reads
//! its result from the cache — the shared cache folder is the only channel between jobs.
//!
//! Before a stage is submitted with dependencies, the states of its parents' jobs are read
//! again: a parent that already ended is resolved from the cache (a finished parent counts as
//! satisfied only when its cache entry is there), so no dependency ever names a job the job
//! system may have forgotten. It must not interpret stage kinds.

use super::cache::{Cache, Lookup};
use super::error::Result;
use super::outcome::InputArtifact;
use super::progress::StageEvent;
use super::report_types::{RunReport, StageReport, StageRun};
use super::scheduler::{forced, selection, RunConfig};
use super::stage_run::{finish_report, stage_files, stage_key};
use crate::plan::{Plan, Stage};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a cancelled run waits for its jobs to stop.
const CANCEL_WAIT: Duration = Duration::from_secs(60);

/// A job's id in the job system.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub String);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the job system says about a job.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Queued (waiting for resources or dependencies).
    Pending,
    Running,
    /// Ended with exit code 0.
    Completed,
    /// Ended otherwise (non-zero exit, time limit, out of memory, node failure), with the job
    /// system's word for it.
    Failed {
        reason: String,
    },
    /// Cancelled (by a user, or by the job system because a dependency failed).
    Cancelled {
        reason: String,
    },
    /// The job system no longer knows the job (purged after it ended).
    Gone,
}

impl JobState {
    /// Whether the job has ended.
    pub fn ended(&self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }
}

/// One stage to submit as a job.
#[derive(Clone, Debug)]
pub struct Submission<'a> {
    pub stage: &'a Stage,
    /// Jobs that must complete successfully first.
    pub after: Vec<JobId>,
    /// `--force`: the job executes the stage even when cached.
    pub force: bool,
}

/// A job system that runs one stage per job.
pub trait BatchExecutor: Sync {
    /// Submits a job running `sub.stage` once every job in `sub.after` completed successfully,
    /// and cancelled by the job system when one of them does not.
    fn submit(&self, sub: &Submission<'_>) -> anyhow::Result<JobId>;
    /// The states of `jobs` (a job missing from the map is [`JobState::Gone`]).
    fn states(&self, jobs: &[JobId]) -> anyhow::Result<HashMap<JobId, JobState>>;
    /// Cancels `jobs`.
    fn cancel(&self, jobs: &[JobId]) -> anyhow::Result<()>;
    /// The log file of `job` running `stage`.
    fn log_path(&self, stage: &Stage, job: &JobId) -> PathBuf;
    /// How long to wait between two looks at the jobs.
    fn poll_interval(&self) -> Duration;
}

/// Where a stage stands in a batch run.
enum Slot {
    /// Not decided yet.
    Open,
    /// Submitted as `job`.
    Job {
        job: JobId,
        running_since: Option<Instant>,
    },
    Done(Box<StageReport>),
}

enum Inputs {
    /// Waiting for these jobs.
    Pending(Vec<JobId>),
    Blocked(StageRun),
    Ready(BTreeMap<String, InputArtifact>),
}

/// Runs `plan` through `executor`, using and filling `cache` (which every job must reach at the
/// same path). Engine errors before anything is submitted are `Err`; a job system error after
/// that cancels what was submitted and fails the stages it concerned.
pub fn run_batch(
    plan: &Plan,
    cache: &Cache,
    config: &RunConfig,
    executor: &dyn BatchExecutor,
) -> Result<RunReport> {
    let selected = selection(plan, &config.only)?;
    let forced = forced(plan, &config.force)?;
    let _shared = cache.lock_shared()?;
    let mut run = BatchRun {
        plan,
        cache,
        config,
        executor,
        slots: plan.stages().iter().map(|_| Slot::Open).collect(),
    };
    for &i in plan.order() {
        if config.cancel.is_cancelled() {
            break;
        }
        if !selected.contains(&i) {
            run.done(
                i,
                StageReport::blank(&plan.stages()[i], StageRun::NotSelected),
            );
            continue;
        }
        run.decide(i, forced.contains(&i));
    }
    run.follow();
    cache.save_stat_cache()?;
    let stages = plan
        .order()
        .iter()
        .map(
            |&i| match std::mem::replace(&mut run.slots[i], Slot::Open) {
                Slot::Done(r) => *r,
                _ => StageReport::blank(&plan.stages()[i], StageRun::Cancelled),
            },
        )
        .collect();
    Ok(RunReport { stages })
}

struct BatchRun<'a> {
    plan: &'a Plan,
    cache: &'a Cache,
    config: &'a RunConfig,
    executor: &'a dyn BatchExecutor,
    slots: Vec<Slot>,
}

impl BatchRun<'_> {
    fn event(&self, i: usize, event: StageEvent) {
        let stage = &self.plan.stages()[i];
        self.config.reporter.event(&stage.id, &stage.name, &event);
    }

    fn done(&mut self, i: usize, report: StageReport) {
        self.slots[i] = Slot::Done(Box::new(report));
    }

    fn fail(&mut self, i: usize, error: String, log: Option<PathBuf>) {
        self.event(
            i,
            StageEvent::Failed {
                error: error.clone(),
            },
        );
        let mut report = StageReport::blank(&self.plan.stages()[i], StageRun::Failed { error });
        report.log_path = log;
        self.done(i, report);
    }

    fn inputs(&self, i: usize) -> Inputs {
        let stage = &self.plan.stages()[i];
        let mut ready = BTreeMap::new();
        let mut pending = Vec::new();
        for (slot, from) in &stage.inputs {
            let Some(j) = self.plan.index_of(from) else {
                continue;
            };
            match &self.slots[j] {
                Slot::Open => return Inputs::Blocked(StageRun::Cancelled),
                Slot::Job { job, .. } => pending.push(job.clone()),
                Slot::Done(r) if r.state.succeeded() => {
                    if let (Some(dir), Some(digest)) = (&r.out_dir, &r.output_digest) {
                        ready.insert(
                            slot.clone(),
                            InputArtifact {
                                dir: dir.clone(),
                                output: r.output.clone(),
                                digest: digest.clone(),
                            },
                        );
                    }
                }
                Slot::Done(r) if matches!(r.state, StageRun::Cancelled) => {
                    return Inputs::Blocked(StageRun::Cancelled)
                }
                Slot::Done(_) => {
                    return Inputs::Blocked(StageRun::Skipped {
                        because: from.clone(),
                    })
                }
            }
        }
        if pending.is_empty() {
            Inputs::Ready(ready)
        } else {
            pending.sort();
            pending.dedup();
            Inputs::Pending(pending)
        }
    }

    fn block(&mut self, i: usize, state: StageRun) {
        let event = match &state {
            StageRun::Skipped { because } => StageEvent::Skipped {
                because: because.clone(),
            },
            _ => StageEvent::Cancelled,
        };
        self.event(i, event);
        self.done(i, StageReport::blank(&self.plan.stages()[i], state));
    }

    /// Decides stage `i`: cached, blocked, or submitted (after its parents' jobs).
    fn decide(&mut self, i: usize, force: bool) {
        let mut inputs = self.inputs(i);
        if matches!(inputs, Inputs::Pending(_)) {
            // Parents that already ended are resolved now, so that the dependency names only
            // jobs the job system still knows.
            self.refresh();
            inputs = self.inputs(i);
        }
        let after = match inputs {
            Inputs::Blocked(state) => return self.block(i, state),
            Inputs::Pending(after) => after,
            Inputs::Ready(ready) if !force => {
                let stage = &self.plan.stages()[i];
                let files = stage_files(stage, &self.config.root);
                match stage_key(stage, self.cache, &ready, &files)
                    .and_then(|sk| Ok((self.cache.lookup(&sk.digest())?, sk)))
                {
                    Ok((Lookup::Hit(entry), sk)) => {
                        let mut report = StageReport::blank(stage, StageRun::Cached);
                        report.key = Some(sk.digest());
                        report.stage_key = Some(sk);
                        let report = finish_report(stage, self.config, report, &entry, true);
                        return self.done(i, report);
                    }
                    Ok(_) => Vec::new(),
                    Err(e) => return self.fail(i, e.to_string(), None),
                }
            }
            Inputs::Ready(_) => Vec::new(),
        };
        let stage = &self.plan.stages()[i];
        let sub = Submission {
            stage,
            after,
            force,
        };
        match self.executor.submit(&sub) {
            Ok(job) => {
                self.event(i, StageEvent::Submitted { job: job.0.clone() });
                self.slots[i] = Slot::Job {
                    job,
                    running_since: None,
                };
            }
            Err(e) => self.fail(i, format!("cannot submit the job: {e:#}"), None),
        }
    }

    /// Reads the states of the submitted jobs; reports starts and resolves ended jobs from the
    /// cache, in plan order (so parents before children).
    fn refresh(&mut self) {
        let jobs: Vec<JobId> = self
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Job { job, .. } => Some(job.clone()),
                _ => None,
            })
            .collect();
        if jobs.is_empty() {
            return;
        }
        let states = match self.executor.states(&jobs) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot read the jobs' states: {e:#}");
                return;
            }
        };
        for &i in self.plan.order() {
            let (job, started) = match &self.slots[i] {
                Slot::Job { job, running_since } => (job.clone(), running_since.is_some()),
                _ => continue,
            };
            let state = states.get(&job).cloned().unwrap_or(JobState::Gone);
            let ran = matches!(
                state,
                JobState::Running | JobState::Completed | JobState::Failed { .. }
            );
            if !started && ran {
                self.event(i, StageEvent::Running);
                if let Slot::Job { running_since, .. } = &mut self.slots[i] {
                    *running_since = Some(Instant::now());
                }
            }
            if state.ended() {
                self.resolve(i, &job, &state);
            }
        }
    }

    /// Stage `i`'s job ended: its result is what the cache holds for its key.
    fn resolve(&mut self, i: usize, job: &JobId, state: &JobState) {
        let stage = &self.plan.stages()[i];
        let seconds = match &self.slots[i] {
            Slot::Job {
                running_since: Some(t),
                ..
            } => t.elapsed().as_secs_f64(),
            _ => 0.0,
        };
        let log = self.executor.log_path(stage, job);
        let ready = match self.inputs(i) {
            // The job system cancelled it because a parent failed.
            Inputs::Blocked(state) => return self.block(i, state),
            // A parent's end is not seen yet; look again next time.
            Inputs::Pending(_) => return,
            Inputs::Ready(ready) => ready,
        };
        let files = stage_files(stage, &self.config.root);
        let looked = stage_key(stage, self.cache, &ready, &files)
            .and_then(|sk| Ok((self.cache.lookup(&sk.digest())?, sk)));
        match looked {
            Ok((Lookup::Hit(entry), sk)) => {
                let mut report = StageReport::blank(stage, StageRun::Ran);
                report.key = Some(sk.digest());
                report.stage_key = Some(sk);
                report.seconds = seconds;
                report.log_path = Some(log);
                let report = finish_report(stage, self.config, report, &entry, false);
                self.done(i, report);
            }
            Ok((lookup, _)) => {
                let why = match (state, lookup) {
                    (JobState::Completed | JobState::Gone, Lookup::Corrupt(c)) => {
                        format!("job {job} ended but its cache entry is corrupt ({c})")
                    }
                    (JobState::Completed | JobState::Gone, _) => format!(
                        "job {job} ended but left no cache entry (is the cache folder shared \
                         between the nodes?)"
                    ),
                    (JobState::Failed { reason }, _) => {
                        job_error(&log).unwrap_or(format!("job {job} failed ({reason})"))
                    }
                    (JobState::Cancelled { reason }, _) => {
                        format!("job {job} was cancelled outside peftc ({reason})")
                    }
                    (JobState::Pending | JobState::Running, _) => return,
                };
                self.fail(i, why, Some(log));
            }
            Err(e) => self.fail(i, e.to_string(), Some(log)),
        }
    }

    /// Follows the submitted jobs until all ended; on cancel, cancels them.
    fn follow(&mut self) {
        loop {
            let live: Vec<JobId> = self
                .slots
                .iter()
                .filter_map(|s| match s {
                    Slot::Job { job, .. } => Some(job.clone()),
                    _ => None,
                })
                .collect();
            if live.is_empty() {
                break;
            }
            if self.config.cancel.is_cancelled() {
                self.cancel_all(&live);
                break;
            }
            self.sleep();
            self.refresh();
        }
        // Stages never decided (a cancel before their turn).
        for &i in self.plan.order() {
            if matches!(self.slots[i], Slot::Open) {
                self.block(i, StageRun::Cancelled);
            }
        }
    }

    /// Waits one poll interval, waking early on cancel.
    fn sleep(&self) {
        let until = Instant::now() + self.executor.poll_interval();
        while Instant::now() < until && !self.config.cancel.is_cancelled() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn cancel_all(&mut self, live: &[JobId]) {
        if let Err(e) = self.executor.cancel(live) {
            eprintln!("error: cannot cancel jobs {live:?}: {e:#}");
        } else {
            let ids: Vec<String> = live.iter().map(|j| j.0.clone()).collect();
            eprintln!("cancelled jobs {}", ids.join(" "));
            // Wait (bounded) until the job system has stopped them, so that nothing of this run
            // still computes once `peftc` has exited.
            let until = Instant::now() + CANCEL_WAIT;
            while Instant::now() < until {
                match self.executor.states(live) {
                    Ok(states) if states.values().all(JobState::ended) => break,
                    Err(_) => break,
                    Ok(_) => std::thread::sleep(self.executor.poll_interval()),
                }
            }
        }
        let order: Vec<usize> = self.plan.order().to_vec();
        for i in order {
            if matches!(self.slots[i], Slot::Job { .. }) {
                self.block(i, StageRun::Cancelled);
            }
        }
    }
}

/// The last `error: ...` line of a job's log.
fn job_error(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: ").map(str::to_owned))
}

/// Stages of `plan` a batch run would submit now and the stages each waits for: the stages not
/// cached, in order, each with its parents that are also submitted. Used by the dry run.
pub fn batch_submissions(
    plan: &Plan,
    status: &crate::plan::PlanStatus,
) -> Vec<(usize, BTreeSet<usize>)> {
    let to_run: BTreeSet<usize> = status
        .stages
        .iter()
        .filter(|s| {
            matches!(
                s.state,
                crate::plan::StageState::ToRun | crate::plan::StageState::Waiting
            )
        })
        .filter_map(|s| plan.index_of(&s.id))
        .collect();
    plan.order()
        .iter()
        .filter(|i| to_run.contains(i))
        .map(|&i| {
            let parents = plan.stages()[i]
                .inputs
                .values()
                .filter_map(|from| plan.index_of(from))
                .filter(|j| to_run.contains(j))
                .collect();
            (i, parents)
        })
        .collect()
}
