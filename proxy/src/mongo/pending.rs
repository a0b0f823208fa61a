//! Requests waiting for their reply, bounded.
//!
//! A client may pipeline, a server may never answer (a killed operation, a dropped frame), so
//! the map is capped: past the cap the oldest request is evicted and the caller counts it.
//!
//! Insertion order is kept beside the map in a queue, so eviction takes the front rather than
//! scanning. Replies come in the order of their requests nearly always, so taking a request
//! pops its entry off the front; an entry left behind by a reply out of order is skipped when
//! it reaches the front, and the queue is compacted when such entries pile up. The map hashes
//! with foldhash (randomly seeded): a request id is one integer, and this runs per request.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;

/// Stale queue entries allowed beyond twice the live ones before a compaction.
const STALE_SLACK: usize = 32;

/// A bounded map from requestID to what is remembered of the request.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    by_id: HashMap<i32, (u64, T), RandomState>,
    /// `(sequence, id)` in insertion order; an entry whose sequence is no longer the id's in
    /// `by_id` is stale.
    by_age: VecDeque<(u64, i32)>,
    next_seq: u64,
    cap: usize,
}

impl<T> Pending<T> {
    /// An empty map holding at most `cap` (at least 1) requests.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            by_id: HashMap::default(),
            by_age: VecDeque::new(),
            next_seq: 0,
            cap: cap.max(1),
        }
    }

    /// Remember `value` under `id`, replacing any request already there. Returns how many
    /// older requests were evicted to make room.
    pub(crate) fn insert(&mut self, id: i32, value: T) -> usize {
        let mut evicted = 0;
        // Below the cap (nearly always) the id is not looked up first: an entry it replaces
        // leaves a stale queue entry, skipped like one left by a reply out of order.
        while self.by_id.len() >= self.cap && !self.by_id.contains_key(&id) {
            let Some((seq, oldest)) = self.by_age.pop_front() else {
                break;
            };
            if self.is_live(seq, oldest) {
                self.by_id.remove(&oldest);
                evicted += 1;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_age.push_back((seq, id));
        self.by_id.insert(id, (seq, value));
        if self.by_age.len() > 2 * self.by_id.len() + STALE_SLACK {
            let by_id = &self.by_id;
            self.by_age
                .retain(|(seq, id)| by_id.get(id).is_some_and(|(live, _)| live == seq));
        }
        evicted
    }

    /// Take the request with this id.
    pub(crate) fn remove(&mut self, id: i32) -> Option<T> {
        let (seq, value) = self.by_id.remove(&id)?;
        if self.by_age.front().is_some_and(|(front, _)| *front == seq) {
            self.by_age.pop_front();
        }
        Some(value)
    }

    fn is_live(&self, seq: u64, id: i32) -> bool {
        self.by_id.get(&id).is_some_and(|(live, _)| *live == seq)
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
    fn replies_out_of_order_leave_the_queue_bounded_and_the_age_order_right() {
        let mut pending = Pending::new(4);
        // Each round: two requests, the newer answered first.
        for round in 0..1_000 {
            let (older, newer) = (2 * round, 2 * round + 1);
            pending.insert(older, older);
            pending.insert(newer, newer);
            assert_eq!(pending.remove(newer), Some(newer));
            assert_eq!(pending.remove(older), Some(older));
            // At most two wait at once: the queue stays within the compaction's bound.
            assert!(pending.by_age.len() <= 2 * 2 + STALE_SLACK + 1);
        }
        // Stale entries do not count as requests to evict.
        for id in 0..4 {
            assert_eq!(pending.insert(10_000 + id, id), 0);
        }
        assert_eq!(pending.insert(20_000, 9), 1);
        assert_eq!(pending.remove(10_000), None);
        assert_eq!(pending.remove(10_001), Some(1));
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
