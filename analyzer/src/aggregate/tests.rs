//! The store: executions add up, constants intersect, cursors continue, limits hold.

use std::time::{Duration, SystemTime};

use super::*;
use crate::command::{MongoCommand, Outcome, Request};
use crate::shape::{
    BoundConstant, Constant, Lowering, Namespace, Shape, ShapeOccurrence, Target, Write, WriteKind,
};
use crate::snapshot::Snapshot;
use crate::testing::mongo::find_eq;

fn observation(
    latency_ms: u64,
    returned: u64,
    cursor_id: Option<i64>,
    error: Option<&str>,
) -> Observation {
    Observation {
        request: Request::Mongo(MongoCommand::new(
            "app",
            bson::rawdoc! {"ping": 1},
            Vec::new(),
        )),
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

fn reads(shape: Shape, constants: Vec<BoundConstant>) -> Lowering {
    Lowering {
        shapes: vec![ShapeOccurrence {
            constants,
            ..ShapeOccurrence::from(shape)
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

/// A find on `orders` by one field, with no partial-index constants.
fn orders_by(field: &str) -> Lowering {
    reads(find_eq("orders", field), vec![])
}

/// A `getMore` on `cursor`.
fn continued(cursor: i64) -> Lowering {
    Lowering {
        continues_cursor: Some(cursor),
        ..Lowering::default()
    }
}

/// An aggregator within these bounds, and the bounds, to check it against.
fn bounded(max_shapes: usize, max_bytes: usize) -> (Aggregator, Limits) {
    let limits = Limits {
        max_shapes,
        max_bytes,
    };
    (Aggregator::with_limits(limits), limits)
}

#[test]
fn executions_add_up_per_shape() {
    let aggregator = Aggregator::new(10);
    aggregator.record(&observation(2, 3, None, None), orders_by("status"));
    aggregator.record(&observation(4, 5, None, Some("11000")), orders_by("status"));
    let snapshot = aggregator.snapshot();
    let record = &snapshot.shapes[&find_eq("orders", "status").id()];
    assert_eq!((record.count, record.errors, record.returned), (2, 1, 8));
    assert_eq!(record.total_micros, 6_000);
    assert_eq!(record.error_codes.get("11000"), Some(&1));
    assert_eq!(record.latency.count(), 2);
}

#[test]
fn first_and_last_seen_are_the_milliseconds_of_the_earliest_and_latest_executions() {
    let aggregator = Aggregator::new(10);
    let epoch = SystemTime::UNIX_EPOCH;
    // Out of order, with parts of a millisecond: the snapshot floors the extremes.
    for micros in [
        1_700_000_000_500_900u64,
        1_700_000_000_100_999,
        1_700_000_000_900_001,
    ] {
        let mut seen = observation(1, 0, None, None);
        seen.at = epoch + Duration::from_micros(micros);
        aggregator.record(&seen, orders_by("status"));
    }
    let snapshot = aggregator.snapshot();
    let record = snapshot.shapes.values().next().expect("one shape");
    assert_eq!(record.first_seen_ms, 1_700_000_000_100);
    assert_eq!(record.last_seen_ms, 1_700_000_000_900);
    // A snapshot restored and taken again keeps them, and adds to them.
    let restored = Aggregator::new(10);
    restored.restore(&snapshot);
    let mut later = observation(1, 0, None, None);
    later.at = epoch + Duration::from_millis(1_700_000_005_000);
    restored.record(&later, orders_by("status"));
    let again = restored.snapshot();
    let record = again.shapes.values().next().expect("one shape");
    assert_eq!(
        (record.first_seen_ms, record.last_seen_ms),
        (1_700_000_000_100, 1_700_000_005_000)
    );
    assert_eq!(record.count, 4);
}

#[test]
fn past_the_shape_bound_the_coldest_shapes_go_to_their_namespace_bucket() {
    let aggregator = Aggregator::new(2);
    // `a` is hot: ten executions of 5 ms before any other shape arrives.
    for _ in 0..10 {
        aggregator.record(&observation(5, 1, None, None), orders_by("a"));
    }
    for field in ["b", "c", "d", "e"] {
        aggregator.record(&observation(1, 1, None, Some("50")), orders_by(field));
    }
    let snapshot = aggregator.snapshot();
    assert!(snapshot.shapes.len() <= 2, "{:?}", snapshot.shapes.keys());
    assert_eq!(
        snapshot.shapes[&find_eq("orders", "a").id()].count,
        10,
        "the hot shape survives"
    );
    // Every execution is either in a shape or in the other totals.
    let tracked: u64 = snapshot.shapes.values().map(|r| r.count).sum();
    let tracked_micros: u64 = snapshot.shapes.values().map(|r| r.total_micros).sum();
    assert_eq!(tracked + snapshot.other.count, 14);
    assert_eq!(tracked_micros + snapshot.other.total_micros, 54_000);
    let [bucket] = snapshot.other_by_namespace.as_slice() else {
        panic!("one namespace: {:?}", snapshot.other_by_namespace);
    };
    assert_eq!(bucket.namespace, Namespace::mongo("app", "orders"));
    assert_eq!(bucket.count, snapshot.other.count);
    assert_eq!(
        bucket.errors, bucket.count,
        "every evicted execution failed"
    );
    assert_eq!(bucket.evicted_shapes, snapshot.other.evicted_shapes);
    assert!(bucket.evicted_shapes >= 3);
}

#[test]
fn a_newcomer_is_spared_by_the_next_eviction_round() {
    let aggregator = Aggregator::new(4);
    // Five shapes: the first round evicts one of them (all newcomers, all equally cold).
    for field in ["a", "b", "c", "d", "e"] {
        aggregator.record(&observation(3, 0, None, None), orders_by(field));
    }
    assert_eq!(aggregator.other().evicted_shapes, 1);
    // The next shape starts a round; it is the coldest, yet a newcomer, so a veteran goes.
    aggregator.record(&observation(1, 0, None, None), orders_by("f"));
    let snapshot = aggregator.snapshot();
    assert!(snapshot.shapes.contains_key(&find_eq("orders", "f").id()));
    assert_eq!(snapshot.other.evicted_shapes, 2);
}

#[test]
fn a_continuation_of_an_evicted_shape_still_counts_its_time() {
    let aggregator = Aggregator::new(1);
    aggregator.record(&observation(1, 101, Some(77), None), orders_by("a"));
    for field in ["b", "c"] {
        for _ in 0..5 {
            aggregator.record(&observation(9, 0, None, None), orders_by(field));
        }
    }
    assert!(!aggregator
        .snapshot()
        .shapes
        .contains_key(&find_eq("orders", "a").id()));
    let before = aggregator.snapshot();
    let continuation = continued(77);
    aggregator.record(&observation(4, 50, Some(0), None), continuation);
    let after = aggregator.snapshot();
    let total = |s: &Snapshot| {
        s.shapes.values().map(|r| r.total_micros).sum::<u64>() + s.other.total_micros
    };
    assert_eq!(total(&after), total(&before) + 4_000);
}

#[test]
fn a_snapshot_restored_into_smaller_limits_keeps_its_hot_shapes_and_totals() {
    let big = Aggregator::new(100);
    for (i, field) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
        for _ in 0..=i {
            big.record(&observation(2, 0, None, None), orders_by(field));
        }
    }
    let snapshot = big.snapshot();
    let small = Aggregator::new(3);
    small.restore(&snapshot);
    let restored = small.snapshot();
    assert!(restored.shapes.len() <= 3);
    for hot in ["f", "e"] {
        assert!(
            restored.shapes.contains_key(&find_eq("orders", hot).id()),
            "{hot}"
        );
    }
    let count = |s: &Snapshot| s.shapes.values().map(|r| r.count).sum::<u64>() + s.other.count;
    assert_eq!(count(&restored), count(&snapshot));
    // The evicted shapes' bucket restores too, and adds up.
    let again = Aggregator::new(3);
    again.restore(&restored);
    assert_eq!(
        again.snapshot().other_by_namespace,
        restored.other_by_namespace
    );
}

#[test]
fn the_byte_budget_holds_and_counts_what_the_entries_hold() {
    let (aggregator, limits) = bounded(1_000_000, 512 * 1024);
    for i in 0..5_000 {
        aggregator.record(
            &observation(1 + i % 7, 0, None, None),
            reads(find_eq("orders", &format!("field_{i}")), vec![]),
        );
        assert!(
            aggregator.memory_bytes() <= limits.store_bytes(),
            "after {i}"
        );
    }
    let snapshot = aggregator.snapshot();
    assert!(snapshot.other.evicted_shapes > 0);
    let count = snapshot.shapes.values().map(|r| r.count).sum::<u64>() + snapshot.other.count;
    assert_eq!(count, 5_000);
}

#[test]
fn get_more_counts_toward_the_shape_that_opened_the_cursor() {
    let aggregator = Aggregator::new(10);
    aggregator.record(&observation(1, 101, Some(77), None), orders_by("status"));
    let continuation = continued(77);
    aggregator.record(&observation(3, 50, Some(77), None), continuation.clone());
    aggregator.record(&observation(2, 9, Some(0), None), continuation.clone());
    // The cursor is exhausted: a further getMore on it is an orphan.
    aggregator.record(&observation(2, 9, None, None), continuation);
    let snapshot = aggregator.snapshot();
    let record = &snapshot.shapes[&find_eq("orders", "status").id()];
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
        reads(find_eq("orders", "status"), both),
    );
    aggregator.record(
        &observation(1, 0, None, None),
        reads(find_eq("orders", "status"), vec![exists("email", true)]),
    );
    let snapshot = aggregator.snapshot();
    assert_eq!(
        snapshot.shapes[&find_eq("orders", "status").id()].constants,
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
    let id = find_eq("orders", "last_name").id();
    aggregator.record(
        &observation(1, 0, None, None),
        reads(find_eq("orders", "last_name"), vec![tokens(&["SMITH"])]),
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
            reads(find_eq("orders", "last_name"), vec![tokens(&["SMITH"])]),
        );
    }
    assert_eq!(
        aggregator.snapshot().shapes[&id].constants,
        vec![tokens(&["SMITH"])]
    );
    // A different list in one execution: nothing is common any more.
    aggregator.record(
        &observation(1, 0, None, None),
        reads(find_eq("orders", "last_name"), vec![tokens(&["JONES"])]),
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
    assert_eq!(
        snapshot.writes[0].insert_micros, 1_000,
        "the insert's time is the write cost's measure"
    );
}

/// Only inserts time the writes (an update's time is mostly finding its rows); a command
/// that inserts into two collections shares its time; the time survives a restore.
#[test]
fn insert_time_is_counted_per_namespace() {
    let aggregator = Aggregator::new(10);
    let write = |collection: &str, kind, count| Write {
        namespace: Namespace::mongo("app", collection),
        kind,
        count,
    };
    aggregator.record(
        &observation(4, 0, None, None),
        Lowering {
            writes: vec![
                write("orders", WriteKind::Insert, 3),
                write("audit", WriteKind::Insert, 1),
                write("orders", WriteKind::Update, 1),
            ],
            ..Lowering::default()
        },
    );
    aggregator.record(
        &observation(9, 0, None, None),
        Lowering {
            writes: vec![write("orders", WriteKind::Delete, 2)],
            ..Lowering::default()
        },
    );
    let snapshot = aggregator.snapshot();
    let micros: Vec<(&str, u64)> = snapshot
        .writes
        .iter()
        .map(|w| (w.namespace.collection.as_str(), w.insert_micros))
        .collect();
    assert_eq!(micros, vec![("audit", 2_000), ("orders", 2_000)]);
    let restored = Aggregator::new(10);
    restored.restore(&Snapshot::from_json(&snapshot.to_json()).expect("parses"));
    restored.restore(&snapshot);
    assert_eq!(restored.snapshot().writes[1].insert_micros, 4_000);
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
        reads(find_eq("orders", "status"), vec![exists("email", true)]),
    );
    let before = aggregator.snapshot();
    let restored = Aggregator::new(10);
    restored.restore(&before);
    assert_eq!(restored.snapshot(), before);
    // Restoring into a store that already has the shape adds to it.
    restored.restore(&before);
    assert_eq!(
        restored.snapshot().shapes[&find_eq("orders", "status").id()].count,
        2
    );
}

#[test]
fn the_streamed_snapshot_reads_back_as_the_snapshot() {
    let aggregator = Aggregator::new(3);
    for field in ["a", "b", "c", "d", "e"] {
        aggregator.record(
            &observation(2, 1, None, Some("50")),
            reads(find_eq("orders", field), vec![exists("email", true)]),
        );
    }
    aggregator.record(
        &observation(1, 0, None, None),
        Lowering {
            rejected: Some(Rejection::SqlParseError),
            ..Lowering::default()
        },
    );
    let mut written = Vec::new();
    aggregator.write_json(&mut written).unwrap();
    let read = Snapshot::from_json(std::str::from_utf8(&written).unwrap()).unwrap();
    assert_eq!(read, aggregator.snapshot());
    assert!(!read.other_by_namespace.is_empty());
}

/// Writes over an unbounded number of collections: the counters hold to their share of the
/// budget, the collections counted first keep counting, and every write is in a total.
#[test]
fn write_counters_hold_to_their_share_of_the_budget() {
    let (aggregator, limits) = bounded(10, 256 * 1024);
    let insert = |collection: String| Lowering {
        writes: vec![Write {
            namespace: Namespace::mongo("app", collection),
            kind: WriteKind::Insert,
            count: 2,
        }],
        ..Lowering::default()
    };
    for i in 0..20_000 {
        aggregator.record(&observation(1, 0, None, None), insert(format!("c{i}")));
    }
    aggregator.record(&observation(1, 0, None, None), insert("c0".into()));
    assert!(
        aggregator.write_counters_bytes() <= limits.store_bytes() / 16,
        "{} bytes of write counters",
        aggregator.write_counters_bytes()
    );
    let writes = aggregator.writes();
    assert!(
        writes.len() > 10 && writes.len() < 20_000,
        "{}",
        writes.len()
    );
    let c0 = writes
        .iter()
        .find(|w| w.namespace == Namespace::mongo("app", "c0"))
        .map(|w| w.inserts);
    assert_eq!(c0, Some(4), "the first collection is still counted");
    let counted: u64 = writes.iter().map(|w| w.inserts).sum();
    assert_eq!(counted + aggregator.untracked_writes(), 20_001 * 2);
}

/// A run of observations of one lowering, recorded at once, leaves the store as recording
/// each in turn does: counts, errors, latencies, constants, charged bytes, the cursor each
/// opened, and the limits (a run that admits a shape past the bound evicts as one by one).
#[test]
fn a_run_of_one_lowering_records_as_each_in_turn() {
    let lowering = reads(find_eq("orders", "status"), vec![exists("email", true)]);
    let run = varied_run(40, 37, 7, (11, "11000"));
    let recorded = assert_run_records_as_each_in_turn(&lowering, &run, bounded(2, usize::MAX).1);
    assert_eq!(recorded.continuations, Some(1), "the run's cursor is known");
}

/// The same for a lowering without constants, whose entry takes the short way once it is
/// steady: latencies that keep growing its sketch, errors and cursors among them, within a
/// byte budget that the growth makes the store hold to (evicting the shape mid-run).
#[test]
fn a_steady_run_records_as_each_in_turn() {
    let mut lowering = orders_by("total");
    if let Some(occurrence) = lowering.shapes.first_mut() {
        occurrence.normalized_sql = Some("SELECT * FROM orders WHERE total = $1".into());
    }
    let run = varied_run(300, 997, 53, (41, "23505"));
    let evicted = [usize::MAX, 8 * 1024, 5 * 1024].map(|max_bytes| {
        let recorded = assert_run_records_as_each_in_turn(&lowering, &run, bounded(3, max_bytes).1);
        recorded.evicted
    });
    assert_eq!(evicted[0], 0);
    assert!(evicted[2] > 0, "the budget binds: {evicted:?}");
}

/// `len` observations, their latencies spread over `1..=latencies` ms; every `cursors`-th
/// (from the 3rd) opens a cursor, every `errors.0`-th (from the 5th) fails with `errors.1`.
fn varied_run(len: u64, latencies: u64, cursors: u64, errors: (u64, &str)) -> Vec<Observation> {
    (0..len)
        .map(|n| {
            let cursor = (n % cursors == 3).then_some(100 + n as i64);
            let error = (n % errors.0 == 5).then_some(errors.1);
            observation(1 + n * n % latencies, n, cursor, error)
        })
        .collect()
}

/// What [`assert_run_records_as_each_in_turn`] found in both stores.
struct Recorded {
    /// The continuations counted to the run's shape after a `getMore` on a cursor it opened
    /// (`None`: the shape was evicted).
    continuations: Option<u64>,
    /// Shapes evicted.
    evicted: u64,
}

/// Records `run` of `lowering` twice into two stores held to `limits`, one by one and as a
/// run, and compares them.
fn assert_run_records_as_each_in_turn(
    lowering: &Lowering,
    run: &[Observation],
    limits: Limits,
) -> Recorded {
    let refs: Vec<&Observation> = run.iter().collect();
    let each = Aggregator::with_limits(limits);
    let at_once = Aggregator::with_limits(limits);
    let before = observation(3, 1, None, None);
    for store in [&each, &at_once] {
        store.record(&before, orders_by("a"));
        store.record(&before, orders_by("b"));
    }
    for observation in run {
        each.record_shared(observation, lowering);
    }
    at_once.record_run(&refs, lowering);
    // A second run finds the entry stored.
    for observation in run {
        each.record_shared(observation, lowering);
    }
    at_once.record_run(&refs, lowering);
    assert_eq!(at_once.snapshot(), each.snapshot());
    assert_eq!(
        at_once.shape_bytes.load(Ordering::Relaxed),
        each.shape_bytes.load(Ordering::Relaxed)
    );
    let continuations = |store: &Aggregator| {
        store.record(&observation(9, 1, None, None), continued(103));
        let shape = &lowering.shapes[0].shape;
        store
            .snapshot()
            .shapes
            .get(&shape.id())
            .map(|shape| shape.continuations)
    };
    let (got, expected) = (continuations(&at_once), continuations(&each));
    assert_eq!(got, expected, "the run's cursor is known alike");
    Recorded {
        continuations: got,
        evicted: at_once.other().evicted_shapes,
    }
}
