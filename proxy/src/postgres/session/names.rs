//! A name → value map with a size cap, for prepared statements and portals.
//!
//! A client that prepares statements without ever closing them must not grow the proxy
//! without bound. Past the cap, the entry inserted longest ago goes (a linear scan, paid
//! only on overflow, which well-behaved clients never reach).

use std::collections::HashMap;

/// A capped map from statement or portal names to values.
#[derive(Debug)]
pub struct NameMap<V> {
    entries: HashMap<String, (u64, V)>,
    next: u64,
    cap: usize,
}

/// What an insert displaced.
#[derive(Debug)]
pub struct Displaced<V> {
    /// The previous value under the same name.
    pub replaced: Option<V>,
    /// The oldest entry, removed to stay under the cap.
    pub evicted: Option<V>,
}

impl<V> NameMap<V> {
    /// An empty map holding at most `cap` names (at least one).
    pub fn new(cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    /// Inserts or replaces `name`.
    pub fn insert(&mut self, name: String, value: V) -> Displaced<V> {
        self.next += 1;
        if let Some(slot) = self.entries.get_mut(&name) {
            let (_, old) = std::mem::replace(slot, (self.next, value));
            return Displaced {
                replaced: Some(old),
                evicted: None,
            };
        }
        let evicted = if self.entries.len() >= self.cap {
            self.evict_oldest()
        } else {
            None
        };
        self.entries.insert(name, (self.next, value));
        Displaced {
            replaced: None,
            evicted,
        }
    }

    fn evict_oldest(&mut self) -> Option<V> {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, (seq, _))| *seq)
            .map(|(name, _)| name.clone())?;
        self.entries.remove(&oldest).map(|(_, value)| value)
    }

    /// The value under `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.entries.get(name).map(|(_, value)| value)
    }

    /// The value under `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.entries.get_mut(name).map(|(_, value)| value)
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        self.entries.remove(name).map(|(_, value)| value)
    }

    /// Removes every entry `doomed` selects, returning them.
    pub fn remove_where(&mut self, mut doomed: impl FnMut(&V) -> bool) -> Vec<V> {
        let names: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, (_, value))| doomed(value))
            .map(|(name, _)| name.clone())
            .collect();
        names.iter().filter_map(|name| self.remove(name)).collect()
    }

    /// How many names are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_evicts_the_oldest() {
        let mut map = NameMap::new(2);
        assert!(map.insert("a".into(), 1).evicted.is_none());
        assert!(map.insert("b".into(), 2).evicted.is_none());
        let displaced = map.insert("a".into(), 3);
        assert_eq!(displaced.replaced, Some(1));
        // "b" is now the oldest insert.
        let displaced = map.insert("c".into(), 4);
        assert_eq!(displaced.evicted, Some(2));
        assert_eq!(map.get("a"), Some(&3));
        assert_eq!(map.get("c"), Some(&4));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn removes_selected_entries() {
        let mut map = NameMap::new(10);
        for (name, value) in [("a", 1), ("b", 2), ("c", 3)] {
            map.insert(name.into(), value);
        }
        let mut removed = map.remove_where(|v| *v >= 2);
        removed.sort();
        assert_eq!(removed, vec![2, 3]);
        assert_eq!(map.len(), 1);
        assert_eq!(map.remove("a"), Some(1));
        assert!(map.is_empty());
    }
}
