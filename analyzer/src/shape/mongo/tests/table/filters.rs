//! Filters: one `find` per rule of the 8.0 query shape.

use bson::rawdoc;
use serde_json::json;

use super::super::*;
use super::{case, find, Case};

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
        find(
            "$in keeps the element type; mixed and empty lists are arrays",
            "orders",
            rawdoc! {
                "status": { "$in": ["A", "B", "C"] },
                "code": { "$in": [1, "x"] },
                "tag": { "$in": [] },
            },
            vec![
                leaf("code", "$in", "in", "array"),
                leaf("status", "$in", "in", "string"),
                leaf("tag", "$in", "in", "array"),
            ],
        ),
        find(
            "ranges on one field are two leaves",
            "people",
            rawdoc! { "age": { "$lt": 65, "$gte": 18.5 }, "born": { "$gt": bson::DateTime::from_millis(0) } },
            vec![
                leaf("age", "$gte", "range", "number"),
                leaf("age", "$lt", "range", "number"),
                leaf("born", "$gt", "range", "date"),
            ],
        ),
        find(
            "dotted paths are kept as written",
            "orders",
            rawdoc! { "address.city": "x", "items.0.sku": 7_i64 },
            vec![
                leaf("address.city", "$eq", "eq", "string"),
                leaf("items.0.sku", "$eq", "eq", "number"),
            ],
        ),
        find(
            "$or branches are collapsed and sorted; null is IsNull",
            "orders",
            rawdoc! {
                "deleted_at": null,
                "$or": [ { "a": 1 }, { "c": true, "b": "x" } ],
            },
            vec![
                json!({"or": [
                    and(vec![
                        leaf("b", "$eq", "eq", "string"),
                        leaf("c", "$eq", "eq", "bool"),
                    ]),
                    leaf("a", "$eq", "eq", "number"),
                ]}),
                leaf("deleted_at", "$eq", "is_null", "null"),
            ],
        ),
        find(
            "$nor, and $and flattened into its parent",
            "orders",
            rawdoc! {
                "$and": [ { "z": 1 }, { "$and": [ { "y": "s" } ] } ],
                "$nor": [ { "status": "x" }, { "qty": { "$lt": 5 } } ],
            },
            vec![
                json!({"nor": [
                    leaf("qty", "$lt", "range", "number"),
                    leaf("status", "$eq", "eq", "string"),
                ]}),
                leaf("y", "$eq", "eq", "string"),
                leaf("z", "$eq", "eq", "number"),
            ],
        ),
        find(
            "$elemMatch on documents keeps relative paths",
            "orders",
            rawdoc! { "items": { "$elemMatch": { "sku": "x", "qty": { "$gt": 1 } } } },
            vec![json!({"elem_match": {
                "path": "items",
                "predicate": and(vec![
                    leaf("qty", "$gt", "range", "number"),
                    leaf("sku", "$eq", "eq", "string"),
                ]),
            }})],
        ),
        find(
            "$elemMatch with operators only tests the element itself",
            "results",
            rawdoc! { "scores": { "$elemMatch": { "$gte": 80 } } },
            vec![json!({"elem_match": {
                "path": "scores",
                "predicate": leaf("", "$gte", "range", "number"),
            }})],
        ),
        find(
            "$exists and $type carry no operand type",
            "users",
            rawdoc! { "email": { "$exists": true }, "born": { "$type": "date" } },
            vec![
                leaf("born", "$type", "type", "none"),
                leaf("email", "$exists", "exists", "none"),
            ],
        ),
        find(
            "anchored case-sensitive regex is a prefix; a BSON regex literal is a $regex",
            "users",
            rawdoc! { "name": regex("^Jo", ""), "email": { "$regex": "^ann", "$options": "" } },
            vec![
                leaf("email", "$regex", "prefix", "regex"),
                leaf("name", "$regex", "prefix", "regex"),
            ],
        ),
        find(
            "unanchored or case-insensitive regex is infix",
            "users",
            rawdoc! {
                "name": { "$regex": "^jo", "$options": "i" },
                "bio": regex("rust", ""),
                "city": { "$options": "m", "$regex": regex("^x", "") },
            },
            vec![
                leaf("bio", "$regex", "infix", "regex"),
                leaf("city", "$regex", "infix", "regex"),
                leaf("name", "$regex", "infix", "regex"),
            ],
        ),
        find(
            "$text is a text leaf; $comment is ignored",
            "articles",
            rawdoc! { "$text": { "$search": "coffee" }, "status": "A", "$comment": "why" },
            vec![
                leaf("$text", "$text", "text", "string"),
                leaf("status", "$eq", "eq", "string"),
            ],
        ),
        find(
            "$expr, $where, $size and geo operators are not indexable",
            "items",
            rawdoc! {
                "$expr": { "$gt": ["$a", "$b"] },
                "$where": "this.a > 1",
                "tags": { "$size": 2 },
                "loc": { "$geoWithin": { "$centerSphere": [[0, 0], 1] } },
            },
            vec![
                leaf("$expr", "$expr", "not_indexable", "object"),
                leaf("$where", "$where", "not_indexable", "string"),
                leaf("loc", "$geoWithin", "not_indexable", "object"),
                leaf("tags", "$size", "not_indexable", "number"),
            ],
        ),
        find(
            "$ne and $nin are Ne; $all is Eq",
            "items",
            rawdoc! {
                "status": { "$ne": "gone" },
                "kind": { "$nin": [1, 2] },
                "tags": { "$all": ["a", "b"] },
            },
            vec![
                leaf("kind", "$nin", "ne", "number"),
                leaf("status", "$ne", "ne", "string"),
                leaf("tags", "$all", "eq", "string"),
            ],
        ),
        find(
            "$not wraps its operators; embedded documents and DBRefs are objects",
            "items",
            rawdoc! {
                "price": { "$not": { "$gt": 1.99 } },
                "name": { "$not": regex("^x", "") },
                "size": { "h": 14, "w": 21 },
                "ref": bson::oid::ObjectId::from_bytes([7; 12]),
                "owner": { "$ref": "users", "$id": 5 },
            },
            vec![
                json!({"not": leaf("name", "$regex", "prefix", "regex")}),
                json!({"not": leaf("price", "$gt", "range", "number")}),
                leaf("owner", "$eq", "eq", "object"),
                leaf("ref", "$eq", "eq", "objectId"),
                leaf("size", "$eq", "eq", "object"),
            ],
        ),
    ]
}
