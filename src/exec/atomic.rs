//! Atomic file writes: write a sibling temporary file, then rename it over the target, so a
//! reader never sees half a file. It must not be used for large outputs (stages write those).

use super::error::{ExecError, Result};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this host, process and call, for temporary files and folders (the host is
/// in it because a cache on shared storage is written by processes on several machines).
pub fn unique_suffix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{}-{n}-{nanos:08x}", hostname(), std::process::id())
}

/// This machine's host name, file-name safe (`localhost` when unknown).
pub fn hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let raw = read_hostname().unwrap_or_default();
        let safe: String = raw
            .trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if safe.is_empty() {
            "localhost".to_owned()
        } else {
            safe
        }
    })
    .clone()
}

#[cfg(unix)]
fn read_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(not(unix))]
fn read_hostname() -> Option<String> {
    std::env::var("COMPUTERNAME").ok()
}

/// Writes `bytes` to `path` atomically (temp file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(ExecError::io("create folder", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", unique_suffix()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(ExecError::io("create", &tmp))?;
        f.write_all(bytes).map_err(ExecError::io("write", &tmp))?;
        f.sync_all().map_err(ExecError::io("sync", &tmp))?;
        std::fs::rename(&tmp, path).map_err(ExecError::io("rename into place", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
