//! File watching for `peftc watch`: [`FileWatcher`] watches an exact set of files (the pipeline,
//! what it `use`s, data files) through notify with notify-debouncer-full and calls back once per
//! batch of changes ([`WatchBatch`]).
//!
//! It watches the *parent folders*, non-recursively, and filters events to the watched files.
//! That way an editor's write-to-temp-then-rename save is seen as a change of the target (the
//! rename lands in the watched folder), and a deleted file is reported as removed and seen again
//! when it comes back. Access events (opens, reads) are dropped. It must not decide what to
//! re-run: that is the caller's job.

use super::error::{ExecError, Result};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the watcher batches events.
#[derive(Clone, Copy, Debug)]
pub struct WatchConfig {
    /// Quiet time after the last event of a burst before the batch is delivered.
    pub debounce: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            debounce: Duration::from_millis(50),
        }
    }
}

/// One batch of changes to watched files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchBatch {
    /// Watched files that were written, created or renamed into place (and exist now).
    pub changed: Vec<PathBuf>,
    /// Watched files that no longer exist (they stay watched and are reported when they return).
    pub removed: Vec<PathBuf>,
    /// Watcher errors in this batch (e.g. too many watches), as text.
    pub errors: Vec<String>,
}

type Shared = Arc<Mutex<BTreeSet<PathBuf>>>;

/// Watches a set of files until dropped.
pub struct FileWatcher {
    debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    files: Shared,
    dirs: BTreeSet<PathBuf>,
}

impl FileWatcher {
    /// Starts watching `paths` (files that may or may not exist yet; their folders must exist)
    /// and calls `on_batch` from the watcher's thread for every batch touching them.
    pub fn new(
        paths: &[PathBuf],
        config: WatchConfig,
        mut on_batch: impl FnMut(WatchBatch) + Send + 'static,
    ) -> Result<FileWatcher> {
        let files: Shared = Arc::new(Mutex::new(BTreeSet::new()));
        let filter = files.clone();
        let handler = move |result: DebounceEventResult| {
            let batch = to_batch(result, &filter);
            if !batch.changed.is_empty() || !batch.removed.is_empty() || !batch.errors.is_empty() {
                on_batch(batch);
            }
        };
        let debouncer =
            new_debouncer(config.debounce, None, handler).map_err(|e| ExecError::Watch {
                path: PathBuf::from("."),
                message: e.to_string(),
            })?;
        let mut watcher = FileWatcher {
            debouncer,
            files,
            dirs: BTreeSet::new(),
        };
        watcher.set_paths(paths)?;
        Ok(watcher)
    }

    /// Replaces the watched set (mark and sweep over parent folders).
    pub fn set_paths(&mut self, paths: &[PathBuf]) -> Result<()> {
        let abs: BTreeSet<PathBuf> = paths.iter().map(|p| absolute(p)).collect();
        let dirs: BTreeSet<PathBuf> = abs
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        for dir in dirs.difference(&self.dirs) {
            self.debouncer
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| ExecError::Watch {
                    path: dir.clone(),
                    message: e.to_string(),
                })?;
        }
        for dir in self.dirs.difference(&dirs) {
            let _ = self.debouncer.unwatch(dir);
        }
        self.dirs = dirs;
        if let Ok(mut files) = self.files.lock() {
            *files = abs;
        }
        Ok(())
    }

    /// The watched files (absolute).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files
            .lock()
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn to_batch(result: DebounceEventResult, files: &Shared) -> WatchBatch {
    let mut batch = WatchBatch::default();
    let events = match result {
        Ok(events) => events,
        Err(errors) => {
            batch.errors = errors.iter().map(ToString::to_string).collect();
            return batch;
        }
    };
    let Ok(watched) = files.lock() else {
        return batch;
    };
    let mut touched = BTreeSet::new();
    for event in &events {
        let relevant = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            _ => true,
        };
        if !relevant {
            continue;
        }
        for path in &event.paths {
            if watched.contains(path) {
                touched.insert(path.clone());
            }
        }
    }
    for path in touched {
        if path.exists() {
            batch.changed.push(path);
        } else {
            batch.removed.push(path);
        }
    }
    batch
}
