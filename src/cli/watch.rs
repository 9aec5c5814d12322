//! `peftc watch FILE [--no-run] [--cache-dir DIR] [--device D]`: re-checks a pipeline on every
//! save of it, of the files it `use`s, of its data files and of its local model files; prints the
//! diagnostics like `peftc check`; when the program is valid (and not `--no-run`) re-plans it and
//! runs it in a background thread. A change that alters the key of a stage the current run has not
//! finished cancels that run (training stops at a safe point, keeping its checkpoint) and starts
//! the new one; a change that leaves every stage the same runs nothing and says so.
//!
//! On a terminal each cycle clears the screen and prints a header; otherwise every event is one
//! plain line starting with `[watch] ` so scripts and tests can wait for it. Errors in the
//! pipeline never stop the watcher; Ctrl-C exits with 130. It must not decide *how* stages run:
//! that is `exec::run` with `stages::execute`, exactly as in `peftc run` (without escalation).

use super::pipeline::{cache_dir, lock_path, pipeline_root};
use crate::check::hir::ModelSource;
use crate::check::{self, render, Checked, Program, RealWorld, World};
use crate::exec::hasher::FileHasher;
use crate::exec::{
    plan_status, CancelFlag, FileWatcher, Lockfile, Reporter, RunConfig, RunReport, StageEvent,
    StageRun, StatusConfig, WatchBatch, WatchConfig,
};
use crate::plan::lower::{lower, EscalationChoice};
use crate::plan::{render as plan_render, Digest, Plan, StageId, StageState};
use crate::stages::{execute, RunEnv};
use crate::syntax::ParseCache;
use clap::Args;
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Re-check (and re-run) a pipeline on every save.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The `.peft` file.
    pub file: PathBuf,
    /// Only check: never plan a run.
    #[arg(long)]
    pub no_run: bool,
    /// Cache folder (default `.peft/` next to the pipeline).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Device: `cpu` (default), `cuda:N` or `metal` (needs a build with that feature).
    #[arg(long, env = "PEFTC_DEVICE", default_value = "cpu")]
    pub device: String,
    /// Quiet time after the last file event before a cycle starts, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub debounce_ms: u64,
}

/// How long Ctrl-C waits for running stages to reach a safe point.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// What the main loop reacts to.
enum Msg {
    Batch(WatchBatch),
    /// The run with this number has ended (its thread is about to exit).
    RunFinished(u64),
    Interrupt,
}

/// Per stage id, a digest of everything its key depends on (kind, version, config, its inputs'
/// fingerprints, its files' contents). Equal fingerprints mean equal keys, without running.
type Fingerprints = BTreeMap<StageId, Digest>;

/// A run in the background.
struct Running {
    /// Which run (they are numbered from 1).
    id: u64,
    handle: JoinHandle<()>,
    prints: Fingerprints,
    /// Stages the run has finished (cached, ran, failed, skipped).
    finished: Arc<Mutex<BTreeSet<StageId>>>,
}

struct Watcher {
    args: WatchArgs,
    file: PathBuf,
    tty: bool,
    hasher: FileHasher,
    /// Fingerprints of the last valid plan.
    last: Option<Fingerprints>,
    running: Option<Running>,
    /// Runs started so far.
    runs: u64,
    /// A valid program whose run waits for the current one to finish.
    queued: Option<(Program, Plan, Fingerprints)>,
    cancel: CancelFlag,
    tx: Sender<Msg>,
    /// The gate verdicts of the last finished run (shown on a terminal after each clear).
    gates: Arc<Mutex<Vec<String>>>,
    /// Items parsed by earlier checks: a save re-parses only the declarations it changed.
    parse_cache: ParseCache,
}

pub fn run(args: WatchArgs) -> ExitCode {
    crate::runtime::allocator::configure();
    let file = std::path::absolute(&args.file).unwrap_or_else(|_| args.file.clone());
    let (tx, rx) = channel();
    let cancel = CancelFlag::new();
    let on_int = tx.clone();
    let int_flag = cancel.clone();
    let interrupted = std::sync::atomic::AtomicBool::new(false);
    if let Err(e) = ctrlc::set_handler(move || {
        // A second Ctrl-C quits at once, even while a stage is still stopping.
        if interrupted.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        int_flag.cancel();
        let _ = on_int.send(Msg::Interrupt);
    }) {
        eprintln!("warning: cannot install the Ctrl-C handler: {e}");
    }
    if !args.no_run {
        std::env::set_var("PEFTC_DEVICE", &args.device);
        if let Err(e) = crate::stages::device() {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    }
    let batch_tx = tx.clone();
    let config = WatchConfig {
        debounce: Duration::from_millis(args.debounce_ms.max(1)),
    };
    let mut fs_watcher = match FileWatcher::new(std::slice::from_ref(&file), config, move |b| {
        let _ = batch_tx.send(Msg::Batch(b));
    }) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: cannot watch `{}`: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let tty = std::io::stdout().is_terminal();
    let mut w = Watcher {
        args,
        file: file.clone(),
        tty,
        hasher: FileHasher::in_memory(),
        last: None,
        running: None,
        runs: 0,
        queued: None,
        cancel,
        tx,
        gates: Arc::new(Mutex::new(Vec::new())),
        parse_cache: ParseCache::new(),
    };
    line(&format!("watching {}", file.display()));
    let first = WatchBatch {
        changed: vec![file.clone()],
        ..Default::default()
    };
    w.cycle(&first, &mut fs_watcher, false);
    w.main_loop(&rx, &mut fs_watcher)
}

impl Watcher {
    fn main_loop(&mut self, rx: &Receiver<Msg>, fs_watcher: &mut FileWatcher) -> ExitCode {
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Batch(batch) => self.cycle(&batch, fs_watcher, true),
                Msg::RunFinished(id) => self.run_finished(id),
                Msg::Interrupt => {
                    self.stop_on_interrupt();
                    line("interrupted");
                    return ExitCode::from(130);
                }
            }
        }
        ExitCode::SUCCESS
    }

    /// One change batch: report it, re-check, re-plan, maybe run.
    fn cycle(&mut self, batch: &WatchBatch, fs_watcher: &mut FileWatcher, report_changes: bool) {
        if self.tty {
            print!("\x1b[2J\x1b[H");
            println!("peftc watch  {}  {}\n", utc_time(), self.file.display());
            let gates = self.gates.lock().map(|g| g.clone()).unwrap_or_default();
            if !gates.is_empty() {
                println!("last gate results:");
                for g in gates {
                    println!("  {g}");
                }
                println!();
            }
        }
        if report_changes {
            for p in &batch.changed {
                line(&format!("change: {}", p.display()));
            }
            for p in &batch.removed {
                line(&format!(
                    "deleted: {} (watching for its return)",
                    p.display()
                ));
            }
            for e in &batch.errors {
                line(&format!("watch error: {e}"));
            }
        }
        if !self.file.exists() {
            line(&format!("waiting: {} does not exist", self.file.display()));
            return;
        }
        let world = RealWorld::from_env();
        let mut checked = match world.read_to_string(&self.file) {
            Ok(text) => {
                check::check_source_cached(&world, &self.file, &text, Some(&self.parse_cache))
            }
            Err(e) => {
                line(&format!("error: cannot read {}: {e}", self.file.display()));
                return;
            }
        };
        if !self.args.no_run {
            check::refuse_outside_project(&mut checked.diagnostics);
        }
        self.print_diagnostics(&checked);
        // Files that are gone stay watched: a deleted import or data file is not in the new
        // check's sources, but its return must start a cycle.
        let mut paths = watched_paths(&self.file, &checked);
        if checked.has_errors() {
            // A failed check may not reach every file (a missing import, say) and that file may
            // already be back by now: keep watching everything watched before.
            paths.extend(fs_watcher.paths());
        } else {
            paths.extend(fs_watcher.paths().into_iter().filter(|p| !p.exists()));
        }
        if let Err(e) = fs_watcher.set_paths(&paths) {
            line(&format!("watch error: {e}"));
        }
        if checked.has_errors() {
            return;
        }
        let plan = match lower(&checked.program, &EscalationChoice::new()) {
            Ok(p) => p,
            Err(e) => {
                line(&format!("error: cannot plan: {e:#}"));
                return;
            }
        };
        let prints = fingerprints(&plan, &self.hasher, &pipeline_root(&self.file));
        self.print_plan(&plan);
        if self.last.as_ref() == Some(&prints) {
            line("nothing to run: no stage changed");
            return;
        }
        let changed = changed_stages(self.last.as_ref(), &prints);
        line(&format!("stages changed: {}", join(&changed)));
        self.last = Some(prints.clone());
        if self.args.no_run {
            return;
        }
        self.schedule(checked.program, plan, prints);
    }

    fn print_diagnostics(&self, checked: &Checked) {
        let fancy = self.tty && std::env::var_os("NO_COLOR").is_none();
        print!(
            "{}",
            render::human_all(
                &checked.diagnostics,
                &checked.sources,
                render::Style { fancy, width: 100 }
            )
        );
        let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = checked.diagnostics.len() - errors;
        line(&format!("check: {errors} errors, {warnings} warnings"));
    }

    /// The plan state per stage (cached / to run / waiting on a rebuilt input).
    fn print_plan(&self, plan: &Plan) {
        let Ok(cache) =
            crate::exec::Cache::open(cache_dir(&self.file, self.args.cache_dir.as_deref()))
        else {
            return;
        };
        let previous = Lockfile::read(&lock_path(&self.file)).ok().flatten();
        let config = StatusConfig {
            root: pipeline_root(&self.file),
            previous: previous.as_ref(),
            ..Default::default()
        };
        let Ok(status) = plan_status(plan, &cache, &config) else {
            return;
        };
        if self.tty {
            print!("{}", plan_render::text(plan, &status));
            return;
        }
        for s in &status.stages {
            let state = match s.state {
                StageState::Cached => "cached",
                StageState::ToRun => "to run",
                StageState::Waiting => "runs if an input changes",
                StageState::NotSelected => "not selected",
            };
            line(&format!("plan: {} {state}", s.id));
        }
    }

    /// Starts `program` now, or cancels a stale run first, or queues it behind a run that the
    /// change does not touch.
    fn schedule(&mut self, program: Program, plan: Plan, prints: Fingerprints) {
        if let Some(running) = &self.running {
            let finished = running
                .finished
                .lock()
                .map(|f| f.clone())
                .unwrap_or_default();
            let stale = running
                .prints
                .iter()
                .any(|(id, fp)| !finished.contains(id) && prints.get(id) != Some(fp));
            if !stale {
                line("run in progress is unaffected: letting it finish");
                self.queued = Some((program, plan, prints));
                return;
            }
            self.stop_run();
            line("cancelled stale run");
        }
        self.start(program, plan, prints);
    }

    /// Cancels the current run (if any), waits for it to stop and clears the flag.
    fn stop_run(&mut self) {
        if let Some(running) = self.running.take() {
            self.cancel.cancel();
            let _ = running.handle.join();
        }
        self.cancel.reset();
    }

    /// Ctrl-C: stages stop at their next safe point (training keeps its checkpoint); a stage
    /// that does not stop within [`STOP_WAIT`] is abandoned.
    fn stop_on_interrupt(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        self.cancel.cancel();
        let deadline = std::time::Instant::now() + STOP_WAIT;
        while !running.handle.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if running.handle.is_finished() {
            let _ = running.handle.join();
        } else {
            line(&format!(
                "a stage did not stop within {} s; quitting anyway",
                STOP_WAIT.as_secs()
            ));
        }
    }

    fn run_finished(&mut self, id: u64) {
        // A cancelled run's message may arrive after the next run started: ignore it.
        if self.running.as_ref().map(|r| r.id) != Some(id) {
            return;
        }
        if let Some(r) = self.running.take() {
            let _ = r.handle.join();
        }
        if let Some((program, plan, prints)) = self.queued.take() {
            self.start(program, plan, prints);
        }
    }

    fn start(&mut self, program: Program, plan: Plan, prints: Fingerprints) {
        let finished = Arc::new(Mutex::new(BTreeSet::new()));
        self.runs += 1;
        let ctx = RunContext {
            id: self.runs,
            file: self.file.clone(),
            cache_dir: cache_dir(&self.file, self.args.cache_dir.as_deref()),
            cancel: self.cancel.clone(),
            finished: finished.clone(),
            tx: self.tx.clone(),
            gates: self.gates.clone(),
        };
        line(&format!("run: started ({} stages)", plan.stages().len()));
        let handle = std::thread::spawn(move || ctx.run(&program, &plan));
        self.running = Some(Running {
            id: self.runs,
            handle,
            prints,
            finished,
        });
    }
}

/// What the background run needs.
struct RunContext {
    id: u64,
    file: PathBuf,
    cache_dir: PathBuf,
    cancel: CancelFlag,
    finished: Arc<Mutex<BTreeSet<StageId>>>,
    tx: Sender<Msg>,
    gates: Arc<Mutex<Vec<String>>>,
}

impl RunContext {
    fn run(self, program: &Program, plan: &Plan) {
        match self.run_plan(program, plan) {
            Ok(report) => {
                let gates = print_report(&report);
                if !gates.is_empty() {
                    if let Ok(mut g) = self.gates.lock() {
                        *g = gates;
                    }
                }
            }
            Err(e) => line(&format!("run: error: {e:#}")),
        }
        // The heap the run's stages kept for their steps goes back to the kernel while watch
        // waits for the next change.
        crate::runtime::allocator::trim();
        let _ = self.tx.send(Msg::RunFinished(self.id));
    }

    fn run_plan(&self, program: &Program, plan: &Plan) -> anyhow::Result<RunReport> {
        let cache = crate::exec::Cache::open(&self.cache_dir)?;
        let env = RunEnv {
            pipeline: program.file.clone(),
            source: std::fs::read_to_string(&program.file).unwrap_or_default(),
        };
        let executor =
            |stage: &crate::plan::Stage, ctx: &crate::exec::StageContext| execute(stage, ctx, &env);
        let lock = lock_path(&self.file);
        let previous = Lockfile::read(&lock)?;
        let mut config = RunConfig::new(pipeline_root(&self.file));
        config.exclusive_kinds = ["train", "eval", "quantize", "merge"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        config.cancel = self.cancel.clone();
        config.reporter = Arc::new(LineReporter {
            finished: self.finished.clone(),
        });
        let refused = crate::stages::preflight(plan, &[])?;
        if let Some(e) = refused.first() {
            anyhow::bail!("{e}; nothing was run");
        }
        let mut report = crate::exec::run(plan, &cache, &config, &executor)?;
        for l in crate::stages::publish_all(plan, &mut report, cache.hasher()) {
            line(&l);
        }
        cache.save_stat_cache()?;
        if !self.cancel.is_cancelled() {
            Lockfile::update(previous.as_ref(), plan, &report).write(&lock)?;
        }
        Ok(report)
    }
}

/// Prints one plain line per stage event and records finished stages.
struct LineReporter {
    finished: Arc<Mutex<BTreeSet<StageId>>>,
}

impl Reporter for LineReporter {
    fn event(&self, id: &StageId, name: &str, event: &StageEvent) {
        let text = match event {
            StageEvent::WaitingForLock => "waiting for another run".to_owned(),
            StageEvent::Cached => "cached".to_owned(),
            StageEvent::Running => "running".to_owned(),
            StageEvent::Progress { .. } | StageEvent::Submitted { .. } => return,
            StageEvent::Done { seconds } => format!("ran ({seconds:.2}s)"),
            StageEvent::Failed { error } => format!("failed: {error}"),
            StageEvent::GateFailed { message } => format!("gate failed: {message}"),
            StageEvent::Skipped { because } => format!("skipped (input {because} did not succeed)"),
            StageEvent::Cancelled => "cancelled".to_owned(),
            StageEvent::Warning { message } => format!("warning: {message}"),
            StageEvent::Note { message } => message.clone(),
        };
        let done = !matches!(
            event,
            StageEvent::WaitingForLock
                | StageEvent::Running
                | StageEvent::Warning { .. }
                | StageEvent::Note { .. }
                | StageEvent::Cancelled
        );
        if done {
            if let Ok(mut f) = self.finished.lock() {
                f.insert(id.clone());
            }
        }
        line(&format!("stage {name}: {text}"));
    }
}

/// The end of a run: which stages ran, the gates' verdicts (returned), the summary.
fn print_report(report: &RunReport) -> Vec<String> {
    let of = |pred: &dyn Fn(&StageRun) -> bool| -> Vec<String> {
        report
            .stages
            .iter()
            .filter(|s| pred(&s.state))
            .map(|s| s.id.to_string())
            .collect()
    };
    let ran = of(&|s| {
        matches!(
            s,
            StageRun::Ran | StageRun::GateFailed { cached: false, .. }
        )
    });
    let cached = of(&|s| {
        matches!(
            s,
            StageRun::Cached | StageRun::GateFailed { cached: true, .. }
        )
    });
    let failed = of(&|s| matches!(s, StageRun::Failed { .. }));
    if report.stages.iter().any(|s| s.state == StageRun::Cancelled) {
        line(&format!("run: cancelled (ran: {})", join(&ran)));
        return Vec::new();
    }
    let mut gates = Vec::new();
    for s in report.stages.iter().filter(|s| s.kind == "gate") {
        let verdict = match &s.state {
            StageRun::GateFailed { message, .. } => format!("failed: {message}"),
            StageRun::Ran | StageRun::Cached => "passed".to_owned(),
            other => format!("{other:?}").to_lowercase(),
        };
        let text = format!("gate {}: {verdict}", s.name);
        line(&text);
        gates.push(text);
    }
    line(&format!(
        "run: ran: {}; cached: {}; failed: {}",
        join(&ran),
        join(&cached),
        join(&failed)
    ));
    for l in crate::exec::run_summary(report).lines() {
        line(&format!("summary: {l}"));
    }
    gates
}

/// The files a cycle watches: the pipeline, its `use`d files, data files (found or declared)
/// and the files of local models (a folder's direct files, or the GGUF file).
fn watched_paths(file: &Path, checked: &Checked) -> Vec<PathBuf> {
    let mut out = BTreeSet::new();
    out.insert(file.to_path_buf());
    for s in &checked.sources.files {
        if !s.path.starts_with("<std>") && s.path.is_absolute() {
            out.insert(s.path.clone());
        }
    }
    let program = &checked.program;
    for d in &program.datasets {
        out.extend(d.source.files.iter().cloned());
        for p in &d.source.patterns {
            let text = p.to_string_lossy();
            if !text.contains(['*', '?', '[']) {
                out.insert(p.clone());
            }
        }
    }
    for m in &program.models {
        let local = match &m.source {
            ModelSource::Local { path } => Some(m.resolved.clone().unwrap_or_else(|| path.clone())),
            ModelSource::Gguf { path } => Some(m.resolved.clone().unwrap_or_else(|| path.clone())),
            ModelSource::Hf { .. } => None,
        };
        let Some(path) = local else { continue };
        let path = if path.is_absolute() {
            path
        } else {
            pipeline_root(file).join(path)
        };
        match std::fs::read_dir(&path) {
            Ok(entries) => out.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file())),
            Err(_) => {
                out.insert(path);
            }
        }
    }
    // A file whose folder does not exist cannot be watched; its folder's creation is not seen.
    out.into_iter()
        .filter(|p| p.parent().is_some_and(Path::is_dir))
        .collect()
}

/// Per stage, in plan order, the digest of its kind, version, config, input fingerprints and
/// file contents (a missing file hashes as "missing").
fn fingerprints(plan: &Plan, hasher: &FileHasher, root: &Path) -> Fingerprints {
    let mut out = Fingerprints::new();
    for stage in plan.ordered() {
        let inputs: BTreeMap<&String, Option<&Digest>> = stage
            .inputs
            .iter()
            .map(|(slot, from)| (slot, out.get(from)))
            .collect();
        let files: BTreeMap<&String, String> = stage
            .files
            .iter()
            .map(|(slot, p)| {
                let p = if p.is_absolute() {
                    p.clone()
                } else {
                    root.join(p)
                };
                let d = hasher
                    .hash(&p)
                    .map(|d| d.to_string())
                    .unwrap_or_else(|_| "missing".into());
                (slot, d)
            })
            .collect();
        let record = serde_json::json!({
            "kind": stage.kind,
            "version": stage.version,
            "config": stage.config,
            "inputs": inputs,
            "files": files,
        });
        out.insert(
            stage.id.clone(),
            Digest::of_bytes(record.to_string().as_bytes()),
        );
    }
    out
}

/// Stage ids whose fingerprint differs from `old` (all of them when there is no `old`).
fn changed_stages(old: Option<&Fingerprints>, new: &Fingerprints) -> Vec<String> {
    new.iter()
        .filter(|(id, fp)| old.and_then(|o| o.get(*id)) != Some(*fp))
        .map(|(id, _)| id.to_string())
        .collect()
}

fn join(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

/// One event line (flushed at once: stdout is line-buffered).
fn line(text: &str) {
    println!("[watch] {text}");
}

/// `HH:MM:SS` UTC.
fn utc_time() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}
