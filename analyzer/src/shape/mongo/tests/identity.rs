//! Executions that differ only in values, list lengths or field order are one shape;
//! executions that differ in what an index sees are not.

use bson::{rawdoc, RawArrayBuf, RawDocumentBuf};

use super::*;
use crate::shape::ShapeId;

fn id(body: RawDocumentBuf) -> ShapeId {
    let lowering = lower(&command(body));
    let [occurrence] = lowering.shapes.as_slice() else {
        panic!("one shape expected, got {lowering:?}");
    };
    occurrence.shape.id()
}

#[test]
fn different_literal_values_are_one_shape() {
    let first = id(rawdoc! {
        "find": "orders",
        "filter": { "status": "A", "qty": { "$gt": 5 }, "at": { "$lt": bson::DateTime::from_millis(1) } },
        "limit": 10,
    });
    let second = id(rawdoc! {
        "find": "orders",
        "filter": { "status": "shipped", "qty": { "$gt": 9.75 }, "at": { "$lt": bson::DateTime::from_millis(99) } },
        "limit": 500_i64,
    });
    assert_eq!(first, second);
}

#[test]
fn in_list_length_does_not_matter() {
    let mut fifty = RawArrayBuf::new();
    for number in 0..50 {
        fifty.push(format!("status-{number}"));
    }
    let short = id(rawdoc! { "find": "orders", "filter": { "status": { "$in": ["a", "b"] } } });
    let long = id(rawdoc! { "find": "orders", "filter": { "status": { "$in": fifty } } });
    assert_eq!(short, long);
}

#[test]
fn field_and_branch_order_do_not_matter() {
    assert_eq!(
        id(rawdoc! { "find": "c", "filter": { "a": 1, "b": 2, "c": { "$gt": 1, "$lt": 2 } } }),
        id(rawdoc! { "find": "c", "filter": { "c": { "$lt": 9, "$gt": 8 }, "b": 7, "a": 6 } }),
    );
    assert_eq!(
        id(rawdoc! { "find": "c", "filter": { "$or": [{ "x": 1, "y": 2 }, { "z": 3 }] } }),
        id(rawdoc! { "find": "c", "filter": { "$or": [{ "z": 4 }, { "y": 5, "x": 6 }] } }),
    );
    assert_eq!(
        id(rawdoc! { "find": "c", "projection": { "b": 1, "a": 1 } }),
        id(rawdoc! { "find": "c", "projection": { "a": 1, "b": 1 } }),
    );
}

#[test]
fn implicit_eq_and_and_are_the_explicit_ones() {
    let implicit = id(rawdoc! { "find": "c", "filter": { "a": 1, "b": null } });
    assert_eq!(
        implicit,
        id(rawdoc! { "find": "c", "filter": { "a": { "$eq": 2 }, "b": { "$eq": null } } })
    );
    assert_eq!(
        implicit,
        id(rawdoc! { "find": "c", "filter": { "$and": [{ "a": 3 }, { "b": null }] } })
    );
    assert_eq!(
        id(
            rawdoc! { "find": "c", "filter": { "a": bson::Regex { pattern: "^x".try_into().unwrap(), options: "".try_into().unwrap() } } }
        ),
        id(rawdoc! { "find": "c", "filter": { "a": { "$regex": "^yz" } } }),
    );
}

#[test]
fn what_an_index_sees_does_matter() {
    let base = id(rawdoc! { "find": "c", "filter": { "a": 1 }, "sort": { "b": 1 } });
    for other in [
        rawdoc! { "find": "c", "filter": { "a": "1" }, "sort": { "b": 1 } },
        rawdoc! { "find": "c", "filter": { "a": { "$gt": 1 } }, "sort": { "b": 1 } },
        rawdoc! { "find": "c", "filter": { "a": 1 }, "sort": { "b": -1 } },
        rawdoc! { "find": "c", "filter": { "a": 1 }, "sort": { "b": 1 }, "limit": 1 },
        rawdoc! { "find": "c", "filter": { "a": 1, "x": 1 }, "sort": { "b": 1 } },
        rawdoc! { "find": "d", "filter": { "a": 1 }, "sort": { "b": 1 } },
        rawdoc! { "count": "c", "query": { "a": 1 } },
    ] {
        assert_ne!(base, id(other.clone()), "{other:?}");
    }
    assert_ne!(
        id(rawdoc! { "find": "c", "filter": { "a": { "$regex": "^x" } } }),
        id(rawdoc! { "find": "c", "filter": { "a": { "$regex": "x" } } }),
    );
}
