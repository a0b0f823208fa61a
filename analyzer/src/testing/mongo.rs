//! MongoDB filters and the canonical conjuncts they lower to: one table, read by the
//! analyzer's lowering tests (each filter in a `find` command) and by the end-to-end test that
//! sends the same filters through the Rust driver and the proxy to a real server. Every filter
//! here is one a server runs (no `$text` without its index, no `$where`).

use bson::raw::CString;
use bson::{doc, Bson, DateTime, Document, Regex};
use serde_json::{json, Value};

use super::{and, leaf};

/// Filters that must all lower to one `find` shape whose filter is the AND of `conjuncts`.
#[derive(Debug, Clone)]
pub struct FilterRule {
    pub name: &'static str,
    pub filters: Vec<Document>,
    pub conjuncts: Vec<Value>,
}

fn rule(name: &'static str, filters: Vec<Document>, conjuncts: Vec<Value>) -> FilterRule {
    FilterRule {
        name,
        filters,
        conjuncts,
    }
}

/// A BSON regular expression literal (not a `$regex` string).
pub fn regex(pattern: &str, options: &str) -> Regex {
    let cstring = |text: &str| {
        CString::try_from(text.to_string()).unwrap_or_else(|err| panic!("{text:?}: {err}"))
    };
    Regex {
        pattern: cstring(pattern),
        options: cstring(options),
    }
}

/// The canonical JSON of a MongoDB namespace.
pub fn namespace(database: &str, collection: &str) -> Value {
    json!({ "engine": "mongodb", "database": database, "schema": null, "collection": collection })
}

/// The canonical JSON of a shape of `command` on `database.collection` with nothing but a
/// filter (no sort, limit, skip, projection, grouping or options).
pub fn shape(database: &str, collection: &str, command: &str, filter: Value) -> Value {
    json!({
        "namespace": namespace(database, collection),
        "command": command,
        "filter": filter,
        "sort": [],
        "limit": false,
        "skip": false,
        "projection": [],
        "group_by": [],
        "options": [],
    })
}

/// The whole table: the 8.0 query-shape rules of filters.
pub fn filter_rules() -> Vec<FilterRule> {
    vec![
        rule(
            "find_in_lists_of_any_length",
            vec![
                doc! { "sku": { "$in": ["sku-1", "sku-2"] } },
                doc! { "sku": { "$in": ["sku-3", "sku-4", "sku-5", "sku-6", "sku-7"] } },
            ],
            vec![leaf("sku", "$in", "in", "string")],
        ),
        rule(
            "find_ranges",
            vec![doc! {
                "qty": { "$gte": 10, "$lt": 20 },
                "created": { "$lt": DateTime::from_millis(1_800_000_000_000) },
            }],
            vec![
                leaf("created", "$lt", "range", "date"),
                leaf("qty", "$gte", "range", "number"),
                leaf("qty", "$lt", "range", "number"),
            ],
        ),
        rule(
            "find_dotted_paths",
            vec![doc! { "address.city": "Lyon", "items.qty": { "$lte": 2 } }],
            vec![
                leaf("address.city", "$eq", "eq", "string"),
                leaf("items.qty", "$lte", "range", "number"),
            ],
        ),
        rule(
            "find_explicit_and_is_flattened",
            vec![doc! { "$and": [ { "uid": 3 }, { "status": { "$ne": "C" } } ] }],
            vec![
                leaf("status", "$ne", "ne", "string"),
                leaf("uid", "$eq", "eq", "number"),
            ],
        ),
        rule(
            "find_or",
            vec![doc! { "$or": [
                { "vip": true },
                { "status": "A", "qty": { "$lt": 5 } },
            ] }],
            // One predicate per branch, branches sorted (an `and` before a leaf).
            vec![json!({ "or": [
                and(vec![
                    leaf("qty", "$lt", "range", "number"),
                    leaf("status", "$eq", "eq", "string"),
                ]),
                leaf("vip", "$eq", "eq", "bool"),
            ] })],
        ),
        rule(
            "find_elem_match",
            vec![doc! {
                "scores": { "$elemMatch": { "$gte": 80 } },
                "items": { "$elemMatch": { "sku": "sku-3", "qty": { "$gt": 1 } } },
            }],
            vec![
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
            ],
        ),
        rule(
            "find_exists_and_null",
            vec![doc! {
                "email": { "$exists": true },
                "phone": { "$exists": false },
                "deleted_at": Bson::Null,
            }],
            vec![
                leaf("deleted_at", "$eq", "is_null", "null"),
                leaf("email", "$exists", "exists", "none"),
                leaf("phone", "$exists", "exists", "none"),
            ],
        ),
        rule(
            "find_regex_prefix",
            vec![
                doc! { "name": regex("^smith-1", "") },
                doc! { "name": { "$regex": "^smith-2" } },
            ],
            vec![leaf("name", "$regex", "prefix", "regex")],
        ),
        rule(
            "find_regex_infix",
            vec![
                doc! { "name": { "$regex": "ith-1" } },
                // Case-insensitive: anchored, but no tight index bounds, so not a prefix.
                doc! { "name": regex("^SMITH", "i") },
            ],
            vec![leaf("name", "$regex", "infix", "regex")],
        ),
        rule(
            "same_shape_different_values",
            vec![
                doc! { "uid": 1, "status": "A" },
                doc! { "status": "B", "uid": 4.5 },
            ],
            vec![
                leaf("status", "$eq", "eq", "string"),
                leaf("uid", "$eq", "eq", "number"),
            ],
        ),
    ]
}
