//! How the process's heap behaves for training: [`tune`] at start, [`trim`] before a stage
//! measures its peak (glibc on Linux; elsewhere nothing).
//!
//! A training step allocates and frees the same activation-sized buffers every step. glibc's
//! defaults start with a 128 KiB mmap threshold that rises as large blocks are freed, give the
//! heap's top back to the kernel beyond twice that threshold, and give each thread an arena of
//! its own: buffers kept above the threshold or trimmed away are mapped and page-faulted in
//! afresh on the next step, and a buffer freed on another thread lands in another arena. [`tune`]
//! sets the threshold to glibc's largest (32 MiB: only the largest buffers, logits and their
//! gradient, are mapped), never trims on free, and keeps two arenas. `PEFTC_MALLOC=glibc` keeps
//! glibc's defaults. The sentiment-shaped LoRA train, three interleaved pairs on an idle 2-core
//! machine (`bash benches/allocator_ab.sh "" PEFTC_MALLOC=glibc "" PEFTC_MALLOC=glibc ...`,
//! benches/results/allocator-2026-12-05.txt, last section): 1,165-1,196 tokens/s against
//! 908-1,031, system time 0.6-0.7 s against 1.5-2.0 s, peak 330-336 MiB against 331-338 MiB.
//!
//! Freed memory then stays resident: a linear probe that needs 150 MiB, run after a LoRA train in
//! the same process, would measure the train's freed gigabyte. [`trim`] returns it before a stage
//! measures its peak. Fixing the threshold low instead (128 KiB: every tensor mapped and unmapped
//! on its own) saved about 6% of the sentiment train's peak but made each step page-fault its
//! activations in afresh: 2.5-3x slower (benches/results/allocator-2026-12-05.txt). When any of
//! glibc's `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, `MALLOC_ARENA_MAX`,
//! `MALLOC_TOP_PAD_` is set, [`tune`] leaves the allocator to them. Must not change any value
//! computed.

/// glibc's variables that [`tune`] defers to.
const GLIBC_VARIABLES: [&str; 4] = [
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_ARENA_MAX",
    "MALLOC_TOP_PAD_",
];

/// Sets the heap up for training (see the module doc); call once, before other threads start.
pub fn tune() {
    let glibc = std::env::var_os("PEFTC_MALLOC").is_some_and(|v| v == "glibc");
    if glibc
        || GLIBC_VARIABLES
            .iter()
            .any(|v| std::env::var_os(v).is_some())
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes the allocator's parameters; called before other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns the free memory of the heap to the kernel (before measuring a stage's peak).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
