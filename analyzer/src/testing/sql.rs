//! Expected SQL shapes, written the way the canonical JSON reads, so that a test compares the
//! whole shape and not a few fields of it.

use serde_json::{json, Value};

use crate::shape::SqlOperator;

pub use super::{leaf as field, or, sort_key as sort};

/// The database every test statement runs against.
pub const DATABASE: &str = "app";

/// A leaf on an expression of a column.
pub fn expression(
    text: &str,
    column: &str,
    operator: &str,
    class: &str,
    value_type: &str,
) -> Value {
    json!({"leaf": {"target": {"expression": {"text": text, "column": column}},
        "operator": operator, "class": class, "value_type": value_type}})
}

/// The equality a join condition puts on this table's column.
pub fn join(name: &str) -> Value {
    field(name, SqlOperator::Join.as_str(), "eq", "other")
}

/// A sort key with its NULLS placement.
pub fn sort_nulls(name: &str, direction: i8, nulls_first: bool) -> Value {
    json!({"target": {"field": name}, "direction": direction, "nulls_first": nulls_first})
}

/// An expected shape, with everything off until set.
#[derive(Debug, Clone, Default)]
pub struct Expected {
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

/// A `command` (`select`, `update`, ...) on `public.table`.
pub fn shape(command: &'static str, table: &'static str) -> Expected {
    Expected {
        table,
        command,
        ..Expected::default()
    }
}

/// A `select` on `public.table`.
pub fn select(table: &'static str) -> Expected {
    shape("select", table)
}

impl Expected {
    /// The conjuncts, in canonical (sorted) order.
    pub fn filter(mut self, conjuncts: Vec<Value>) -> Self {
        self.filter = conjuncts;
        self
    }
    /// The sort keys.
    pub fn sort(mut self, keys: Vec<Value>) -> Self {
        self.sort = keys;
        self
    }
    /// A LIMIT is present.
    pub fn limit(mut self) -> Self {
        self.limit = true;
        self
    }
    /// An OFFSET is present.
    pub fn skip(mut self) -> Self {
        self.skip = true;
        self
    }
    /// The select-list columns.
    pub fn projection(mut self, columns: Vec<&'static str>) -> Self {
        self.projection = columns;
        self
    }
    /// The GROUP BY columns.
    pub fn group_by(mut self, columns: Vec<&'static str>) -> Self {
        self.group_by = columns;
        self
    }
    /// The shape's options.
    pub fn options(mut self, options: Vec<&'static str>) -> Self {
        self.options = options;
        self
    }
    /// The table is joined to another.
    pub fn joined(self) -> Self {
        self.options(vec!["join"])
    }
    /// The canonical JSON of the shape, in [`DATABASE`].
    pub fn json(self) -> Value {
        json!({
            "namespace": {"engine": "postgresql", "database": DATABASE, "schema": "public",
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
