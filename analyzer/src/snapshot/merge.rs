//! Merging snapshots: the operation that makes restarts and fleets add up.
//!
//! Every rule is commutative and associative, so a fleet's snapshots merge to the same result
//! in any order and grouping (the tests check this over generated snapshots):
//! - counters add (saturating: a hand-edited file must not overflow into a panic);
//! - latency sketches add bucket by bucket, error codes and rejection reasons add by key;
//! - first-seen takes the minimum, last-seen the maximum;
//! - partial-index constants intersect: a constant stays only if every execution carried it;
//! - `normalized_sql` keeps any present text, the lexicographically smaller of two;
//! - writes and the per namespace "other" buckets add per namespace, sorted by namespace.
//!
//! A record with `count == 0` holds no execution, so it does not take part in first-seen or
//! the constants intersection (it would otherwise erase every constant).
//!
//! Two different shapes under one id (a 64-bit hash collision) cannot be merged. The record
//! whose shape has the smaller canonical form is kept and the other's executions move to
//! `other`, so no execution is lost from the totals and the choice does not depend on order.

use std::collections::BTreeMap;

use crate::shape::{BoundConstant, Namespace};

use super::{
    LatencySketch, NamespaceOtherRecord, OtherRecord, ShapeRecord, Snapshot, WriteRecord,
    FORMAT_VERSION,
};

impl Snapshot {
    /// Adds `other` into `self`. The result is in the current format ([`FORMAT_VERSION`]).
    pub fn merge(&mut self, other: &Snapshot) {
        self.version = FORMAT_VERSION;
        for (id, theirs) in &other.shapes {
            match self.shapes.get_mut(id) {
                None => {
                    self.shapes.insert(*id, theirs.clone());
                }
                Some(ours) if ours.shape == theirs.shape => ours.merge(theirs),
                Some(ours) => {
                    // A hash collision: keep one shape, count the other as overflow.
                    if theirs.shape.canonical() < ours.shape.canonical() {
                        let dropped = std::mem::replace(ours, theirs.clone());
                        self.other.add(&dropped);
                    } else {
                        self.other.add(theirs);
                    }
                }
            }
        }
        self.writes = merge_writes(&self.writes, &other.writes);
        self.other.merge(&other.other);
        self.other_by_namespace =
            merge_namespace_others(&self.other_by_namespace, &other.other_by_namespace);
        add_by_key(&mut self.rejected, &other.rejected);
    }

    /// `a` and `b` merged, in the current format.
    pub fn merged(a: &Snapshot, b: &Snapshot) -> Snapshot {
        let mut out = a.clone();
        out.merge(b);
        out
    }
}

impl ShapeRecord {
    /// Adds the statistics of another record of the same shape.
    pub fn merge(&mut self, other: &ShapeRecord) {
        // Constants and first-seen only mean something for records that saw an execution.
        match (self.count > 0, other.count > 0) {
            (false, true) => {
                self.constants = normalized(other.constants.clone());
                self.first_seen_ms = other.first_seen_ms;
            }
            (true, false) => self.constants = normalized(std::mem::take(&mut self.constants)),
            _ => {
                self.constants = intersect(&self.constants, &other.constants);
                self.first_seen_ms = self.first_seen_ms.min(other.first_seen_ms);
            }
        }
        self.count = self.count.saturating_add(other.count);
        self.errors = self.errors.saturating_add(other.errors);
        add_by_key(&mut self.error_codes, &other.error_codes);
        self.total_micros = self.total_micros.saturating_add(other.total_micros);
        self.returned = self.returned.saturating_add(other.returned);
        self.continuations = self.continuations.saturating_add(other.continuations);
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
        self.normalized_sql = match (self.normalized_sql.take(), &other.normalized_sql) {
            (Some(ours), Some(theirs)) => Some(if *theirs < ours { theirs.clone() } else { ours }),
            (ours, theirs) => ours.or_else(|| theirs.clone()),
        };
        self.latency = LatencySketch::merged(&self.latency, &other.latency);
    }
}

impl OtherRecord {
    fn add(&mut self, record: &ShapeRecord) {
        self.count = self.count.saturating_add(record.count);
        self.total_micros = self.total_micros.saturating_add(record.total_micros);
    }

    /// Adds another bucket's totals.
    pub fn merge(&mut self, other: &OtherRecord) {
        self.count = self.count.saturating_add(other.count);
        self.total_micros = self.total_micros.saturating_add(other.total_micros);
        self.evicted_shapes = self.evicted_shapes.saturating_add(other.evicted_shapes);
    }
}

impl NamespaceOtherRecord {
    /// An empty bucket for `namespace`.
    pub fn new(namespace: Namespace) -> Self {
        Self {
            namespace,
            evicted_shapes: 0,
            count: 0,
            errors: 0,
            total_micros: 0,
            returned: 0,
        }
    }

    /// Adds an evicted shape's totals (`evicted_shapes` counts it once).
    pub fn absorb(&mut self, record: &ShapeRecord) {
        self.evicted_shapes = self.evicted_shapes.saturating_add(1);
        self.count = self.count.saturating_add(record.count);
        self.errors = self.errors.saturating_add(record.errors);
        self.total_micros = self.total_micros.saturating_add(record.total_micros);
        self.returned = self.returned.saturating_add(record.returned);
    }

    /// Adds another bucket of the same namespace.
    pub fn merge(&mut self, other: &NamespaceOtherRecord) {
        self.evicted_shapes = self.evicted_shapes.saturating_add(other.evicted_shapes);
        self.count = self.count.saturating_add(other.count);
        self.errors = self.errors.saturating_add(other.errors);
        self.total_micros = self.total_micros.saturating_add(other.total_micros);
        self.returned = self.returned.saturating_add(other.returned);
    }
}

/// Both lists folded into one bucket per namespace, sorted by namespace.
fn merge_namespace_others(
    ours: &[NamespaceOtherRecord],
    theirs: &[NamespaceOtherRecord],
) -> Vec<NamespaceOtherRecord> {
    let mut by_namespace: BTreeMap<&Namespace, NamespaceOtherRecord> = BTreeMap::new();
    for bucket in ours.iter().chain(theirs) {
        by_namespace
            .entry(&bucket.namespace)
            .or_insert_with(|| NamespaceOtherRecord::new(bucket.namespace.clone()))
            .merge(bucket);
    }
    by_namespace.into_values().collect()
}

fn add_by_key<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (key, n) in from {
        let total = into.entry(key.clone()).or_insert(0);
        *total = total.saturating_add(*n);
    }
}

/// Sorted and deduplicated, so that equal sets compare equal whatever their history.
fn normalized(mut constants: Vec<BoundConstant>) -> Vec<BoundConstant> {
    constants.sort();
    constants.dedup();
    constants
}

fn intersect(ours: &[BoundConstant], theirs: &[BoundConstant]) -> Vec<BoundConstant> {
    normalized(
        ours.iter()
            .filter(|constant| theirs.contains(constant))
            .cloned()
            .collect(),
    )
}

/// Both lists folded into one record per namespace (duplicates within a list fold too).
fn merge_writes(ours: &[WriteRecord], theirs: &[WriteRecord]) -> Vec<WriteRecord> {
    let mut by_namespace: BTreeMap<&Namespace, [u64; 4]> = BTreeMap::new();
    for write in ours.iter().chain(theirs) {
        let [inserts, updates, deletes, insert_micros] =
            by_namespace.entry(&write.namespace).or_default();
        *inserts = inserts.saturating_add(write.inserts);
        *updates = updates.saturating_add(write.updates);
        *deletes = deletes.saturating_add(write.deletes);
        *insert_micros = insert_micros.saturating_add(write.insert_micros);
    }
    by_namespace
        .into_iter()
        .map(
            |(namespace, [inserts, updates, deletes, insert_micros])| WriteRecord {
                namespace: namespace.clone(),
                inserts,
                updates,
                deletes,
                insert_micros,
            },
        )
        .collect()
}
