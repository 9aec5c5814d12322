//! The memory this process holds, as Linux reports it in `/proc/self/status`: resident set now
//! (`VmRSS`), its peak (`VmHWM`) and the anonymous part (`RssAnon`, what allocations hold, without
//! file pages such as a memory-mapped model). For run reports, benches and tests that measure
//! rather than assume. Must not allocate tensors; returns `None` off Linux or when unreadable.

/// Bytes of one `/proc/self/status` field given in kB (`VmRSS`, `VmHWM`, `RssAnon`...).
pub fn status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status(&text, field)
}

/// Resident set size now.
pub fn resident_bytes() -> Option<u64> {
    status_bytes("VmRSS")
}

/// Peak resident set size of the process so far.
pub fn peak_resident_bytes() -> Option<u64> {
    status_bytes("VmHWM")
}

/// Resident anonymous memory now (heap and anonymous maps, not file pages).
pub fn anonymous_bytes() -> Option<u64> {
    status_bytes("RssAnon")
}

/// Resets the peak (`VmHWM`) to the current resident set, so that the next read of
/// [`peak_resident_bytes`] gives the peak of what ran since (Linux: `5` into
/// `/proc/self/clear_refs`). Returns whether it worked.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A train stage's measured peak, for `peftc run`'s summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagePeak {
    /// The stage id (`train.tune`).
    pub id: String,
    /// Peak resident bytes while it trained.
    pub bytes: u64,
    /// The longest padded sequence of its micro-batches (0: unknown).
    pub longest_batch: u64,
}

/// Peaks measured by stages in this process.
static PEAKS: std::sync::Mutex<Vec<StagePeak>> = std::sync::Mutex::new(Vec::new());

/// Records the measured peak of stage `id`.
pub fn record_peak(id: &str, bytes: u64, longest_batch: u64) {
    if let Ok(mut p) = PEAKS.lock() {
        p.push(StagePeak {
            id: id.to_string(),
            bytes,
            longest_batch,
        });
    }
}

/// The peaks recorded so far, emptying the record.
pub fn take_peaks() -> Vec<StagePeak> {
    PEAKS
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default()
}

fn parse_status(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kilobyte_fields() {
        let text = "Name:\tpeftc\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_status(text, "VmHWM"), Some(200 << 20));
        assert_eq!(parse_status(text, "VmRSS"), Some(100 << 20));
        assert_eq!(parse_status(text, "RssAnon"), Some(1024));
        assert_eq!(parse_status(text, "VmSwap"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        if cfg!(target_os = "linux") {
            let now = resident_bytes().expect("VmRSS");
            let peak = peak_resident_bytes().expect("VmHWM");
            assert!(now > 0 && peak >= now, "{now} {peak}");
        }
    }
}
