//! Tests of SQL lowering.
//!
//! ## Layout
//! - this file: lowering helpers; expected shapes are built with `crate::testing::sql`.
//! - `table`: statements and the exact shapes they lower to.
//! - `lowering`: writes, rejections, constants and normalized statements.
//! - `identity`: what must not change a shape's id.
//! - `privacy`: values never come out.
//! - `hostile`: garbage, huge and deep input.
//! - `long_literals`: long literals cut before the parse lower as if whole.
//! - `cache`: hits, bounds, sharing between threads.
//! - `masking`: the masked cache key: what shares an entry and what does not.
//! - `masking_corpus`: the corpus check that a masked hit never changes a lowering.
//! - `statements`: one statement of a text; COPY and maintenance statements sqlparser refuses.

mod cache;
mod hostile;
mod identity;
mod long_literals;
mod lowering;
mod masking;
mod masking_corpus;
mod privacy;
mod statements;
mod table;

use serde_json::Value;

use crate::command::{SqlCommand, SqlProtocol};
use crate::shape::{Lowering, ShapeOccurrence};
pub(super) use crate::testing::sql::*;

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

/// A statement as a driver sends a prepared one: through the extended protocol.
fn prepared(text: &str) -> SqlCommand {
    command(text, SqlProtocol::Extended)
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
