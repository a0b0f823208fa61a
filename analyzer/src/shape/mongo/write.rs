//! The write commands: `update`, `delete`, `insert` and `findAndModify`.
//!
//! Each statement of an update or delete reads before it writes, so each gives a shape
//! (its `q` is a filter like any other). Every write command also adds to its collection's
//! write load, which is what an index costs. Statements arrive in the command body or, from
//! most drivers, in a kind 1 document sequence; both are read the same way.

use bson::raw::{RawDocument, RawElement};

use super::filter::FilterBuilder;
use super::modifiers::{is_nonzero, sort};
use super::types::truth;
use super::{array_of, document_of, occurrence, Fields, Lowered, Query};
use crate::shape::{Command, Lowering, Rejection, ShapeOccurrence, Write, WriteKind};

/// `update`: one shape per statement (`q`, with `multi` / `upsert` as options), and the
/// number of statements as update load.
pub(super) fn update(query: &Query<'_>, fields: &mut Fields<'_>) -> Lowered {
    statements(query, fields, "updates", WriteKind::Update, |statement| {
        let mut shape = query.shape(Command::Update);
        let (mut multi, mut upsert) = (false, false);
        let filter = FilterBuilder::walk(elements(statement), "q", |field| {
            match field.key().as_str() {
                "multi" => multi = truth(field).unwrap_or(false),
                "upsert" => upsert = truth(field).unwrap_or(false),
                _ => {}
            }
        })?;
        shape.options = options(&[("multi", multi), ("upsert", upsert)]);
        Ok(occurrence(shape, filter))
    })
}

/// `delete`: one shape per statement (`q`, and `limit: 1` as a limit), and the number of
/// statements as delete load.
pub(super) fn delete(query: &Query<'_>, fields: &mut Fields<'_>) -> Lowered {
    statements(query, fields, "deletes", WriteKind::Delete, |statement| {
        let mut shape = query.shape(Command::Delete);
        let filter = FilterBuilder::walk(elements(statement), "q", |field| {
            if field.key().as_str() == "limit" {
                shape.limit = is_nonzero(field);
            }
        })?;
        Ok(occurrence(shape, filter))
    })
}

/// `insert`: no shape, only the number of documents as insert load. The documents are
/// counted by their headers, never decoded.
pub(super) fn insert(query: &Query<'_>, fields: &mut Fields<'_>) -> Lowered {
    let mut count = sequence_count(query, "documents");
    if count.is_none() {
        if let Some(documents) = fields.find(|field| field.key().as_str() == "documents") {
            let Some(documents) = array_of(&documents) else {
                return Err(Rejection::MalformedCommand);
            };
            count = Some(documents.iter_elements().map_while(Result::ok).count() as u64);
        }
    }
    let Some(count) = count else {
        return Err(Rejection::MalformedCommand);
    };
    let mut lowering = Lowering::default();
    push_write(&mut lowering, query, WriteKind::Insert, count);
    Ok(lowering)
}

/// `findAndModify`: one shape (`query`, `sort`, with `new` / `remove` / `upsert` as
/// options), and one update or delete.
pub(super) fn find_and_modify(query: &Query<'_>, fields: &mut Fields<'_>) -> Lowered {
    let mut shape = query.shape(Command::FindAndModify);
    let (mut new, mut remove, mut upsert) = (false, false, false);
    let filter = FilterBuilder::walk(fields.map(Ok), "query", |field| {
        match field.key().as_str() {
            "sort" => shape.sort = document_of(field).map(sort).unwrap_or_default(),
            "new" => new = truth(field).unwrap_or(false),
            "remove" => remove = truth(field).unwrap_or(false),
            "upsert" => upsert = truth(field).unwrap_or(false),
            _ => {}
        }
    })?;
    shape.options = options(&[("new", new), ("remove", remove), ("upsert", upsert)]);
    let kind = if remove {
        WriteKind::Delete
    } else {
        WriteKind::Update
    };
    let mut lowering = Lowering {
        shapes: vec![occurrence(shape, filter)],
        ..Lowering::default()
    };
    push_write(&mut lowering, query, kind, 1);
    Ok(lowering)
}

/// Lowers each statement of `identifier` (sequence, else body array) with `lower_statement`,
/// and counts them as `kind` load. A statement that fails is skipped and its reason kept.
/// The fields of one statement; an unreadable one makes the command malformed.
fn elements(statement: &RawDocument) -> impl Iterator<Item = Result<RawElement<'_>, Rejection>> {
    statement
        .iter_elements()
        .map(|field| field.map_err(|_| Rejection::MalformedCommand))
}

fn statements(
    query: &Query<'_>,
    fields: &mut Fields<'_>,
    identifier: &str,
    kind: WriteKind,
    lower_statement: impl Fn(&RawDocument) -> Result<ShapeOccurrence, Rejection>,
) -> Lowered {
    let mut lowering = Lowering::default();
    let record = |lowering: &mut Lowering, statement: Option<&RawDocument>| match statement
        .ok_or(Rejection::MalformedCommand)
        .and_then(&lower_statement)
    {
        Ok(occurrence) => lowering.shapes.push(occurrence),
        Err(reason) => lowering.rejected = Some(reason),
    };
    let count = match sequence_count(query, identifier) {
        Some(count) => {
            for sequence in query.command.sequences.iter() {
                if sequence.identifier == identifier {
                    for statement in &sequence.documents {
                        record(&mut lowering, Some(statement));
                    }
                }
            }
            count
        }
        None => {
            let Some(body) = fields.find(|field| field.key().as_str() == identifier) else {
                return Err(Rejection::MalformedCommand);
            };
            let Some(array) = array_of(&body) else {
                return Err(Rejection::MalformedCommand);
            };
            let mut count = 0;
            for statement in array.iter_elements() {
                count += 1;
                record(&mut lowering, statement.ok().as_ref().and_then(document_of));
            }
            count
        }
    };
    push_write(&mut lowering, query, kind, count);
    Ok(lowering)
}

/// How many documents the kind 1 sequences named `identifier` carry; `None` without any.
fn sequence_count(query: &Query<'_>, identifier: &str) -> Option<u64> {
    query
        .command
        .sequences
        .iter()
        .filter(|sequence| sequence.identifier == identifier)
        // The decoder may count documents it did not keep.
        .map(|sequence| sequence.count.max(sequence.documents.len()) as u64)
        .reduce(|total, count| total.saturating_add(count))
}

fn push_write(lowering: &mut Lowering, query: &Query<'_>, kind: WriteKind, count: u64) {
    if count > 0 {
        lowering.writes.push(Write {
            namespace: query.namespace(),
            kind,
            count,
        });
    }
}

/// The names of the options that are on, in the order given (which is sorted).
fn options(flags: &[(&str, bool)]) -> Vec<String> {
    flags
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| (*name).to_owned())
        .collect()
}
