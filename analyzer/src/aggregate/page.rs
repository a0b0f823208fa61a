//! One sorted page of shapes, for the admin API and `indextap shapes`, taken straight from
//! the live store: only the sort keys of every shape are read, and only the page's shapes
//! are copied out. Latency quantiles come from each shape's sketch as it is.
//!
//! Ties are broken by shape id, so pages of a store that does not change are disjoint and
//! cover every shape.

use std::cmp::Ordering;
use std::str::FromStr;

use super::Aggregator;
use crate::shape::ShapeId;
use crate::snapshot::{ShapeRecord, Snapshot};

/// What shapes are sorted by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ShapeOrder {
    /// Recorded total time (the default: what an index would save).
    #[default]
    TotalTime,
    /// Executions.
    Count,
    /// 95th-percentile latency.
    P95,
}

impl ShapeOrder {
    /// The names accepted by [`FromStr`].
    pub const NAMES: &'static str = "total_time, count, p95";

    fn key(self, record: &ShapeRecordView<'_>) -> f64 {
        match self {
            // Sort keys only: u64 → f64 keeps the order of any realistic total.
            ShapeOrder::TotalTime => record.total_micros as f64,
            ShapeOrder::Count => record.count as f64,
            ShapeOrder::P95 => record.latency.quantile(0.95),
        }
    }
}

impl FromStr for ShapeOrder {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "total_time" | "total" => Ok(ShapeOrder::TotalTime),
            "count" => Ok(ShapeOrder::Count),
            "p95" => Ok(ShapeOrder::P95),
            _ => Err(format!(
                "unknown sort {text:?}; expected one of {}",
                Self::NAMES
            )),
        }
    }
}

/// Which page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The sort key.
    pub order: ShapeOrder,
    /// Largest first (the default) or smallest first.
    pub descending: bool,
    /// Shapes skipped.
    pub offset: usize,
    /// Shapes returned at most.
    pub limit: usize,
}

/// One page of shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapesPage {
    /// Shapes in the store (or snapshot), all pages together.
    pub total: usize,
    /// This page's shapes, in order.
    pub shapes: Vec<(ShapeId, ShapeRecord)>,
}

/// The fields a sort key reads, borrowed from either a live entry or a snapshot record.
struct ShapeRecordView<'a> {
    count: u64,
    total_micros: u64,
    latency: &'a crate::snapshot::LatencySketch,
}

/// The positions of `keys` that fall on the requested page, in page order.
fn select<T: Copy>(mut keys: Vec<(f64, ShapeId, T)>, request: PageRequest) -> Vec<T> {
    let compare = |a: &(f64, ShapeId, T), b: &(f64, ShapeId, T)| -> Ordering {
        let by_key = if request.descending {
            b.0.total_cmp(&a.0)
        } else {
            a.0.total_cmp(&b.0)
        };
        by_key.then(a.1.cmp(&b.1))
    };
    let end = request.offset.saturating_add(request.limit).min(keys.len());
    if request.offset >= end {
        return Vec::new();
    }
    // Only the first `end` need sorting.
    if end < keys.len() {
        keys.select_nth_unstable_by(end, compare);
        keys.truncate(end);
    }
    keys.sort_unstable_by(compare);
    keys.into_iter()
        .skip(request.offset)
        .map(|(_, _, item)| item)
        .collect()
}

impl Aggregator {
    /// One page of the tracked shapes.
    pub fn shapes_page(&self, request: PageRequest) -> ShapesPage {
        let keys: Vec<_> = self
            .shapes
            .iter()
            .map(|entry| {
                let view = ShapeRecordView {
                    count: entry.count,
                    total_micros: entry.total_micros,
                    latency: &entry.latency,
                };
                (request.order.key(&view), entry.id, *entry.key())
            })
            .collect();
        let total = keys.len();
        let shapes = select(keys, request)
            .into_iter()
            // A shape evicted since its key was read is left out of the page.
            .filter_map(|key| {
                let stats = self.shapes.get(&key)?;
                Some((stats.id, stats.to_record()))
            })
            .collect();
        ShapesPage { total, shapes }
    }
}

impl ShapesPage {
    /// One page of a snapshot's shapes.
    pub fn of_snapshot(snapshot: &Snapshot, request: PageRequest) -> ShapesPage {
        let keys: Vec<_> = snapshot
            .shapes
            .iter()
            .map(|(id, record)| {
                let view = ShapeRecordView {
                    count: record.count,
                    total_micros: record.total_micros,
                    latency: &record.latency,
                };
                (request.order.key(&view), *id, *id)
            })
            .collect();
        let total = keys.len();
        let shapes = select(keys, request)
            .into_iter()
            .filter_map(|id| Some((id, snapshot.shapes.get(&id)?.clone())))
            .collect();
        ShapesPage { total, shapes }
    }
}
