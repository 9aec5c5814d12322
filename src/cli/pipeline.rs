//! Shared by `plan`, `run` and `watch`: check a pipeline file, print its diagnostics the way
//! `peftc check` does, and hand back the checked program when it has no errors.

use crate::check::{self, render, Program, RealWorld};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Why a pipeline could not be used.
#[derive(Debug)]
pub enum Unusable {
    /// The file could not be read (exit 2).
    Io(String),
    /// It has errors, already printed (exit 1).
    Errors,
}

/// What the checked program is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Looking at it (`plan`): warnings stay warnings.
    Inspect,
    /// Running it: an export outside the project without `outside_project = true` is an error.
    Run,
}

/// Checks `file`, prints its diagnostics to stderr, returns the program when error-free.
pub fn checked_program(file: &Path, purpose: Purpose) -> Result<Program, Unusable> {
    let world = RealWorld::from_env();
    let mut checked = check::check(&world, file)
        .map_err(|e| Unusable::Io(format!("cannot read `{}`: {e}", file.display())))?;
    if purpose == Purpose::Run {
        check::refuse_outside_project(&mut checked.diagnostics);
    }
    let fancy = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!(
        "{}",
        render::human_all(
            &checked.diagnostics,
            &checked.sources,
            render::Style { fancy, width: 100 }
        )
    );
    if checked.has_errors() {
        let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!("{}: {errors} error(s); nothing was run", file.display());
        return Err(Unusable::Errors);
    }
    Ok(checked.program)
}

/// The folder holding the pipeline file (the root for relative paths, the cache and the lock).
pub fn pipeline_root(file: &Path) -> PathBuf {
    let abs = if file.is_absolute() {
        file.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(file)
    };
    abs.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The cache folder: `--cache-dir`, else `PEFTC_CACHE_DIR`, else `.peft/` next to the pipeline.
pub fn cache_dir(file: &Path, flag: Option<&Path>) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    if let Some(d) = std::env::var_os("PEFTC_CACHE_DIR") {
        return PathBuf::from(d);
    }
    pipeline_root(file).join(".peft")
}

/// The lockfile next to the pipeline.
pub fn lock_path(file: &Path) -> PathBuf {
    pipeline_root(file).join("peftc.lock")
}

/// Checks `file` for a run and hands the program to `body`: exit 1 on errors in the input
/// (already printed), 2 on I/O errors or an error of `body`, else `body`'s exit code.
pub fn run_checked(
    file: &Path,
    body: impl FnOnce(&Program) -> anyhow::Result<u8>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let program = match checked_program(file, Purpose::Run) {
        Ok(p) => p,
        Err(Unusable::Errors) => return ExitCode::from(1),
        Err(Unusable::Io(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match body(&program) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
