//! `peftc explain CODE`: prints the long explanation of a diagnostic code.

use crate::check::explain;
use crate::syntax::Code;
use clap::Args;
use std::process::ExitCode;

/// Explain a diagnostic code (e.g. `peftc explain E0302`).
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The code, such as E0302 or W0303.
    pub code: String,
}

pub fn run(args: &ExplainArgs) -> ExitCode {
    match Code::parse(&args.code) {
        Some(c) => {
            print!("{}", explain::explain(c));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "error: unknown code `{}`; codes look like E0302 or W0303",
                args.code
            );
            ExitCode::from(2)
        }
    }
}
