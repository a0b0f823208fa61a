//! Snapshots: the aggregate as a versioned, mergeable value.
//!
//! A snapshot is what the state file holds, what `/api/v1/snapshot` serves, what
//! `indextap merge` combines and what advice is computed from. It holds shapes (names,
//! operators, types), counters and histograms: never a value from the traffic.
//!
//! Merging is commutative and associative: counts add, histograms add bucket by bucket,
//! first-seen takes the minimum and last-seen the maximum, partial-index constants intersect.
//!
//! ## Layout
//! - this file: [`Snapshot`], [`ShapeRecord`], [`WriteRecord`], [`HistogramRecord`]: the format.
//! - `merge`: [`Snapshot::merge`] / [`Snapshot::merged`], the rules for combining two.
//! - `histogram`: [`HistogramRecord`] arithmetic (bucket-wise sum, percentiles).
//! - `json`: [`Snapshot::to_json`] / [`Snapshot::from_json`], the file format, version-checked.

mod histogram;
mod json;
mod merge;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::shape::{BoundConstant, Namespace, Rejection, Shape, ShapeId};

pub use json::SnapshotError;

/// The current format version. Bump it on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// Latency histogram bounds, in microseconds: 1 µs to one hour, 3 significant digits.
pub const HISTOGRAM_MAX_MICROS: u64 = 3_600_000_000;
/// Significant figures kept by the latency histograms.
pub const HISTOGRAM_SIGFIG: u8 = 3;

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
    /// Executions of shapes that did not fit in the shape bound.
    pub other: OtherRecord,
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
    /// The shape itself.
    pub shape: Shape,
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
    pub latency: HistogramRecord,
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
}

/// The overflow bucket for shapes past the configured bound.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherRecord {
    /// Executions counted here.
    pub count: u64,
    /// Their total time in microseconds.
    pub total_micros: u64,
}

/// A latency histogram as (bucket value in µs, count) pairs: portable and exactly mergeable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HistogramRecord(pub Vec<(u64, u64)>);

impl HistogramRecord {
    /// The recorded buckets of a histogram.
    pub fn from_histogram(histogram: &hdrhistogram::Histogram<u64>) -> Self {
        HistogramRecord(
            histogram
                .iter_recorded()
                .map(|bucket| (bucket.value_iterated_to(), bucket.count_at_value()))
                .collect(),
        )
    }

    /// A histogram with these buckets recorded.
    pub fn to_histogram(&self) -> hdrhistogram::Histogram<u64> {
        let mut histogram = crate::aggregate::new_histogram();
        for &(value, count) in &self.0 {
            let value = value.clamp(1, HISTOGRAM_MAX_MICROS);
            // Saturating: a hand-edited file can hold absurd counts; clamp, never panic.
            let _ = histogram.record_n(value, count);
        }
        histogram
    }
}
