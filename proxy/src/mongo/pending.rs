//! Requests waiting for their reply, bounded.
//!
//! A client may pipeline, a server may never answer (a killed operation, a dropped frame), so
//! the map is capped: past the cap the oldest request is evicted and the caller counts it.
//! Insertion order is kept beside the map so eviction is `O(log n)`, not a scan.

use std::collections::{BTreeMap, HashMap};

/// A bounded map from requestID to what is remembered of the request.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    by_id: HashMap<i32, (u64, T)>,
    by_age: BTreeMap<u64, i32>,
    next_seq: u64,
    cap: usize,
}

impl<T> Pending<T> {
    /// An empty map holding at most `cap` (at least 1) requests.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            by_id: HashMap::new(),
            by_age: BTreeMap::new(),
            next_seq: 0,
            cap: cap.max(1),
        }
    }

    /// Remember `value` under `id`, replacing any request already there. Returns how many
    /// older requests were evicted to make room.
    pub(crate) fn insert(&mut self, id: i32, value: T) -> usize {
        self.remove(id);
        let mut evicted = 0;
        while self.by_id.len() >= self.cap {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.by_id.remove(&oldest);
            evicted += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_age.insert(seq, id);
        self.by_id.insert(id, (seq, value));
        evicted
    }

    /// Take the request with this id.
    pub(crate) fn remove(&mut self, id: i32) -> Option<T> {
        let (seq, value) = self.by_id.remove(&id)?;
        self.by_age.remove(&seq);
        Some(value)
    }

    /// Forget everything.
    pub(crate) fn clear(&mut self) {
        self.by_id.clear();
        self.by_age.clear();
    }

    /// How many requests wait.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn insert_and_remove() {
        let mut pending = Pending::new(4);
        assert_eq!(pending.insert(1, "a"), 0);
        assert_eq!(pending.insert(2, "b"), 0);
        assert_eq!(pending.remove(1), Some("a"));
        assert_eq!(pending.remove(1), None);
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn the_oldest_is_evicted_past_the_cap() {
        let mut pending = Pending::new(3);
        for id in 0..3 {
            assert_eq!(pending.insert(id, id), 0);
        }
        assert_eq!(pending.insert(3, 3), 1);
        assert_eq!(pending.len(), 3);
        assert_eq!(pending.remove(0), None);
        assert_eq!(pending.remove(1), Some(1));
    }

    #[test]
    fn replacing_an_id_refreshes_it_and_never_grows() {
        let mut pending = Pending::new(2);
        pending.insert(1, "old");
        pending.insert(2, "b");
        assert_eq!(pending.insert(1, "new"), 0);
        // 2 is now the oldest.
        assert_eq!(pending.insert(3, "c"), 1);
        assert_eq!(pending.remove(2), None);
        assert_eq!(pending.remove(1), Some("new"));
        assert_eq!(pending.by_age.len(), pending.by_id.len());
    }

    #[test]
    fn clear_forgets() {
        let mut pending = Pending::new(2);
        pending.insert(1, ());
        pending.clear();
        assert_eq!(pending.len(), 0);
        assert_eq!(pending.remove(1), None);
    }
}
