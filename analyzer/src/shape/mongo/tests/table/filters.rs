//! Filters: one `find` per rule of the 8.0 query shape.

use bson::rawdoc;
use serde_json::json;

use super::super::*;
use super::{case, Case};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "find with filter, sort, limit, projection, and session fields ignored",
            command(rawdoc! {
                "find": "orders",
                "filter": { "status": "A", "qty": 5 },
                "sort": { "created_at": -1, "_id": 1 },
                "limit": 10,
                "projection": { "total": 1, "_id": 0 },
                "$db": "ignored",
                "lsid": { "id": 1 },
                "$clusterTime": { "clusterTime": 2 },
                "readConcern": { "level": "majority" },
            }),
            vec![with(
                with(
                    with(
                        shape(
                            "orders",
                            "find",
                            and(vec![
                                leaf("qty", "$eq", "eq", "number"),
                                leaf("status", "$eq", "eq", "string"),
                            ]),
                        ),
                        "sort",
                        json!([sort_key("created_at", -1), sort_key("_id", 1)]),
                    ),
                    "limit",
                    json!(true),
                ),
                "projection",
                json!(["_id", "total"]),
            )],
        ),
        case(
            "find with no filter, skip, limit 0, and unindexable sort keys",
            command(rawdoc! {
                "find": "orders",
                "skip": 20_i64,
                "limit": 0,
                "sort": { "score": { "$meta": "textScore" }, "$natural": 1, "when": -1.5 },
            }),
            vec![with(
                with(
                    shape("orders", "find", and(vec![])),
                    "sort",
                    json!([sort_key("when", -1)]),
                ),
                "skip",
                json!(true),
            )],
        ),
        case(
            "$in keeps the element type; mixed and empty lists are arrays",
            command(rawdoc! {
                "find": "orders",
                "filter": {
                    "status": { "$in": ["A", "B", "C"] },
                    "code": { "$in": [1, "x"] },
                    "tag": { "$in": [] },
                },
            }),
            vec![shape(
                "orders",
                "find",
                and(vec![
                    leaf("code", "$in", "in", "array"),
                    leaf("status", "$in", "in", "string"),
                    leaf("tag", "$in", "in", "array"),
                ]),
            )],
        ),
        case(
            "ranges on one field are two leaves",
            command(rawdoc! {
                "find": "people",
                "filter": { "age": { "$lt": 65, "$gte": 18.5 }, "born": { "$gt": bson::DateTime::from_millis(0) } },
            }),
            vec![shape(
                "people",
                "find",
                and(vec![
                    leaf("age", "$gte", "range", "number"),
                    leaf("age", "$lt", "range", "number"),
                    leaf("born", "$gt", "range", "date"),
                ]),
            )],
        ),
        case(
            "dotted paths are kept as written",
            command(rawdoc! {
                "find": "orders",
                "filter": { "address.city": "x", "items.0.sku": 7_i64 },
            }),
            vec![shape(
                "orders",
                "find",
                and(vec![
                    leaf("address.city", "$eq", "eq", "string"),
                    leaf("items.0.sku", "$eq", "eq", "number"),
                ]),
            )],
        ),
        case(
            "$or branches are collapsed and sorted; null is IsNull",
            command(rawdoc! {
                "find": "orders",
                "filter": {
                    "deleted_at": null,
                    "$or": [ { "a": 1 }, { "c": true, "b": "x" } ],
                },
            }),
            vec![shape(
                "orders",
                "find",
                and(vec![
                    json!({"or": [
                        and(vec![
                            leaf("b", "$eq", "eq", "string"),
                            leaf("c", "$eq", "eq", "bool"),
                        ]),
                        leaf("a", "$eq", "eq", "number"),
                    ]}),
                    leaf("deleted_at", "$eq", "is_null", "null"),
                ]),
            )],
        ),
        case(
            "$nor, and $and flattened into its parent",
            command(rawdoc! {
                "find": "orders",
                "filter": {
                    "$and": [ { "z": 1 }, { "$and": [ { "y": "s" } ] } ],
                    "$nor": [ { "status": "x" }, { "qty": { "$lt": 5 } } ],
                },
            }),
            vec![shape(
                "orders",
                "find",
                and(vec![
                    json!({"nor": [
                        leaf("qty", "$lt", "range", "number"),
                        leaf("status", "$eq", "eq", "string"),
                    ]}),
                    leaf("y", "$eq", "eq", "string"),
                    leaf("z", "$eq", "eq", "number"),
                ]),
            )],
        ),
        case(
            "$elemMatch on documents keeps relative paths",
            command(rawdoc! {
                "find": "orders",
                "filter": { "items": { "$elemMatch": { "sku": "x", "qty": { "$gt": 1 } } } },
            }),
            vec![shape(
                "orders",
                "find",
                and(vec![json!({"elem_match": {
                    "path": "items",
                    "predicate": and(vec![
                        leaf("qty", "$gt", "range", "number"),
                        leaf("sku", "$eq", "eq", "string"),
                    ]),
                }})]),
            )],
        ),
        case(
            "$elemMatch with operators only tests the element itself",
            command(rawdoc! {
                "find": "results",
                "filter": { "scores": { "$elemMatch": { "$gte": 80 } } },
            }),
            vec![shape(
                "results",
                "find",
                and(vec![json!({"elem_match": {
                    "path": "scores",
                    "predicate": leaf("", "$gte", "range", "number"),
                }})]),
            )],
        ),
        case(
            "$exists and $type carry no operand type",
            command(rawdoc! {
                "find": "users",
                "filter": { "email": { "$exists": true }, "born": { "$type": "date" } },
            }),
            vec![shape(
                "users",
                "find",
                and(vec![
                    leaf("born", "$type", "type", "none"),
                    leaf("email", "$exists", "exists", "none"),
                ]),
            )],
        ),
        case(
            "anchored case-sensitive regex is a prefix; a BSON regex literal is a $regex",
            command(rawdoc! {
                "find": "users",
                "filter": { "name": regex("^Jo", ""), "email": { "$regex": "^ann", "$options": "" } },
            }),
            vec![shape(
                "users",
                "find",
                and(vec![
                    leaf("email", "$regex", "prefix", "regex"),
                    leaf("name", "$regex", "prefix", "regex"),
                ]),
            )],
        ),
        case(
            "unanchored or case-insensitive regex is infix",
            command(rawdoc! {
                "find": "users",
                "filter": {
                    "name": { "$regex": "^jo", "$options": "i" },
                    "bio": regex("rust", ""),
                    "city": { "$options": "m", "$regex": regex("^x", "") },
                },
            }),
            vec![shape(
                "users",
                "find",
                and(vec![
                    leaf("bio", "$regex", "infix", "regex"),
                    leaf("city", "$regex", "infix", "regex"),
                    leaf("name", "$regex", "infix", "regex"),
                ]),
            )],
        ),
        case(
            "$text is a text leaf; $comment is ignored",
            command(rawdoc! {
                "find": "articles",
                "filter": { "$text": { "$search": "coffee" }, "status": "A", "$comment": "why" },
            }),
            vec![shape(
                "articles",
                "find",
                and(vec![
                    leaf("$text", "$text", "text", "string"),
                    leaf("status", "$eq", "eq", "string"),
                ]),
            )],
        ),
        case(
            "$expr, $where, $size and geo operators are not indexable",
            command(rawdoc! {
                "find": "items",
                "filter": {
                    "$expr": { "$gt": ["$a", "$b"] },
                    "$where": "this.a > 1",
                    "tags": { "$size": 2 },
                    "loc": { "$geoWithin": { "$centerSphere": [[0, 0], 1] } },
                },
            }),
            vec![shape(
                "items",
                "find",
                and(vec![
                    leaf("$expr", "$expr", "not_indexable", "object"),
                    leaf("$where", "$where", "not_indexable", "string"),
                    leaf("loc", "$geoWithin", "not_indexable", "object"),
                    leaf("tags", "$size", "not_indexable", "number"),
                ]),
            )],
        ),
        case(
            "$ne and $nin are Ne; $all is Eq",
            command(rawdoc! {
                "find": "items",
                "filter": {
                    "status": { "$ne": "gone" },
                    "kind": { "$nin": [1, 2] },
                    "tags": { "$all": ["a", "b"] },
                },
            }),
            vec![shape(
                "items",
                "find",
                and(vec![
                    leaf("kind", "$nin", "ne", "number"),
                    leaf("status", "$ne", "ne", "string"),
                    leaf("tags", "$all", "eq", "string"),
                ]),
            )],
        ),
        case(
            "$not wraps its operators; embedded documents and DBRefs are objects",
            command(rawdoc! {
                "find": "items",
                "filter": {
                    "price": { "$not": { "$gt": 1.99 } },
                    "name": { "$not": regex("^x", "") },
                    "size": { "h": 14, "w": 21 },
                    "ref": bson::oid::ObjectId::from_bytes([7; 12]),
                    "owner": { "$ref": "users", "$id": 5 },
                },
            }),
            vec![shape(
                "items",
                "find",
                and(vec![
                    json!({"not": leaf("name", "$regex", "prefix", "regex")}),
                    json!({"not": leaf("price", "$gt", "range", "number")}),
                    leaf("owner", "$eq", "eq", "object"),
                    leaf("ref", "$eq", "eq", "objectId"),
                    leaf("size", "$eq", "eq", "object"),
                ]),
            )],
        ),
    ]
}
