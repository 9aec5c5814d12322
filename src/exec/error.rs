//! [`ExecError`]: what can go wrong in the engine itself (I/O on the cache, the lockfile, a
//! corrupt manifest). Stage failures are not here: they are outcomes in the run report.

use std::path::PathBuf;

/// An error of the execution engine, naming the file concerned.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExecError {
    /// Reading or writing a file or folder failed.
    #[error("{action} {}: {source}", path.display())]
    #[diagnostic(code(peftc::exec::io))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (manifest, lockfile, stat cache) could not be parsed.
    #[error("cannot parse {}: {source}", path.display())]
    #[diagnostic(
        code(peftc::exec::parse),
        help("delete the file; it is rebuilt on the next run")
    )]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The plan could not be scheduled (`--only`/`--force` naming an unknown stage, ...).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// A report could not be drawn.
    #[error("cannot draw {}: {message}", path.display())]
    #[diagnostic(code(peftc::exec::plot))]
    Plot { path: PathBuf, message: String },
    /// A lockfile was written by a newer peftc.
    #[error("{} has format {found}; this peftc reads up to {supported}", path.display())]
    #[diagnostic(
        code(peftc::exec::lock_format),
        help("upgrade peftc or delete the lockfile")
    )]
    LockFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A JSONL line (loss log) is not `{"step": n, "loss": x}`.
    #[error("{}:{line}: {message}", path.display())]
    #[diagnostic(code(peftc::exec::jsonl))]
    BadJsonl {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The file watcher could not start or watch a path.
    #[error("cannot watch {}: {message}", path.display())]
    #[diagnostic(code(peftc::exec::watch))]
    Watch { path: PathBuf, message: String },
}

impl ExecError {
    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ExecError {
        let path = path.into();
        move |source| ExecError::Io {
            action,
            path,
            source,
        }
    }
}

/// Shorthand for results of the engine.
pub type Result<T, E = ExecError> = std::result::Result<T, E>;
