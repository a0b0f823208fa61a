//! The `find` cases: filters, modifiers, and cursors.

use bson::doc;
use bson::oid::ObjectId;
use serde_json::json;

use super::mongo_common::drain;
use super::{
    and, case, filter_rules, finds, leaf, once, one_shape, op, shape, sort_key, Case, Expected,
    SEEDED,
};

pub(super) fn cases() -> Vec<Case> {
    let rules = filter_rules().into_iter();
    let filters = rules.map(|rule| finds(rule.name, rule.filters, rule.conjuncts));
    filters.chain(modifiers_and_cursors()).collect()
}

/// Finds whose shape is more than a filter.
fn modifiers_and_cursors() -> Vec<Case> {
    vec![
        case(
            "find_filter_sort_limit_projection",
            op(|coll| async move {
                let found = coll
                    .find(doc! { "status": "A", "qty": { "$gt": 5 } })
                    .sort(doc! { "qty": -1, "_id": 1 })
                    .limit(10)
                    .projection(doc! { "status": 1, "qty": 1, "_id": 0 })
                    .await?;
                drain(found).await.map(drop)
            }),
            one_shape(json!({
                "command": "find",
                // Children sorted: `qty` before `status`, whatever the order written.
                "filter": and(vec![
                    leaf("qty", "$gt", "range", "number"),
                    leaf("status", "$eq", "eq", "string"),
                ]),
                "sort": [sort_key("qty", -1), sort_key("_id", 1)],
                "limit": true,
                "projection": ["_id", "qty", "status"],
            })),
            None,
        ),
        case(
            "find_skip_mixed_sort",
            op(|coll| async move {
                let found = coll
                    .find(doc! {})
                    .sort(doc! { "uid": 1, "created": -1 })
                    .skip(20)
                    .await?;
                drain(found).await.map(drop)
            }),
            one_shape(json!({
                "command": "find",
                "filter": and(vec![]),
                "sort": [sort_key("uid", 1), sort_key("created", -1)],
                "skip": true,
            })),
            None,
        ),
        case(
            "find_one_by_id",
            op(|coll| async move {
                coll.find_one(doc! { "_id": ObjectId::new() })
                    .await
                    .map(drop)
            }),
            one_shape(json!({
                "command": "find",
                "filter": and(vec![leaf("_id", "$eq", "eq", "objectId")]),
                "limit": true,
            })),
            None,
        ),
        case(
            "get_more_across_batches",
            op(|coll| async move {
                let cursor = coll.find(doc! {}).batch_size(10).await?;
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
