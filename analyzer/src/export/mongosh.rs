//! mongosh: `db.getSiblingDB("app").orders.createIndex({status: 1}, {name: "status_1"})`.
//!
//! Field names that are not plain identifiers are quoted (`{"items.sku": 1}`), and
//! collections whose names are not identifiers (or shadow a `Db` member) are reached through
//! `getCollection("x-y")`. Drop candidates come in a commented section: dropping is a
//! decision for a person, never a paste.

use super::document::{is_identifier, partial_filter, quoted, Value};
use super::script::Script;
use crate::advise::{Advice, IndexMethod, IndexSpec};
use crate::shape::{Engine, Namespace};

/// `Db` members a bare `db.<name>` would reach instead of the collection.
const DB_MEMBERS: &[&str] = &[
    "getCollection",
    "getName",
    "getSiblingDB",
    "runCommand",
    "adminCommand",
    "stats",
    "version",
    "help",
    "aggregate",
    "watch",
];

/// `db.getSiblingDB("app").orders`, or `.getCollection("x-y")` when needed.
pub(crate) fn collection(namespace: &Namespace) -> String {
    let database = format!("db.getSiblingDB({})", quoted(&namespace.database));
    let name = namespace.collection.as_str();
    if is_identifier(name) && !name.starts_with('$') && !DB_MEMBERS.contains(&name) {
        format!("{database}.{name}")
    } else {
        format!("{database}.getCollection({})", quoted(name))
    }
}

/// The key document: `{status: 1, delivery_date: -1}`, `{"$**": "text"}`.
pub(crate) fn keys(index: &IndexSpec) -> Value {
    Value::Doc(
        index
            .keys
            .iter()
            .map(|key| {
                let field = key.target.text().to_owned();
                let direction = match index.method {
                    IndexMethod::Text => Value::Str("text".to_owned()),
                    _ => Value::Int(if key.direction < 0 { -1 } else { 1 }),
                };
                (field, direction)
            })
            .collect(),
    )
}

/// The options document: name, partial filter, uniqueness.
fn options(index: &IndexSpec, name: &str) -> Value {
    let mut options = vec![("name".to_owned(), Value::Str(name.to_owned()))];
    if !index.partial.is_empty() {
        options.push((
            "partialFilterExpression".to_owned(),
            partial_filter(&index.partial),
        ));
    }
    if index.unique {
        options.push(("unique".to_owned(), Value::Bool(true)));
    }
    Value::Doc(options)
}

/// The `createIndex` line for one index.
pub fn create_statement(index: &IndexSpec, name: &str) -> String {
    format!(
        "{}.createIndex({}, {})",
        collection(&index.namespace),
        keys(index).to_js(),
        options(index, name).to_js()
    )
}

/// The `dropIndex` line for one index.
pub fn drop_statement(namespace: &Namespace, name: &str) -> String {
    format!("{}.dropIndex({})", collection(namespace), quoted(name))
}

/// The opening lines of the script.
const HEADER: &str = "\
// indextap: MongoDB index recommendations (mongosh)
// Every index slows the writes of its collection: build during low traffic.
";

/// The MongoDB part of the advice as a mongosh script.
pub(crate) fn render(advice: &Advice) -> String {
    Script::new(
        Engine::Mongodb,
        HEADER,
        "//",
        create_statement,
        drop_statement,
    )
    .render(advice)
}
