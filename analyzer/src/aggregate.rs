//! Aggregation: shapes → statistics, in bounded memory.
//!
//! A concurrent map (dashmap) from a shape to its statistics (`stats`): executions, errors by
//! code, a latency sketch, documents returned, first and last seen. The store holds to two
//! limits ([`Limits`]): a number of shapes and a budget in bytes, charged for everything it
//! holds (each shape's tree, SQL text, constants and sketch, the map's table, the write
//! counters, the other buckets and the open cursors; see [`crate::shape::footprint`]). Past
//! either limit, the coldest shapes by recorded total time are evicted into their
//! collection's or table's "other" bucket, so the totals stay exact and the hot shapes
//! survive (see `evict`). The write counters take at most a sixteenth of the budget: a
//! namespace first written to past it is counted in one total only.
//!
//! MongoDB cursors: a reply that leaves a cursor open maps the cursor id to the shape that
//! opened it, so later `getMore` time and documents count toward that shape.
//!
//! ## Layout
//! - this file: [`Aggregator`] and [`Limits`]; [`Aggregator::record`] is the hot path;
//!   [`Aggregator::snapshot`] / [`Aggregator::restore`] build and read the snapshot format.
//! - `stats`: one shape's statistics, to and from a [`ShapeRecord`].
//! - `evict`: the limits enforced, the coldest shapes folded into the other buckets.
//! - `page`: one sorted page of shapes for the admin API, without a snapshot.
//! - `stream`: [`Aggregator::write_json`], the snapshot written one shape at a time.
//! - `cursors`: open cursor → shape.

mod cursors;
mod evict;
mod page;
mod stats;
mod stream;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use foldhash::fast::FixedState;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use crate::command::{Observation, Outcome};
use crate::shape::{structural_key, Lowering, Namespace, Rejection, ShapeOccurrence, WriteKind};
use crate::snapshot::{
    NamespaceOtherRecord, OtherRecord, ShapeRecord, Snapshot, WriteRecord, FORMAT_VERSION,
};
use cursors::CursorTable;
use evict::OtherBuckets;
pub use page::{PageRequest, ShapeOrder, ShapesPage};
use stats::{conceal, intersect, ShapeStats};

/// How many executions must carry the same SQL token list before it is kept in clear. Until
/// then only a digest is kept: a value that recurs in this many executions of one shape is
/// a constant of the code, and one that does not never leaves a digest.
pub const CONFIRM_EXECUTIONS: u64 = 10;

/// The default memory budget: what 10,000 shapes of a mixed workload hold with room to
/// spare, so that the whole proxy stays within a 64 MiB sidecar limit.
pub const DEFAULT_MAX_BYTES: usize = 24 * 1024 * 1024;

/// A shape's key in the store: its [`structural_key`], kept by each occurrence (a cached
/// SQL lowering's is computed once). The [`ShapeId`](crate::shape::ShapeId) hashes the
/// canonical JSON, which costs more than everything else a record does; the id is computed
/// once, when a shape is admitted.
type ShapeKey = u128;

/// What an observation changed in its shape's entry ([`Aggregator::update`]).
#[derive(Debug, Clone, Copy)]
struct Changed {
    /// Its size may have changed: it is re-measured (only then).
    resized: bool,
    /// It was the entry's first execution.
    admitted: bool,
}

/// An outcome's latency in whole microseconds, as the statistics count it.
fn latency_micros(outcome: &Outcome) -> u64 {
    u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX)
}

/// How much the store may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Distinct shapes kept at most.
    pub max_shapes: usize,
    /// Bytes for the analysis state: the store takes seven eighths, the SQL statement cache
    /// ([`Limits::sql_cache_bytes`]) one eighth.
    pub max_bytes: usize,
}

impl Limits {
    /// `max_shapes` shapes within [`DEFAULT_MAX_BYTES`].
    pub fn shapes(max_shapes: usize) -> Self {
        Self {
            max_shapes,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// The SQL statement cache's share of the budget.
    pub fn sql_cache_bytes(&self) -> usize {
        self.max_bytes / 8
    }

    /// The store's share of the budget.
    pub fn store_bytes(&self) -> usize {
        self.max_bytes - self.sql_cache_bytes()
    }
}

#[derive(Debug, Default)]
struct WriteCounters {
    inserts: AtomicU64,
    updates: AtomicU64,
    deletes: AtomicU64,
    insert_micros: AtomicU64,
}

/// The live store of everything learned from the traffic.
#[derive(Debug)]
pub struct Aggregator {
    limits: Limits,
    /// Keyed by a hash already: a fast fixed hasher folds it (a streaming xxh3 over its 16
    /// bytes cost more than the rest of the lookup).
    shapes: DashMap<ShapeKey, Box<ShapeStats>, FixedState>,
    /// Bytes the shape entries hold, as charged by each ([`ShapeStats::heap_size`]).
    shape_bytes: AtomicUsize,
    writes: DashMap<Namespace, WriteCounters, Xxh3DefaultBuilder>,
    /// Bytes the write counters' namespaces hold.
    write_bytes: AtomicUsize,
    /// Writes to namespaces that found the write counters full (see [`Aggregator::writes`]).
    untracked_writes: AtomicU64,
    other_count: AtomicU64,
    other_micros: AtomicU64,
    evicted_shapes: AtomicU64,
    other_buckets: Mutex<OtherBuckets>,
    /// Eviction rounds so far; a shape admitted in the current round is spared by the next.
    round: AtomicU64,
    evicting: Mutex<()>,
    rejected: DashMap<Rejection, u64>,
    orphan_continuations: AtomicU64,
    cursors: Mutex<CursorTable>,
}

impl Aggregator {
    /// A store that tracks at most `max_shapes` distinct shapes, within the default budget.
    pub fn new(max_shapes: usize) -> Self {
        Self::with_limits(Limits::shapes(max_shapes))
    }

    /// A store held to `limits`.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            limits: Limits {
                max_shapes: limits.max_shapes.max(1),
                max_bytes: limits.max_bytes,
            },
            shapes: DashMap::with_hasher(FixedState::default()),
            shape_bytes: AtomicUsize::new(0),
            writes: DashMap::with_hasher(Xxh3DefaultBuilder),
            write_bytes: AtomicUsize::new(0),
            untracked_writes: AtomicU64::new(0),
            other_count: AtomicU64::new(0),
            other_micros: AtomicU64::new(0),
            evicted_shapes: AtomicU64::new(0),
            other_buckets: Mutex::new(OtherBuckets::default()),
            round: AtomicU64::new(0),
            evicting: Mutex::new(()),
            rejected: DashMap::new(),
            orphan_continuations: AtomicU64::new(0),
            cursors: Mutex::new(CursorTable::default()),
        }
    }

    /// The limits this store holds to.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Record one observation, already lowered.
    pub fn record(&self, observation: &Observation, lowering: Lowering) {
        self.record_shared(observation, &lowering);
    }

    /// [`Aggregator::record`] for a lowering that is shared (a cached SQL lowering): nothing
    /// is cloned unless a shape, a namespace or a constant list is stored for the first time.
    pub fn record_shared(&self, observation: &Observation, lowering: &Lowering) {
        let outcome = &observation.outcome;
        let micros = latency_micros(outcome);

        if let Some(reason) = &lowering.rejected {
            *self.rejected.entry(reason.clone()).or_insert(0) += 1;
        }
        // An insert's time is what a write costs on its table or collection; one command
        // that inserts into several shares its time between them.
        let inserting = lowering
            .writes
            .iter()
            .filter(|write| write.kind == WriteKind::Insert)
            .count() as u64;
        for write in &lowering.writes {
            let spent = match write.kind {
                WriteKind::Insert => micros / inserting.max(1),
                WriteKind::Update | WriteKind::Delete => 0,
            };
            self.count_write(write, spent);
        }
        for cursor in &lowering.closes_cursors {
            lock(&self.cursors).close(*cursor);
        }
        if let Some(cursor) = lowering.continues_cursor {
            self.record_continuation(cursor, micros, outcome.returned, outcome.cursor_id);
            return;
        }

        let single = lowering.shapes.len() == 1;
        for occurrence in &lowering.shapes {
            let key = occurrence.key();
            let mut stats = match self.shapes.get_mut(&key) {
                Some(stats) => stats,
                None => self.shapes.entry(key).or_insert_with(|| {
                    let shape = occurrence.shape.clone();
                    Box::new(ShapeStats::new(
                        shape.id(),
                        Arc::new(shape),
                        self.current_round(),
                    ))
                }),
            };
            let changed = Self::update(&mut stats, occurrence, observation, micros);
            let limit = self.settle(&mut stats, changed);
            drop(stats);
            self.after_update(single.then_some(key), outcome, limit);
        }
    }

    /// [`Aggregator::record_shared`] for consecutive observations of one lowering (a prepared
    /// statement run again and again, from any connection): the same as recording each in
    /// turn, with the shape's entry looked up once for the run instead of once each.
    /// Only a lowering of one shape that writes, rejects and touches no cursor takes the
    /// short way; any other is recorded observation by observation.
    pub fn record_run(&self, observations: &[&Observation], lowering: &Lowering) {
        let plain = lowering.rejected.is_none()
            && lowering.writes.is_empty()
            && lowering.closes_cursors.is_empty()
            && lowering.continues_cursor.is_none();
        let occurrence = match lowering.shapes.as_slice() {
            [occurrence] if plain => occurrence,
            _ => {
                for observation in observations {
                    self.record_shared(observation, lowering);
                }
                return;
            }
        };
        let key = occurrence.key();
        let mut rest = observations.iter();
        while !rest.as_slice().is_empty() {
            let Some(mut stats) = self.shapes.get_mut(&key) else {
                // Not stored (yet, or evicted since): the next observation admits it, as
                // recorded alone.
                if let Some(observation) = rest.next() {
                    self.record_shared(observation, lowering);
                }
                continue;
            };
            // Counted under the one lock until it must be let go: the entry may have grown
            // (it is re-measured, the store held to its limits) or a cursor was opened.
            let mut steady = stats.steady(occurrence);
            for observation in rest.by_ref() {
                let outcome = &observation.outcome;
                let micros = latency_micros(outcome);
                let changed = match outcome.error {
                    None if steady => Self::count_execution(&mut stats, observation, micros),
                    _ => {
                        let changed = Self::update(&mut stats, occurrence, observation, micros);
                        steady = stats.steady(occurrence);
                        changed
                    }
                };
                let limit = self.settle(&mut stats, changed);
                if limit || outcome.cursor_id.is_some_and(|c| c != 0) {
                    drop(stats);
                    self.after_update(Some(key), outcome, limit);
                    break;
                }
            }
        }
    }

    /// One observation of `occurrence` counted in its entry; what changed, for
    /// [`Aggregator::settle`].
    fn update(
        stats: &mut ShapeStats,
        occurrence: &ShapeOccurrence,
        observation: &Observation,
        micros: u64,
    ) -> Changed {
        let outcome = &observation.outcome;
        let mut resized =
            outcome.error.is_some() || stats.constants.as_ref().is_none_or(|kept| !kept.is_empty());
        resized |= Self::count_execution(stats, observation, micros).resized;
        if let Some(code) = &outcome.error {
            stats.errors = stats.errors.saturating_add(1);
            *stats.error_codes.entry(code.clone()).or_insert(0) += 1;
        }
        let reveal = stats.count >= CONFIRM_EXECUTIONS;
        stats.constants = Some(match stats.constants.take() {
            None => occurrence
                .constants
                .iter()
                .map(|c| conceal(c.clone(), reveal))
                .collect(),
            Some(kept) => intersect(kept, &occurrence.constants, reveal),
        });
        if stats.normalized_sql.is_none() && occurrence.normalized_sql.is_some() {
            stats.normalized_sql.clone_from(&occurrence.normalized_sql);
            resized = true;
        }
        let admitted = stats.count == 1;
        Changed {
            resized: resized || admitted,
            admitted,
        }
    }

    /// The part of [`Aggregator::update`] every observation takes: the counters, the first
    /// and last seen times and the latency sketch, of which only the sketch can change the
    /// entry's size. It is the whole update for an entry that is [`ShapeStats::steady`] and
    /// an observation without an error (the constants kept are none, and stay none; the SQL
    /// text is kept already; the entry was admitted before).
    #[inline]
    fn count_execution(stats: &mut ShapeStats, observation: &Observation, micros: u64) -> Changed {
        let outcome = &observation.outcome;
        let latency_bytes = stats.latency.heap_bytes();
        stats.count = stats.count.saturating_add(1);
        stats.total_micros = stats.total_micros.saturating_add(micros);
        stats.returned = stats.returned.saturating_add(outcome.returned);
        stats.latency.record(micros);
        stats.seen(Some(observation.at));
        Changed {
            resized: stats.latency.heap_bytes() != latency_bytes,
            admitted: false,
        }
    }

    /// An updated entry re-measured if its size may have changed; whether the store must
    /// then be held to its limits (the entry grew, or was just admitted).
    fn settle(&self, stats: &mut ShapeStats, changed: Changed) -> bool {
        let grew = changed.resized && self.charge(stats.recharge());
        debug_assert_eq!(
            stats.charged,
            stats.heap_size(),
            "an entry's charge is current"
        );
        changed.admitted || grew
    }

    /// What follows an update once the entry's lock is let go: the cursor the command
    /// opened is noted against `key` (a lowering of one shape), and the store is held to its
    /// limits when the entry grew or was admitted (`limit`).
    fn after_update(&self, key: Option<ShapeKey>, outcome: &Outcome, limit: bool) {
        if let Some(key) = key {
            if let Some(cursor) = outcome.cursor_id.filter(|c| *c != 0) {
                lock(&self.cursors).open(cursor, key);
            }
        }
        if limit {
            self.enforce_limits();
        }
    }

    /// Adds a change of the shapes' bytes; whether they grew.
    fn charge(&self, delta: isize) -> bool {
        if delta >= 0 {
            self.shape_bytes
                .fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
        } else {
            self.shape_bytes
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
        delta > 0
    }

    fn count_write(&self, write: &crate::shape::Write, insert_micros: u64) {
        use crate::shape::footprint::HeapSize;
        // The namespace is cloned only the first time it is written to.
        let counters = match self.writes.get(&write.namespace) {
            Some(counters) => counters,
            None => {
                let added = write.namespace.heap_size();
                if self.write_counters_bound(added) > self.limits.store_bytes() / 16 {
                    self.untracked_writes
                        .fetch_add(write.count, Ordering::Relaxed);
                    return;
                }
                let entry = self.writes.entry(write.namespace.clone());
                if matches!(entry, dashmap::Entry::Vacant(_)) {
                    self.write_bytes.fetch_add(added, Ordering::Relaxed);
                }
                entry.or_default().downgrade()
            }
        };
        let counter = match write.kind {
            WriteKind::Insert => &counters.inserts,
            WriteKind::Update => &counters.updates,
            WriteKind::Delete => &counters.deletes,
        };
        counter.fetch_add(write.count, Ordering::Relaxed);
        if insert_micros > 0 {
            counters
                .insert_micros
                .fetch_add(insert_micros, Ordering::Relaxed);
        }
    }

    fn record_continuation(&self, cursor: i64, micros: u64, returned: u64, left_open: Option<i64>) {
        let shape = lock(&self.cursors).get(cursor);
        let Some(key) = shape else {
            self.orphan_continuations.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match self.shapes.get_mut(&key) {
            Some(mut stats) => {
                stats.total_micros = stats.total_micros.saturating_add(micros);
                stats.returned = stats.returned.saturating_add(returned);
                stats.continuations = stats.continuations.saturating_add(1);
            }
            // The shape was evicted while its cursor was open: its time still counts.
            None => {
                self.other_micros.fetch_add(micros, Ordering::Relaxed);
            }
        }
        if left_open.is_none_or(|c| c == 0) {
            lock(&self.cursors).close(cursor);
        }
    }

    /// How many distinct shapes are tracked.
    pub fn shapes_tracked(&self) -> usize {
        self.shapes.len()
    }

    /// getMore round trips whose cursor was not known (opened before the proxy started, or
    /// its opening reply was dropped).
    pub fn orphan_continuations(&self) -> u64 {
        self.orphan_continuations.load(Ordering::Relaxed)
    }

    /// The executions outside the tracked shapes, added up (cheap: a few atomics).
    pub fn other(&self) -> OtherRecord {
        OtherRecord {
            count: self.other_count.load(Ordering::Relaxed),
            total_micros: self.other_micros.load(Ordering::Relaxed),
            evicted_shapes: self.evicted_shapes.load(Ordering::Relaxed),
        }
    }

    /// The per namespace other buckets, sorted by namespace.
    pub fn other_by_namespace(&self) -> Vec<NamespaceOtherRecord> {
        lock(&self.other_buckets).records()
    }

    /// Rejected commands by reason (a handful of entries).
    pub fn rejected(&self) -> BTreeMap<Rejection, u64> {
        self.rejected
            .iter()
            .map(|entry| (entry.key().clone(), *entry.value()))
            .collect()
    }

    /// Writes left uncounted by namespace: the write counters may hold a sixteenth of the
    /// store's budget (thousands of namespaces), and a namespace first written to once they
    /// are full is counted here only. The namespaces counted already keep counting.
    pub fn untracked_writes(&self) -> u64 {
        self.untracked_writes.load(Ordering::Relaxed)
    }

    /// The write load per namespace, sorted by namespace (see
    /// [`Aggregator::untracked_writes`]).
    pub fn writes(&self) -> Vec<WriteRecord> {
        let mut writes: Vec<WriteRecord> = self
            .writes
            .iter()
            .map(|entry| WriteRecord {
                namespace: entry.key().clone(),
                inserts: entry.inserts.load(Ordering::Relaxed),
                updates: entry.updates.load(Ordering::Relaxed),
                deletes: entry.deletes.load(Ordering::Relaxed),
                insert_micros: entry.insert_micros.load(Ordering::Relaxed),
            })
            .collect();
        writes.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        writes
    }

    /// Everything, as a mergeable snapshot.
    pub fn snapshot(&self) -> Snapshot {
        let mut other = self.other();
        let mut shapes: BTreeMap<_, ShapeRecord> = BTreeMap::new();
        for entry in self.shapes.iter() {
            let stats = entry.value();
            match shapes.entry(stats.id) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(stats.to_record());
                }
                // Two shapes under one 64-bit id: the second counts as other, as in a merge.
                std::collections::btree_map::Entry::Occupied(_) => {
                    other.count = other.count.saturating_add(stats.count);
                    other.total_micros = other.total_micros.saturating_add(stats.total_micros);
                }
            }
        }
        Snapshot {
            version: FORMAT_VERSION,
            shapes,
            writes: self.writes(),
            other,
            other_by_namespace: self.other_by_namespace(),
            rejected: self.rejected(),
        }
    }

    /// Add a snapshot's contents (a restored state file) to this store. Past the limits,
    /// the coldest shapes go to their other buckets, as live traffic's do.
    pub fn restore(&self, snapshot: &Snapshot) {
        for (id, record) in &snapshot.shapes {
            let key = structural_key(&record.shape);
            // Restored shapes are not newcomers: they compete on their recorded time at once.
            let restored = ShapeStats::from_record(*id, record, 0);
            let mut stats = match self.shapes.get_mut(&key) {
                Some(mut stats) => {
                    stats.absorb(&restored);
                    stats
                }
                None => self.shapes.entry(key).or_insert(Box::new(restored)),
            };
            self.charge(stats.recharge());
            drop(stats);
            self.enforce_limits();
        }
        for write in &snapshot.writes {
            let write_of = |kind, count| crate::shape::Write {
                namespace: write.namespace.clone(),
                kind,
                count,
            };
            self.count_write(
                &write_of(WriteKind::Insert, write.inserts),
                write.insert_micros,
            );
            self.count_write(&write_of(WriteKind::Update, write.updates), 0);
            self.count_write(&write_of(WriteKind::Delete, write.deletes), 0);
        }
        let other = &snapshot.other;
        self.other_count.fetch_add(other.count, Ordering::Relaxed);
        self.other_micros
            .fetch_add(other.total_micros, Ordering::Relaxed);
        self.evicted_shapes
            .fetch_add(other.evicted_shapes, Ordering::Relaxed);
        {
            let mut buckets = lock(&self.other_buckets);
            for bucket in &snapshot.other_by_namespace {
                buckets.add(bucket);
            }
            buckets.hold_to(self.limits.store_bytes() / 16);
        }
        // A reason this version does not know stays as it was read.
        for (reason, count) in &snapshot.rejected {
            let mut total = self.rejected.entry(reason.clone()).or_insert(0);
            *total = total.saturating_add(*count);
        }
    }
}

/// A poisoned lock only means another thread panicked mid-update of a table whose entries
/// are plain counters; it is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
