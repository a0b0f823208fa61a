//! MongoDB command → shapes, following MongoDB 8.0's query-shape rules.
//!
//! A command is read once, in place, through [`bson::RawDocument`] iteration: no `Document`
//! is built, most values are judged by their type tag alone (a value is decoded only for
//! its sign, its truth, or a regex pattern to classify), and what is allocated is what the
//! [`Shape`]s keep. No value from the command reaches a shape, an error or a log; the only
//! operands kept are `$exists` flags and `$type` names, as constants.
//!
//! The command's name is its first key, its collection that key's string value, and its
//! database [`MongoCommand::database`]. Session and routing fields (`$db`, `lsid`,
//! `$clusterTime`, `readConcern`, ...) are ignored. Commands that are not queries (hello,
//! ping, SASL, index builds, explain, ...) lower to nothing and are not errors; a query
//! without a collection, or with a filter MongoDB would refuse, is counted as `rejected`.
//!
//! ## Layout
//! - this file: [`lower`], the dispatch on the command name, cursors, and reading helpers.
//! - `read`: `find`, `aggregate` (with `$lookup`), `count`, `distinct`.
//! - `write`: `update`, `delete`, `insert`, `findAndModify`, and their write load.
//! - `filter`: a filter document → [`Predicate`](crate::shape::Predicate) and constants.
//! - `modifiers`: sort, projection, limit and skip.
//! - `cache`: cached lowering of `find` and `count`, keyed by their structure.
//! - `regex`: which regexes are index prefixes.
//! - `types`: BSON types → [`ValueType`](crate::shape::ValueType), `$type` names, truth.

pub mod cache;
mod filter;
mod modifiers;
mod read;
mod regex;
mod types;
mod write;

#[cfg(test)]
mod tests;

use bson::raw::{RawArray, RawDocument, RawElement, RawIter};
use bson::RawBsonRef;

use super::{Command, Lowering, Namespace, Rejection, Shape, ShapeOccurrence};
use crate::command::MongoCommand;

/// Lower one MongoDB command into shapes, writes and cursor bookkeeping.
///
/// Never panics; input MongoDB would refuse yields a `rejected` reason instead.
pub fn lower(command: &MongoCommand) -> Lowering {
    let mut elements = command.body.iter_elements();
    let first = match elements.next() {
        None => return Lowering::default(),
        Some(Ok(first)) => first,
        Some(Err(_)) => return Lowering::rejected_as(Rejection::MalformedCommand),
    };
    let kind = match first.key().as_str() {
        "find" => QueryKind::Find,
        "aggregate" => QueryKind::Aggregate,
        "count" => QueryKind::Count,
        "distinct" => QueryKind::Distinct,
        "update" => QueryKind::Update,
        "delete" => QueryKind::Delete,
        "insert" => QueryKind::Insert,
        "findAndModify" | "findandmodify" => QueryKind::FindAndModify,
        "getMore" => return get_more(&first),
        "killCursors" => return kill_cursors(Fields::new(elements)),
        _ => return Lowering::default(),
    };
    let collection = match str_of(&first) {
        Some(collection) if !collection.is_empty() => collection,
        // `aggregate: 1` runs against the database ($currentOp, $documents): no collection.
        _ if kind == QueryKind::Aggregate && is_number(&first) => return Lowering::default(),
        _ => return Lowering::rejected_as(Rejection::MissingCollection),
    };
    let query = Query {
        command,
        collection,
    };
    let mut fields = Fields::new(elements);
    let lowered = match kind {
        QueryKind::Find => read::find(&query, &mut fields),
        QueryKind::Aggregate => read::aggregate(&query, &mut fields),
        QueryKind::Count => read::count(&query, &mut fields),
        QueryKind::Distinct => read::distinct(&query, &mut fields),
        QueryKind::Update => write::update(&query, &mut fields),
        QueryKind::Delete => write::delete(&query, &mut fields),
        QueryKind::Insert => write::insert(&query, &mut fields),
        QueryKind::FindAndModify => write::find_and_modify(&query, &mut fields),
    };
    if fields.broken {
        return Lowering::rejected_as(Rejection::MalformedCommand);
    }
    lowered.unwrap_or_else(Lowering::rejected_as)
}

/// What a command handler gives: a lowering, or the reason it was rejected as a whole.
type Lowered = Result<Lowering, Rejection>;

/// The commands that read or write a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryKind {
    Find,
    Aggregate,
    Count,
    Distinct,
    Update,
    Delete,
    Insert,
    FindAndModify,
}

/// A query command being lowered: where it runs.
struct Query<'a> {
    command: &'a MongoCommand,
    collection: &'a str,
}

impl Query<'_> {
    fn namespace(&self) -> Namespace {
        self.on(self.collection)
    }

    /// Another collection of the same database (`$lookup`'s `from`).
    fn on(&self, collection: &str) -> Namespace {
        Namespace::mongo(&*self.command.database, collection)
    }

    fn shape(&self, command: Command) -> Shape {
        Shape::new(self.namespace(), command)
    }
}

/// The command's fields after its first, decoded lazily. Iteration stops at the first
/// unreadable element and remembers it, so a damaged command is rejected as a whole.
struct Fields<'a> {
    elements: RawIter<'a>,
    broken: bool,
}

impl<'a> Fields<'a> {
    fn new(elements: RawIter<'a>) -> Self {
        Self {
            elements,
            broken: false,
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = RawElement<'a>;

    fn next(&mut self) -> Option<RawElement<'a>> {
        match self.elements.next()? {
            Ok(element) => Some(element),
            Err(_) => {
                self.broken = true;
                None
            }
        }
    }
}

/// `getMore`: the cursor it continues, so its time counts toward the shape that opened it.
fn get_more(first: &RawElement<'_>) -> Lowering {
    Lowering {
        continues_cursor: cursor_id(first),
        ..Lowering::default()
    }
}

/// `killCursors`: the cursors the client closed.
fn kill_cursors(fields: Fields<'_>) -> Lowering {
    let mut closed = Vec::new();
    for field in fields {
        if field.key().as_str() != "cursors" {
            continue;
        }
        if let Some(cursors) = array_of(&field) {
            closed.extend(
                cursors
                    .iter_elements()
                    .map_while(Result::ok)
                    .filter_map(|cursor| cursor_id(&cursor)),
            );
        }
    }
    Lowering {
        closes_cursors: closed,
        ..Lowering::default()
    }
}

fn cursor_id(element: &RawElement<'_>) -> Option<i64> {
    match element.value().ok()? {
        RawBsonRef::Int64(id) => Some(id),
        RawBsonRef::Int32(id) => Some(id.into()),
        _ => None,
    }
}

/// One execution of a shape: the shape with its filter, and the filter's constants.
fn occurrence(mut shape: Shape, filter: filter::FilterBuilder) -> ShapeOccurrence {
    let (predicate, constants) = filter.finish();
    shape.filter = predicate;
    ShapeOccurrence {
        constants,
        ..ShapeOccurrence::from(shape)
    }
}

fn document_of<'a>(element: &RawElement<'a>) -> Option<&'a RawDocument> {
    match element.value().ok()? {
        RawBsonRef::Document(document) => Some(document),
        _ => None,
    }
}

fn array_of<'a>(element: &RawElement<'a>) -> Option<&'a RawArray> {
    match element.value().ok()? {
        RawBsonRef::Array(array) => Some(array),
        _ => None,
    }
}

fn str_of<'a>(element: &RawElement<'a>) -> Option<&'a str> {
    match element.value().ok()? {
        RawBsonRef::String(text) => Some(text),
        _ => None,
    }
}

fn is_number(element: &RawElement<'_>) -> bool {
    types::value_type(element.element_type()) == crate::shape::ValueType::Number
}
