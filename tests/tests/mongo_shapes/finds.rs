//! The `find` cases: filters, modifiers, and cursors.

use bson::oid::ObjectId;
use bson::{doc, Bson, DateTime, Document};
use serde_json::json;

use super::mongo_common::drain;
use super::{and, case, leaf, once, op, regex, shape, sort_key, times, Case, Expected, SEEDED};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "find_filter_sort_limit_projection",
            op(|db, name| async move {
                let found = db
                    .collection::<Document>(&name)
                    .find(doc! { "status": "A", "qty": { "$gt": 5 } })
                    .sort(doc! { "qty": -1, "_id": 1 })
                    .limit(10)
                    .projection(doc! { "status": 1, "qty": 1, "_id": 0 })
                    .await?;
                drain(found).await.map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        // Children sorted: `qty` before `status`, whatever the order written.
                        "filter": and(vec![
                            leaf("qty", "$gt", "range", "number"),
                            leaf("status", "$eq", "eq", "string"),
                        ]),
                        "sort": [sort_key("qty", -1), sort_key("_id", 1)],
                        "limit": true,
                        "projection": ["_id", "qty", "status"],
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_skip_mixed_sort",
            op(|db, name| async move {
                let found = db
                    .collection::<Document>(&name)
                    .find(doc! {})
                    .sort(doc! { "uid": 1, "created": -1 })
                    .skip(20)
                    .await?;
                drain(found).await.map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![]),
                        "sort": [sort_key("uid", 1), sort_key("created", -1)],
                        "skip": true,
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_in_lists_of_any_length",
            op(|db, name| async move {
                let coll = db.collection::<Document>(&name);
                drain(
                    coll.find(doc! { "sku": { "$in": ["sku-1", "sku-2"] } })
                        .await?,
                )
                .await?;
                let longer = ["sku-3", "sku-4", "sku-5", "sku-6", "sku-7"];
                drain(
                    coll.find(doc! { "sku": { "$in": longer.to_vec() } })
                        .await?,
                )
                .await?;
                Ok(())
            }),
            |c| {
                vec![times(
                    shape(
                        c,
                        json!({
                            "command": "find",
                            "filter": and(vec![leaf("sku", "$in", "in", "string")]),
                        }),
                    ),
                    2,
                )]
            },
            None,
        ),
        case(
            "find_ranges",
            op(|db, name| async move {
                let filter = doc! {
                    "qty": { "$gte": 10, "$lt": 20 },
                    "created": { "$lt": DateTime::from_millis(1_800_000_000_000) },
                };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![
                            leaf("created", "$lt", "range", "date"),
                            leaf("qty", "$gte", "range", "number"),
                            leaf("qty", "$lt", "range", "number"),
                        ]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_dotted_paths",
            op(|db, name| async move {
                let filter = doc! { "address.city": "Lyon", "items.qty": { "$lte": 2 } };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![
                            leaf("address.city", "$eq", "eq", "string"),
                            leaf("items.qty", "$lte", "range", "number"),
                        ]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_explicit_and_is_flattened",
            op(|db, name| async move {
                let filter = doc! { "$and": [ { "uid": 3 }, { "status": { "$ne": "C" } } ] };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![
                            leaf("status", "$ne", "ne", "string"),
                            leaf("uid", "$eq", "eq", "number"),
                        ]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_or",
            op(|db, name| async move {
                let filter = doc! { "$or": [
                    { "vip": true },
                    { "status": "A", "qty": { "$lt": 5 } },
                ] };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        // One predicate per branch, branches sorted (an `and` before a leaf).
                        "filter": and(vec![json!({ "or": [
                            and(vec![
                                leaf("qty", "$lt", "range", "number"),
                                leaf("status", "$eq", "eq", "string"),
                            ]),
                            leaf("vip", "$eq", "eq", "bool"),
                        ] })]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_elem_match",
            op(|db, name| async move {
                let filter = doc! {
                    "scores": { "$elemMatch": { "$gte": 80 } },
                    "items": { "$elemMatch": { "sku": "sku-3", "qty": { "$gt": 1 } } },
                };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![
                            json!({ "elem_match": {
                                "path": "items",
                                "predicate": and(vec![
                                    leaf("qty", "$gt", "range", "number"),
                                    leaf("sku", "$eq", "eq", "string"),
                                ]),
                            } }),
                            // An operator-only $elemMatch tests the element itself.
                            json!({ "elem_match": {
                                "path": "scores",
                                "predicate": leaf("", "$gte", "range", "number"),
                            } }),
                        ]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_exists_and_null",
            op(|db, name| async move {
                let filter = doc! {
                    "email": { "$exists": true },
                    "phone": { "$exists": false },
                    "deleted_at": Bson::Null,
                };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![
                            leaf("deleted_at", "$eq", "is_null", "null"),
                            leaf("email", "$exists", "exists", "none"),
                            leaf("phone", "$exists", "exists", "none"),
                        ]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_regex_prefix",
            op(|db, name| async move {
                let coll = db.collection::<Document>(&name);
                let anchored = regex("^smith-1", "");
                drain(coll.find(doc! { "name": anchored }).await?).await?;
                drain(coll.find(doc! { "name": { "$regex": "^smith-2" } }).await?).await?;
                Ok(())
            }),
            |c| {
                vec![times(
                    shape(
                        c,
                        json!({
                            "command": "find",
                            "filter": and(vec![leaf("name", "$regex", "prefix", "regex")]),
                        }),
                    ),
                    2,
                )]
            },
            None,
        ),
        case(
            "find_regex_infix",
            op(|db, name| async move {
                let coll = db.collection::<Document>(&name);
                drain(coll.find(doc! { "name": { "$regex": "ith-1" } }).await?).await?;
                // Case-insensitive: anchored, but no tight index bounds, so not a prefix.
                let insensitive = regex("^SMITH", "i");
                drain(coll.find(doc! { "name": insensitive }).await?).await?;
                Ok(())
            }),
            |c| {
                vec![times(
                    shape(
                        c,
                        json!({
                            "command": "find",
                            "filter": and(vec![leaf("name", "$regex", "infix", "regex")]),
                        }),
                    ),
                    2,
                )]
            },
            None,
        ),
        case(
            "find_one_by_id",
            op(|db, name| async move {
                db.collection::<Document>(&name)
                    .find_one(doc! { "_id": ObjectId::new() })
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![leaf("_id", "$eq", "eq", "objectId")]),
                        "limit": true,
                    }),
                ))]
            },
            None,
        ),
        case(
            "same_shape_different_values",
            op(|db, name| async move {
                let coll = db.collection::<Document>(&name);
                drain(coll.find(doc! { "uid": 1, "status": "A" }).await?).await?;
                drain(coll.find(doc! { "status": "B", "uid": 4.5 }).await?).await?;
                Ok(())
            }),
            |c| {
                vec![times(
                    shape(
                        c,
                        json!({
                            "command": "find",
                            "filter": and(vec![
                                leaf("status", "$eq", "eq", "string"),
                                leaf("uid", "$eq", "eq", "number"),
                            ]),
                        }),
                    ),
                    2,
                )]
            },
            None,
        ),
        case(
            "get_more_across_batches",
            op(|db, name| async move {
                let cursor = db
                    .collection::<Document>(&name)
                    .find(doc! {})
                    .batch_size(10)
                    .await?;
                let all = drain(cursor).await?;
                assert_eq!(all.len(), SEEDED);
                Ok(())
            }),
            |c| {
                vec![Expected {
                    returned: Some(SEEDED as u64),
                    min_continuations: Some(4),
                    ..once(shape(
                        c,
                        json!({ "command": "find", "filter": and(vec![]) }),
                    ))
                }]
            },
            None,
        ),
    ]
}
