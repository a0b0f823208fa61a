//! Every other command: aggregate (with `$lookup`), the counts, distinct, the writes that
//! read first (update, delete, findAndModify), and insert, which is write load only.

use bson::{doc, DateTime};
use mongodb::options::ReturnDocument;
use serde_json::json;

use super::mongo_common::drain;
use super::{and, case, leaf, once, one_shape, op, seed_document, shape, sort_key, Case, SEEDED};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "aggregate_match_sort_limit",
            op(|coll| async move {
                let pipeline = vec![
                    doc! { "$match": { "status": "A" } },
                    doc! { "$match": { "qty": { "$gte": 3 } } },
                    doc! { "$sort": { "created": -1 } },
                    doc! { "$limit": 5 },
                    doc! { "$project": { "status": 1, "qty": 1 } },
                ];
                drain(coll.aggregate(pipeline).await?).await.map(drop)
            }),
            one_shape(json!({
                "command": "aggregate",
                "filter": and(vec![
                    leaf("qty", "$gte", "range", "number"),
                    leaf("status", "$eq", "eq", "string"),
                ]),
                "sort": [sort_key("created", -1)],
                "limit": true,
            })),
            None,
        ),
        case(
            "aggregate_lookup",
            op(|coll| async move {
                let pipeline = vec![
                    doc! { "$match": { "uid": 2 } },
                    doc! { "$lookup": {
                        "from": format!("{}_users", coll.name()),
                        "localField": "sku",
                        "foreignField": "sku",
                        "as": "matches",
                    } },
                ];
                let joined = drain(coll.aggregate(pipeline).await?).await?;
                assert_eq!(joined.len(), SEEDED / 5);
                Ok(())
            }),
            |c| {
                vec![
                    once(shape(
                        c,
                        json!({
                            "command": "aggregate",
                            "filter": and(vec![leaf("uid", "$eq", "eq", "number")]),
                        }),
                    )),
                    // The join probes the foreign collection by equality on `foreignField`,
                    // with values of whatever type the local documents hold.
                    once(shape(
                        &format!("{c}_users"),
                        json!({
                            "command": "lookup",
                            "filter": and(vec![leaf("sku", "$eq", "eq", "other")]),
                        }),
                    )),
                ]
            },
            None,
        ),
        case(
            "count_documents",
            op(|coll| async move {
                let n = coll
                    .count_documents(doc! { "status": "A" })
                    .skip(1)
                    .limit(100)
                    .await?;
                assert_eq!(n, 14);
                Ok(())
            }),
            // The driver counts with an aggregate: $match, $skip, $limit, $group.
            one_shape(json!({
                "command": "aggregate",
                "filter": and(vec![leaf("status", "$eq", "eq", "string")]),
                "limit": true,
                "skip": true,
            })),
            None,
        ),
        case(
            "estimated_document_count",
            op(|coll| async move {
                let n = coll.estimated_document_count().await?;
                assert_eq!(n, SEEDED as u64);
                Ok(())
            }),
            one_shape(json!({ "command": "count", "filter": and(vec![]) })),
            None,
        ),
        case(
            "distinct",
            op(|coll| async move {
                coll.distinct("sku", doc! { "qty": { "$gt": 1 } })
                    .await
                    .map(drop)
            }),
            one_shape(json!({
                "command": "distinct",
                "filter": and(vec![leaf("qty", "$gt", "range", "number")]),
                "projection": ["sku"],
            })),
            None,
        ),
        case(
            "update_many",
            op(|coll| async move {
                coll.update_many(doc! { "status": "A" }, doc! { "$set": { "flag": true } })
                    .await
                    .map(drop)
            }),
            one_shape(json!({
                "command": "update",
                "filter": and(vec![leaf("status", "$eq", "eq", "string")]),
                "options": ["multi"],
            })),
            Some((0, 1, 0)),
        ),
        case(
            "update_one_upsert",
            op(|coll| async move {
                let result = coll
                    .update_one(doc! { "sku": "sku-new" }, doc! { "$set": { "qty": 1 } })
                    .upsert(true)
                    .await?;
                assert!(result.upserted_id.is_some());
                Ok(())
            }),
            one_shape(json!({
                "command": "update",
                "filter": and(vec![leaf("sku", "$eq", "eq", "string")]),
                "options": ["upsert"],
            })),
            Some((0, 1, 0)),
        ),
        case(
            "delete_one",
            op(|coll| async move {
                let result = coll.delete_one(doc! { "uid": 1 }).await?;
                assert_eq!(result.deleted_count, 1);
                Ok(())
            }),
            one_shape(json!({
                "command": "delete",
                "filter": and(vec![leaf("uid", "$eq", "eq", "number")]),
                "limit": true,
            })),
            Some((0, 0, 1)),
        ),
        case(
            "delete_many",
            op(|coll| async move {
                let result = coll.delete_many(doc! { "qty": { "$lt": 5 } }).await?;
                assert_eq!(result.deleted_count, 5);
                Ok(())
            }),
            one_shape(json!({
                "command": "delete",
                "filter": and(vec![leaf("qty", "$lt", "range", "number")]),
            })),
            Some((0, 0, 1)),
        ),
        case(
            "find_one_and_update",
            op(|coll| async move {
                let updated = coll
                    .find_one_and_update(doc! { "status": "B" }, doc! { "$inc": { "qty": 1 } })
                    .sort(doc! { "qty": -1 })
                    .return_document(ReturnDocument::After)
                    .await?;
                assert!(updated.is_some());
                Ok(())
            }),
            one_shape(json!({
                "command": "findAndModify",
                "filter": and(vec![leaf("status", "$eq", "eq", "string")]),
                "sort": [sort_key("qty", -1)],
                "options": ["new"],
            })),
            Some((0, 1, 0)),
        ),
        case(
            "find_one_and_delete",
            op(|coll| async move {
                let deleted = coll
                    .find_one_and_delete(doc! { "created": { "$gte": DateTime::from_millis(0) } })
                    .await?;
                assert!(deleted.is_some());
                Ok(())
            }),
            one_shape(json!({
                "command": "findAndModify",
                "filter": and(vec![leaf("created", "$gte", "range", "date")]),
                "options": ["remove"],
            })),
            Some((0, 0, 1)),
        ),
        case(
            "insert_is_write_load_only",
            op(|coll| async move {
                coll.insert_many((100..110).map(seed_document)).await?;
                coll.insert_one(seed_document(110)).await?;
                Ok(())
            }),
            |_| Vec::new(),
            Some((11, 0, 0)),
        ),
    ]
}
