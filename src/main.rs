//! The `peftc` binary: sets how many threads candle's own CPU pool runs, parses the command
//! line and hands over to [`peftc::cli`].
//!
//! candle's own CPU thread pool (elementwise ops) runs one thread unless `CANDLE_NUM_THREADS`
//! says otherwise. That pool's caller spins without a limit until its workers finish; with a
//! second process on the cores the worker is descheduled and the spin burns the step (profiled:
//! about 42% of a LoRA step's CPU samples; on the loaded 2-core machine a tiny-llama LoRA step
//! took 3.2 s instead of 5.8 s, `benches/candle_threads.py`,
//! benches/results/train_vs_torch-2026-12-05.txt). Matrix products keep rayon's threads
//! (`RAYON_NUM_THREADS`). Both must be set before any candle op.

fn main() -> std::process::ExitCode {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Single-threaded here: nothing else reads the environment yet.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    peftc::cli::main()
}
