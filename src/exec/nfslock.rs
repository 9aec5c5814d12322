//! Lock files that hold across processes and machines on a shared (NFS-like) cache folder,
//! without `flock`/`fcntl` semantics, which NFS servers and clients implement unevenly.
//!
//! A lock is a file created atomically with `link(2)` from a private temporary file (the
//! classic NFS-safe exclusive create; `O_EXCL` alone is not atomic on NFSv2). It records its
//! holder (host, pid, a random nonce) and a heartbeat: the holder refreshes the file's
//! modification time every [`heartbeat`] while it holds the lock. A lock is stale when its
//! holder is on this host and its process is gone, or when its heartbeat is older than
//! [`stale_after`] (a holder on another host that crashed or lost the network). A stale lock is
//! broken by renaming it aside (atomic: one breaker wins) and then taken again.
//!
//! Shared/exclusive use (runs share the cache, `gc` takes it alone) is built on top:
//! readers register a heartbeat file each, a writer takes the exclusive lock and waits until
//! no live reader is registered. It must not be used for anything but coordination files.

use super::atomic::{hostname, unique_suffix};
use super::error::{ExecError, Result};
use super::outcome::CancelFlag;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

/// Who holds a lock: written into the lock file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Unique per acquisition, so a holder recognises its own file.
    pub nonce: String,
}

impl Holder {
    fn me() -> Holder {
        Holder {
            host: hostname(),
            pid: std::process::id(),
            nonce: unique_suffix(),
        }
    }
}

/// How often a holder refreshes its lock file's modification time
/// (`PEFTC_LOCK_HEARTBEAT_MS`, default 5 s).
pub fn heartbeat() -> Duration {
    env_ms("PEFTC_LOCK_HEARTBEAT_MS").unwrap_or(Duration::from_secs(5))
}

/// A lock whose heartbeat is older than this is stale (`PEFTC_LOCK_STALE_MS`, default 60 s;
/// at least three heartbeats).
pub fn stale_after() -> Duration {
    env_ms("PEFTC_LOCK_STALE_MS")
        .unwrap_or(Duration::from_secs(60))
        .max(heartbeat() * 3)
}

fn env_ms(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// A held lock file; the heartbeat stops and the file is removed on drop.
#[derive(Debug)]
pub struct HeldLock {
    path: PathBuf,
    holder: Holder,
    stop: Option<mpsc::Sender<()>>,
    beat: Option<std::thread::JoinHandle<()>>,
}

impl HeldLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.beat.take() {
            let _ = t.join();
        }
        // Remove the file only while it is still ours (a breaker may have judged it stale).
        if read_holder(&self.path).as_ref() == Some(&self.holder) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Tries once to take the lock at `path`: `Ok(None)` when a live holder has it. A stale lock is
/// broken and taken.
pub fn try_lock(path: &Path) -> Result<Option<HeldLock>> {
    for _ in 0..3 {
        let holder = Holder::me();
        if create_exclusive(path, &holder)? {
            return Ok(Some(start_heartbeat(path, holder)));
        }
        match is_stale(path) {
            Staleness::Live => return Ok(None),
            // Gone between our create and our look: try again.
            Staleness::Gone => continue,
            Staleness::Stale(seen) => break_stale(path, seen.as_ref())?,
        }
    }
    Ok(None)
}

/// Waits for the lock at `path`, polling so that a cancel stops the wait (`Ok(None)`).
/// `on_wait` is called once if a live holder has it.
pub fn lock(path: &Path, cancel: &CancelFlag, on_wait: impl FnOnce()) -> Result<Option<HeldLock>> {
    let mut on_wait = Some(on_wait);
    loop {
        if let Some(held) = try_lock(path)? {
            return Ok(Some(held));
        }
        if let Some(f) = on_wait.take() {
            f();
        }
        if cancel.is_cancelled() {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Creates `path` holding `holder`'s record, atomically and only if it does not exist.
fn create_exclusive(path: &Path, holder: &Holder) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(ExecError::io("create folder", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}", holder.nonce));
    let json = serde_json::to_vec(holder).unwrap_or_default();
    std::fs::write(&tmp, json).map_err(ExecError::io("write", &tmp))?;
    let linked = std::fs::hard_link(&tmp, path);
    // On NFS a link can succeed while its reply is lost; the link count tells the truth.
    let ours = match linked {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_holder(path).as_ref() == Some(holder)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(ExecError::io("create lock", path)(e));
        }
    };
    let _ = std::fs::remove_file(&tmp);
    Ok(ours)
}

fn start_heartbeat(path: &Path, holder: Holder) -> HeldLock {
    let (tx, rx) = mpsc::channel::<()>();
    let beat_path = path.to_path_buf();
    let me = holder.clone();
    let every = heartbeat();
    let beat = std::thread::spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
            if read_holder(&beat_path).as_ref() != Some(&me) {
                return;
            }
            if let Ok(f) = std::fs::OpenOptions::new().append(true).open(&beat_path) {
                let _ = f.set_modified(SystemTime::now());
            }
        }
    });
    HeldLock {
        path: path.to_path_buf(),
        holder,
        stop: Some(tx),
        beat: Some(beat),
    }
}

fn read_holder(path: &Path) -> Option<Holder> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

enum Staleness {
    Live,
    Gone,
    /// Stale, with the holder record seen (None: unreadable, e.g. half written by a crash).
    Stale(Option<Holder>),
}

fn is_stale(path: &Path) -> Staleness {
    let Ok(meta) = std::fs::metadata(path) else {
        return Staleness::Gone;
    };
    let holder = read_holder(path);
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    if let Some(h) = &holder {
        if h.host == hostname() && !process_alive(h.pid) {
            return Staleness::Stale(holder);
        }
    }
    if age > stale_after() {
        Staleness::Stale(holder)
    } else {
        Staleness::Live
    }
}

/// Moves a stale lock aside. When the file moved turns out to be a fresh lock that someone took
/// between our look and our rename, it is put back.
fn break_stale(path: &Path, seen: Option<&Holder>) -> Result<()> {
    let aside = path.with_file_name(format!(
        ".{}.stale-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        unique_suffix()
    ));
    match std::fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ExecError::io("break stale lock", path)(e)),
    }
    let moved = read_holder(&aside);
    if moved.is_some() && moved.as_ref() != seen {
        // Not the lock we judged stale: restore it unless yet another holder is in place.
        let _ = std::fs::hard_link(&aside, path);
    } else {
        tracing::warn!(
            "broke a stale lock {} (holder {:?})",
            path.display(),
            moved.as_ref().map(|h| format!("{}:{}", h.host, h.pid))
        );
    }
    let _ = std::fs::remove_file(&aside);
    Ok(())
}

/// Whether process `pid` exists on this host.
#[cfg(unix)]
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists; it sends nothing.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
pub fn process_alive(_pid: u32) -> bool {
    true
}

/// A registered reader of a shared/exclusive lock; unregisters on drop.
#[derive(Debug)]
pub struct SharedGuard {
    _reader: HeldLock,
}

/// A held exclusive lock of a shared/exclusive pair.
#[derive(Debug)]
pub struct ExclusiveGuard {
    _writer: HeldLock,
}

/// Takes `base` shared: waits while a writer holds `base.exclusive`, then registers a reader
/// under `base.readers/` (and checks again that no writer came in between).
pub fn lock_shared(base: &Path) -> Result<SharedGuard> {
    let writer = with_suffix(base, "exclusive");
    let readers = with_suffix(base, "readers");
    loop {
        while matches!(is_stale(&writer), Staleness::Live) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let me = readers.join(format!("{}.lock", unique_suffix()));
        let Some(reader) = try_lock(&me)? else {
            continue;
        };
        if matches!(is_stale(&writer), Staleness::Live) {
            drop(reader);
            continue;
        }
        return Ok(SharedGuard { _reader: reader });
    }
}

/// Takes `base` exclusively: takes `base.exclusive` (new readers wait), then waits until every
/// live reader is gone (stale readers are broken).
pub fn lock_exclusive(base: &Path) -> Result<ExclusiveGuard> {
    let writer = with_suffix(base, "exclusive");
    let readers = with_suffix(base, "readers");
    let held = loop {
        if let Some(h) = try_lock(&writer)? {
            break h;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    loop {
        let mut live = false;
        if let Ok(read) = std::fs::read_dir(&readers) {
            for e in read.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !name.ends_with(".lock") {
                    continue;
                }
                match is_stale(&e.path()) {
                    Staleness::Live => live = true,
                    Staleness::Gone => {}
                    Staleness::Stale(seen) => break_stale(&e.path(), seen.as_ref())?,
                }
            }
        }
        if !live {
            return Ok(ExclusiveGuard { _writer: held });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_lock_excludes_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        let held = try_lock(&path).unwrap().expect("first lock");
        assert!(try_lock(&path).unwrap().is_none());
        drop(held);
        assert!(!path.exists());
        assert!(try_lock(&path).unwrap().is_some());
    }

    #[test]
    fn a_lock_of_a_dead_process_on_this_host_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        // A pid that does not exist (above the kernel's pid_max).
        let dead = Holder {
            host: hostname(),
            pid: 0x7fff_fff0,
            nonce: "x".into(),
        };
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        let held = try_lock(&path).unwrap().expect("stale lock broken");
        assert_ne!(read_holder(&path), Some(dead));
        drop(held);
    }

    #[test]
    fn a_lock_of_another_host_is_live_until_its_heartbeat_is_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        let other = Holder {
            host: "another-node".into(),
            pid: 1,
            nonce: "y".into(),
        };
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(try_lock(&path).unwrap().is_none(), "fresh heartbeat: live");
        let old = SystemTime::now() - stale_after() - Duration::from_secs(5);
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.set_modified(old).unwrap();
        assert!(try_lock(&path).unwrap().is_some(), "old heartbeat: stale");
    }

    #[test]
    fn a_writer_waits_for_readers_and_readers_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("cache.lock");
        let reader = lock_shared(&base).unwrap();
        let second = lock_shared(&base).unwrap();
        let (tx, rx) = mpsc::channel();
        let b = base.clone();
        let t = std::thread::spawn(move || {
            let w = lock_exclusive(&b).unwrap();
            tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            drop(w);
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(reader);
        drop(second);
        rx.recv_timeout(Duration::from_secs(10)).expect("writer in");
        // A new reader waits until the writer is done.
        let _r = lock_shared(&base).unwrap();
        t.join().unwrap();
    }
}
