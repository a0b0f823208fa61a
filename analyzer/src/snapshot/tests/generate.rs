//! Snapshots for the merge-law tests, as proptest strategies over small pools, so records
//! overlap, collide and saturate often enough to matter (and a failure shrinks).

use std::collections::BTreeMap;

use proptest::array::{uniform3, uniform4, uniform5};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

use crate::shape::{BoundConstant, Constant, Namespace, Rejection, Shape, ShapeId, Target};
use crate::snapshot::*;
use crate::testing::mongo::find_eq;

fn shape_pool() -> Vec<Shape> {
    vec![
        find_eq("orders", "status"),
        find_eq("orders", "user_id"),
        find_eq("users", "email"),
        find_eq("runs", "customer"),
    ]
}

pub(super) fn constant_pool() -> Vec<BoundConstant> {
    vec![
        BoundConstant {
            target: Target::Field("deleted".into()),
            operator: "$exists".into(),
            constant: Constant::Exists(false),
        },
        BoundConstant {
            target: Target::Field("is_active".into()),
            operator: "=".into(),
            constant: Constant::Bool(true),
        },
        BoundConstant {
            target: Target::Field("status".into()),
            operator: "IN".into(),
            constant: Constant::Tokens(vec!["PENDING".into(), "QUEUED".into()]),
        },
    ]
}

pub(super) fn namespace_pool() -> Vec<Namespace> {
    vec![
        Namespace::mongo("app", "orders"),
        Namespace::mongo("app", "users"),
        Namespace::postgres("app", "public", "runs"),
    ]
}

/// A record with every counter set, for the tests of one merge rule.
pub(super) fn example(shape: Shape) -> ShapeRecord {
    let pool = constant_pool();
    ShapeRecord {
        shape: shape.into(),
        count: 3,
        errors: 1,
        error_codes: BTreeMap::from([("11000".into(), 1)]),
        total_micros: 300,
        returned: 30,
        continuations: 2,
        first_seen_ms: 1_000,
        last_seen_ms: 5_000,
        constants: vec![pool[1].clone(), pool[0].clone()],
        normalized_sql: Some("SELECT b".into()),
        latency: LatencySketch::from_buckets([(10, 2), (100, 1)]),
    }
}

/// A counter, sometimes huge so that saturation is exercised.
fn counter() -> impl Strategy<Value = u64> {
    prop_oneof![
        24 => 0..1_000_000_u64,
        1 => (0..10_u64).prop_map(|below| u64::MAX - below),
    ]
}

fn record(shape: Shape) -> impl Strategy<Value = ShapeRecord> {
    let counts = (
        prop_oneof![1 => Just(0), 4 => counter()],
        counter(),
        btree_map(
            select(vec!["11000", "50", "57014"]).prop_map(str::to_owned),
            counter(),
            0..=3,
        ),
        counter(),
        counter(),
        counter(),
    );
    let seen = (0..1_000_000_u64, 0..1_000_000_u64);
    // Raw, as a hand-edited or older file might hold them: unsorted constants with repeats,
    // latency pairs whose repeated keys fold and whose empty buckets drop.
    let raw = (
        vec(select(constant_pool()), 0..4),
        option::of(select(vec![
            "SELECT $1",
            "SELECT a FROM t WHERE b = $1",
            "select",
        ])),
        vec((select(vec![0, 5, 300, 702, 1_101]), 0..100_u64), 0..5),
    );
    (counts, seen, raw).prop_map(
        move |(
            (count, errors, error_codes, total_micros, returned, continuations),
            (first, span),
            (constants, normalized_sql, latency),
        )| ShapeRecord {
            shape: shape.clone().into(),
            count,
            errors,
            error_codes,
            total_micros,
            returned,
            continuations,
            first_seen_ms: first,
            last_seen_ms: first + span,
            constants,
            normalized_sql: normalized_sql.map(str::to_owned),
            latency: LatencySketch::from_buckets(latency),
        },
    )
}

/// Now and then, a record of one pool shape under another pool shape's id: a hash collision.
fn collision() -> impl Strategy<Value = Option<(ShapeId, ShapeRecord)>> {
    let pool = shape_pool();
    let intruder = select(pool.clone()).prop_flat_map(record);
    option::weighted(1.0 / 6.0, (select(pool), intruder))
        .prop_map(|found| found.map(|(victim, intruder)| (victim.id(), intruder)))
}

fn write() -> impl Strategy<Value = WriteRecord> {
    (select(namespace_pool()), uniform4(counter())).prop_map(
        |(namespace, [inserts, updates, deletes, insert_micros])| WriteRecord {
            namespace,
            inserts,
            updates,
            deletes,
            insert_micros,
        },
    )
}

fn evicted() -> impl Strategy<Value = NamespaceOtherRecord> {
    (select(namespace_pool()), uniform5(counter())).prop_map(
        |(namespace, [evicted_shapes, count, errors, total_micros, returned])| {
            NamespaceOtherRecord {
                evicted_shapes,
                count,
                errors,
                total_micros,
                returned,
                ..NamespaceOtherRecord::new(namespace)
            }
        },
    )
}

pub(super) fn snapshot() -> impl Strategy<Value = Snapshot> {
    let shapes: Vec<_> = shape_pool()
        .into_iter()
        .map(|shape| option::of(record(shape)))
        .collect();
    let other = uniform3(counter()).prop_map(|[count, total_micros, evicted]| OtherRecord {
        count,
        total_micros,
        evicted_shapes: evicted,
    });
    let rejected = btree_map(
        select(vec!["sql_parse_error", "missing_collection"]).prop_map(Rejection::from),
        counter(),
        0..=2,
    );
    (
        shapes,
        collision(),
        vec(write(), 0..4),
        other,
        vec(evicted(), 0..3),
        rejected,
    )
        .prop_map(
            |(records, collision, writes, other, other_by_namespace, rejected)| {
                let mut shapes: BTreeMap<_, _> = records
                    .into_iter()
                    .flatten()
                    .map(|record| (record.shape.id(), record))
                    .collect();
                shapes.extend(collision);
                Snapshot {
                    version: FORMAT_VERSION,
                    shapes,
                    writes,
                    other,
                    other_by_namespace,
                    rejected,
                }
            },
        )
}
