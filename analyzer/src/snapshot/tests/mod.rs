//! Snapshot tests: merge laws over generated snapshots, and the merge rules one by one.
//!
//! ## Layout
//! - this file: merging.
//! - `generate`: proptest strategies for snapshots, and one example record.
//! - `format`: histogram round trips and percentiles, the JSON format.

mod format;
mod generate;

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::shape::{Namespace, ShapeId};
use crate::snapshot::*;
use crate::testing::mongo::find_eq;
use generate::{constant_pool, example, namespace_pool, snapshot};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn merge_is_commutative(a in snapshot(), b in snapshot()) {
        prop_assert_eq!(Snapshot::merged(&a, &b), Snapshot::merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in snapshot(), b in snapshot(), c in snapshot()) {
        let left = Snapshot::merged(&Snapshot::merged(&a, &b), &c);
        let right = Snapshot::merged(&a, &Snapshot::merged(&b, &c));
        prop_assert_eq!(left, right);
    }

    #[test]
    fn merging_an_empty_snapshot_changes_nothing_but_the_version(a in snapshot()) {
        let merged = Snapshot::merged(&Snapshot::new(), &a);
        prop_assert_eq!(&merged.shapes, &a.shapes);
        prop_assert_eq!(&merged.other, &a.other);
        prop_assert_eq!(&merged.rejected, &a.rejected);
        prop_assert_eq!(merged.version, FORMAT_VERSION);
    }
}

#[test]
fn shape_records_merge_field_by_field() {
    let pool = constant_pool();
    let base = find_eq("orders", "status");
    let a = example(base.clone());
    let b = ShapeRecord {
        shape: base.clone().into(),
        count: 4,
        errors: 2,
        error_codes: BTreeMap::from([("11000".into(), 1), ("50".into(), 1)]),
        total_micros: 400,
        returned: 40,
        continuations: 1,
        first_seen_ms: 2_000,
        last_seen_ms: 9_000,
        constants: vec![pool[0].clone(), pool[2].clone()],
        normalized_sql: Some("SELECT a".into()),
        latency: LatencySketch::from_buckets([(5, 1), (100, 3)]),
    };
    let mut merged = a.clone();
    merged.merge(&b);
    assert_eq!(merged.count, 7);
    assert_eq!(merged.errors, 3);
    assert_eq!(
        merged.error_codes,
        BTreeMap::from([("11000".into(), 2), ("50".into(), 1)])
    );
    assert_eq!(merged.total_micros, 700);
    assert_eq!(merged.returned, 70);
    assert_eq!(merged.continuations, 3);
    assert_eq!(merged.first_seen_ms, 1_000);
    assert_eq!(merged.last_seen_ms, 9_000);
    assert_eq!(
        merged.constants,
        vec![pool[0].clone()],
        "only the shared constant"
    );
    assert_eq!(merged.normalized_sql.as_deref(), Some("SELECT a"));
    assert_eq!(
        merged.latency,
        LatencySketch::from_buckets([(5, 1), (10, 2), (100, 4)])
    );

    // One side without SQL text keeps the other's.
    let mut no_sql = b.clone();
    no_sql.normalized_sql = None;
    let mut merged = no_sql.clone();
    merged.merge(&a);
    assert_eq!(merged.normalized_sql.as_deref(), Some("SELECT b"));
}

#[test]
fn a_record_without_executions_keeps_constants_and_first_seen() {
    let pool = constant_pool();
    let mut seen = example(find_eq("orders", "status"));
    seen.count = 5;
    seen.first_seen_ms = 700;
    seen.constants = vec![pool[2].clone()];
    let mut empty = seen.clone();
    empty.count = 0;
    empty.first_seen_ms = 0;
    empty.constants = Vec::new();

    let mut merged = empty.clone();
    merged.merge(&seen);
    assert_eq!(merged.constants, vec![pool[2].clone()]);
    assert_eq!(merged.first_seen_ms, 700);
    let mut merged = seen.clone();
    merged.merge(&empty);
    assert_eq!(merged.constants, vec![pool[2].clone()]);
    assert_eq!(merged.first_seen_ms, 700);
}

#[test]
fn snapshots_add_writes_other_and_rejections() {
    let [orders, users, runs] = <[Namespace; 3]>::try_from(namespace_pool()).unwrap();
    let write = |namespace: &Namespace, n| WriteRecord {
        namespace: namespace.clone(),
        inserts: n,
        updates: n,
        deletes: n,
        insert_micros: n * 10,
    };
    let evicted = |namespace: &Namespace, n| NamespaceOtherRecord {
        evicted_shapes: n,
        count: n * 3,
        errors: n,
        total_micros: n * 100,
        returned: n * 7,
        ..NamespaceOtherRecord::new(namespace.clone())
    };
    let other = |n| OtherRecord {
        count: n,
        total_micros: n * 10,
        evicted_shapes: n,
    };
    let a = Snapshot {
        writes: vec![write(&users, 1), write(&orders, 2)],
        other: other(1),
        other_by_namespace: vec![evicted(&users, 1)],
        rejected: BTreeMap::from([("sql_parse_error".into(), 2)]),
        ..Snapshot::new()
    };
    let b = Snapshot {
        writes: vec![write(&runs, 4), write(&users, 8)],
        other: other(2),
        other_by_namespace: vec![evicted(&runs, 1), evicted(&users, 1)],
        rejected: BTreeMap::from([
            ("sql_parse_error".into(), 1),
            ("missing_collection".into(), 1),
        ]),
        ..Snapshot::new()
    };
    let merged = Snapshot::merged(&a, &b);
    let mut expected = vec![write(&orders, 2), write(&users, 9), write(&runs, 4)];
    expected.sort_by(|x, y| x.namespace.cmp(&y.namespace));
    assert_eq!(merged.writes, expected);
    assert_eq!(merged.other, other(3));
    let mut users_twice = evicted(&users, 1);
    users_twice.merge(&evicted(&users, 1));
    let mut expected = vec![evicted(&runs, 1), users_twice];
    expected.sort_by(|x, y| x.namespace.cmp(&y.namespace));
    assert_eq!(merged.other_by_namespace, expected);
    assert_eq!(
        merged.rejected,
        BTreeMap::from([
            ("sql_parse_error".into(), 3),
            ("missing_collection".into(), 1)
        ])
    );
}

#[test]
fn a_hash_collision_keeps_the_smaller_canonical_shape_and_counts_the_other() {
    let (small, large) = {
        let x = find_eq("orders", "a");
        let y = find_eq("orders", "b");
        if x.canonical() < y.canonical() {
            (x, y)
        } else {
            (y, x)
        }
    };
    let id = ShapeId(42);
    let mut kept = example(small);
    kept.count = 10;
    let mut dropped = example(large);
    dropped.count = 7;
    dropped.total_micros = 70;
    let a = Snapshot {
        shapes: BTreeMap::from([(id, dropped)]),
        ..Snapshot::new()
    };
    let b = Snapshot {
        shapes: BTreeMap::from([(id, kept.clone())]),
        ..Snapshot::new()
    };
    for merged in [Snapshot::merged(&a, &b), Snapshot::merged(&b, &a)] {
        assert_eq!(merged.shapes.get(&id), Some(&kept));
        assert_eq!(
            merged.other,
            OtherRecord {
                count: 7,
                total_micros: 70,
                evicted_shapes: 0,
            }
        );
    }
}

#[test]
fn counters_saturate_instead_of_overflowing() {
    let mut a = example(find_eq("orders", "status"));
    a.count = u64::MAX - 1;
    let b = a.clone();
    a.merge(&b);
    assert_eq!(a.count, u64::MAX);
}
