//! The `peftc` binary: picks the allocator, sets how many threads candle's own CPU pool runs,
//! parses the command line and hands over to [`peftc::cli`].
//!
//! candle's own CPU thread pool (elementwise ops) runs one thread unless `CANDLE_NUM_THREADS`
//! says otherwise. That pool's caller spins without a limit until its workers finish; with a
//! second process on the cores the worker is descheduled and the spin burns the step (profiled:
//! about 42% of a LoRA step's CPU samples; on the loaded 2-core machine a tiny-llama LoRA step
//! took 3.2 s instead of 5.8 s, `benches/candle_threads.py`,
//! benches/results/train_vs_torch-2026-12-05.txt). Matrix products keep rayon's threads
//! (`RAYON_NUM_THREADS`). Both must be set before any candle op.
//!
//! The allocator is mimalloc, told never to hand freed memory back to the system. A training
//! step frees and allocates the same activation buffers every step; with glibc's malloc the
//! large ones went back to the system when freed and came back as fresh pages, faulted in and
//! zeroed one 4 KiB page at a time (a tiny-llama LoRA run: about 30 thousand page faults per
//! step, 366 thousand in 12 steps, against 153 thousand in all with this allocator: the
//! process's first touch of its memory). The process keeps its peak mapped until it exits.
//! Transparent huge pages stay off (the `no_thp` feature): they raised the resident peak with
//! no gain in step time.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the index in `mimalloc.h` of the version Cargo.lock
/// pins; a test checks it): milliseconds before freed memory is returned, `-1` never.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the allocator for reuse instead of returning it to the system.
fn keep_freed_memory() {
    // SAFETY: sets one of mimalloc's options; safe at any time, from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Single-threaded here: nothing else reads the environment yet.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    peftc::cli::main()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // purge_delay's default in mimalloc 3 is 1000 ms; its neighbours' defaults differ
        // (14: a deprecated option, 0; 16: use_numa_nodes, 0).
        let get = |o| unsafe { libmimalloc_sys::mi_option_get(o) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(MI_OPTION_PURGE_DELAY), 1000);
        }
        keep_freed_memory();
        assert_eq!(get(MI_OPTION_PURGE_DELAY), -1);
    }
}
