//! Which adapters are in memory (attached to the model), their bytes, and which one to drop
//! next: the least recently used one that no queued or running request needs. Owned by the
//! scheduler; must not touch the model (the scheduler attaches and removes).

/// One adapter in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    name: String,
    bytes: usize,
    last_used: u64,
}

/// Loaded adapters bounded by bytes.
#[derive(Debug)]
pub struct Lru {
    budget: usize,
    entries: Vec<Entry>,
    clock: u64,
}

impl Lru {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            entries: Vec::new(),
            clock: 0,
        }
    }

    /// The byte budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Whether `name` is in memory.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name)
    }

    /// Marks `name` used now.
    pub fn touch(&mut self, name: &str) {
        self.clock += 1;
        let now = self.clock;
        if let Some(e) = self.entries.iter_mut().find(|e| e.name == name) {
            e.last_used = now;
        }
    }

    /// Bytes in memory.
    pub fn used(&self) -> usize {
        self.entries.iter().map(|e| e.bytes).sum()
    }

    /// Number of adapters in memory.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no adapter is in memory.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The adapters to drop, least recently used first, so that `bytes` more fit; `in_use`
    /// says which may not be dropped. `None` when they cannot fit without dropping one in use.
    pub fn victims(&self, bytes: usize, in_use: impl Fn(&str) -> bool) -> Option<Vec<String>> {
        let mut free = self.budget.checked_sub(self.used()).unwrap_or(0);
        if bytes <= free {
            return Some(Vec::new());
        }
        let mut order: Vec<&Entry> = self.entries.iter().filter(|e| !in_use(&e.name)).collect();
        order.sort_by_key(|e| e.last_used);
        let mut out = Vec::new();
        for e in order {
            free += e.bytes;
            out.push(e.name.clone());
            if bytes <= free {
                return Some(out);
            }
        }
        None
    }

    /// Records `name` as in memory.
    pub fn insert(&mut self, name: &str, bytes: usize) {
        self.clock += 1;
        self.entries.retain(|e| e.name != name);
        self.entries.push(Entry {
            name: name.to_string(),
            bytes,
            last_used: self.clock,
        });
    }

    /// Forgets `name`.
    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|e| e.name != name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_unused_adapter_goes_first() {
        let mut lru = Lru::new(100);
        lru.insert("a", 40);
        lru.insert("b", 40);
        lru.touch("a");
        assert_eq!(lru.victims(20, |_| false), Some(vec![]));
        assert_eq!(lru.victims(30, |_| false), Some(vec!["b".to_string()]));
        assert_eq!(lru.victims(30, |n| n == "b"), Some(vec!["a".to_string()]));
        assert_eq!(
            lru.victims(100, |_| false),
            Some(vec!["b".to_string(), "a".to_string()])
        );
        assert_eq!(lru.victims(70, |n| n == "a"), None);
        assert_eq!(lru.victims(101, |_| false), None);
        lru.remove("a");
        assert_eq!((lru.len(), lru.used()), (1, 40));
    }
}
