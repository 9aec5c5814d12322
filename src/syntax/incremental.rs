//! Re-parsing after an edit without re-reading what did not change. A [`ParseCache`] remembers,
//! for each top-level item that parsed cleanly, its tree keyed by the item's exact text; the next
//! parse of the same document takes every unchanged item from it (moved to its new offset) and
//! runs the parser only on the items an edit touched. Items with syntax errors are never cached
//! (their messages read the text around them), so a cached parse equals a fresh one exactly.
//! Must not decide where items start (that is `chunks::split`'s job).

use super::ast::Item;
use super::shift::shift_item;
use std::collections::HashMap;
use std::sync::Mutex;

/// Items of earlier parses by their text. A round is one check (a document and its imports);
/// the cache keeps the items the last round used, so it never holds more than one version of
/// each item beyond the one being parsed.
#[derive(Debug, Default)]
pub struct ParseCache {
    inner: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<String, Item>,
    previous: HashMap<String, Item>,
    hits: usize,
    misses: usize,
}

impl ParseCache {
    pub fn new() -> Self {
        ParseCache::default()
    }

    /// The item parsed from `text` before, moved to start at `offset`.
    pub(super) fn get(&self, text: &str, offset: usize) -> Option<Item> {
        let mut g = self.lock();
        let found = match g.current.get(text) {
            Some(item) => Some(item.clone()),
            None => g.previous.remove(text).inspect(|item| {
                g.current.insert(text.to_string(), item.clone());
            }),
        };
        match found {
            Some(mut item) => {
                g.hits += 1;
                shift_item(&mut item, offset as i64);
                Some(item)
            }
            None => {
                g.misses += 1;
                None
            }
        }
    }

    /// Remembers `item`, parsed cleanly from `text` found at `offset`.
    pub(super) fn put(&self, text: &str, offset: usize, item: &Item) {
        let mut relative = item.clone();
        shift_item(&mut relative, -(offset as i64));
        self.lock().current.insert(text.to_string(), relative);
    }

    /// Ends a round of parses (one check of a document and its imports): items not used since
    /// the previous round are forgotten.
    pub fn end_round(&self) {
        let mut g = self.lock();
        g.previous = std::mem::take(&mut g.current);
    }

    /// Items taken from the cache and items parsed, since the cache was made.
    pub fn stats(&self) -> (usize, usize) {
        let g = self.lock();
        (g.hits, g.misses)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
