//! Model metadata read once per file state per process: GGUF headers, `config.json` shapes and
//! whether `tokenizer_config.json` has a chat template, keyed by path and [`FileStamp`] (size,
//! times, identity). `peftc check`, `watch` and the language server share it, so a keystroke
//! does not read a model file again and many declarations of one GGUF file read it once.
//! Files without a stamp (in memory, open in the editor) are read every time. Holds no
//! diagnostics; must not decide what the metadata means.

use super::world::{FileStamp, World};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Entries kept per cache before it starts over (one per model file: a process meets few).
const MAX_ENTRIES: usize = 512;

/// What was read from files, by path, valid while the file's stamp is unchanged.
pub struct StampCache<T> {
    entries: Mutex<BTreeMap<PathBuf, (FileStamp, T)>>,
}

impl<T: Clone> StampCache<T> {
    pub const fn new() -> Self {
        StampCache {
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// The value read from `path` by `read`, from the cache when the file is unchanged.
    pub fn get(&self, world: &dyn World, path: &Path, read: impl FnOnce() -> T) -> T {
        let Some(stamp) = world.stamp(path) else {
            return read();
        };
        if let Some((s, v)) = self.lock().get(path) {
            if *s == stamp {
                return v.clone();
            }
        }
        let v = read();
        // A file rewritten while it was read is not remembered.
        if world.stamp(path) == Some(stamp) {
            let mut entries = self.lock();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(path.to_path_buf(), (stamp, v.clone()));
        }
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, (FileStamp, T)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T: Clone> Default for StampCache<T> {
    fn default() -> Self {
        StampCache::new()
    }
}
