//! Writes, cursors, constants and rejections, as exact [`Lowering`]s.

use bson::{rawdoc, RawDocumentBuf};

use super::*;
use crate::shape::mongo::filter::MAX_DEPTH;
use crate::shape::{BoundConstant, Constant, Namespace, Target, Write, WriteKind};
use crate::testing::{rejected as rejection, writes_only};

fn write(collection: &str, kind: WriteKind, count: u64) -> Write {
    Write {
        namespace: Namespace::mongo("app", collection),
        kind,
        count,
    }
}

#[test]
fn inserts_count_documents_from_body_or_sequence() {
    let body = lower(&command(rawdoc! {
        "insert": "orders",
        "documents": [{ "a": 1 }, { "a": 2 }, { "b": [1, 2, 3] }],
        "ordered": true,
    }));
    assert_eq!(
        body,
        writes_only(vec![write("orders", WriteKind::Insert, 3)])
    );

    // The decoder counts sequence documents without keeping them.
    let mut sequenced = with_sequence(rawdoc! { "insert": "orders" }, "documents", vec![]);
    sequenced.sequences[0].count = 5;
    assert_eq!(
        lower(&sequenced),
        writes_only(vec![write("orders", WriteKind::Insert, 5)])
    );

    let empty = lower(&command(rawdoc! { "insert": "orders", "documents": [] }));
    assert_eq!(empty, Lowering::default());
}

#[test]
fn updates_and_deletes_count_statements() {
    let update = lower(&with_sequence(
        rawdoc! { "update": "orders" },
        "updates",
        vec![
            rawdoc! { "q": { "a": 1 }, "u": { "b": 2 } },
            rawdoc! { "q": { "a": 2 }, "u": { "b": 3 } },
            rawdoc! { "q": {}, "u": { "b": 3 } },
        ],
    ));
    assert_eq!(update.writes, vec![write("orders", WriteKind::Update, 3)]);
    assert_eq!(update.shapes.len(), 3);
    assert_eq!(update.rejected, None);

    let delete = lower(&command(rawdoc! {
        "delete": "orders",
        "deletes": [{ "q": { "a": 1 }, "limit": 1 }, { "q": { "a": 1 }, "limit": 0 }],
    }));
    assert_eq!(delete.writes, vec![write("orders", WriteKind::Delete, 2)]);
    assert_eq!(delete.shapes.len(), 2);
}

#[test]
fn find_and_modify_is_one_update_or_delete() {
    let update = lower(&command(rawdoc! {
        "findAndModify": "jobs", "query": { "a": 1 }, "update": { "$set": { "b": 1 } },
    }));
    assert_eq!(update.writes, vec![write("jobs", WriteKind::Update, 1)]);
    let remove = lower(&command(rawdoc! {
        "findAndModify": "jobs", "query": { "a": 1 }, "remove": true,
    }));
    assert_eq!(remove.writes, vec![write("jobs", WriteKind::Delete, 1)]);
}

#[test]
fn cursors_are_continued_and_closed() {
    let get_more = lower(&command(rawdoc! {
        "getMore": 8_070_450_532_247_928_832_i64, "collection": "orders", "batchSize": 10,
    }));
    assert_eq!(
        get_more,
        Lowering {
            continues_cursor: Some(8_070_450_532_247_928_832),
            ..Lowering::default()
        }
    );
    let kill = lower(&command(rawdoc! {
        "killCursors": "orders", "cursors": [11_i64, 22_i64],
    }));
    assert_eq!(
        kill,
        Lowering {
            closes_cursors: vec![11, 22],
            ..Lowering::default()
        }
    );
}

#[test]
fn commands_that_are_not_queries_lower_to_nothing() {
    let bodies: Vec<RawDocumentBuf> = vec![
        rawdoc! { "hello": 1 },
        rawdoc! { "isMaster": 1 },
        rawdoc! { "ismaster": 1 },
        rawdoc! { "ping": 1 },
        rawdoc! { "saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2] } },
        rawdoc! { "saslContinue": 1, "conversationId": 1 },
        rawdoc! { "listIndexes": "orders" },
        rawdoc! { "createIndexes": "orders", "indexes": [{ "key": { "a": 1 }, "name": "a_1" }] },
        rawdoc! { "buildInfo": 1 },
        rawdoc! { "endSessions": [{ "id": 1 }] },
        rawdoc! { "explain": { "find": "orders" } },
        rawdoc! {},
    ];
    for body in bodies {
        assert_eq!(
            lower(&command(body.clone())),
            Lowering::default(),
            "{body:?}"
        );
    }
}

#[test]
fn exists_and_type_constants_are_bound_in_the_top_level_conjunction_only() {
    let lowering = lower(&command(rawdoc! {
        "find": "users",
        "filter": {
            "email": { "$exists": true },
            "$and": [{ "deleted_at": { "$exists": 0 } }],
            "born": { "$type": ["null", 9, "date", "null"] },
            "kind": { "$type": 2.0 },
            "$or": [{ "x": { "$exists": true } }, { "y": 1 }],
            "tags": { "$elemMatch": { "z": { "$exists": true } } },
            "w": { "$not": { "$exists": true } },
        },
    }));
    let bound = |field: &str, operator: &str, constant: Constant| BoundConstant {
        target: Target::Field(field.to_owned()),
        operator: operator.into(),
        constant,
    };
    let [occurrence] = lowering.shapes.as_slice() else {
        panic!("one shape expected, got {lowering:?}");
    };
    assert_eq!(
        occurrence.constants,
        vec![
            bound("born", "$type", Constant::Type("9,date,null".to_owned())),
            bound("deleted_at", "$exists", Constant::Exists(false)),
            bound("email", "$exists", Constant::Exists(true)),
            bound("kind", "$type", Constant::Type("2".to_owned())),
        ]
    );
}

#[test]
fn queries_without_a_collection_are_rejected() {
    for body in [
        rawdoc! { "find": 1, "filter": { "a": 1 } },
        rawdoc! { "find": "" },
        rawdoc! { "count": null },
        rawdoc! { "aggregate": { "x": 1 }, "pipeline": [] },
        rawdoc! { "update": ["orders"], "updates": [] },
        rawdoc! { "insert": true, "documents": [{}] },
        rawdoc! { "findAndModify": 3, "query": {} },
    ] {
        assert_eq!(
            lower(&command(body.clone())),
            rejection("missing_collection"),
            "{body:?}"
        );
    }
}

#[test]
fn filters_mongodb_would_refuse_are_rejected() {
    for filter in [
        rawdoc! { "a": { "$gt": 1, "b": 2 } },
        rawdoc! { "a": { "$unknown": 1 } },
        rawdoc! { "$unknown": 1 },
        rawdoc! { "a": { "$in": 5 } },
        rawdoc! { "a": { "$nin": "x" } },
        rawdoc! { "a": { "$all": {} } },
        rawdoc! { "$or": [] },
        rawdoc! { "$and": {} },
        rawdoc! { "$nor": [1] },
        rawdoc! { "a": { "$type": "nonsense" } },
        rawdoc! { "a": { "$type": 42 } },
        rawdoc! { "a": { "$type": [] } },
        rawdoc! { "a": { "$options": "i" } },
        rawdoc! { "a": { "$regex": 5 } },
        rawdoc! { "a": { "$not": 5 } },
        rawdoc! { "a": { "$not": {} } },
        rawdoc! { "a": { "$not": { "b": 1 } } },
        rawdoc! { "a": { "$elemMatch": 1 } },
        rawdoc! { "$text": "x" },
    ] {
        let lowering = lower(&command(rawdoc! { "find": "c", "filter": filter.clone() }));
        assert_eq!(lowering, rejection("malformed_filter"), "{filter:?}");
    }
    assert_eq!(
        lower(&command(rawdoc! { "find": "c", "filter": "a == 1" })),
        rejection("malformed_filter")
    );
    assert_eq!(
        lower(&command(
            rawdoc! { "aggregate": "c", "pipeline": [{ "$match": 1 }] }
        )),
        rejection("malformed_filter")
    );
}

#[test]
fn a_bad_statement_is_rejected_and_the_others_kept() {
    let lowering = lower(&command(rawdoc! {
        "update": "orders",
        "updates": [{ "q": { "a": { "$bad": 1 } }, "u": {} }, { "q": { "a": 1 }, "u": {} }, 7],
    }));
    assert_eq!(lowering.shapes.len(), 1);
    assert_eq!(lowering.writes, vec![write("orders", WriteKind::Update, 3)]);
    assert!(lowering.rejected.is_some());
}

/// `{a: {$elemMatch: {a: {$elemMatch: ... {a: 1}}}}}`, `depth` times.
fn nested_elem_match(depth: usize) -> RawDocumentBuf {
    let mut filter = rawdoc! { "a": 1 };
    for _ in 0..depth {
        filter = rawdoc! { "a": { "$elemMatch": filter } };
    }
    filter
}

#[test]
fn nesting_is_bounded() {
    let shallow = lower(&command(
        rawdoc! { "find": "c", "filter": nested_elem_match(MAX_DEPTH / 4) },
    ));
    assert_eq!(shallow.rejected, None);
    let deep = lower(&command(
        rawdoc! { "find": "c", "filter": nested_elem_match(MAX_DEPTH * 10) },
    ));
    assert_eq!(deep, rejection("malformed_filter"));
}
