//! A name → value map with caps on its count and total size, for prepared statements and
//! portals.
//!
//! A client that prepares statements without ever closing them must not grow the proxy
//! without bound. Past a cap, the entries inserted longest ago go (a linear scan, paid only
//! on overflow, which well-behaved clients never reach). A value heavier than the whole
//! budget is not kept at all.
//!
//! Names are hashed with foldhash (randomly seeded, as hashbrown does by default): every
//! Bind and Execute looks a name up, and SipHash cost more than the rest of the lookup.

use std::collections::HashMap;

use foldhash::fast::RandomState;

#[derive(Debug)]
struct Entry<V> {
    seq: u64,
    weight: usize,
    value: V,
}

/// A capped map from statement or portal names to values.
#[derive(Debug)]
pub struct NameMap<V> {
    entries: HashMap<String, Entry<V>, RandomState>,
    next: u64,
    max_count: usize,
    max_weight: usize,
    weight: usize,
}

/// What an insert displaced.
#[derive(Debug)]
pub struct Displaced<V> {
    /// The previous value under the same name.
    pub replaced: Option<V>,
    /// The oldest entries, removed to stay under the caps.
    pub evicted: Vec<V>,
    /// The new value itself, when it alone is over the weight budget.
    pub refused: Option<V>,
}

impl<V> NameMap<V> {
    /// An empty map holding at most `max_count` names (at least one) weighing at most
    /// `max_weight` in all.
    pub fn new(max_count: usize, max_weight: usize) -> Self {
        Self {
            entries: HashMap::default(),
            next: 0,
            max_count: max_count.max(1),
            max_weight,
            weight: 0,
        }
    }

    /// Inserts or replaces `name`. `weight` is what the value costs (its text length).
    pub fn insert(&mut self, name: String, value: V, weight: usize) -> Displaced<V> {
        let replaced = self.remove(&name);
        if weight > self.max_weight {
            return Displaced {
                replaced,
                evicted: Vec::new(),
                refused: Some(value),
            };
        }
        let mut evicted = Vec::new();
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max_count || self.weight + weight > self.max_weight)
        {
            match self.evict_oldest() {
                Some(value) => evicted.push(value),
                None => break,
            }
        }
        self.next += 1;
        self.weight += weight;
        let entry = Entry {
            seq: self.next,
            weight,
            value,
        };
        self.entries.insert(name, entry);
        Displaced {
            replaced,
            evicted,
            refused: None,
        }
    }

    fn evict_oldest(&mut self) -> Option<V> {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, entry)| entry.seq)
            .map(|(name, _)| name.clone())?;
        self.remove(&oldest)
    }

    /// The value under `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.entries.get(name).map(|entry| &entry.value)
    }

    /// The value under `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.entries.get_mut(name).map(|entry| &mut entry.value)
    }

    /// Removes `name`. An empty map is not hashed into: every simple Query forgets the
    /// unnamed statement and portal, which a simple-protocol client never creates.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        if self.entries.is_empty() {
            return None;
        }
        let entry = self.entries.remove(name)?;
        self.weight = self.weight.saturating_sub(entry.weight);
        Some(entry.value)
    }

    /// Removes every entry `doomed` selects, handing each to `gone`. Nothing is allocated
    /// (a transaction's end drops its portals this way, once per round trip).
    pub fn remove_where(&mut self, mut doomed: impl FnMut(&V) -> bool, mut gone: impl FnMut(V)) {
        for (_, entry) in self.entries.extract_if(|_, entry| doomed(&entry.value)) {
            self.weight = self.weight.saturating_sub(entry.weight);
            gone(entry.value);
        }
    }

    /// How many names are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The total weight held.
    pub fn weight(&self) -> usize {
        self.weight
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_evicts_the_oldest() {
        let mut map = NameMap::new(2, usize::MAX);
        assert!(map.insert("a".into(), 1, 0).evicted.is_empty());
        assert!(map.insert("b".into(), 2, 0).evicted.is_empty());
        let displaced = map.insert("a".into(), 3, 0);
        assert_eq!(displaced.replaced, Some(1));
        // "b" is now the oldest insert.
        let displaced = map.insert("c".into(), 4, 0);
        assert_eq!(displaced.evicted, vec![2]);
        assert_eq!(map.get("a"), Some(&3));
        assert_eq!(map.get("c"), Some(&4));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn keeps_the_total_weight_under_budget() {
        let mut map = NameMap::new(100, 10);
        map.insert("a".into(), "a", 4);
        map.insert("b".into(), "b", 4);
        let displaced = map.insert("c".into(), "c", 4);
        assert_eq!(displaced.evicted, vec!["a"]);
        assert_eq!(map.weight(), 8);
        let displaced = map.insert("b".into(), "huge", 11);
        assert_eq!(displaced.replaced, Some("b"));
        assert_eq!(displaced.refused, Some("huge"));
        assert_eq!(map.get("b"), None);
        assert_eq!(map.weight(), 4);
    }

    #[test]
    fn removes_selected_entries() {
        let mut map = NameMap::new(10, usize::MAX);
        for (name, value) in [("a", 1), ("b", 2), ("c", 3)] {
            map.insert(name.into(), value, 1);
        }
        let mut removed = Vec::new();
        map.remove_where(|v| *v >= 2, |v| removed.push(v));
        removed.sort();
        assert_eq!(removed, vec![2, 3]);
        assert_eq!(map.len(), 1);
        assert_eq!(map.weight(), 1);
        assert_eq!(map.remove("a"), Some(1));
        assert!(map.is_empty());
    }
}
