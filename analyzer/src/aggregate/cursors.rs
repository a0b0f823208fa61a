//! Open MongoDB cursors → the shape that opened them, oldest forgotten first.
//!
//! Cursor ids are unique per server and drivers may continue a cursor on another pooled
//! connection, so the table is shared by the whole store rather than kept per connection.

use std::collections::{HashMap, VecDeque};

use super::ShapeKey;

/// How many open cursors are remembered; older ones are forgotten first.
const MAX_TRACKED_CURSORS: usize = 65_536;

#[derive(Debug, Default)]
pub(crate) struct CursorTable {
    by_id: HashMap<i64, ShapeKey>,
    order: VecDeque<i64>,
}

impl CursorTable {
    pub(crate) fn open(&mut self, cursor: i64, shape: ShapeKey) {
        if self.by_id.insert(cursor, shape).is_none() {
            self.order.push_back(cursor);
        }
        while self.order.len() > MAX_TRACKED_CURSORS {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    pub(crate) fn get(&self, cursor: i64) -> Option<ShapeKey> {
        self.by_id.get(&cursor).copied()
    }

    pub(crate) fn close(&mut self, cursor: i64) {
        // The order queue keeps the id until it ages out; a stale entry there is harmless.
        self.by_id.remove(&cursor);
    }

    /// Bytes held: the map's table (a slot and a control byte per bucket, buckets at 8/7 of
    /// the capacity) and the queue's ring.
    pub(crate) fn heap_size(&self) -> usize {
        let slot = std::mem::size_of::<(i64, ShapeKey)>() + 1;
        self.by_id.capacity() * slot * 8 / 7 + self.order.capacity() * std::mem::size_of::<i64>()
    }
}
