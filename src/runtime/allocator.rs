//! How the heap behaves while stages run (glibc on Linux; elsewhere nothing): [`configure`] keeps
//! freed memory in the heap during a stage, [`trim`] hands it back to the kernel before a stage
//! measures its peak.
//!
//! A training step frees and allocates the same activation buffers every step. Under glibc's
//! defaults each worker thread allocates from an arena of its own, built of 64 MiB heaps that
//! are unmapped as soon as they empty, and the main arena's top is trimmed once more than twice
//! the (moving) mmap threshold is free: every step page-faulted a large part of its activations
//! in afresh (a 12-step tiny-llama LoRA run: 240-370 thousand minor faults, against 125
//! thousand for the first touch of its memory). [`configure`] puts every thread on the main
//! arena, fixes the mmap threshold at glibc's largest (32 MiB) and raises the trim threshold to
//! 2 GiB, so freed buffers are reused in place until [`trim`] returns them: 125 thousand faults,
//! the run's system time 0.8-1.0 -> 0.5 s (benches/results/allocator-2026-12-05.txt). Blocks
//! above 32 MiB are still mapped and unmapped on their own.
//!
//! `peftc watch` trims after each run, so an idle watcher does not hold its last train's heap.
//! Without [`trim`], freed heap memory would stay resident: a linear probe that needs 150 MiB,
//! run after a LoRA train in the same process, would measure the train's freed gigabyte.
//! A low fixed mmap threshold (128 KiB: every tensor mapped and unmapped on its own) saved
//! about 6% of the sentiment train's peak but made each step fault all its activations in: 2.5-3x
//! slower. A user's `GLIBC_TUNABLES` or `MALLOC_*` variables (`MALLOC_ARENA_MAX`,
//! `MALLOC_TRIM_THRESHOLD_`, ...) win over [`configure`].
//! Must not change any value computed.

/// Returns the free memory of the heap to the kernel (before measuring a stage's peak).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Sets the heap up for stages that run many equal steps (see the module doc); does nothing when
/// the environment already tunes glibc's allocator. Call before the stage threads start: a thread
/// keeps the arena it first allocated from.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = std::env::vars_os().any(|(k, _)| {
            let k = k.to_string_lossy();
            k == "GLIBC_TUNABLES" || k.starts_with("MALLOC_")
        });
        if tuned {
            return;
        }
        // SAFETY: `mallopt` only changes the allocator's parameters; these values are in the
        // ranges glibc documents (the mmap threshold at most 32 MiB on 64-bit targets).
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}
