//! The only door to files: [`World`] is what the checker may read (sources, `config.json`, GGUF
//! headers, globs, the Hugging Face cache). [`RealWorld`] reads the disk; [`MemoryWorld`] holds
//! files in memory for tests and the language server. Nothing else in `check` touches the disk.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The largest text file the checker reads whole (`.peft` files, `config.json`,
/// `tokenizer_config.json`); anything larger is refused with an error, not read.
pub const MAX_TEXT_FILE: u64 = 64 << 20;

/// What identifies the contents of a file on disk without reading it: size, modification and
/// change times and the file's identity. Equal stamps mean the file was not rewritten (caches
/// of what was read from it stay valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    /// (device, inode, ctime seconds, ctime nanoseconds) where the platform has them.
    id: (u64, u64, i64, i64),
}

impl FileStamp {
    /// The stamp of the regular file at `path` (following links), `None` for anything else.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        #[cfg(unix)]
        let id = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
        };
        #[cfg(not(unix))]
        let id = (0, 0, 0, 0);
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            id,
        })
    }
}

/// Opens `path` for reading when it is a regular file (links followed). A folder, FIFO, socket
/// or device (`/dev/zero`) is refused before it is opened: opening a FIFO would wait for a
/// writer, reading a device might never end. Returns the file and its size.
pub fn open_regular(path: &Path) -> io::Result<(std::fs::File, u64)> {
    let not_regular = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a folder, pipe, socket or device)",
        )
    };
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    Ok((f, meta.len()))
}

/// The text of the regular file at `path`, refused when larger than `limit` bytes.
pub fn read_text_limited(path: &Path, limit: u64) -> io::Result<String> {
    let (f, len) = open_regular(path)?;
    let too_big = |n: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the file is {n} bytes, more than the {limit} bytes peftc reads"),
        )
    };
    if len > limit {
        return Err(too_big(len));
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // The size may grow after the check above: never read past the limit.
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_big(buf.len() as u64));
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Everything the checker may learn about the outside world.
pub trait World {
    /// The whole text of a file.
    fn read_to_string(&self, path: &Path) -> std::io::Result<String>;
    /// At most `limit` bytes from the start of a file (GGUF headers, config files).
    fn read_prefix(&self, path: &Path, limit: usize) -> std::io::Result<Vec<u8>>;
    /// Whether `path` is an existing file.
    fn is_file(&self, path: &Path) -> bool;
    /// Whether `path` is an existing folder.
    fn is_dir(&self, path: &Path) -> bool;
    /// Files matching a glob pattern (absolute), sorted.
    fn glob(&self, pattern: &str) -> Vec<PathBuf>;
    /// A file of a model in the Hugging Face cache (offline; no network), if present.
    fn hf_cached_file(&self, repo: &str, revision: &str, file: &str) -> Option<PathBuf>;
    /// Why `path` exists but is not a regular file ("a FIFO (named pipe)", "a character device",
    /// ...); `None` when it is a regular file or does not exist (the default).
    fn special_file(&self, path: &Path) -> Option<String> {
        let _ = path;
        None
    }
    /// The stamp of a file whose contents only change with its stamp (a file on disk), for
    /// caches of what was read from it; `None` (the default) when that cannot be told.
    fn stamp(&self, path: &Path) -> Option<FileStamp> {
        let _ = path;
        None
    }
}

/// The real filesystem and the Hugging Face cache under `hf_home` (default: `$HF_HOME`, else
/// `~/.cache/huggingface`).
#[derive(Debug, Clone, Default)]
pub struct RealWorld {
    pub hf_home: Option<PathBuf>,
}

impl RealWorld {
    /// Reads `HF_HOME` from the environment.
    pub fn from_env() -> Self {
        RealWorld {
            hf_home: std::env::var_os("HF_HOME").map(PathBuf::from),
        }
    }
    /// A world whose Hugging Face cache lives under `hf_home/hub`.
    pub fn with_hf_home(hf_home: impl Into<PathBuf>) -> Self {
        RealWorld {
            hf_home: Some(hf_home.into()),
        }
    }
    fn cache(&self) -> hf_hub::Cache {
        match &self.hf_home {
            Some(h) => hf_hub::Cache::new(h.join("hub")),
            None => hf_hub::Cache::from_env(),
        }
    }
}

impl World for RealWorld {
    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        read_text_limited(path, MAX_TEXT_FILE)
    }
    fn read_prefix(&self, path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
        let (f, len) = open_regular(path)?;
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(limit));
        f.take(limit as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }
    fn stamp(&self, path: &Path) -> Option<FileStamp> {
        FileStamp::of(path)
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn special_file(&self, path: &Path) -> Option<String> {
        match crate::safe_fs::regular_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Some(e.to_string()),
            _ => None,
        }
    }
    fn glob(&self, pattern: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = match glob::glob(pattern) {
            Ok(paths) => paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect(),
            Err(_) => Vec::new(),
        };
        out.sort();
        out
    }
    fn hf_cached_file(&self, repo: &str, revision: &str, file: &str) -> Option<PathBuf> {
        let cache = self.cache();
        let r = hf_hub::Repo::with_revision(
            repo.to_string(),
            hf_hub::RepoType::Model,
            revision.to_string(),
        );
        if let Some(p) = cache.repo(r.clone()).get(file) {
            return Some(p);
        }
        // A pinned commit has no ref file: look in its snapshot directly.
        let snap = cache
            .path()
            .join(r.folder_name())
            .join("snapshots")
            .join(revision)
            .join(file);
        snap.is_file().then_some(snap)
    }
}

/// Files held in memory (tests, the language server's unsaved buffers). The Hugging Face cache
/// is the same layout under `hf_home` (`hub/models--ORG--NAME/refs/REV`, `snapshots/HASH/..`).
#[derive(Debug, Clone, Default)]
pub struct MemoryWorld {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    pub hf_home: PathBuf,
}

impl MemoryWorld {
    pub fn new() -> Self {
        MemoryWorld {
            files: BTreeMap::new(),
            hf_home: PathBuf::from("/hf"),
        }
    }
    /// Adds (or replaces) a file.
    pub fn add(&mut self, path: impl Into<PathBuf>, content: impl Into<Vec<u8>>) -> &mut Self {
        self.files.insert(path.into(), content.into());
        self
    }
}

impl World for MemoryWorld {
    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        let bytes = self
            .files
            .get(path)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        String::from_utf8(bytes.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
    fn read_prefix(&self, path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
        let bytes = self
            .files
            .get(path)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        Ok(bytes.iter().take(limit).copied().collect())
    }
    fn is_file(&self, path: &Path) -> bool {
        self.files.contains_key(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.files.keys().any(|k| k.starts_with(path) && k != path)
    }
    fn glob(&self, pattern: &str) -> Vec<PathBuf> {
        let Ok(pat) = glob::Pattern::new(pattern) else {
            return Vec::new();
        };
        self.files
            .keys()
            .filter(|k| pat.matches_path(k))
            .cloned()
            .collect()
    }
    fn hf_cached_file(&self, repo: &str, revision: &str, file: &str) -> Option<PathBuf> {
        let folder = self
            .hf_home
            .join("hub")
            .join(format!("models--{}", repo.replace('/', "--")));
        let commit = self
            .read_to_string(&folder.join("refs").join(revision))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| revision.to_string());
        let p = folder.join("snapshots").join(commit).join(file);
        self.is_file(&p).then_some(p)
    }
}
