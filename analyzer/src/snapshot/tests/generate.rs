//! Generated snapshots for the merge-law tests: a deterministic generator over small pools,
//! so records overlap, collide and saturate often enough to matter.

use std::collections::BTreeMap;

use crate::shape::{
    BoundConstant, Constant, Leaf, Namespace, OpClass, Predicate, Shape, Target, ValueType,
};
use crate::snapshot::*;

/// SplitMix64: a tiny deterministic generator, so failures replay exactly.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(super) fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

pub(super) fn shape(collection: &str, field: &str) -> Shape {
    let mut shape = Shape::new(Namespace::mongo("app", collection), "find");
    shape.filter = Predicate::And(vec![Predicate::Leaf(Leaf {
        target: Target::Field(field.to_owned()),
        operator: "$eq".into(),
        class: OpClass::Eq,
        value_type: ValueType::String,
    })]);
    shape
}

pub(super) fn shape_pool() -> Vec<Shape> {
    vec![
        shape("orders", "status"),
        shape("orders", "user_id"),
        shape("users", "email"),
        shape("runs", "customer"),
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

/// A counter, sometimes huge so that saturation is exercised.
pub(super) fn counter(rng: &mut Rng) -> u64 {
    if rng.chance(25) {
        u64::MAX - rng.below(10)
    } else {
        rng.below(1_000_000)
    }
}

pub(super) fn record(rng: &mut Rng, shape: Shape) -> ShapeRecord {
    let count = if rng.chance(5) { 0 } else { counter(rng) };
    let first = rng.below(1_000_000);
    let mut error_codes = BTreeMap::new();
    for code in ["11000", "50", "57014"] {
        if rng.chance(2) {
            error_codes.insert(code.to_owned(), counter(rng));
        }
    }
    // Raw, as a hand-edited or older file might hold them: unsorted, with repeats.
    let constants = (0..rng.below(4))
        .map(|_| rng.pick(&constant_pool()).clone())
        .collect();
    // Raw pairs too: repeated keys fold, empty buckets drop.
    let latency = LatencySketch::from_buckets(
        (0..rng.below(5))
            .map(|_| (*rng.pick(&[0, 5, 300, 702, 1_101]), rng.below(100)))
            .collect::<Vec<_>>(),
    );
    ShapeRecord {
        shape,
        count,
        errors: counter(rng),
        error_codes,
        total_micros: counter(rng),
        returned: counter(rng),
        continuations: counter(rng),
        first_seen_ms: first,
        last_seen_ms: first + rng.below(1_000_000),
        constants,
        normalized_sql: rng.chance(2).then(|| {
            (*rng.pick(&["SELECT $1", "SELECT a FROM t WHERE b = $1", "select"])).to_owned()
        }),
        latency,
    }
}

pub(super) fn snapshot(rng: &mut Rng) -> Snapshot {
    let pool = shape_pool();
    let mut shapes = BTreeMap::new();
    for shape in &pool {
        if rng.chance(2) {
            shapes.insert(shape.id(), record(rng, shape.clone()));
        }
    }
    // Now and then, a different shape under another shape's id: a hash collision.
    if rng.chance(6) {
        let victim = rng.pick(&pool).id();
        let intruder = rng.pick(&pool).clone();
        let intruder = record(rng, intruder);
        shapes.insert(victim, intruder);
    }
    let writes = (0..rng.below(4))
        .map(|_| WriteRecord {
            namespace: rng.pick(&namespace_pool()).clone(),
            inserts: counter(rng),
            updates: counter(rng),
            deletes: counter(rng),
            insert_micros: counter(rng),
        })
        .collect();
    let mut rejected = BTreeMap::new();
    for reason in ["sql_parse_error", "missing_collection"] {
        if rng.chance(2) {
            rejected.insert(reason.into(), counter(rng));
        }
    }
    let other_by_namespace = (0..rng.below(3))
        .map(|_| NamespaceOtherRecord {
            evicted_shapes: counter(rng),
            count: counter(rng),
            errors: counter(rng),
            total_micros: counter(rng),
            returned: counter(rng),
            ..NamespaceOtherRecord::new(rng.pick(&namespace_pool()).clone())
        })
        .collect();
    Snapshot {
        version: FORMAT_VERSION,
        shapes,
        writes,
        other: OtherRecord {
            count: counter(rng),
            total_micros: counter(rng),
            evicted_shapes: counter(rng),
        },
        other_by_namespace,
        rejected,
    }
}
