//! Builders of expected canonical shapes, shared by the analyzer's own tests and the
//! end-to-end tests (which enable the `testing` feature). Not part of the public API.
//!
//! ## Layout
//! - this file: predicate, sort and lowering builders both engines share.
//! - [`mongo`]: MongoDB filters with the conjuncts they lower to, shared with the
//!   end-to-end test that runs them through the driver; the MongoDB shape JSON.
//! - [`mongo_commands`]: generated `find` / `count` commands (proptest strategies) for the
//!   lowering cache's key, shared with the proxy's tests.
//! - [`sql`]: expected SQL shapes, in the canonical JSON of [`crate::shape::Shape`].
//! - [`statements`]: SQL statements with the shapes they lower to, shared with the
//!   end-to-end test that sends them to a real server.
//! - [`seeds`]: the fuzz targets' seed corpora, run (and written) from the tests' fixtures.

pub mod mongo;
pub mod mongo_commands;
pub mod seeds;
pub mod sql;
pub mod statements;

use serde_json::{json, Value};

use crate::shape::{Lowering, Rejection, Write};

/// A lowering that only counts writes.
pub fn writes_only(writes: Vec<Write>) -> Lowering {
    Lowering {
        writes,
        ..Lowering::default()
    }
}

/// A lowering that only rejects, for `reason`.
pub fn rejected(reason: impl Into<Rejection>) -> Lowering {
    Lowering::rejected_as(reason.into())
}

/// A leaf on a field (a MongoDB path, a SQL column).
pub fn leaf(field: &str, operator: &str, class: &str, value_type: &str) -> Value {
    json!({"leaf": {"target": {"field": field}, "operator": operator, "class": class,
        "value_type": value_type}})
}

/// AND of children.
pub fn and(children: Vec<Value>) -> Value {
    json!({ "and": children })
}

/// OR branches.
pub fn or(branches: Vec<Value>) -> Value {
    json!({ "or": branches })
}

/// A sort key on a field.
pub fn sort_key(field: &str, direction: i8) -> Value {
    json!({"target": {"field": field}, "direction": direction})
}
