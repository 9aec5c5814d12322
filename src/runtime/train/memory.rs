//! Peak memory of a stage, measured from the kernel (Linux `/proc/self/status`: `VmHWM`,
//! `VmRSS`). At a stage's start the high-water mark is reset when the kernel allows it (writing
//! `5` to `/proc/self/clear_refs`), so the peak is the stage's own; otherwise it is the
//! process's peak so far and `stage_local` says so. Elsewhere the figures are `None`. Stages
//! measured concurrently in one process share the mark, so each reads the larger peak.

use serde::{Deserialize, Serialize};

/// Memory figures of one stage, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Resident set size when the stage started.
    pub start_rss_bytes: Option<u64>,
    /// Peak resident set size (`VmHWM`) at the end of the stage.
    pub peak_rss_bytes: Option<u64>,
    /// `peak - start`: what the stage added at its peak.
    pub stage_delta_bytes: Option<u64>,
    /// Whether the peak was reset at the stage's start (so it belongs to this stage).
    pub stage_local: bool,
}

/// A measurement in progress.
#[derive(Clone, Debug)]
pub struct MemoryProbe {
    start_rss: Option<u64>,
    reset: bool,
}

impl MemoryProbe {
    /// Starts measuring: records the RSS and tries to reset the high-water mark.
    pub fn start() -> Self {
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Self {
            start_rss: read_status_kib("VmRSS:").map(|k| k * 1024),
            reset,
        }
    }

    /// The figures now.
    pub fn report(&self) -> MemoryReport {
        // Another stage in the process may reset the mark after this one started; the stage's
        // peak is at least what it started with.
        let peak = read_status_kib("VmHWM:")
            .map(|k| k * 1024)
            .map(|p| p.max(self.start_rss.unwrap_or(0)));
        MemoryReport {
            start_rss_bytes: self.start_rss,
            peak_rss_bytes: peak,
            stage_delta_bytes: match (peak, self.start_rss) {
                (Some(p), Some(s)) => Some(p.saturating_sub(s)),
                _ => None,
            },
            stage_local: self.reset,
        }
    }
}

/// A `kB` field of `/proc/self/status`.
pub fn read_status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&text, field)
}

/// Parses `Field:   1234 kB` out of a status text.
pub fn parse_status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
