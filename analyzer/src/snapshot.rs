//! Snapshots: the aggregate as a versioned, mergeable value.
//!
//! A snapshot is what the state file holds, what `/api/v1/snapshot` serves, what
//! `indextap merge` combines and what advice is computed from. It holds shapes (names,
//! operators, types), counters and latency sketches: never a value from the traffic.
//!
//! The format owns its types; the aggregate builds them (`aggregate` depends on this module,
//! never the other way round).
//!
//! Merging is commutative and associative: counts add, latency sketches add bucket by bucket,
//! first-seen takes the minimum and last-seen the maximum, partial-index constants intersect.
//!
//! ## Layout
//! - this file: [`Snapshot`], [`ShapeRecord`], [`WriteRecord`], [`OtherRecord`],
//!   [`NamespaceOtherRecord`]: the format.
//! - `sketch`: [`LatencySketch`], the per-shape latency distribution.
//! - `merge`: [`Snapshot::merge`] / [`Snapshot::merged`], the rules for combining two.
//! - `json`: [`Snapshot::to_json`] / [`Snapshot::from_json`], the file format, version-checked;
//!   files of version 1 (HDR histogram pairs) are converted on reading.

mod json;
mod merge;
pub mod sketch;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::shape::{BoundConstant, Namespace, Rejection, Shape, ShapeId};

pub use json::SnapshotError;
pub use sketch::LatencySketch;

/// The current format version. Bump it on any incompatible change. Version 2 replaced the
/// HDR histogram pairs of version 1 with [`LatencySketch`] buckets, and added the per
/// namespace "other" buckets.
pub const FORMAT_VERSION: u32 = 2;

/// Everything indextap has learned from the traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Per shape, keyed by id.
    pub shapes: BTreeMap<ShapeId, ShapeRecord>,
    /// Per namespace write load.
    pub writes: Vec<WriteRecord>,
    /// Executions of shapes that are not in `shapes`: evicted to stay within the memory
    /// budget or the shape bound, or lost to an id collision in a merge.
    pub other: OtherRecord,
    /// The evicted shapes' statistics, added up per collection or table: the part of
    /// `other` whose namespace is known. Sorted by namespace.
    #[serde(default)]
    pub other_by_namespace: Vec<NamespaceOtherRecord>,
    /// Commands that lowered to nothing useful, by reason (`sql_parse_error`, ...).
    #[serde(default)]
    pub rejected: BTreeMap<Rejection, u64>,
}

impl Snapshot {
    /// An empty snapshot in the current format.
    pub fn new() -> Self {
        Self {
            version: FORMAT_VERSION,
            ..Self::default()
        }
    }
}

/// What is known of one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeRecord {
    /// The shape itself, shared with the live store that recorded it: a snapshot of the
    /// aggregate copies the statistics, never the shapes' trees.
    pub shape: Arc<Shape>,
    /// Executions.
    pub count: u64,
    /// Executions that returned an error.
    pub errors: u64,
    /// Errors by code (MongoDB code or SQLSTATE): codes are not data.
    #[serde(default)]
    pub error_codes: BTreeMap<String, u64>,
    /// Sum of latencies, including getMore continuations, in microseconds.
    pub total_micros: u64,
    /// Documents or rows returned, including getMore batches.
    pub returned: u64,
    /// getMore round trips that continued this shape's cursors.
    pub continuations: u64,
    /// Unix milliseconds of the first and last execution.
    pub first_seen_ms: u64,
    /// See `first_seen_ms`.
    pub last_seen_ms: u64,
    /// Partial-index constants carried by *every* execution so far.
    pub constants: Vec<BoundConstant>,
    /// For SQL: the statement with every literal and parameter replaced by `$n`, for
    /// EXPLAIN. Never holds a value.
    #[serde(default)]
    pub normalized_sql: Option<String>,
    /// Per-execution latency.
    pub latency: LatencySketch,
}

/// Writes against one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteRecord {
    /// Where.
    pub namespace: Namespace,
    /// Inserted documents/rows.
    pub inserts: u64,
    /// Update statements.
    pub updates: u64,
    /// Delete statements.
    pub deletes: u64,
    /// Total time of the commands that inserted `inserts`, in microseconds: what a write
    /// costs there, and so what one more index adds to it (see `advise::rank`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub insert_micros: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Every execution outside the tracked shapes, added up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherRecord {
    /// Executions counted here.
    pub count: u64,
    /// Their total time in microseconds.
    pub total_micros: u64,
    /// How many shape records were evicted into it.
    #[serde(default)]
    pub evicted_shapes: u64,
}

/// The "other" bucket of one collection or table: the shapes evicted from it, added up, so
/// its totals stay exact when its cold shapes make room for hot ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceOtherRecord {
    /// Where.
    pub namespace: Namespace,
    /// Shape records evicted into this bucket.
    pub evicted_shapes: u64,
    /// Their executions.
    pub count: u64,
    /// Their failed executions.
    pub errors: u64,
    /// Their total time in microseconds, getMore continuations included.
    pub total_micros: u64,
    /// Documents or rows they returned.
    pub returned: u64,
}
