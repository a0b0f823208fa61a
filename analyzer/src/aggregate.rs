//! Aggregation: shapes → statistics, in bounded memory.
//!
//! A concurrent map (dashmap) from [`ShapeId`] to [`ShapeStats`]: executions, errors by code,
//! a latency histogram (hdrhistogram), documents returned, first and last seen. The number of
//! shapes is bounded: executions of shapes past the bound go to an "other" bucket, counted,
//! so memory stays bounded whatever the traffic.
//!
//! MongoDB cursors: a reply that leaves a cursor open maps the cursor id to the shape that
//! opened it, so later `getMore` time and documents count toward that shape. Cursor ids are
//! unique per server and drivers may continue a cursor on another pooled connection, so the
//! map lives here rather than in a connection.
//!
//! ## Layout
//! - [`Aggregator`]: the live, concurrent store; [`Aggregator::record`] is the hot path.
//! - [`ShapeStats`]: one shape's statistics.
//! - [`Aggregator::snapshot`] / [`Aggregator::restore`]: to and from [`Snapshot`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use hdrhistogram::Histogram;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use crate::command::Observation;
use crate::shape::{
    BoundConstant, Constant, Lowering, Namespace, Rejection, Shape, ShapeId, WriteKind,
};
use crate::snapshot::{
    HistogramRecord, OtherRecord, ShapeRecord, Snapshot, WriteRecord, FORMAT_VERSION,
    HISTOGRAM_MAX_MICROS, HISTOGRAM_SIGFIG,
};

/// How many executions must carry the same SQL token list before it is kept in clear. Until
/// then only a digest is kept: a value that recurs in this many executions of one shape is
/// a constant of the code, and one that does not never leaves a digest.
pub const CONFIRM_EXECUTIONS: u64 = 10;

/// How many open cursors are remembered; older ones are forgotten first.
const MAX_TRACKED_CURSORS: usize = 65_536;

/// One shape's statistics.
#[derive(Debug, Clone)]
pub struct ShapeStats {
    /// The shape.
    pub shape: Shape,
    /// Executions.
    pub count: u64,
    /// Failed executions.
    pub errors: u64,
    /// Failures by error code.
    pub error_codes: BTreeMap<String, u64>,
    /// Sum of latencies (getMore continuations included), µs.
    pub total_micros: u64,
    /// Documents or rows returned (getMore batches included).
    pub returned: u64,
    /// getMore round trips.
    pub continuations: u64,
    /// Unix ms of the first execution.
    pub first_seen_ms: u64,
    /// Unix ms of the last execution.
    pub last_seen_ms: u64,
    /// Constants carried by every execution so far (`None` before the first).
    pub constants: Option<Vec<BoundConstant>>,
    /// Literal-free statement text for EXPLAIN (SQL only).
    pub normalized_sql: Option<String>,
    /// Per-execution latency, µs.
    pub latency: Histogram<u64>,
}

impl ShapeStats {
    fn new(shape: Shape) -> Self {
        Self {
            shape,
            count: 0,
            errors: 0,
            error_codes: BTreeMap::new(),
            total_micros: 0,
            returned: 0,
            continuations: 0,
            first_seen_ms: u64::MAX,
            last_seen_ms: 0,
            constants: None,
            normalized_sql: None,
            latency: new_histogram(),
        }
    }

    /// Add another store's statistics of the same shape.
    fn absorb(&mut self, other: &ShapeStats) {
        self.count += other.count;
        self.errors += other.errors;
        for (code, n) in &other.error_codes {
            *self.error_codes.entry(code.clone()).or_insert(0) += n;
        }
        self.total_micros = self.total_micros.saturating_add(other.total_micros);
        self.returned = self.returned.saturating_add(other.returned);
        self.continuations += other.continuations;
        self.first_seen_ms = self.first_seen_ms.min(other.first_seen_ms);
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
        let reveal = self.count >= CONFIRM_EXECUTIONS;
        self.constants = match (self.constants.take(), &other.constants) {
            (Some(kept), Some(seen)) => Some(intersect(kept, seen, reveal)),
            (kept, seen) => kept.or_else(|| seen.clone()),
        };
        if self.normalized_sql.is_none() {
            self.normalized_sql = other.normalized_sql.clone();
        }
        // Both histograms share bounds, so adding cannot fail; ignore rather than panic.
        let _ = self.latency.add(&other.latency);
    }

    fn to_record(&self) -> ShapeRecord {
        ShapeRecord {
            shape: self.shape.clone(),
            count: self.count,
            errors: self.errors,
            error_codes: self.error_codes.clone(),
            total_micros: self.total_micros,
            returned: self.returned,
            continuations: self.continuations,
            first_seen_ms: if self.count == 0 {
                0
            } else {
                self.first_seen_ms
            },
            last_seen_ms: self.last_seen_ms,
            constants: self.constants.clone().unwrap_or_default(),
            normalized_sql: self.normalized_sql.clone(),
            latency: HistogramRecord::from_histogram(&self.latency),
        }
    }

    fn from_record(record: &ShapeRecord) -> Self {
        Self {
            shape: record.shape.clone(),
            count: record.count,
            errors: record.errors,
            error_codes: record.error_codes.clone(),
            total_micros: record.total_micros,
            returned: record.returned,
            continuations: record.continuations,
            first_seen_ms: if record.count == 0 {
                u64::MAX
            } else {
                record.first_seen_ms
            },
            last_seen_ms: record.last_seen_ms,
            constants: (record.count > 0).then(|| record.constants.clone()),
            normalized_sql: record.normalized_sql.clone(),
            latency: record.latency.to_histogram(),
        }
    }
}

/// A fresh latency histogram with the snapshot's bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_MICROS, HISTOGRAM_SIGFIG)
        .expect("constant histogram bounds are valid")
}

#[derive(Debug, Default)]
struct WriteCounters {
    inserts: AtomicU64,
    updates: AtomicU64,
    deletes: AtomicU64,
}

/// Open cursors → the shape that opened them, oldest forgotten first.
#[derive(Debug, Default)]
struct CursorTable {
    by_id: std::collections::HashMap<i64, ShapeId>,
    order: std::collections::VecDeque<i64>,
}

impl CursorTable {
    fn open(&mut self, cursor: i64, shape: ShapeId) {
        if self.by_id.insert(cursor, shape).is_none() {
            self.order.push_back(cursor);
        }
        while self.order.len() > MAX_TRACKED_CURSORS {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    fn get(&self, cursor: i64) -> Option<ShapeId> {
        self.by_id.get(&cursor).copied()
    }

    fn close(&mut self, cursor: i64) {
        // The order queue keeps the id until it ages out; a stale entry there is harmless.
        self.by_id.remove(&cursor);
    }
}

/// The live store of everything learned from the traffic.
#[derive(Debug)]
pub struct Aggregator {
    max_shapes: usize,
    shapes: DashMap<ShapeId, ShapeStats>,
    /// Tracked shapes → their ids.
    ids: DashMap<Shape, ShapeId, Xxh3DefaultBuilder>,
    writes: DashMap<Namespace, WriteCounters>,
    other_count: AtomicU64,
    other_micros: AtomicU64,
    rejected: DashMap<Rejection, u64>,
    orphan_continuations: AtomicU64,
    cursors: Mutex<CursorTable>,
}

impl Aggregator {
    /// A store that tracks at most `max_shapes` distinct shapes.
    pub fn new(max_shapes: usize) -> Self {
        Self {
            max_shapes: max_shapes.max(1),
            shapes: DashMap::new(),
            ids: DashMap::with_hasher(Xxh3DefaultBuilder),
            writes: DashMap::new(),
            other_count: AtomicU64::new(0),
            other_micros: AtomicU64::new(0),
            rejected: DashMap::new(),
            orphan_continuations: AtomicU64::new(0),
            cursors: Mutex::new(CursorTable::default()),
        }
    }

    /// Record one observation, already lowered.
    pub fn record(&self, observation: &Observation, lowering: Lowering) {
        self.record_shared(observation, &lowering);
    }

    /// [`Aggregator::record`] for a lowering that is shared (a cached SQL lowering): nothing
    /// is cloned unless a shape, a namespace or a constant list is stored for the first time.
    pub fn record_shared(&self, observation: &Observation, lowering: &Lowering) {
        let outcome = &observation.outcome;
        let micros = u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX);
        let at_ms = unix_millis(observation.at);

        if let Some(reason) = &lowering.rejected {
            *self.rejected.entry(reason.clone()).or_insert(0) += 1;
        }
        for write in &lowering.writes {
            self.count_write(write);
        }
        for cursor in &lowering.closes_cursors {
            self.cursors_lock().close(*cursor);
        }
        if let Some(cursor) = lowering.continues_cursor {
            self.record_continuation(cursor, micros, outcome.returned, outcome.cursor_id);
            return;
        }

        let single = lowering.shapes.len() == 1;
        for occurrence in &lowering.shapes {
            let Some(id) = self.tracked_id(&occurrence.shape) else {
                self.other_count.fetch_add(1, Ordering::Relaxed);
                self.other_micros.fetch_add(micros, Ordering::Relaxed);
                continue;
            };
            let mut stats = self
                .shapes
                .entry(id)
                .or_insert_with(|| ShapeStats::new(occurrence.shape.clone()));
            stats.count += 1;
            stats.total_micros = stats.total_micros.saturating_add(micros);
            stats.returned = stats.returned.saturating_add(outcome.returned);
            // Histograms saturate at their bound rather than fail: a clamp, never a panic.
            stats
                .latency
                .saturating_record(micros.clamp(1, HISTOGRAM_MAX_MICROS));
            if let Some(code) = &outcome.error {
                stats.errors += 1;
                *stats.error_codes.entry(code.clone()).or_insert(0) += 1;
            }
            stats.first_seen_ms = stats.first_seen_ms.min(at_ms);
            stats.last_seen_ms = stats.last_seen_ms.max(at_ms);
            let reveal = stats.count >= CONFIRM_EXECUTIONS;
            stats.constants = Some(match stats.constants.take() {
                None => occurrence
                    .constants
                    .iter()
                    .map(|c| conceal(c.clone(), reveal))
                    .collect(),
                Some(kept) => intersect(kept, &occurrence.constants, reveal),
            });
            if stats.normalized_sql.is_none() {
                stats.normalized_sql.clone_from(&occurrence.normalized_sql);
            }
            drop(stats);
            if single {
                if let Some(cursor) = outcome.cursor_id.filter(|c| *c != 0) {
                    self.cursors_lock().open(cursor, id);
                }
            }
        }
    }

    fn count_write(&self, write: &crate::shape::Write) {
        // The namespace is cloned only the first time it is written to.
        let counters = match self.writes.get(&write.namespace) {
            Some(counters) => counters,
            None => self
                .writes
                .entry(write.namespace.clone())
                .or_default()
                .downgrade(),
        };
        let counter = match write.kind {
            WriteKind::Insert => &counters.inserts,
            WriteKind::Update => &counters.updates,
            WriteKind::Delete => &counters.deletes,
        };
        counter.fetch_add(write.count, Ordering::Relaxed);
    }

    /// The id of `shape` if it is tracked or there is room to track it; `None` sends its
    /// executions to "other". Ids of tracked shapes are remembered: hashing a shape's
    /// canonical JSON costs more than everything else [`Aggregator::record`] does.
    fn tracked_id(&self, shape: &Shape) -> Option<ShapeId> {
        if let Some(id) = self.ids.get(shape) {
            return Some(*id);
        }
        let id = shape.id();
        if !self.shapes.contains_key(&id) && self.shapes.len() >= self.max_shapes {
            return None;
        }
        // Bounded like the shapes: a memo past twice the bound (after restores) starts over.
        if self.ids.len() >= self.max_shapes.saturating_mul(2) {
            self.ids.clear();
        }
        self.ids.insert(shape.clone(), id);
        Some(id)
    }

    fn record_continuation(&self, cursor: i64, micros: u64, returned: u64, left_open: Option<i64>) {
        let shape = self.cursors_lock().get(cursor);
        let Some(id) = shape else {
            self.orphan_continuations.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Some(mut stats) = self.shapes.get_mut(&id) {
            stats.total_micros = stats.total_micros.saturating_add(micros);
            stats.returned = stats.returned.saturating_add(returned);
            stats.continuations += 1;
        }
        if left_open.is_none_or(|c| c == 0) {
            self.cursors_lock().close(cursor);
        }
    }

    fn cursors_lock(&self) -> std::sync::MutexGuard<'_, CursorTable> {
        // A poisoned lock only means another thread panicked mid-update of a cache; the
        // table is still usable.
        self.cursors.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Everything, as a mergeable snapshot.
    pub fn snapshot(&self) -> Snapshot {
        let shapes = self
            .shapes
            .iter()
            .map(|entry| (*entry.key(), entry.value().to_record()))
            .collect();
        let mut writes: Vec<WriteRecord> = self
            .writes
            .iter()
            .map(|entry| WriteRecord {
                namespace: entry.key().clone(),
                inserts: entry.inserts.load(Ordering::Relaxed),
                updates: entry.updates.load(Ordering::Relaxed),
                deletes: entry.deletes.load(Ordering::Relaxed),
            })
            .collect();
        writes.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        let rejected = self
            .rejected
            .iter()
            .map(|entry| (entry.key().clone(), *entry.value()))
            .collect();
        Snapshot {
            version: FORMAT_VERSION,
            shapes,
            writes,
            other: OtherRecord {
                count: self.other_count.load(Ordering::Relaxed),
                total_micros: self.other_micros.load(Ordering::Relaxed),
            },
            rejected,
        }
    }

    /// Add a snapshot's contents (a restored state file) to this store.
    pub fn restore(&self, snapshot: &Snapshot) {
        for (id, record) in &snapshot.shapes {
            if !self.shapes.contains_key(id) && self.shapes.len() >= self.max_shapes {
                self.other_count.fetch_add(record.count, Ordering::Relaxed);
                self.other_micros
                    .fetch_add(record.total_micros, Ordering::Relaxed);
                continue;
            }
            match self.shapes.get_mut(id) {
                Some(mut stats) => stats.absorb(&ShapeStats::from_record(record)),
                None => {
                    self.shapes.insert(*id, ShapeStats::from_record(record));
                }
            }
        }
        for write in &snapshot.writes {
            let counters = self.writes.entry(write.namespace.clone()).or_default();
            counters.inserts.fetch_add(write.inserts, Ordering::Relaxed);
            counters.updates.fetch_add(write.updates, Ordering::Relaxed);
            counters.deletes.fetch_add(write.deletes, Ordering::Relaxed);
        }
        self.other_count
            .fetch_add(snapshot.other.count, Ordering::Relaxed);
        self.other_micros
            .fetch_add(snapshot.other.total_micros, Ordering::Relaxed);
        // A reason this version does not know stays as it was read.
        for (reason, count) in &snapshot.rejected {
            let mut total = self.rejected.entry(reason.clone()).or_insert(0);
            *total = total.saturating_add(*count);
        }
    }
}

/// The constants in both sets. A digest matches the token list it was made from; the
/// result is in clear only when `reveal` (enough executions) and one side has it in clear.
fn intersect(kept: Vec<BoundConstant>, seen: &[BoundConstant], reveal: bool) -> Vec<BoundConstant> {
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
fn conceal(constant: BoundConstant, reveal: bool) -> BoundConstant {
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

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::command::{MongoCommand, Outcome, Request};
    use crate::shape::{
        BoundConstant, Constant, Leaf, Lowering, Namespace, OpClass, Predicate, Shape,
        ShapeOccurrence, Target, ValueType, Write, WriteKind,
    };

    fn observation(
        latency_ms: u64,
        returned: u64,
        cursor_id: Option<i64>,
        error: Option<&str>,
    ) -> Observation {
        Observation {
            request: Request::Mongo(MongoCommand {
                database: "app".into(),
                body: bson::rawdoc! {"ping": 1},
                sequences: Vec::new(),
            }),
            outcome: Outcome {
                latency: Duration::from_millis(latency_ms),
                error: error.map(str::to_string),
                returned,
                affected: 0,
                cursor_id,
            },
            at: SystemTime::now(),
        }
    }

    fn shape_on(field: &str) -> Shape {
        let mut shape = Shape::new(Namespace::mongo("app", "orders"), "find");
        shape.filter = Predicate::And(vec![Predicate::Leaf(Leaf {
            target: Target::Field(field.into()),
            operator: "$eq".into(),
            class: OpClass::Eq,
            value_type: ValueType::String,
        })]);
        shape
    }

    fn reads(shape: Shape, constants: Vec<BoundConstant>) -> Lowering {
        Lowering {
            shapes: vec![ShapeOccurrence {
                shape,
                constants,
                normalized_sql: None,
            }],
            ..Lowering::default()
        }
    }

    fn exists(field: &str, value: bool) -> BoundConstant {
        BoundConstant {
            target: Target::Field(field.into()),
            operator: "$exists".into(),
            constant: Constant::Exists(value),
        }
    }

    #[test]
    fn executions_add_up_per_shape() {
        let aggregator = Aggregator::new(10);
        aggregator.record(
            &observation(2, 3, None, None),
            reads(shape_on("status"), vec![]),
        );
        aggregator.record(
            &observation(4, 5, None, Some("11000")),
            reads(shape_on("status"), vec![]),
        );
        let snapshot = aggregator.snapshot();
        let record = &snapshot.shapes[&shape_on("status").id()];
        assert_eq!((record.count, record.errors, record.returned), (2, 1, 8));
        assert_eq!(record.total_micros, 6_000);
        assert_eq!(record.error_codes.get("11000"), Some(&1));
        assert_eq!(record.latency.0.iter().map(|(_, n)| n).sum::<u64>(), 2);
    }

    #[test]
    fn shapes_past_the_bound_go_to_the_other_bucket() {
        let aggregator = Aggregator::new(2);
        for field in ["a", "b", "c", "d"] {
            aggregator.record(
                &observation(1, 0, None, None),
                reads(shape_on(field), vec![]),
            );
        }
        aggregator.record(&observation(1, 0, None, None), reads(shape_on("a"), vec![]));
        let snapshot = aggregator.snapshot();
        assert_eq!(snapshot.shapes.len(), 2);
        assert_eq!(snapshot.other.count, 2);
        assert_eq!(snapshot.shapes[&shape_on("a").id()].count, 2);
    }

    #[test]
    fn get_more_counts_toward_the_shape_that_opened_the_cursor() {
        let aggregator = Aggregator::new(10);
        aggregator.record(
            &observation(1, 101, Some(77), None),
            reads(shape_on("status"), vec![]),
        );
        let continuation = Lowering {
            continues_cursor: Some(77),
            ..Lowering::default()
        };
        aggregator.record(&observation(3, 50, Some(77), None), continuation.clone());
        aggregator.record(&observation(2, 9, Some(0), None), continuation.clone());
        // The cursor is exhausted: a further getMore on it is an orphan.
        aggregator.record(&observation(2, 9, None, None), continuation);
        let snapshot = aggregator.snapshot();
        let record = &snapshot.shapes[&shape_on("status").id()];
        assert_eq!(
            (record.count, record.continuations, record.returned),
            (1, 2, 160)
        );
        assert_eq!(record.total_micros, 6_000);
        assert_eq!(aggregator.orphan_continuations(), 1);
    }

    #[test]
    fn only_constants_every_execution_carried_survive() {
        let aggregator = Aggregator::new(10);
        let both = vec![exists("email", true), exists("phone", true)];
        aggregator.record(
            &observation(1, 0, None, None),
            reads(shape_on("status"), both),
        );
        aggregator.record(
            &observation(1, 0, None, None),
            reads(shape_on("status"), vec![exists("email", true)]),
        );
        let snapshot = aggregator.snapshot();
        assert_eq!(
            snapshot.shapes[&shape_on("status").id()].constants,
            vec![exists("email", true)]
        );
    }

    #[test]
    fn sql_tokens_stay_a_digest_until_enough_executions_carry_them() {
        let tokens = |list: &[&str]| BoundConstant {
            target: Target::Field("last_name".into()),
            operator: "=".into(),
            constant: Constant::Tokens(list.iter().map(|t| t.to_string()).collect()),
        };
        let aggregator = Aggregator::new(10);
        let id = shape_on("last_name").id();
        aggregator.record(
            &observation(1, 0, None, None),
            reads(shape_on("last_name"), vec![tokens(&["SMITH"])]),
        );
        let once = aggregator.snapshot().to_json();
        assert!(!once.contains("SMITH"), "{once}");
        assert!(matches!(
            aggregator.snapshot().shapes[&id].constants[0].constant,
            Constant::Digest(_)
        ));
        for _ in 1..CONFIRM_EXECUTIONS {
            aggregator.record(
                &observation(1, 0, None, None),
                reads(shape_on("last_name"), vec![tokens(&["SMITH"])]),
            );
        }
        assert_eq!(
            aggregator.snapshot().shapes[&id].constants,
            vec![tokens(&["SMITH"])]
        );
        // A different list in one execution: nothing is common any more.
        aggregator.record(
            &observation(1, 0, None, None),
            reads(shape_on("last_name"), vec![tokens(&["JONES"])]),
        );
        assert!(aggregator.snapshot().shapes[&id].constants.is_empty());
    }

    #[test]
    fn writes_and_rejections_are_counted() {
        let aggregator = Aggregator::new(10);
        let lowering = Lowering {
            writes: vec![Write {
                namespace: Namespace::mongo("app", "orders"),
                kind: WriteKind::Insert,
                count: 100,
            }],
            ..Lowering::default()
        };
        aggregator.record(&observation(1, 0, None, None), lowering);
        aggregator.record(
            &observation(1, 0, None, None),
            Lowering {
                rejected: Some(Rejection::SqlParseError),
                ..Lowering::default()
            },
        );
        let snapshot = aggregator.snapshot();
        assert_eq!(snapshot.writes[0].inserts, 100);
        assert_eq!(snapshot.rejected.get(&Rejection::SqlParseError), Some(&1));
    }

    #[test]
    fn restored_rejections_keep_their_reason() {
        let aggregator = Aggregator::new(10);
        aggregator.record(
            &observation(1, 0, None, None),
            Lowering::rejected_as(Rejection::MalformedCommand),
        );
        let mut snapshot = aggregator.snapshot();
        snapshot.rejected.insert("from_a_newer_version".into(), 2);
        let json = snapshot.to_json();
        let restored = Aggregator::new(10);
        restored.restore(&Snapshot::from_json(&json).expect("parses"));
        let rejected = restored.snapshot().rejected;
        assert_eq!(rejected.get(&Rejection::MalformedCommand), Some(&1));
        assert_eq!(
            rejected.get(&Rejection::Other("from_a_newer_version".to_owned())),
            Some(&2)
        );
        assert!(!rejected.contains_key(&Rejection::Other("other".to_owned())));
    }

    #[test]
    fn a_snapshot_restores_into_an_equal_store() {
        let aggregator = Aggregator::new(10);
        aggregator.record(
            &observation(5, 1, None, None),
            reads(shape_on("status"), vec![exists("email", true)]),
        );
        let before = aggregator.snapshot();
        let restored = Aggregator::new(10);
        restored.restore(&before);
        assert_eq!(restored.snapshot(), before);
        // Restoring into a store that already has the shape adds to it.
        restored.restore(&before);
        assert_eq!(
            restored.snapshot().shapes[&shape_on("status").id()].count,
            2
        );
    }
}
