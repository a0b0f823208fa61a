//! Snapshot tests: merge laws over generated snapshots, the merge rules one by one,
//! histogram round trips, and the JSON format.

use std::collections::BTreeMap;

use crate::shape::{
    BoundConstant, Constant, Leaf, Namespace, OpClass, Predicate, Shape, ShapeId, Target, ValueType,
};

use super::*;

/// SplitMix64: a tiny deterministic generator, so failures replay exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn shape(collection: &str, field: &str) -> Shape {
    let mut shape = Shape::new(Namespace::mongo("app", collection), "find");
    shape.filter = Predicate::And(vec![Predicate::Leaf(Leaf {
        target: Target::Field(field.to_owned()),
        operator: "$eq".to_owned(),
        class: OpClass::Eq,
        value_type: ValueType::String,
    })]);
    shape
}

fn shape_pool() -> Vec<Shape> {
    vec![
        shape("orders", "status"),
        shape("orders", "user_id"),
        shape("users", "email"),
        shape("runs", "customer"),
    ]
}

fn constant_pool() -> Vec<BoundConstant> {
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

fn namespace_pool() -> Vec<Namespace> {
    vec![
        Namespace::mongo("app", "orders"),
        Namespace::mongo("app", "users"),
        Namespace::postgres("app", "public", "runs"),
    ]
}

/// A counter, sometimes huge so that saturation is exercised.
fn counter(rng: &mut Rng) -> u64 {
    if rng.chance(25) {
        u64::MAX - rng.below(10)
    } else {
        rng.below(1_000_000)
    }
}

fn record(rng: &mut Rng, shape: Shape) -> ShapeRecord {
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
    let latency = HistogramRecord(
        (0..rng.below(5))
            .map(|_| (*rng.pick(&[1, 5, 100, 1023, 50_015]), rng.below(100)))
            .collect(),
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

fn snapshot(rng: &mut Rng) -> Snapshot {
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
        })
        .collect();
    let mut rejected = BTreeMap::new();
    for reason in ["sql_parse_error", "missing_collection"] {
        if rng.chance(2) {
            rejected.insert(reason.to_owned(), counter(rng));
        }
    }
    Snapshot {
        version: FORMAT_VERSION,
        shapes,
        writes,
        other: OtherRecord {
            count: counter(rng),
            total_micros: counter(rng),
        },
        rejected,
    }
}

#[test]
fn merge_is_commutative() {
    let mut rng = Rng(7);
    for round in 0..400 {
        let a = snapshot(&mut rng);
        let b = snapshot(&mut rng);
        assert_eq!(
            Snapshot::merged(&a, &b),
            Snapshot::merged(&b, &a),
            "round {round}"
        );
    }
}

#[test]
fn merge_is_associative() {
    let mut rng = Rng(11);
    for round in 0..400 {
        let a = snapshot(&mut rng);
        let b = snapshot(&mut rng);
        let c = snapshot(&mut rng);
        let left = Snapshot::merged(&Snapshot::merged(&a, &b), &c);
        let right = Snapshot::merged(&a, &Snapshot::merged(&b, &c));
        assert_eq!(left, right, "round {round}");
    }
}

#[test]
fn merging_an_empty_snapshot_changes_nothing_but_the_version() {
    let mut rng = Rng(3);
    for _ in 0..50 {
        let a = snapshot(&mut rng);
        let merged = Snapshot::merged(&Snapshot::new(), &a);
        assert_eq!(merged.shapes, a.shapes);
        assert_eq!(merged.other, a.other);
        assert_eq!(merged.rejected, a.rejected);
        assert_eq!(merged.version, FORMAT_VERSION);
    }
}

#[test]
fn shape_records_merge_field_by_field() {
    let pool = constant_pool();
    let base = shape("orders", "status");
    let a = ShapeRecord {
        shape: base.clone(),
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
        latency: HistogramRecord(vec![(10, 2), (100, 1)]),
    };
    let b = ShapeRecord {
        shape: base.clone(),
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
        latency: HistogramRecord(vec![(5, 1), (100, 3)]),
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
        HistogramRecord(vec![(5, 1), (10, 2), (100, 4)])
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
    let mut seen = record(&mut Rng(1), shape("orders", "status"));
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
    };
    let a = Snapshot {
        writes: vec![write(&users, 1), write(&orders, 2)],
        other: OtherRecord {
            count: 1,
            total_micros: 10,
        },
        rejected: BTreeMap::from([("sql_parse_error".into(), 2)]),
        ..Snapshot::new()
    };
    let b = Snapshot {
        writes: vec![write(&runs, 4), write(&users, 8)],
        other: OtherRecord {
            count: 2,
            total_micros: 20,
        },
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
    assert_eq!(
        merged.other,
        OtherRecord {
            count: 3,
            total_micros: 30
        }
    );
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
        let x = shape("orders", "a");
        let y = shape("orders", "b");
        if x.canonical() < y.canonical() {
            (x, y)
        } else {
            (y, x)
        }
    };
    let id = ShapeId(42);
    let mut rng = Rng(5);
    let mut kept = record(&mut rng, small);
    kept.count = 10;
    let mut dropped = record(&mut rng, large);
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
                total_micros: 70
            }
        );
    }
}

#[test]
fn counters_saturate_instead_of_overflowing() {
    let mut a = record(&mut Rng(9), shape("orders", "status"));
    a.count = u64::MAX - 1;
    let b = a.clone();
    a.merge(&b);
    assert_eq!(a.count, u64::MAX);
}

fn recorded_histogram(rng: &mut Rng) -> hdrhistogram::Histogram<u64> {
    let mut histogram = crate::aggregate::new_histogram();
    for _ in 0..2_000 {
        // Latencies spread over six orders of magnitude, as real ones are.
        let magnitude = 10u64.pow(rng.below(7) as u32);
        let value = (1 + rng.below(magnitude * 10)).min(HISTOGRAM_MAX_MICROS);
        histogram.record(value).unwrap();
    }
    histogram
}

#[test]
fn histogram_round_trip_is_exact() {
    let mut rng = Rng(21);
    for _ in 0..10 {
        let histogram = recorded_histogram(&mut rng);
        let record = HistogramRecord::from_histogram(&histogram);
        assert!(
            record.0.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, one pair per value"
        );
        assert_eq!(record.total_count(), histogram.len());

        let back = record.to_histogram();
        assert_eq!(back.len(), histogram.len());
        assert_eq!(HistogramRecord::from_histogram(&back), record);
        for q in [0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            assert_eq!(
                back.value_at_quantile(q),
                histogram.value_at_quantile(q),
                "q={q}"
            );
        }
    }
}

#[test]
fn percentile_matches_hdrhistogram() {
    let mut rng = Rng(33);
    for _ in 0..10 {
        let histogram = recorded_histogram(&mut rng);
        let record = HistogramRecord::from_histogram(&histogram);
        for q in [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            assert_eq!(
                record.percentile(q),
                histogram.value_at_quantile(q),
                "q={q}"
            );
        }
        // Out-of-range quantiles clamp rather than panic.
        assert_eq!(record.percentile(7.0), histogram.value_at_quantile(1.0));
        assert_eq!(record.percentile(f64::NAN), record.percentile(0.0));
    }
    assert_eq!(HistogramRecord::default().percentile(0.5), 0);
    // Unsorted pairs (a hand-edited file) give the same answer as sorted ones.
    let unsorted = HistogramRecord(vec![(100, 1), (1, 1), (10, 1)]);
    assert_eq!(unsorted.percentile(0.5), 10);
}

#[test]
fn merged_histograms_equal_hdrhistogram_addition() {
    let mut rng = Rng(44);
    let a = recorded_histogram(&mut rng);
    let b = recorded_histogram(&mut rng);
    let mut sum = a.clone();
    sum.add(&b).unwrap();
    assert_eq!(
        HistogramRecord::merged(
            &HistogramRecord::from_histogram(&a),
            &HistogramRecord::from_histogram(&b)
        ),
        HistogramRecord::from_histogram(&sum)
    );
}

#[test]
fn json_round_trip() {
    let mut rng = Rng(55);
    for _ in 0..50 {
        let original = snapshot(&mut rng);
        let text = original.to_json();
        assert_eq!(Snapshot::from_json(&text).unwrap(), original);
    }
}

#[test]
fn another_version_is_rejected_clearly() {
    let mut newer: serde_json::Value = serde_json::from_str(&Snapshot::new().to_json()).unwrap();
    newer["version"] = serde_json::json!(FORMAT_VERSION + 1);
    // A newer format may well have fields this build does not know.
    newer["sketches"] = serde_json::json!({});
    let err = Snapshot::from_json(&newer.to_string()).unwrap_err();
    assert!(
        matches!(err, SnapshotError::Version { found, expected }
            if found == u64::from(FORMAT_VERSION) + 1 && expected == FORMAT_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("version"), "{err}");
    assert_eq!(err.reason(), "wrong_version");

    let err = Snapshot::from_json(r#"{"shapes": {}}"#).unwrap_err();
    assert!(matches!(err, SnapshotError::MissingVersion), "{err:?}");

    let err = Snapshot::from_json("{ not json").unwrap_err();
    assert!(matches!(err, SnapshotError::Json(_)), "{err:?}");

    let err = Snapshot::from_json(&format!(r#"{{"version": {FORMAT_VERSION}, "shapes": 3}}"#))
        .unwrap_err();
    assert!(matches!(err, SnapshotError::Json(_)), "{err:?}");
}
