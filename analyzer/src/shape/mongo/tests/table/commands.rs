//! Commands: what each command contributes besides its filter, and the ones that give none.

use bson::rawdoc;
use serde_json::json;

use super::super::*;
use super::{case, Case};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "aggregate: leading $match stages ANDed, then $sort and $limit, and a $lookup",
            command(rawdoc! {
                "aggregate": "orders",
                "pipeline": [
                    { "$match": { "status": "A" } },
                    { "$match": { "qty": { "$gt": 1 } } },
                    { "$sort": { "qty": -1 } },
                    { "$limit": 5 },
                    { "$group": { "_id": "$user_id", "n": { "$sum": 1 } } },
                    { "$skip": 3 },
                    { "$lookup": { "from": "users", "localField": "_id", "foreignField": "user_id", "as": "u" } },
                ],
                "cursor": {},
            }),
            vec![
                with(
                    with(
                        shape(
                            "orders",
                            "aggregate",
                            and(vec![
                                leaf("qty", "$gt", "range", "number"),
                                leaf("status", "$eq", "eq", "string"),
                            ]),
                        ),
                        "sort",
                        json!([sort_key("qty", -1)]),
                    ),
                    "limit",
                    json!(true),
                ),
                shape(
                    "users",
                    "lookup",
                    and(vec![leaf("user_id", "$eq", "eq", "other")]),
                ),
            ],
        ),
        case(
            "aggregate: a $sort after another stage is not the query's sort",
            command(rawdoc! {
                "aggregate": "orders",
                "pipeline": [
                    { "$match": { "status": "A" } },
                    { "$project": { "a": 1 } },
                    { "$sort": { "a": 1 } },
                    { "$lookup": { "from": "x", "pipeline": [], "as": "y" } },
                ],
            }),
            vec![shape(
                "orders",
                "aggregate",
                and(vec![leaf("status", "$eq", "eq", "string")]),
            )],
        ),
        case(
            "count keeps query, limit and skip presence",
            command(rawdoc! {
                "count": "orders",
                "query": { "status": "A" },
                "limit": 5,
                "skip": 0,
            }),
            vec![with(
                shape(
                    "orders",
                    "count",
                    and(vec![leaf("status", "$eq", "eq", "string")]),
                ),
                "limit",
                json!(true),
            )],
        ),
        case(
            "distinct projects its key",
            command(rawdoc! {
                "distinct": "orders",
                "key": "sku",
                "query": { "qty": { "$gt": 1 } },
            }),
            vec![with(
                shape(
                    "orders",
                    "distinct",
                    and(vec![leaf("qty", "$gt", "range", "number")]),
                ),
                "projection",
                json!(["sku"]),
            )],
        ),
        case(
            "update statements in the body, with multi and upsert",
            command(rawdoc! {
                "update": "orders",
                "updates": [
                    { "q": { "status": "A" }, "u": { "$set": { "b": 1 } }, "multi": true },
                    { "q": { "_id": 5 }, "u": { "x": 1 }, "upsert": true, "multi": false },
                ],
                "ordered": true,
            }),
            vec![
                with(
                    shape(
                        "orders",
                        "update",
                        and(vec![leaf("status", "$eq", "eq", "string")]),
                    ),
                    "options",
                    json!(["multi"]),
                ),
                with(
                    shape(
                        "orders",
                        "update",
                        and(vec![leaf("_id", "$eq", "eq", "number")]),
                    ),
                    "options",
                    json!(["upsert"]),
                ),
            ],
        ),
        case(
            "update statements in a kind 1 sequence",
            with_sequence(
                rawdoc! { "update": "orders", "ordered": false },
                "updates",
                vec![
                    rawdoc! { "q": { "user": "u" }, "u": { "$inc": { "n": 1 } }, "multi": true, "upsert": true },
                ],
            ),
            vec![with(
                shape(
                    "orders",
                    "update",
                    and(vec![leaf("user", "$eq", "eq", "string")]),
                ),
                "options",
                json!(["multi", "upsert"]),
            )],
        ),
        case(
            "delete statements: limit 1 is a limit, limit 0 is not",
            command(rawdoc! {
                "delete": "sessions",
                "deletes": [
                    { "q": { "expires": { "$lt": bson::DateTime::from_millis(5) } }, "limit": 0 },
                    { "q": { "_id": "s" }, "limit": 1 },
                ],
            }),
            vec![
                shape(
                    "sessions",
                    "delete",
                    and(vec![leaf("expires", "$lt", "range", "date")]),
                ),
                with(
                    shape(
                        "sessions",
                        "delete",
                        and(vec![leaf("_id", "$eq", "eq", "string")]),
                    ),
                    "limit",
                    json!(true),
                ),
            ],
        ),
        case(
            "findAndModify with query, sort and options",
            command(rawdoc! {
                "findAndModify": "jobs",
                "query": { "state": "queued" },
                "sort": { "priority": -1, "created": 1 },
                "update": { "$set": { "state": "running" } },
                "new": true,
                "upsert": false,
            }),
            vec![with(
                with(
                    shape(
                        "jobs",
                        "findAndModify",
                        and(vec![leaf("state", "$eq", "eq", "string")]),
                    ),
                    "sort",
                    json!([sort_key("priority", -1), sort_key("created", 1)]),
                ),
                "options",
                json!(["new"]),
            )],
        ),
        case(
            "lower-case findandmodify with remove",
            command(rawdoc! { "findandmodify": "jobs", "query": { "done": true }, "remove": 1 }),
            vec![with(
                shape(
                    "jobs",
                    "findAndModify",
                    and(vec![leaf("done", "$eq", "eq", "bool")]),
                ),
                "options",
                json!(["remove"]),
            )],
        ),
        case(
            "insert has no shape",
            command(rawdoc! { "insert": "orders", "documents": [{ "a": 1 }] }),
            vec![],
        ),
        case(
            "hello, ping, explain, createIndexes and SASL have no shape",
            command(rawdoc! { "hello": 1, "helloOk": true }),
            vec![],
        ),
        case(
            "explain wraps a query but is not one",
            command(
                rawdoc! { "explain": { "find": "orders", "filter": { "a": 1 } }, "verbosity": "queryPlanner" },
            ),
            vec![],
        ),
        case(
            "aggregate: 1 runs on the database",
            command(rawdoc! { "aggregate": 1, "pipeline": [{ "$currentOp": {} }], "cursor": {} }),
            vec![],
        ),
        case(
            "a change stream is not a collection query",
            command(
                rawdoc! { "aggregate": "orders", "pipeline": [{ "$changeStream": {} }, { "$match": { "a": 1 } }] },
            ),
            vec![],
        ),
    ]
}
