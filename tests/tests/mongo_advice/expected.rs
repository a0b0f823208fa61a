//! The advice the workload must get: every recommendation field by field, and the drops.

use serde_json::{json, Value};

use super::DATABASE;

/// What a recommendation must say, field by field.
fn expected_recommendation(
    collection: &str,
    keys: Value,
    partial: Value,
    name: &str,
    statement: &str,
    serves: Vec<u64>,
) -> Value {
    json!({
        "engine": "mongodb",
        "database": DATABASE,
        "collection": collection,
        "keys": keys,
        "method": "btree",
        "unique": false,
        "partial": partial,
        "include": [],
        "name": name,
        "statement": statement,
        "serves": serves,
    })
}

/// The fields of a served recommendation that [`expected_recommendation`] pins, with
/// `serves` reduced to the served shapes' execution counts, sorted.
fn comparable(recommendation: &Value) -> Value {
    let mut serves: Vec<u64> = recommendation["serves"]
        .as_array()
        .map(|served| {
            served
                .iter()
                .map(|s| s["count"].as_u64().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    serves.sort_unstable();
    let mut picked = serde_json::Map::new();
    for field in [
        "engine",
        "database",
        "collection",
        "keys",
        "method",
        "unique",
        "partial",
        "include",
        "name",
        "statement",
    ] {
        picked.insert(field.to_string(), recommendation[field].clone());
    }
    picked.insert("serves".to_string(), json!(serves));
    Value::Object(picked)
}

pub(super) fn comparable_all(advice: &Value) -> Vec<Value> {
    let mut all: Vec<Value> = advice["recommendations"]
        .as_array()
        .map(|recommendations| recommendations.iter().map(comparable).collect())
        .unwrap_or_default();
    all.sort_by_key(|r| r["name"].to_string());
    all
}

pub(super) fn expected_recommendations() -> Vec<Value> {
    let mut expected = vec![
        // (a) and (a, b): one index. `a` leads, as more shapes test it.
        expected_recommendation(
            "events",
            json!([{ "field": "a", "direction": 1 }, { "field": "b", "direction": 1 }]),
            Value::Null,
            "a_1_b_1",
            r#"db.getSiblingDB("advice").events.createIndex({a: 1, b: 1}, {name: "a_1_b_1"})"#,
            vec![2, 3],
        ),
        // $in after the sort key: the index returns documents in sort order.
        expected_recommendation(
            "orders",
            json!([{ "field": "created", "direction": -1 }, { "field": "status", "direction": 1 }]),
            Value::Null,
            "created_-1_status_1",
            r#"db.getSiblingDB("advice").orders.createIndex({created: -1, status: 1}, {name: "created_-1_status_1"})"#,
            vec![3],
        ),
        // Equality, sort, range.
        expected_recommendation(
            "payments",
            json!([
                { "field": "account", "direction": 1 },
                { "field": "created", "direction": -1 },
                { "field": "amount", "direction": 1 },
            ]),
            Value::Null,
            "account_1_created_-1_amount_1",
            r#"db.getSiblingDB("advice").payments.createIndex({account: 1, created: -1, amount: 1}, {name: "account_1_created_-1_amount_1"})"#,
            vec![3],
        ),
        // The $exists every execution carries is the partial filter, not a key.
        expected_recommendation(
            "users",
            json!([{ "field": "plan", "direction": 1 }]),
            json!({ "email": { "$exists": true } }),
            "plan_1_partial",
            r#"db.getSiblingDB("advice").users.createIndex({plan: 1}, {name: "plan_1_partial", partialFilterExpression: {email: {$exists: true}}})"#,
            vec![4],
        ),
    ];
    expected.sort_by_key(|r| r["name"].to_string());
    expected
}

pub(super) fn expected_drops() -> Value {
    json!([{
        "engine": "mongodb",
        "database": DATABASE,
        "schema": null,
        "collection": "accounts",
        "name": "owner_1",
        "keys": [{ "field": "owner", "direction": 1 }],
        "method": "btree",
        "reason": "prefix of owner_1_region_1",
        "statement": r#"db.getSiblingDB("advice").accounts.dropIndex("owner_1")"#,
        "rollback": r#"db.getSiblingDB("advice").accounts.createIndex({owner: 1}, {name: "owner_1"})"#,
    }])
}
