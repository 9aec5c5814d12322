//! [`FileHasher`]: blake3 content hashes of files and folders, remembered in a persistent stat
//! cache keyed by path and checked against (size, mtime, ctime, inode), so a multi-GB weight file
//! is read once and afterwards recognised by a `stat`. A folder's hash is the hash of its sorted
//! manifest of (relative path, file hash). It must not guess: any stat difference re-hashes.

use super::atomic::write_atomic;
use super::error::{ExecError, Result};
use crate::plan::Digest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Version of the stat cache file layout.
const STAT_FORMAT: u32 = 1;

/// What the stat cache remembers about one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StatEntry {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
    digest: Digest,
}

#[derive(Serialize, Deserialize)]
struct StatFile {
    format: u32,
    entries: BTreeMap<PathBuf, StatEntry>,
}

/// Hashes files and folders, remembering file hashes by stat.
#[derive(Debug, Default)]
pub struct FileHasher {
    store: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, StatEntry>>,
    dirty: AtomicBool,
    reads: AtomicU64,
}

impl FileHasher {
    /// A hasher whose stat cache lives only in memory.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A hasher whose stat cache is loaded from (and saved to) `store`. A missing or unreadable
    /// store starts empty (it is only a cache).
    pub fn open(store: impl Into<PathBuf>) -> Self {
        let store = store.into();
        let entries = std::fs::read(&store)
            .ok()
            .and_then(|b| serde_json::from_slice::<StatFile>(&b).ok())
            .filter(|f| f.format == STAT_FORMAT)
            .map(|f| f.entries.into_iter().collect())
            .unwrap_or_default();
        FileHasher {
            store: Some(store),
            entries: Mutex::new(entries),
            ..Self::default()
        }
    }

    /// How many files were actually read and hashed (not answered by the stat cache).
    pub fn files_read(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The content hash of a file, or of a folder (its sorted manifest).
    pub fn hash(&self, path: &Path) -> Result<Digest> {
        let meta = std::fs::metadata(path).map_err(ExecError::io("read metadata of", path))?;
        if meta.is_dir() {
            self.hash_dir(path)
        } else {
            self.hash_file_with(path, &meta)
        }
    }

    /// The content hash of a file (always a file hash, even if the stat cache is cold).
    pub fn hash_file(&self, path: &Path) -> Result<Digest> {
        let meta = std::fs::metadata(path).map_err(ExecError::io("read metadata of", path))?;
        self.hash_file_with(path, &meta)
    }

    fn hash_file_with(&self, path: &Path, meta: &Metadata) -> Result<Digest> {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let stat = stat_of(meta);
        if let Ok(map) = self.entries.lock() {
            if let Some(e) = map.get(&abs) {
                if (e.size, e.mtime_ns, e.ctime_ns, e.inode) == stat {
                    return Ok(e.digest.clone());
                }
            }
        }
        let digest = hash_contents(path)?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let (size, mtime_ns, ctime_ns, inode) = stat;
        if let Ok(mut map) = self.entries.lock() {
            map.insert(
                abs,
                StatEntry {
                    size,
                    mtime_ns,
                    ctime_ns,
                    inode,
                    digest: digest.clone(),
                },
            );
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(digest)
    }

    /// Records that `path` (as it is now on disk) has content hash `digest`, without reading
    /// it: for files whose hash was just computed elsewhere (a published cache entry).
    pub fn remember(&self, path: &Path, digest: &Digest) -> Result<()> {
        let meta = std::fs::metadata(path).map_err(ExecError::io("read metadata of", path))?;
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let (size, mtime_ns, ctime_ns, inode) = stat_of(&meta);
        if let Ok(mut map) = self.entries.lock() {
            let digest = digest.clone();
            map.insert(
                abs,
                StatEntry {
                    size,
                    mtime_ns,
                    ctime_ns,
                    inode,
                    digest,
                },
            );
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn hash_dir(&self, dir: &Path) -> Result<Digest> {
        let mut files = Vec::new();
        list_files(dir, Path::new(""), &mut files)?;
        files.sort();
        let mut manifest = String::new();
        for rel in files {
            let d = self.hash_file(&dir.join(&rel))?;
            manifest.push_str(&format!("{}\0{d}\n", rel.to_string_lossy()));
        }
        Ok(Digest::of_bytes(manifest.as_bytes()))
    }

    /// Writes the stat cache back (merged with what other processes saved meanwhile), dropping
    /// entries for files that no longer exist. Does nothing for an in-memory hasher or when
    /// nothing was hashed.
    pub fn save(&self) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let mut merged: BTreeMap<PathBuf, StatEntry> = std::fs::read(store)
            .ok()
            .and_then(|b| serde_json::from_slice::<StatFile>(&b).ok())
            .map(|f| f.entries)
            .unwrap_or_default();
        if let Ok(map) = self.entries.lock() {
            merged.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        merged.retain(|p, _| p.exists());
        let file = StatFile {
            format: STAT_FORMAT,
            entries: merged,
        };
        let bytes = serde_json::to_vec(&file).unwrap_or_default();
        write_atomic(store, &bytes)
    }
}

fn list_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    let read = std::fs::read_dir(&dir).map_err(ExecError::io("list", &dir))?;
    for entry in read {
        let entry = entry.map_err(ExecError::io("list", &dir))?;
        let sub = rel.join(entry.file_name());
        let meta = std::fs::metadata(entry.path())
            .map_err(ExecError::io("read metadata of", entry.path()))?;
        if meta.is_dir() {
            list_files(root, &sub, out)?;
        } else {
            out.push(sub);
        }
    }
    Ok(())
}

/// blake3 of a file's bytes, read in 64 KiB blocks. Only a regular file is opened: a FIFO or a
/// device among a stage's input files is an error, not a hang.
pub fn hash_contents(path: &Path) -> Result<Digest> {
    let (file, _) = crate::safe_fs::open_regular(path).map_err(ExecError::io("open", path))?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(file)
        .map_err(ExecError::io("read", path))?;
    Ok(Digest::from_hash(hasher.finalize()))
}

#[cfg(unix)]
fn stat_of(meta: &Metadata) -> (u64, i128, i128, u64) {
    use std::os::unix::fs::MetadataExt;
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    (
        meta.size(),
        ns(meta.mtime(), meta.mtime_nsec()),
        ns(meta.ctime(), meta.ctime_nsec()),
        meta.ino(),
    )
}

#[cfg(not(unix))]
fn stat_of(meta: &Metadata) -> (u64, i128, i128, u64) {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    (meta.len(), mtime, 0, 0)
}
