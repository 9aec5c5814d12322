//! The `peftc` binary: sets how the allocator returns memory, parses the command line and hands
//! over to [`peftc::cli`].

fn main() -> std::process::ExitCode {
    peftc::runtime::allocator::return_freed_memory();
    peftc::cli::main()
}
