//! The read commands: `find`, `aggregate`, `count` and `distinct`.
//!
//! Each gives one shape on its collection; an aggregate also gives one per `$lookup`, on
//! the foreign collection, because the join probes `foreignField` once per input document.

use bson::raw::RawElement;

use super::filter::{leaf, FilterBuilder};
use super::modifiers::{is_nonzero, projection, sort};
use super::{array_of, document_of, occurrence, str_of, Fields, Lowered, Query};
use crate::shape::{
    Command, Lowering, MongoOperator, OpClass, Predicate, Rejection, Shape, ShapeOccurrence,
    ValueType,
};

/// `find`: `filter`, `sort`, `projection`, and whether `limit` / `skip` are in effect.
pub(super) fn find(query: &Query<'_>, fields: &mut Fields<'_>) -> Lowered {
    let mut shape = query.shape(Command::Find);
    let filter = FilterBuilder::walk(fields.map(Ok), "filter", |field| {
        match field.key().as_str() {
            "sort" => shape.sort = document_of(field).map(sort).unwrap_or_default(),
            "projection" => {
                shape.projection = document_of(field).map(projection).unwrap_or_default();
            }
            _ => limit_or_skip(&mut shape, field),
        }
    })?;
    Ok(one(shape, filter))
}

/// `count`: `query`, and whether `limit` / `skip` are in effect.
pub(super) fn count(query: &Query<'_>, fields: &mut Fields<'_>) -> Lowered {
    let mut shape = query.shape(Command::Count);
    let filter = FilterBuilder::walk(fields.map(Ok), "query", |field| {
        limit_or_skip(&mut shape, field)
    })?;
    Ok(one(shape, filter))
}

/// Whether `limit` / `skip` are in effect, for the commands that take them.
fn limit_or_skip(shape: &mut Shape, field: &RawElement<'_>) {
    match field.key().as_str() {
        "limit" => shape.limit = is_nonzero(field),
        "skip" => shape.skip = is_nonzero(field),
        _ => {}
    }
}

/// `distinct`: `query`, with the distinct `key` as the projection.
pub(super) fn distinct(query: &Query<'_>, fields: &mut Fields<'_>) -> Lowered {
    let mut shape = query.shape(Command::Distinct);
    let filter = FilterBuilder::walk(fields.map(Ok), "query", |field| {
        if field.key().as_str() == "key" {
            shape.projection = str_of(field)
                .map(|key| vec![key.to_owned()])
                .unwrap_or_default();
        }
    })?;
    Ok(one(shape, filter))
}

/// First stages that do not query the collection's documents through its indexes (change
/// streams, statistics, Atlas Search): such a pipeline has no shape.
const NOT_A_COLLECTION_QUERY: [&str; 13] = [
    "$changeStream",
    "$changeStreamSplitLargeEvent",
    "$collStats",
    "$indexStats",
    "$currentOp",
    "$listSessions",
    "$listLocalSessions",
    "$listSearchIndexes",
    "$planCacheStats",
    "$queryStats",
    "$search",
    "$searchMeta",
    "$vectorSearch",
];

/// Where the leading run of a pipeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leading {
    /// Still in the leading `$match` stages: they are ANDed into the filter.
    Match,
    /// In the `$sort` / `$limit` / `$skip` stages that follow them.
    Modifiers,
    /// Past the first other stage: only `$lookup`s are still looked for.
    Done,
}

/// `aggregate`: the leading `$match` stages are the filter, the `$sort` / `$limit` / `$skip`
/// right after them the modifiers; every `$lookup` adds a shape on its `from` collection.
pub(super) fn aggregate(query: &Query<'_>, fields: &mut Fields<'_>) -> Lowered {
    let Some(pipeline) = fields.find(|field| field.key().as_str() == "pipeline") else {
        return Err(Rejection::MalformedCommand);
    };
    let Some(pipeline) = array_of(&pipeline) else {
        return Err(Rejection::MalformedCommand);
    };
    let mut shape = query.shape(Command::Aggregate);
    let mut filter = FilterBuilder::default();
    let mut lookups = Vec::new();
    let mut leading = Leading::Match;
    let mut sorted = false;
    for (position, stage) in pipeline.iter_elements().enumerate() {
        let Some(stage) = stage.ok().as_ref().and_then(document_of) else {
            return Err(Rejection::MalformedCommand);
        };
        let Some(Ok(stage)) = stage.iter_elements().next() else {
            return Err(Rejection::MalformedCommand);
        };
        let name = stage.key().as_str();
        if position == 0 && NOT_A_COLLECTION_QUERY.contains(&name) {
            return Ok(Lowering::default());
        }
        match (leading, name) {
            (Leading::Match, "$match") => {
                let Some(document) = document_of(&stage) else {
                    return Err(Rejection::MalformedFilter);
                };
                if filter.and(document).is_err() {
                    return Err(Rejection::MalformedFilter);
                }
            }
            (Leading::Match | Leading::Modifiers, "$sort") => {
                if !sorted {
                    shape.sort = document_of(&stage).map(sort).unwrap_or_default();
                    sorted = true;
                }
                leading = Leading::Modifiers;
            }
            (Leading::Match | Leading::Modifiers, "$limit") => {
                shape.limit |= is_nonzero(&stage);
                leading = Leading::Modifiers;
            }
            (Leading::Match | Leading::Modifiers, "$skip") => {
                shape.skip |= is_nonzero(&stage);
                leading = Leading::Modifiers;
            }
            (_, "$lookup") => {
                lookups.extend(lookup(query, &stage));
                leading = Leading::Done;
            }
            _ => leading = Leading::Done,
        }
    }
    let mut lowering = one(shape, filter);
    lowering.shapes.extend(lookups);
    Ok(lowering)
}

/// The probe a `$lookup` with `localField`/`foreignField` makes on its `from` collection:
/// equality on `foreignField`, with a value of whatever type the local documents hold.
fn lookup(query: &Query<'_>, stage: &RawElement<'_>) -> Option<ShapeOccurrence> {
    let spec = document_of(stage)?;
    let (mut from, mut foreign_field) = (None, None);
    for field in spec.iter_elements().map_while(Result::ok) {
        match field.key().as_str() {
            "from" => from = str_of(&field),
            "foreignField" => foreign_field = str_of(&field),
            _ => {}
        }
    }
    let from = from.filter(|from| !from.is_empty())?;
    let mut shape = Shape::new(query.on(from), Command::Lookup);
    shape.filter = Predicate::And(vec![leaf(
        foreign_field?,
        MongoOperator::Eq,
        OpClass::Eq,
        ValueType::Other,
    )]);
    Some(shape.into())
}

/// A lowering of one shape with its filter.
fn one(shape: Shape, filter: FilterBuilder) -> Lowering {
    Lowering {
        shapes: vec![occurrence(shape, filter)],
        ..Lowering::default()
    }
}
