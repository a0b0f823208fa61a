//! One shape's statistics as the live store keeps them, and their conversion to and from
//! the snapshot format's [`ShapeRecord`].
//!
//! Partial-index constants follow one rule here and in merges: only what every execution
//! carried survives, and an SQL token list stays a digest until
//! [`CONFIRM_EXECUTIONS`](super::CONFIRM_EXECUTIONS) executions carried it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::CONFIRM_EXECUTIONS;
use crate::shape::footprint::{allocation, HeapSize};
use crate::shape::{BoundConstant, Constant, Shape, ShapeId, ShapeOccurrence};
use crate::snapshot::{LatencySketch, ShapeRecord};

/// One shape's statistics.
#[derive(Debug, Clone)]
pub(crate) struct ShapeStats {
    /// The stable id (a hash of the canonical form), computed once.
    pub(crate) id: ShapeId,
    /// Shared with the snapshots taken of it.
    pub(crate) shape: Arc<Shape>,
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) error_codes: BTreeMap<String, u64>,
    /// Sum of latencies (getMore continuations included), µs.
    pub(crate) total_micros: u64,
    pub(crate) returned: u64,
    pub(crate) continuations: u64,
    /// When first and last recorded, as the observations carry it: a record compares
    /// times, and only a snapshot turns them into milliseconds (`None`: never recorded).
    pub(crate) first_seen: Option<SystemTime>,
    pub(crate) last_seen: SystemTime,
    /// Constants carried by every execution so far (`None` before the first).
    pub(crate) constants: Option<Vec<BoundConstant>>,
    /// Literal-free statement text for EXPLAIN (SQL only).
    pub(crate) normalized_sql: Option<String>,
    /// Per-execution latency, µs.
    pub(crate) latency: LatencySketch,
    /// The eviction round in which the shape was admitted: a newcomer is spared for one
    /// round, so that it has time to show whether it is hot.
    pub(crate) admitted_round: u64,
    /// What this entry holds on the heap, as last charged to the store's total: 0 until the
    /// store first charges it ([`ShapeStats::recharge`]).
    pub(crate) charged: usize,
    /// The shape's own part of `charged`, which never changes.
    shape_bytes: usize,
}

impl ShapeStats {
    pub(crate) fn new(id: ShapeId, shape: Arc<Shape>, admitted_round: u64) -> Self {
        // The shared allocation: the shape and the two reference counts.
        let shape_bytes =
            allocation(std::mem::size_of::<Shape>() + 2 * std::mem::size_of::<usize>())
                + shape.heap_size();
        Self {
            id,
            shape,
            count: 0,
            errors: 0,
            error_codes: BTreeMap::new(),
            total_micros: 0,
            returned: 0,
            continuations: 0,
            first_seen: None,
            last_seen: UNIX_EPOCH,
            constants: None,
            normalized_sql: None,
            latency: LatencySketch::new(),
            admitted_round,
            charged: 0,
            shape_bytes,
        }
    }

    /// Bytes this entry holds: its boxed self, the shape, the statistics' allocations.
    pub(crate) fn heap_size(&self) -> usize {
        allocation(std::mem::size_of::<Self>())
            + self.shape_bytes
            + error_codes_size(&self.error_codes)
            + self.constants.heap_size()
            + self.normalized_sql.heap_size()
            + allocation(self.latency.heap_bytes())
    }

    /// Whether an observation without an error can change nothing here but the counters,
    /// the times seen and the latency sketch: the entry was recorded before, keeps no
    /// constant (an empty intersection stays empty) and has its SQL text, if any. Once
    /// steady, an entry stays so.
    pub(crate) fn steady(&self, occurrence: &ShapeOccurrence) -> bool {
        self.count > 0
            && self.constants.as_ref().is_some_and(Vec::is_empty)
            && (self.normalized_sql.is_some() || occurrence.normalized_sql.is_none())
    }

    /// Count `at` (when not `None`) in the first and last seen times.
    pub(crate) fn seen(&mut self, at: Option<SystemTime>) {
        let Some(at) = at else { return };
        self.first_seen = Some(self.first_seen.map_or(at, |first| first.min(at)));
        self.last_seen = self.last_seen.max(at);
    }

    /// Re-measure; the change since the last charge (positive when it grew).
    pub(crate) fn recharge(&mut self) -> isize {
        let now = self.heap_size();
        let delta = now as isize - self.charged as isize;
        self.charged = now;
        delta
    }

    /// Add another store's statistics of the same shape.
    pub(crate) fn absorb(&mut self, other: &ShapeStats) {
        self.count = self.count.saturating_add(other.count);
        self.errors = self.errors.saturating_add(other.errors);
        for (code, n) in &other.error_codes {
            let total = self.error_codes.entry(code.clone()).or_insert(0);
            *total = total.saturating_add(*n);
        }
        self.total_micros = self.total_micros.saturating_add(other.total_micros);
        self.returned = self.returned.saturating_add(other.returned);
        self.continuations = self.continuations.saturating_add(other.continuations);
        self.seen(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        let reveal = self.count >= CONFIRM_EXECUTIONS;
        self.constants = match (self.constants.take(), &other.constants) {
            (Some(kept), Some(seen)) => Some(intersect(kept, seen, reveal)),
            (kept, seen) => kept.or_else(|| seen.clone()),
        };
        if self.normalized_sql.is_none() {
            self.normalized_sql.clone_from(&other.normalized_sql);
        }
        self.latency.merge(&other.latency);
    }

    /// The snapshot form.
    pub(crate) fn to_record(&self) -> ShapeRecord {
        ShapeRecord {
            shape: self.shape.clone(),
            count: self.count,
            errors: self.errors,
            error_codes: self.error_codes.clone(),
            total_micros: self.total_micros,
            returned: self.returned,
            continuations: self.continuations,
            first_seen_ms: match self.first_seen {
                Some(first) if self.count > 0 => unix_millis(first),
                _ => 0,
            },
            last_seen_ms: unix_millis(self.last_seen),
            constants: self.constants.clone().unwrap_or_default(),
            normalized_sql: self.normalized_sql.clone(),
            latency: self.latency.clone(),
        }
    }

    /// A store entry from a snapshot record.
    pub(crate) fn from_record(id: ShapeId, record: &ShapeRecord, admitted_round: u64) -> Self {
        let mut stats = Self::new(id, record.shape.clone(), admitted_round);
        stats.count = record.count;
        stats.errors = record.errors;
        stats.error_codes.clone_from(&record.error_codes);
        stats.total_micros = record.total_micros;
        stats.returned = record.returned;
        stats.continuations = record.continuations;
        stats.first_seen = (record.count > 0).then(|| from_unix_millis(record.first_seen_ms));
        stats.last_seen = from_unix_millis(record.last_seen_ms);
        stats.constants = (record.count > 0).then(|| record.constants.clone());
        stats.normalized_sql.clone_from(&record.normalized_sql);
        stats.latency = record.latency.clone();
        stats
    }
}

/// Milliseconds since the epoch, 0 before it. Taking the floor keeps the order, so the
/// milliseconds of the earliest and latest times are the earliest and latest milliseconds.
pub(crate) fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The time `millis` after the epoch (every `u64` of milliseconds fits a 64-bit clock; a
/// clock that cannot hold it gives the epoch rather than a panic).
fn from_unix_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(millis))
        .unwrap_or(UNIX_EPOCH)
}

/// A B-tree keeps up to 11 entries per node; each node is one allocation.
fn error_codes_size(codes: &BTreeMap<String, u64>) -> usize {
    const ENTRIES_PER_NODE: usize = 11;
    // A leaf node: keys, values, a parent pointer and lengths.
    const NODE_BYTES: usize = ENTRIES_PER_NODE * (std::mem::size_of::<String>() + 8) + 16;
    if codes.is_empty() {
        return 0;
    }
    codes.len().div_ceil(ENTRIES_PER_NODE) * allocation(NODE_BYTES)
        + codes.keys().map(HeapSize::heap_size).sum::<usize>()
}

/// The constants in both sets. A digest matches the token list it was made from; the
/// result is in clear only when `reveal` (enough executions) and one side has it in clear.
pub(crate) fn intersect(
    kept: Vec<BoundConstant>,
    seen: &[BoundConstant],
    reveal: bool,
) -> Vec<BoundConstant> {
    // Most shapes keep no constant: nothing to walk, once per record.
    if kept.is_empty() {
        return kept;
    }
    kept.into_iter()
        .filter_map(|k| {
            let s = seen.iter().find(|s| {
                s.target == k.target
                    && s.operator == k.operator
                    && digest_of(&s.constant) == digest_of(&k.constant)
            })?;
            let clear = match (&k.constant, &s.constant) {
                (Constant::Digest(_), _) => s.clone(),
                _ => k,
            };
            Some(conceal(clear, reveal))
        })
        .collect()
}

/// A token list as its digest unless `reveal`; every other constant as it is.
pub(crate) fn conceal(constant: BoundConstant, reveal: bool) -> BoundConstant {
    match (&constant.constant, reveal) {
        (Constant::Tokens(_), false) => BoundConstant {
            constant: Constant::Digest(digest_of(&constant.constant)),
            ..constant
        },
        _ => constant,
    }
}

/// A comparable fingerprint: token lists and their digests agree; other constants hash
/// their canonical form.
fn digest_of(constant: &Constant) -> u64 {
    match constant {
        Constant::Digest(digest) => *digest,
        Constant::Tokens(tokens) => xxhash_rust::xxh3::xxh3_64(tokens.join("\u{1f}").as_bytes()),
        other => xxhash_rust::xxh3::xxh3_64(format!("{other:?}").as_bytes()),
    }
}
