//! MongoDB filters and the canonical conjuncts they lower to: one table, `mongo_filters.json`,
//! read by the analyzer's lowering tests (each filter in a `find` command) and by the end-to-end
//! test that sends the same filters through the Rust driver and the proxy to a real server.
//! Every filter there is one a server runs (no `$text` without its index, no `$where`).
//!
//! A rule of the file is `{ name, why?, filters, conjuncts }`: the filters in MongoDB extended
//! JSON (key order kept), the exact canonical JSON of the conjuncts, and where the conjuncts
//! surprise, why.

use bson::raw::CString;
use bson::{Document, Regex};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::shape::{Leaf, Namespace, OpClass, Predicate, Shape, Target, ValueType};

/// Filters that must all lower to one `find` shape whose filter is the AND of `conjuncts`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterRule {
    /// A name that is also a collection name (the end-to-end test runs each rule on its own).
    pub name: &'static str,
    /// Why the conjuncts are what they are, where that is not plain.
    #[serde(default)]
    pub why: Option<&'static str>,
    pub filters: Vec<Document>,
    pub conjuncts: Vec<Value>,
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
    serde_json::from_str(include_str!("mongo_filters.json"))
        .unwrap_or_else(|err| panic!("mongo_filters.json: {err}"))
}

/// A `find` on `app.<collection>` filtered by one string equality on `field`: the smallest
/// shape a test of the store or of the snapshot format needs.
pub fn find_eq(collection: &str, field: &str) -> Shape {
    let mut shape = Shape::new(Namespace::mongo("app", collection), "find");
    shape.filter = Predicate::And(vec![Predicate::Leaf(Leaf {
        target: Target::Field(field.into()),
        operator: "$eq".into(),
        class: OpClass::Eq,
        value_type: ValueType::String,
    })]);
    shape
}
