//! `peftc lsp`: runs the language server ([`crate::lsp`]) over stdin and stdout until the
//! client says `exit`. Exit 0 after a clean shutdown, 1 otherwise.

use clap::Args;
use std::process::ExitCode;

/// Run the language server over stdio.
#[derive(Debug, Args)]
pub struct LspArgs {
    /// Accepted for clients that pass it (the server always speaks over stdio).
    #[arg(long)]
    pub stdio: bool,
}

pub fn run(_args: &LspArgs) -> ExitCode {
    match crate::lsp::run_stdio() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
