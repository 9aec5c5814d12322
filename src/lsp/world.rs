//! The checker's [`World`] as the editor sees it: open documents (unsaved text) over the disk.
//! Only reads; never writes.

use crate::check::{FileStamp, RealWorld, World};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Open buffers first, then the real filesystem.
#[derive(Debug)]
pub struct OverlayWorld<'a> {
    pub disk: &'a RealWorld,
    pub open: &'a HashMap<PathBuf, String>,
}

impl World for OverlayWorld<'_> {
    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        match self.open.get(path) {
            Some(t) => Ok(t.clone()),
            None => self.disk.read_to_string(path),
        }
    }
    fn read_prefix(&self, path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
        match self.open.get(path) {
            Some(t) => Ok(t.as_bytes().iter().take(limit).copied().collect()),
            None => self.disk.read_prefix(path, limit),
        }
    }
    fn is_file(&self, path: &Path) -> bool {
        self.open.contains_key(path) || self.disk.is_file(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.disk.is_dir(path)
    }
    fn glob(&self, pattern: &str) -> Vec<PathBuf> {
        self.disk.glob(pattern)
    }
    fn hf_cached_file(&self, repo: &str, revision: &str, file: &str) -> Option<PathBuf> {
        self.disk.hf_cached_file(repo, revision, file)
    }
    fn stamp(&self, path: &Path) -> Option<FileStamp> {
        // An open buffer changes without its file changing.
        match self.open.contains_key(path) {
            true => None,
            false => self.disk.stamp(path),
        }
    }
}
