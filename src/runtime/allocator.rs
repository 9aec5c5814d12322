//! Hands the heap's free memory back to the kernel before a stage measures its peak (glibc on
//! Linux; elsewhere nothing). glibc raises its mmap threshold as large blocks are freed, so after
//! the first training step activations come from the heap and freed heap memory stays resident:
//! a linear probe that needs 150 MiB, run after a LoRA train in the same process, would measure
//! the train's freed gigabyte. [`trim`] returns it.
//!
//! The threshold itself is left to glibc. Fixing it at 128 KiB (every tensor mapped and unmapped
//! on its own) saved about 6% of the sentiment train's peak but made each step page-fault its
//! activations in afresh: 2.5-3x slower, most of it system time (benches/results/
//! allocator-2026-12-05.txt). `MALLOC_MMAP_THRESHOLD_` and glibc's other variables still apply.
//! Must not change any value computed.

/// Returns the free memory of the heap to the kernel (before measuring a stage's peak).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
