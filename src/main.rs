//! The `peftc` binary: parses the command line and hands over to [`peftc::cli`].

fn main() -> std::process::ExitCode {
    peftc::cli::main()
}
