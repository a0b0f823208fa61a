//! A name → value map with caps on its count and total size, for prepared statements and
//! portals.
//!
//! A client that prepares statements without ever closing them must not grow the proxy
//! without bound. Past a cap, the entries inserted longest ago go (a linear scan, paid only
//! on overflow, which well-behaved clients never reach). A value heavier than the whole
//! budget is not kept at all.
//!
//! Names are hashed with foldhash (randomly seeded, as hashbrown does by default): every
//! Bind and Execute looks a name up, and SipHash cost more than the rest of the lookup. The
//! unnamed entry (`""`) is kept in a slot beside the map, unhashed: drivers bind the unnamed
//! portal on every round trip, and its transaction's end drops it again; its insert takes a
//! direct path when no cap is in reach ([`NameMap::set_unnamed`]).
//!
//! [`NameMap::get_cloned`] remembers the last named entry looked up, with a copy of its value:
//! a client binds the same few prepared statements over and over, and comparing one name
//! costs less than hashing it. Any change to the map forgets the copy at once, so a name
//! replaced, closed or evicted is never served stale, and no value outlives its entry.

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
    /// The entry named `""`.
    unnamed: Option<Entry<V>>,
    next: u64,
    max_count: usize,
    max_weight: usize,
    weight: usize,
    /// The name [`get_cloned`](Self::get_cloned) found last, and a copy of its value while
    /// the map has not changed since (`None` once it has).
    last_name: String,
    last_value: Option<V>,
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
            unnamed: None,
            next: 0,
            max_count: max_count.max(1),
            max_weight,
            weight: 0,
            last_name: String::new(),
            last_value: None,
        }
    }

    /// Replaces the unnamed entry, when that needs no eviction and no refusal: returns the
    /// value it replaced. Otherwise hands `value` back, for [`insert`](Self::insert).
    pub fn set_unnamed(&mut self, value: V, weight: usize) -> Result<Option<V>, V> {
        let held = self.unnamed.as_ref().map_or(0, |entry| entry.weight);
        let count = self.entries.len() + 1;
        let rest = self.weight.saturating_sub(held);
        let total = rest.checked_add(weight);
        if count > self.max_count || total.is_none_or(|total| total > self.max_weight) {
            return Err(value);
        }
        self.next += 1;
        self.weight = rest + weight;
        let entry = Entry {
            seq: self.next,
            weight,
            value,
        };
        Ok(self.unnamed.replace(entry).map(|old| old.value))
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
        while !self.is_empty()
            && (self.len() >= self.max_count || self.weight + weight > self.max_weight)
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
        if name.is_empty() {
            self.unnamed = Some(entry);
        } else {
            self.last_value = None;
            self.entries.insert(name, entry);
        }
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
            .map(|(name, entry)| (name, entry.seq));
        let unnamed = self.unnamed.as_ref().map(|entry| entry.seq);
        let name = match (oldest, unnamed) {
            (Some((name, seq)), unnamed) if unnamed.is_none_or(|unnamed| seq < unnamed) => {
                name.clone()
            }
            (_, Some(_)) => String::new(),
            _ => return None,
        };
        self.remove(&name)
    }

    /// The value under `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        if name.is_empty() {
            return self.unnamed.as_ref().map(|entry| &entry.value);
        }
        self.entries.get(name).map(|entry| &entry.value)
    }

    /// The value under `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        if name.is_empty() {
            return self.unnamed.as_mut().map(|entry| &mut entry.value);
        }
        // The caller may change the value: the last lookup's copy would go stale.
        self.last_value = None;
        self.entries.get_mut(name).map(|entry| &mut entry.value)
    }

    /// The first value `wanted` selects: the unnamed entry's, else any (a scan, for rare
    /// events: a portal suspended at its row limit).
    pub fn find_mut(&mut self, mut wanted: impl FnMut(&V) -> bool) -> Option<&mut V> {
        if let Some(entry) = self.unnamed.as_mut().filter(|entry| wanted(&entry.value)) {
            return Some(&mut entry.value);
        }
        self.last_value = None;
        self.entries
            .values_mut()
            .map(|entry| &mut entry.value)
            .find(|value| wanted(value))
    }

    /// Removes `name`. An empty map is not hashed into: every simple Query forgets the
    /// unnamed statement and portal, which a simple-protocol client never creates, so
    /// finding nothing is decided inline, without moving an empty entry out of its slot.
    #[inline]
    pub fn remove(&mut self, name: &str) -> Option<V> {
        let held = if name.is_empty() {
            self.unnamed.is_some()
        } else {
            !self.entries.is_empty()
        };
        if held {
            self.remove_held(name)
        } else {
            None
        }
    }

    fn remove_held(&mut self, name: &str) -> Option<V> {
        let entry = if name.is_empty() {
            self.unnamed.take()?
        } else {
            let entry = self.entries.remove(name)?;
            self.last_value = None;
            entry
        };
        self.weight = self.weight.saturating_sub(entry.weight);
        Some(entry.value)
    }

    /// Removes every entry `doomed` selects, handing each to `gone`. Nothing is allocated
    /// (a transaction's end drops its portals this way, once per round trip).
    #[inline]
    pub fn remove_where(&mut self, mut doomed: impl FnMut(&V) -> bool, mut gone: impl FnMut(V)) {
        if self
            .unnamed
            .as_ref()
            .is_some_and(|entry| doomed(&entry.value))
        {
            if let Some(entry) = self.unnamed.take() {
                self.weight = self.weight.saturating_sub(entry.weight);
                gone(entry.value);
            }
        }
        if self.entries.is_empty() {
            return;
        }
        for (_, entry) in self.entries.extract_if(|_, entry| doomed(&entry.value)) {
            self.last_value = None;
            self.weight = self.weight.saturating_sub(entry.weight);
            gone(entry.value);
        }
    }

    /// How many names are held.
    pub fn len(&self) -> usize {
        self.entries.len() + usize::from(self.unnamed.is_some())
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.unnamed.is_none()
    }

    /// The total weight held.
    pub fn weight(&self) -> usize {
        self.weight
    }
}

impl<V: Clone> NameMap<V> {
    /// A copy of the value under `name`, from the last lookup's copy when it was the same
    /// name and the map has not changed since.
    pub fn get_cloned(&mut self, name: &str) -> Option<V> {
        if name.is_empty() {
            return self.unnamed.as_ref().map(|entry| entry.value.clone());
        }
        if let Some(value) = self.last_value.as_ref().filter(|_| self.last_name == name) {
            return Some(value.clone());
        }
        let value = self.entries.get(name)?.value.clone();
        self.last_name.clear();
        self.last_name.push_str(name);
        self.last_value = Some(value.clone());
        Some(value)
    }

    /// [`get_cloned`](Self::get_cloned) for a name as sent on the wire, which `decode` turns
    /// into the name it is kept under. The last lookup's name is compared byte for byte
    /// first: equal bytes are that name's, so the usual Bind of the same statement again
    /// decodes (and validates) nothing.
    pub fn get_cloned_as_sent<'a>(
        &mut self,
        sent: &'a [u8],
        decode: impl FnOnce(&'a [u8]) -> std::borrow::Cow<'a, str>,
    ) -> Option<V> {
        if !sent.is_empty() && self.last_name.as_bytes() == sent {
            if let Some(value) = &self.last_value {
                return Some(value.clone());
            }
        }
        self.get_cloned(&decode(sent))
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

    #[test]
    fn the_unnamed_entry_is_one_like_the_others() {
        let mut map = NameMap::new(2, 10);
        assert!(map.insert(String::new(), 1, 3).evicted.is_empty());
        assert!(map.insert("a".into(), 2, 3).evicted.is_empty());
        assert_eq!((map.get(""), map.len(), map.weight()), (Some(&1), 2, 6));
        // The unnamed entry is the oldest: it goes first.
        assert_eq!(map.insert("b".into(), 3, 3).evicted, vec![1]);
        assert_eq!(map.get(""), None);
        // Now "a" is the oldest.
        assert_eq!(map.insert(String::new(), 4, 3).evicted, vec![2]);
        assert_eq!(map.insert(String::new(), 5, 3).replaced, Some(4));
        if let Some(value) = map.get_mut("") {
            *value += 1;
        }
        let mut removed = Vec::new();
        map.remove_where(|v| *v >= 3, |v| removed.push(v));
        removed.sort();
        assert_eq!(removed, vec![3, 6]);
        assert!(map.is_empty());
        assert_eq!(map.weight(), 0);
        assert_eq!(map.remove(""), None);
    }

    #[test]
    fn the_last_lookup_is_forgotten_when_the_map_changes() {
        let mut map = NameMap::new(2, usize::MAX);
        map.insert("a".into(), 1, 0);
        assert_eq!(map.get_cloned("a"), Some(1));
        assert_eq!(map.get_cloned("a"), Some(1));
        map.insert("a".into(), 2, 0);
        assert_eq!(map.get_cloned("a"), Some(2));
        assert_eq!(map.remove("a"), Some(2));
        assert_eq!(map.get_cloned("a"), None);
        map.insert("a".into(), 3, 0);
        assert_eq!(map.get_cloned("a"), Some(3));
        if let Some(value) = map.get_mut("a") {
            *value = 4;
        }
        assert_eq!(map.get_cloned("a"), Some(4));
        // Evicted by two newer names.
        map.insert("b".into(), 5, 0);
        map.insert("c".into(), 6, 0);
        assert_eq!(map.get_cloned("a"), None);
        assert_eq!(map.get_cloned("b"), Some(5));
        map.remove_where(|v| *v == 5, drop);
        assert_eq!(map.get_cloned("b"), None);
        assert_eq!(map.get_cloned(""), None);
    }

    #[test]
    fn a_name_as_sent_is_the_name_it_decodes_to() {
        let mut map = NameMap::new(4, usize::MAX);
        map.insert("s1".into(), 1, 0);
        map.insert("\u{fffd}".into(), 2, 0);
        map.insert(String::new(), 3, 0);
        let lossy = |sent| String::from_utf8_lossy(sent);
        for _ in 0..2 {
            assert_eq!(map.get_cloned_as_sent(b"s1", lossy), Some(1));
        }
        // Not valid UTF-8: decoded as the replacement character, also after a lookup of it.
        for _ in 0..2 {
            assert_eq!(map.get_cloned_as_sent(b"\xff", lossy), Some(2));
        }
        assert_eq!(map.get_cloned_as_sent(b"", lossy), Some(3));
        map.insert("s1".into(), 4, 0);
        assert_eq!(map.get_cloned_as_sent(b"s1", lossy), Some(4));
        map.remove("s1");
        assert_eq!(map.get_cloned_as_sent(b"s1", lossy), None);
    }

    #[test]
    fn the_unnamed_entry_is_set_directly_only_within_the_caps() {
        let mut map = NameMap::new(2, 10);
        assert_eq!(map.set_unnamed(1, 4), Ok(None));
        assert_eq!(map.set_unnamed(2, 6), Ok(Some(1)));
        assert_eq!((map.len(), map.weight()), (1, 6));
        map.insert("a".into(), 3, 4);
        // Over the weight budget: the general insert evicts.
        assert_eq!(map.set_unnamed(4, 7), Err(4));
        assert_eq!(map.set_unnamed(4, 6), Ok(Some(2)));
        map.remove("");
        map.insert("b".into(), 5, 0);
        // Over the count: the general insert evicts.
        assert_eq!(map.set_unnamed(6, 0), Err(6));
        assert_eq!(map.insert(String::new(), 6, 0).evicted, vec![3]);
        assert_eq!((map.get(""), map.len(), map.weight()), (Some(&6), 2, 0));
    }
}
