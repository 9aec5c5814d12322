//! Running one stage inside a run: compute its key (files hashed through the stat cache,
//! inputs' output digests), take the entry lock, use a verified cache entry or execute the
//! stage (its `tracing` events going to its log file, panics caught) and publish the result.
//! It must not look at other stages: the scheduler decides what is ready.

use super::cache::{Cache, Entry, Lookup, NewEntry};
use super::error::{ExecError, Result};
use super::outcome::{InputArtifact, StageContext, StageOutcome};
use super::progress::{ProgressHandle, StageEvent};
use super::report_types::{StageReport, StageRun};
use super::scheduler::{resolve, RunConfig, StageExecutor};
use crate::plan::{Stage, StageKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Runs `f` on a worker of a thread pool of its own (`RAYON_NUM_THREADS` threads, default one
/// per core), or on this thread when no pool can be started. A stage's parallel loops then run
/// partly on the stage's own thread, and the other workers take the rest: a stage calling them
/// from outside a pool sleeps through every one and wakes for the next (measured on a 2-core
/// machine: a tiny-llama LoRA step 1.5 s -> 1.15 s). A pool per stage keeps one stage's loops
/// from running another stage's jobs nested on its thread (its thread-locals, e.g. the dropout
/// generator, stay its own).
fn on_own_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("peftc-stage-{i}"))
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// Runs `stage`; engine errors (I/O on the cache, an unreadable input file) become a failure.
pub(crate) fn run_stage(
    stage: &Stage,
    inputs: BTreeMap<String, InputArtifact>,
    force: bool,
    cache: &Cache,
    config: &RunConfig,
    executor: &dyn StageExecutor,
) -> StageReport {
    let run = OneStage {
        stage,
        cache,
        config,
    };
    match run.go(inputs, force, executor) {
        Ok(report) => report,
        Err(e) => {
            let error = e.to_string();
            run.event(StageEvent::Failed {
                error: error.clone(),
            });
            StageReport::blank(stage, StageRun::Failed { error })
        }
    }
}

/// One stage's run, with what every step needs.
struct OneStage<'a> {
    stage: &'a Stage,
    cache: &'a Cache,
    config: &'a RunConfig,
}

impl OneStage<'_> {
    fn event(&self, event: StageEvent) {
        self.config
            .reporter
            .event(&self.stage.id, &self.stage.name, &event);
    }

    fn go(
        &self,
        inputs: BTreeMap<String, InputArtifact>,
        force: bool,
        executor: &dyn StageExecutor,
    ) -> Result<StageReport> {
        let files = stage_files(self.stage, &self.config.root);
        let stage_key = self.key(&inputs, &files)?;
        let key = stage_key.digest();
        let mut report = StageReport::blank(self.stage, StageRun::Cancelled);
        report.key = Some(key.clone());
        report.stage_key = Some(stage_key.clone());

        let on_wait = || self.event(StageEvent::WaitingForLock);
        let Some(_lock) = self.cache.lock_entry(&key, &self.config.cancel, on_wait)? else {
            self.event(StageEvent::Cancelled);
            return Ok(report);
        };
        if !force {
            match self.cache.lookup(&key)? {
                Lookup::Hit(entry) => return Ok(self.finish(report, &entry, true)),
                Lookup::Corrupt(why) => {
                    let message = format!(
                        "cache entry {} is corrupt ({why}); removed, rebuilding",
                        key.short()
                    );
                    self.event(StageEvent::Warning { message });
                    self.cache.remove(&key)?;
                    report.corrupt_removed = Some(why);
                }
                Lookup::Miss => {}
            }
        }
        if self.config.cancel.is_cancelled() {
            self.event(StageEvent::Cancelled);
            return Ok(report);
        }
        self.execute(report, stage_key, inputs, files, executor)
    }

    /// The stage's key record.
    fn key(
        &self,
        inputs: &BTreeMap<String, InputArtifact>,
        files: &BTreeMap<String, PathBuf>,
    ) -> Result<StageKey> {
        stage_key(self.stage, self.cache, inputs, files)
    }

    /// Executes the stage into a temporary folder and publishes the result.
    fn execute(
        &self,
        mut report: StageReport,
        stage_key: StageKey,
        inputs: BTreeMap<String, InputArtifact>,
        files: BTreeMap<String, PathBuf>,
        executor: &dyn StageExecutor,
    ) -> Result<StageReport> {
        let key = stage_key.digest();
        let temp = self.cache.temp_entry(&key)?;
        let log_path = self
            .cache
            .log_dir()
            .join(format!("{}.log", sanitize(self.stage.id.as_str())));
        std::fs::write(&log_path, b"").map_err(ExecError::io("create log", &log_path))?;
        let checkpoint_dir = self.cache.checkpoint_dir(&key);
        std::fs::create_dir_all(&checkpoint_dir)
            .map_err(ExecError::io("create", &checkpoint_dir))?;
        report.log_path = Some(log_path.clone());
        let ctx = StageContext {
            key,
            stage_key: stage_key.clone(),
            inputs,
            files,
            out_dir: temp.out_dir(),
            log_path: log_path.clone(),
            checkpoint_dir,
            cancel: self.config.cancel.clone(),
            progress: ProgressHandle::new(
                self.stage.id.clone(),
                self.stage.name.clone(),
                self.config.reporter.clone(),
            ),
        };
        self.event(StageEvent::Running);
        let t0 = Instant::now();
        let outcome = self.call(executor, &ctx);
        report.seconds = t0.elapsed().as_secs_f64();
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) if self.config.cancel.is_cancelled() => {
                append_log(&log_path, &format!("cancelled: {error}"));
                self.event(StageEvent::Cancelled);
                return Ok(report);
            }
            Err(error) => {
                append_log(&log_path, &format!("error: {error}"));
                self.event(StageEvent::Failed {
                    error: error.clone(),
                });
                report.state = StageRun::Failed { error };
                return Ok(report);
            }
        };
        let new = NewEntry {
            stage_key: &stage_key,
            stage_name: &self.stage.name,
            output: outcome.output,
            gate: outcome.gate,
            metadata: outcome.metadata,
        };
        let entry = self.cache.commit(temp, new)?;
        // The result is published: checkpoints of this key are no longer needed.
        let _ = std::fs::remove_dir_all(&ctx.checkpoint_dir);
        Ok(self.finish(report, &entry, false))
    }

    /// Calls the executor with the stage's log file as the thread's `tracing` subscriber; an
    /// error or a panic comes back as text.
    fn call(
        &self,
        executor: &dyn StageExecutor,
        ctx: &StageContext,
    ) -> std::result::Result<StageOutcome, String> {
        let subscriber = stage_subscriber(&ctx.log_path, &self.config.stage_log_filter)
            .map_err(|e| e.to_string())?;
        let result = on_own_pool(|| {
            tracing::subscriber::with_default(subscriber, || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| executor(self.stage, ctx)))
            })
        });
        match result {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(format!("the stage panicked: {msg}"))
            }
        }
    }

    /// Fills `report` from a cache entry (used or just made) and reports the final event.
    fn finish(&self, report: StageReport, entry: &Entry, cached: bool) -> StageReport {
        finish_report(self.stage, self.config, report, entry, cached)
    }
}

/// The files of `stage` resolved against the run root.
pub(crate) fn stage_files(stage: &Stage, root: &Path) -> BTreeMap<String, PathBuf> {
    stage
        .files
        .iter()
        .map(|(slot, p)| (slot.clone(), resolve(root, p)))
        .collect()
}

/// A stage's key record: its config, its inputs' output digests, its files' hashes.
pub(crate) fn stage_key(
    stage: &Stage,
    cache: &Cache,
    inputs: &BTreeMap<String, InputArtifact>,
    files: &BTreeMap<String, PathBuf>,
) -> Result<StageKey> {
    let mut file_digests = BTreeMap::new();
    for (slot, path) in files {
        file_digests.insert(slot.clone(), cache.hasher().hash(path)?);
    }
    let input_digests = inputs
        .iter()
        .map(|(s, a)| (s.clone(), a.digest.clone()))
        .collect();
    Ok(StageKey::new(stage, input_digests, file_digests))
}

/// Fills `report` from a cache entry (used or just made) and reports the final event.
pub(crate) fn finish_report(
    stage: &Stage,
    config: &RunConfig,
    mut report: StageReport,
    entry: &Entry,
    cached: bool,
) -> StageReport {
    let event = |e: StageEvent| config.reporter.event(&stage.id, &stage.name, &e);
    report.output_digest = Some(entry.manifest.output_digest.clone());
    report.output = entry.manifest.output.clone();
    report.gate = entry.manifest.gate.clone();
    report.out_dir = Some(entry.out_dir.clone());
    report.state = match (&entry.manifest.gate, cached) {
        (Some(g), cached) => {
            event(StageEvent::GateFailed {
                message: g.message.clone(),
            });
            StageRun::GateFailed {
                message: g.message.clone(),
                cached,
            }
        }
        (None, true) => {
            event(StageEvent::Cached);
            StageRun::Cached
        }
        (None, false) => {
            event(StageEvent::Done {
                seconds: report.seconds,
            });
            StageRun::Ran
        }
    };
    report
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
    // Span closes carry their busy time: with `peftc=debug` a train stage's log shows each
    // step's collate / forward / backward / optimizer time (benches/train_vs_torch.py reads it).
    Ok(tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_target(false)
        // No timestamps, but span timings kept (`without_time` would drop both).
        .with_timer(())
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
