//! The names clients may ask for: the base and every known adapter with its folder. Shared by
//! the HTTP handlers (lookups, 404 lists, the admin endpoint) and the scheduler (the folder of
//! an adapter to load). Knowing an adapter is not having it in memory: see [`super::lru`].

use std::path::PathBuf;
use std::sync::RwLock;

/// What a `model` value selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The base model without adapters.
    Base,
    /// A named adapter.
    Adapter(String),
}

/// The base name and the known adapters, in the order they were added.
#[derive(Debug)]
pub struct Registry {
    base: String,
    adapters: RwLock<Vec<(String, PathBuf)>>,
}

impl Registry {
    pub fn new(base: String) -> Self {
        Self {
            base,
            adapters: RwLock::new(Vec::new()),
        }
    }

    /// The base model's name.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Adds an adapter; false when the name is taken (by the base or another adapter).
    pub fn add(&self, name: &str, path: PathBuf) -> bool {
        let mut list = self.adapters.write().unwrap_or_else(|e| e.into_inner());
        if name == self.base || list.iter().any(|(n, _)| n == name) {
            return false;
        }
        list.push((name.to_string(), path));
        true
    }

    /// What `model` selects, if anything.
    pub fn resolve(&self, model: &str) -> Option<Target> {
        if model == self.base {
            return Some(Target::Base);
        }
        self.path(model).map(|_| Target::Adapter(model.to_string()))
    }

    /// The folder of adapter `name`.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        let list = self.adapters.read().unwrap_or_else(|e| e.into_inner());
        list.iter().find(|(n, _)| n == name).map(|(_, p)| p.clone())
    }

    /// Every served name: the base first, then the adapters.
    pub fn names(&self) -> Vec<String> {
        let list = self.adapters.read().unwrap_or_else(|e| e.into_inner());
        std::iter::once(self.base.clone())
            .chain(list.iter().map(|(n, _)| n.clone()))
            .collect()
    }
}
