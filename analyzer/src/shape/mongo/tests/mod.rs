//! Tests of MongoDB lowering, against hand-written expectations.
//!
//! ## Layout
//! - this file: builders for commands and for the expected canonical JSON.
//! - `table`: one command per case, with the exact canonical JSON of every shape.
//! - `lowering`: writes, cursors, constants and rejections, as exact [`Lowering`]s.
//! - `identity`: executions that must share a [`ShapeId`](crate::shape::ShapeId).
//! - `cache`: the structural key stands for the lowering; what it cannot is not cached.
//! - `hostile`: odd types everywhere and damaged bytes; nothing may panic.
//! - `privacy`: marker values never reach a shape or its debug output.

mod cache;
mod hostile;
mod identity;
mod lowering;
mod privacy;
mod table;

use bson::RawDocumentBuf;
use serde_json::Value;

use super::lower;
use crate::command::{DocumentSequence, MongoCommand};
use crate::shape::Lowering;
use crate::testing::and;
use crate::testing::mongo::regex;

/// A command on database `app` with no document sequences.
fn command(body: RawDocumentBuf) -> MongoCommand {
    MongoCommand::new("app", body, Vec::new())
}

/// A command on database `app` with one kind 1 sequence holding `documents`.
fn with_sequence(
    body: RawDocumentBuf,
    identifier: &str,
    documents: Vec<RawDocumentBuf>,
) -> MongoCommand {
    MongoCommand {
        sequences: vec![DocumentSequence {
            identifier: identifier.to_owned(),
            count: documents.len(),
            documents,
        }],
        ..command(body)
    }
}

/// A document key from text (`rawdoc!` takes literals, or expressions that are a `CStr`).
fn key(text: &str) -> &bson::raw::CStr {
    text.try_into().expect("test key has no NUL")
}

/// The canonical JSON of every shape a lowering produced, parsed for comparison.
fn canonical(lowering: &Lowering) -> Vec<Value> {
    lowering
        .shapes
        .iter()
        .map(|occurrence| {
            serde_json::from_str(&occurrence.shape.canonical()).expect("canonical is JSON")
        })
        .collect()
}

/// The expected canonical JSON of a shape on `app.<collection>` with nothing but a filter.
fn shape(collection: &str, command: &str, filter: Value) -> Value {
    crate::testing::mongo::shape("app", collection, command, filter)
}
