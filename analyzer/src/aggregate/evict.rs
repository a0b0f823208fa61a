//! Holding to the limits: when the store is past its shape count or its byte budget, the
//! coldest shapes, by recorded total time, are evicted into the "other" bucket of their
//! collection or table.
//!
//! Eviction runs in rounds, down to a low-water mark (7/8 of the budget, 15/16 of the count),
//! so its cost (one pass over the store and a sort) is paid once per many admissions rather
//! than on every one. A shape admitted since the last round is spared by the next one: a new
//! shape has recorded little time yet, and without that grace it would be evicted before it
//! could show that it is hot. Totals stay exact: an evicted shape's executions, errors, time
//! and rows are added to its namespace's bucket and to the store's `other` totals.
//!
//! The buckets themselves are charged to the budget. If they alone outgrow a sixteenth of it
//! (traffic over an unbounded number of collections), the smallest are dropped from the
//! per namespace list; their executions stay in the `other` totals.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::stats::ShapeStats;
use super::{lock, Aggregator, ShapeKey};
use crate::shape::footprint::{allocation, HeapSize};
use crate::shape::Namespace;
use crate::snapshot::NamespaceOtherRecord;

/// One write counter's slot in its table, with its control byte.
const WRITE_SLOT: usize = std::mem::size_of::<(Namespace, super::WriteCounters)>() + 1;

/// One bucket's totals (the namespace is the map's key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    evicted_shapes: u64,
    count: u64,
    errors: u64,
    total_micros: u64,
    returned: u64,
}

/// The per namespace other buckets.
#[derive(Debug, Default)]
pub(super) struct OtherBuckets {
    by_namespace: BTreeMap<Namespace, Totals>,
    /// The namespaces' heap bytes.
    namespace_bytes: usize,
}

impl OtherBuckets {
    fn bucket(&mut self, namespace: &Namespace) -> &mut Totals {
        if !self.by_namespace.contains_key(namespace) {
            self.namespace_bytes += namespace.heap_size();
        }
        self.by_namespace.entry(namespace.clone()).or_default()
    }

    /// Adds an evicted shape.
    fn absorb(&mut self, stats: &ShapeStats) {
        let bucket = self.bucket(&stats.shape.namespace);
        bucket.evicted_shapes = bucket.evicted_shapes.saturating_add(1);
        bucket.count = bucket.count.saturating_add(stats.count);
        bucket.errors = bucket.errors.saturating_add(stats.errors);
        bucket.total_micros = bucket.total_micros.saturating_add(stats.total_micros);
        bucket.returned = bucket.returned.saturating_add(stats.returned);
    }

    /// Adds a restored bucket.
    pub(super) fn add(&mut self, record: &NamespaceOtherRecord) {
        let bucket = self.bucket(&record.namespace);
        bucket.evicted_shapes = bucket.evicted_shapes.saturating_add(record.evicted_shapes);
        bucket.count = bucket.count.saturating_add(record.count);
        bucket.errors = bucket.errors.saturating_add(record.errors);
        bucket.total_micros = bucket.total_micros.saturating_add(record.total_micros);
        bucket.returned = bucket.returned.saturating_add(record.returned);
    }

    /// The snapshot form, sorted by namespace.
    pub(super) fn records(&self) -> Vec<NamespaceOtherRecord> {
        self.by_namespace
            .iter()
            .map(|(namespace, totals)| NamespaceOtherRecord {
                namespace: namespace.clone(),
                evicted_shapes: totals.evicted_shapes,
                count: totals.count,
                errors: totals.errors,
                total_micros: totals.total_micros,
                returned: totals.returned,
            })
            .collect()
    }

    /// Bytes held: a B-tree node per 11 entries, and each namespace's strings.
    pub(super) fn heap_size(&self) -> usize {
        let entry = std::mem::size_of::<(Namespace, Totals)>();
        self.by_namespace.len().div_ceil(11) * allocation(11 * entry + 16) + self.namespace_bytes
    }

    /// Drops the smallest buckets (by total time) until they hold at most `bytes`.
    pub(super) fn hold_to(&mut self, bytes: usize) {
        while self.heap_size() > bytes {
            let smallest = self
                .by_namespace
                .iter()
                .min_by_key(|(namespace, totals)| (totals.total_micros, totals.count, *namespace))
                .map(|(namespace, _)| namespace.clone());
            let Some(namespace) = smallest else { return };
            self.by_namespace.remove(&namespace);
            self.namespace_bytes = self.namespace_bytes.saturating_sub(namespace.heap_size());
        }
    }
}

/// One shape as eviction sees it.
struct Candidate {
    newcomer: bool,
    total_micros: u64,
    count: u64,
    key: ShapeKey,
}

impl Aggregator {
    pub(super) fn current_round(&self) -> u64 {
        self.round.load(Ordering::Relaxed)
    }

    /// Everything the store holds, in bytes, as charged against its budget.
    pub fn memory_bytes(&self) -> usize {
        let shape_slot = std::mem::size_of::<(ShapeKey, Box<ShapeStats>)>() + 1;
        // A hash table has a bucket per 7/8 of its capacity, each a slot and a control byte.
        self.shape_bytes.load(Ordering::Relaxed)
            + self.shapes.capacity() * shape_slot * 8 / 7
            + self.write_counters_bytes()
            + lock(&self.other_buckets).heap_size()
            + lock(&self.cursors).heap_size()
    }

    /// The write counters' bytes: their namespaces and their table.
    pub(super) fn write_counters_bytes(&self) -> usize {
        self.write_bytes.load(Ordering::Relaxed) + self.writes.capacity() * WRITE_SLOT * 8 / 7
    }

    /// The most the write counters could be charged with one more namespace of `added`
    /// heap bytes: a table that just doubled is 7/16 full, so its buckets are at most 16/7
    /// of its entries.
    pub(super) fn write_counters_bound(&self, added: usize) -> usize {
        let table = (self.writes.len() + 1) * WRITE_SLOT * 16 / 7;
        self.write_bytes.load(Ordering::Relaxed)
            + added
            + table.max(self.writes.capacity() * WRITE_SLOT * 8 / 7)
    }

    fn over_limits(&self) -> bool {
        self.shapes.len() > self.limits.max_shapes
            || self.memory_bytes() > self.limits.store_bytes()
    }

    /// Evicts the coldest shapes when the store is past a limit. One thread at a time; a
    /// thread that finds another evicting goes on, and the next admission checks again.
    pub(super) fn enforce_limits(&self) {
        if !self.over_limits() {
            return;
        }
        let Ok(_turn) = self.evicting.try_lock() else {
            return;
        };
        if self.over_limits() {
            self.evict_round();
        }
    }

    fn evict_round(&self) {
        let round = self.current_round();
        let byte_target = self.limits.store_bytes() / 8 * 7;
        let count_target = self.limits.max_shapes - self.limits.max_shapes / 16;
        let mut candidates: Vec<Candidate> = self
            .shapes
            .iter()
            .map(|entry| Candidate {
                newcomer: entry.admitted_round >= round,
                total_micros: entry.total_micros,
                count: entry.count,
                key: *entry.key(),
            })
            .collect();
        // Veterans first, coldest first; newcomers only if evicting every veteran was not
        // enough.
        candidates.sort_unstable_by_key(|c| (c.newcomer, c.total_micros, c.count, c.key));

        let mut bytes = self.memory_bytes();
        let mut evicted = 0u64;
        for candidate in candidates {
            if bytes <= byte_target && self.shapes.len() <= count_target {
                break;
            }
            let Some((_, stats)) = self.shapes.remove(&candidate.key) else {
                continue;
            };
            self.shape_bytes.fetch_sub(stats.charged, Ordering::Relaxed);
            bytes = bytes.saturating_sub(stats.charged);
            self.other_count.fetch_add(stats.count, Ordering::Relaxed);
            self.other_micros
                .fetch_add(stats.total_micros, Ordering::Relaxed);
            lock(&self.other_buckets).absorb(&stats);
            evicted += 1;
        }
        self.evicted_shapes.fetch_add(evicted, Ordering::Relaxed);
        lock(&self.other_buckets).hold_to(self.limits.store_bytes() / 16);
        // A table keeps its buckets after removals; give them back after a large eviction
        // (a big snapshot restored into a small budget).
        if self.shapes.capacity() > self.shapes.len() * 4 + 64 {
            self.shapes.shrink_to_fit();
        }
        self.round.fetch_add(1, Ordering::Relaxed);
    }
}
