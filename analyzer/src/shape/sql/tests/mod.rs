//! Tests of SQL lowering.
//!
//! ## Layout
//! - this file: helpers that build expected canonical JSON.
//! - `table`: statements and the exact shapes they lower to.
//! - `lowering`: writes, rejections, constants and normalized statements.
//! - `identity`: what must not change a shape's id.
//! - `privacy`: values never come out.
//! - `hostile`: garbage, huge and deep input.
//! - `cache`: hits, bounds, sharing between threads.
//! - `masking`: the masked cache key: what shares an entry and what does not.
//! - `masking_corpus`: the corpus check that a masked hit never changes a lowering.
//! - `statements`: one statement of a text; COPY and maintenance statements sqlparser refuses.

mod cache;
mod hostile;
mod identity;
mod lowering;
mod masking;
mod masking_corpus;
mod privacy;
mod statements;
mod table;

use serde_json::{json, Value};

use crate::command::{SqlCommand, SqlProtocol};
use crate::shape::{Lowering, ShapeOccurrence};

/// The database every test statement runs against.
const DATABASE: &str = "app";

fn lower(text: &str) -> Lowering {
    super::lower_text(DATABASE, text, SqlProtocol::Simple)
}

fn command(text: &str, protocol: SqlProtocol) -> SqlCommand {
    SqlCommand {
        database: DATABASE.into(),
        text: text.into(),
        parameters: 0,
        protocol,
        statement_index: None,
    }
}

/// The canonical JSON of each shape a text lowers to, in order.
fn canonical_shapes(text: &str) -> Vec<Value> {
    lower(text).shapes.iter().map(canonical).collect()
}

fn canonical(occurrence: &ShapeOccurrence) -> Value {
    serde_json::from_str(&occurrence.shape.canonical()).unwrap_or(Value::Null)
}

/// The only shape a text lowers to.
fn only(text: &str) -> ShapeOccurrence {
    let mut lowering = lower(text);
    assert_eq!(lowering.shapes.len(), 1, "{text}: {lowering:?}");
    lowering.shapes.remove(0)
}

/// A leaf on a column.
fn field(name: &str, operator: &str, class: &str, value_type: &str) -> Value {
    json!({"leaf": {"target": {"field": name}, "operator": operator, "class": class,
        "value_type": value_type}})
}

/// A leaf on an expression of a column.
fn expression(text: &str, column: &str, operator: &str, class: &str, value_type: &str) -> Value {
    json!({"leaf": {"target": {"expression": {"text": text, "column": column}},
        "operator": operator, "class": class, "value_type": value_type}})
}

/// A join leaf on a column.
fn join(name: &str) -> Value {
    field(name, "JOIN", "eq", "other")
}

fn or(branches: Vec<Value>) -> Value {
    json!({ "or": branches })
}

fn not(inner: Value) -> Value {
    json!({ "not": inner })
}

fn sort(name: &str, direction: i8) -> Value {
    json!({"target": {"field": name}, "direction": direction})
}

fn sort_nulls(name: &str, direction: i8, nulls_first: bool) -> Value {
    json!({"target": {"field": name}, "direction": direction, "nulls_first": nulls_first})
}

/// An expected shape, with everything off until set.
struct Expected {
    schema: &'static str,
    table: &'static str,
    command: &'static str,
    filter: Vec<Value>,
    sort: Vec<Value>,
    limit: bool,
    skip: bool,
    projection: Vec<&'static str>,
    group_by: Vec<&'static str>,
    options: Vec<&'static str>,
}

fn shape(command: &'static str, table: &'static str) -> Expected {
    Expected {
        schema: "public",
        table,
        command,
        filter: Vec::new(),
        sort: Vec::new(),
        limit: false,
        skip: false,
        projection: Vec::new(),
        group_by: Vec::new(),
        options: Vec::new(),
    }
}

fn select(table: &'static str) -> Expected {
    shape("select", table)
}

impl Expected {
    /// The conjuncts, in canonical (sorted) order.
    fn filter(mut self, conjuncts: Vec<Value>) -> Self {
        self.filter = conjuncts;
        self
    }
    fn schema(mut self, schema: &'static str) -> Self {
        self.schema = schema;
        self
    }
    fn sort(mut self, keys: Vec<Value>) -> Self {
        self.sort = keys;
        self
    }
    fn limit(mut self) -> Self {
        self.limit = true;
        self
    }
    fn skip(mut self) -> Self {
        self.skip = true;
        self
    }
    fn projection(mut self, columns: Vec<&'static str>) -> Self {
        self.projection = columns;
        self
    }
    fn group_by(mut self, columns: Vec<&'static str>) -> Self {
        self.group_by = columns;
        self
    }
    fn options(mut self, options: Vec<&'static str>) -> Self {
        self.options = options;
        self
    }
    fn joined(self) -> Self {
        self.options(vec!["join"])
    }
    fn json(self) -> Value {
        json!({
            "namespace": {"engine": "postgresql", "database": DATABASE, "schema": self.schema,
                "collection": self.table},
            "command": self.command,
            "filter": {"and": self.filter},
            "sort": self.sort,
            "limit": self.limit,
            "skip": self.skip,
            "projection": self.projection,
            "group_by": self.group_by,
            "options": self.options,
        })
    }
}
