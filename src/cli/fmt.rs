//! `peftc fmt [--check] FILES`: rewrites `.peft` files in the canonical layout (see
//! [`crate::fmt`]). With `--check`, writes nothing and lists the files that would change.
//! Exit 0 when every file is formatted (or already was), 1 when a file has syntax errors or
//! (with `--check`) would change, 2 when a file cannot be read or written.

use crate::check::world::{read_text_limited, MAX_TEXT_FILE};
use crate::fmt::format_source;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Format `.peft` files in place.
#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Files to format; a folder means every `.peft` file in it.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Change nothing; list the files that are not formatted and exit 1 if any.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: &FmtArgs) -> ExitCode {
    let mut code = 0u8;
    for path in expand(&args.files) {
        let text = match read_text_limited(&path, MAX_TEXT_FILE) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
                code = code.max(2);
                continue;
            }
        };
        let formatted = match format_source(&text) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: `{}` not formatted: {e}", path.display());
                code = code.max(1);
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if args.check {
            println!("{}", path.display());
            code = code.max(1);
        } else if let Err(e) = std::fs::write(&path, formatted) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            code = code.max(2);
        }
    }
    ExitCode::from(code)
}

fn expand(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|f| f.extension().is_some_and(|x| x == "peft"))
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    out
}
