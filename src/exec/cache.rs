//! [`Cache`]: the content-addressed stage cache under a folder (default `.peft/` next to the
//! pipeline). Layout:
//! - `entries/<key>/manifest.json` + `entries/<key>/out/...`: one folder per stage key, written
//!   into `tmp/` and renamed into place, verified against its manifest on every read;
//! - `locks/<key>.lock`: per-entry cross-process locks, held while a run checks, builds and
//!   publishes that entry, so two runs never build one key twice;
//! - `locks/cache.lock.*`: shared by runs, exclusive for `gc` / `rm`.
//!
//! Locks are lock files ([`super::nfslock`]: atomic `link` creation, holder host + pid,
//! heartbeat, stale-lock breaking), not `flock`, so they hold between machines sharing the cache
//! folder over NFS; entries are published by `rename`, atomic on NFS as on a local disk.
//! - `logs/`, `checkpoints/<key>/`, `stat-cache.json`.
//!
//! It must never hand out an entry that failed verification.

use super::atomic::{unique_suffix, write_atomic};
use super::error::{ExecError, Result};
use super::hasher::{hash_contents, FileHasher};
use super::manifest::{output_digest, FileRecord, GateFailure, Manifest, MANIFEST_FORMAT};
use super::nfslock;
use super::outcome::CancelFlag;
use crate::plan::{Digest, StageKey};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The stage cache.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    hasher: FileHasher,
}

/// A verified cache entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// `entries/<key>`.
    pub dir: PathBuf,
    /// `entries/<key>/out`: the stage's files.
    pub out_dir: PathBuf,
    pub manifest: Manifest,
}

/// The result of looking a key up.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    Hit(Box<Entry>),
    Miss,
    /// The entry exists but failed verification; the text says why.
    Corrupt(String),
}

/// A held lock (entry or whole cache); released on drop.
#[derive(Debug)]
pub struct LockGuard {
    _held: Box<dyn std::fmt::Debug + Send + Sync>,
}

/// A temporary folder for a stage's outputs, removed on drop unless committed.
#[derive(Debug)]
pub struct TempEntry {
    dir: PathBuf,
    committed: bool,
}

impl TempEntry {
    /// Where the stage writes its files.
    pub fn out_dir(&self) -> PathBuf {
        self.dir.join("out")
    }
}

impl Drop for TempEntry {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What to store with a new entry.
#[derive(Clone, Debug)]
pub struct NewEntry<'a> {
    pub stage_key: &'a StageKey,
    pub stage_name: &'a str,
    pub output: Value,
    pub gate: Option<GateFailure>,
    pub metadata: Value,
}

/// A listed entry, for `cache ls` and `gc`.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryInfo {
    pub key: String,
    /// `None` when the manifest cannot be read.
    pub kind: Option<String>,
    pub stage_name: Option<String>,
    pub created_unix: Option<u64>,
    /// Bytes on disk under the entry folder.
    pub bytes: u64,
}

/// What `gc` keeps.
#[derive(Clone, Debug, Default)]
pub struct GcConfig {
    /// Keys referenced by lockfiles: never removed. `None`: references are not considered.
    pub keep: Option<BTreeSet<Digest>>,
    /// Only entries older than this are removed. `None`: any age.
    pub older_than: Option<Duration>,
    /// List what would be removed without removing it.
    pub dry_run: bool,
}

impl Cache {
    /// The default cache folder for a pipeline file: `.peft/` next to it.
    pub fn default_dir(pipeline: &Path) -> PathBuf {
        pipeline.parent().unwrap_or(Path::new(".")).join(".peft")
    }

    /// Opens (creating) a cache at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Cache> {
        let root = root.into();
        for sub in ["entries", "locks", "tmp", "logs", "checkpoints"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(ExecError::io("create cache folder", &dir))?;
        }
        let hasher = FileHasher::open(root.join("stat-cache.json"));
        Ok(Cache { root, hasher })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The hasher (with the cache's persistent stat cache) used for entries and file inputs.
    pub fn hasher(&self) -> &FileHasher {
        &self.hasher
    }

    /// Saves the stat cache.
    pub fn save_stat_cache(&self) -> Result<()> {
        self.hasher.save()
    }

    pub fn entry_dir(&self, key: &Digest) -> PathBuf {
        self.root.join("entries").join(key.as_str())
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn checkpoint_dir(&self, key: &Digest) -> PathBuf {
        self.root.join("checkpoints").join(key.as_str())
    }

    /// A shared lock on the whole cache (held by runs; excludes `gc`/`rm`).
    pub fn lock_shared(&self) -> Result<LockGuard> {
        let guard = nfslock::lock_shared(&self.root.join("locks").join("cache.lock"))?;
        Ok(LockGuard {
            _held: Box::new(guard),
        })
    }

    /// An exclusive lock on the whole cache (for `gc`/`rm`; waits for runs to finish).
    pub fn lock_exclusive(&self) -> Result<LockGuard> {
        let guard = nfslock::lock_exclusive(&self.root.join("locks").join("cache.lock"))?;
        Ok(LockGuard {
            _held: Box::new(guard),
        })
    }

    /// The lock of one entry. Polls so that a cancel stops the wait: `Ok(None)` when cancelled.
    /// `on_wait` is called once if another process or thread holds it.
    pub fn lock_entry(
        &self,
        key: &Digest,
        cancel: &CancelFlag,
        on_wait: impl FnOnce(),
    ) -> Result<Option<LockGuard>> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        Ok(
            nfslock::lock(&path, cancel, on_wait)?.map(|held| LockGuard {
                _held: Box::new(held),
            }),
        )
    }

    /// Looks `key` up and verifies the entry (manifest, file list, sizes, hashes, output digest).
    pub fn lookup(&self, key: &Digest) -> Result<Lookup> {
        let dir = self.entry_dir(key);
        if !dir.exists() {
            return Ok(Lookup::Miss);
        }
        match self.verify(key, &dir) {
            Ok(manifest) => Ok(Lookup::Hit(Box::new(Entry {
                out_dir: dir.join("out"),
                dir,
                manifest,
            }))),
            Err(why) => Ok(Lookup::Corrupt(why)),
        }
    }

    fn verify(&self, key: &Digest, dir: &Path) -> std::result::Result<Manifest, String> {
        let path = dir.join("manifest.json");
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read manifest.json: {e}"))?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| format!("manifest.json is not valid: {e}"))?;
        if m.format != MANIFEST_FORMAT {
            return Err(format!(
                "manifest format {} (expected {MANIFEST_FORMAT})",
                m.format
            ));
        }
        if &m.key != key || &m.stage_key.digest() != key {
            return Err("manifest belongs to another key".to_owned());
        }
        let out = dir.join("out");
        let mut found = Vec::new();
        list_rel(&out, "", &mut found).map_err(|e| format!("cannot list out/: {e}"))?;
        let found: BTreeSet<String> = found.into_iter().collect();
        let expected: BTreeSet<String> = m.files.keys().cloned().collect();
        if let Some(extra) = found.difference(&expected).next() {
            return Err(format!("unexpected file out/{extra}"));
        }
        if let Some(missing) = expected.difference(&found).next() {
            return Err(format!("missing file out/{missing}"));
        }
        for (rel, rec) in &m.files {
            let p = out.join(rel);
            let len = std::fs::metadata(&p)
                .map(|m| m.len())
                .map_err(|e| format!("out/{rel}: {e}"))?;
            if len != rec.size {
                return Err(format!(
                    "out/{rel} has {len} bytes, manifest says {}",
                    rec.size
                ));
            }
            let d = self.hasher.hash_file(&p).map_err(|e| e.to_string())?;
            if d != rec.blake3 {
                return Err(format!("out/{rel} does not match its hash"));
            }
        }
        if output_digest(&m.files, &m.output, m.gate.as_ref()) != m.output_digest {
            return Err("output digest does not match the manifest".to_owned());
        }
        Ok(m)
    }

    /// Removes an entry (renamed aside first, so readers never see half of it).
    pub fn remove(&self, key: &Digest) -> Result<()> {
        let dir = self.entry_dir(key);
        if !dir.exists() {
            return Ok(());
        }
        let trash =
            self.root
                .join("tmp")
                .join(format!("trash-{}-{}", key.short(), unique_suffix()));
        std::fs::rename(&dir, &trash).map_err(ExecError::io("move aside", &dir))?;
        std::fs::remove_dir_all(&trash).map_err(ExecError::io("remove", &trash))
    }

    /// A fresh temporary folder (with an empty `out/`) for building `key`.
    pub fn temp_entry(&self, key: &Digest) -> Result<TempEntry> {
        let dir = self
            .root
            .join("tmp")
            .join(format!("{}-{}", key.short(), unique_suffix()));
        let out = dir.join("out");
        std::fs::create_dir_all(&out).map_err(ExecError::io("create", &out))?;
        Ok(TempEntry {
            dir,
            committed: false,
        })
    }

    /// Hashes the temp folder's files, writes the manifest and renames the folder into place.
    /// The caller holds the entry lock; an existing entry for the key is replaced.
    pub fn commit(&self, mut temp: TempEntry, new: NewEntry<'_>) -> Result<Entry> {
        let key = new.stage_key.digest();
        let out = temp.out_dir();
        let mut rels = Vec::new();
        list_rel(&out, "", &mut rels).map_err(ExecError::io("list", &out))?;
        let mut files = BTreeMap::new();
        for rel in rels {
            let p = out.join(&rel);
            let size = std::fs::metadata(&p)
                .map_err(ExecError::io("read metadata of", &p))?
                .len();
            files.insert(
                rel,
                FileRecord {
                    blake3: hash_contents(&p)?,
                    size,
                },
            );
        }
        let output = crate::plan::canonical(new.output);
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            key: key.clone(),
            stage_key: new.stage_key.clone(),
            kind: new.stage_key.kind.clone(),
            stage_name: new.stage_name.to_owned(),
            output_digest: output_digest(&files, &output, new.gate.as_ref()),
            files,
            output,
            gate: new.gate,
            metadata: new.metadata,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        write_atomic(&temp.dir.join("manifest.json"), &json)?;
        let dest = self.entry_dir(&key);
        if dest.exists() {
            self.remove(&key)?;
        }
        std::fs::rename(&temp.dir, &dest).map_err(ExecError::io("publish cache entry", &dest))?;
        temp.committed = true;
        // Record the published files in the stat cache (a rename keeps their stat), so the next
        // read verifies them by stat without reading them again.
        for (rel, rec) in &manifest.files {
            self.hasher
                .remember(&dest.join("out").join(rel), &rec.blake3)?;
        }
        Ok(Entry {
            out_dir: dest.join("out"),
            dir: dest,
            manifest,
        })
    }

    /// Every entry folder, with its manifest's kind and name when readable and its size.
    pub fn list(&self) -> Result<Vec<EntryInfo>> {
        let dir = self.root.join("entries");
        let mut out = Vec::new();
        let read = std::fs::read_dir(&dir).map_err(ExecError::io("list", &dir))?;
        for e in read {
            let e = e.map_err(ExecError::io("list", &dir))?;
            let key = e.file_name().to_string_lossy().into_owned();
            let m: Option<Manifest> = std::fs::read(e.path().join("manifest.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            out.push(EntryInfo {
                key,
                kind: m.as_ref().map(|m| m.kind.clone()),
                stage_name: m.as_ref().map(|m| m.stage_name.clone()),
                created_unix: m.as_ref().map(|m| m.created_unix),
                bytes: dir_size(&e.path()),
            });
        }
        out.sort_by(|a, b| a.created_unix.cmp(&b.created_unix).then(a.key.cmp(&b.key)));
        Ok(out)
    }

    /// Removes entries not kept by `config` (under the exclusive lock), and leftovers in `tmp/`.
    /// Returns the removed (or, dry, removable) entries.
    pub fn gc(&self, config: &GcConfig) -> Result<Vec<EntryInfo>> {
        let _guard = self.lock_exclusive()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut removed = Vec::new();
        for info in self.list()? {
            let referenced = config
                .keep
                .as_ref()
                .is_some_and(|keep| keep.iter().any(|k| k.as_str() == info.key));
            let old_enough = match (config.older_than, info.created_unix) {
                (Some(age), Some(created)) => now.saturating_sub(created) >= age.as_secs(),
                (Some(_), None) => true,
                (None, _) => true,
            };
            if referenced || !old_enough {
                continue;
            }
            if !config.dry_run {
                self.remove_by_name(&info.key)?;
            }
            removed.push(info);
        }
        if !config.dry_run {
            let tmp = self.root.join("tmp");
            if let Ok(read) = std::fs::read_dir(&tmp) {
                for e in read.flatten() {
                    let _ = std::fs::remove_dir_all(e.path())
                        .or_else(|_| std::fs::remove_file(e.path()));
                }
            }
        }
        Ok(removed)
    }

    /// Removes the entries whose key starts with one of `prefixes` (under the exclusive lock).
    pub fn remove_matching(&self, prefixes: &[String]) -> Result<Vec<EntryInfo>> {
        let _guard = self.lock_exclusive()?;
        let mut removed = Vec::new();
        for info in self.list()? {
            if prefixes
                .iter()
                .any(|p| !p.is_empty() && info.key.starts_with(p.as_str()))
            {
                self.remove_by_name(&info.key)?;
                removed.push(info);
            }
        }
        Ok(removed)
    }

    fn remove_by_name(&self, name: &str) -> Result<()> {
        let dir = self.root.join("entries").join(name);
        let trash = self
            .root
            .join("tmp")
            .join(format!("trash-{}", unique_suffix()));
        std::fs::rename(&dir, &trash).map_err(ExecError::io("move aside", &dir))?;
        std::fs::remove_dir_all(&trash).map_err(ExecError::io("remove", &trash))
    }
}

/// Relative paths (with `/`) of the files under `dir`; a missing `dir` lists nothing.
fn list_rel(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && prefix.is_empty() => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in read {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if e.file_type()?.is_dir() {
            list_rel(&e.path(), &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// Total bytes of the files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(read) = std::fs::read_dir(dir) else {
        return 0;
    };
    read.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
