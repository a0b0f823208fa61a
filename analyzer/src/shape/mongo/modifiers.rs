//! What a query does besides filtering: sort with directions, projected field names, and
//! whether a limit or skip is present. Values (limits, skip counts) are reduced to presence.

use bson::raw::{RawDocument, RawElement};
use bson::spec::ElementType;
use bson::RawBsonRef;

use super::types::decimal_signum;
use crate::shape::{SortKey, Target};

/// A sort specification in the query's order. `$natural` is storage order and
/// `{$meta: ...}` a search score: neither is a key an index can hold, so both are skipped.
pub(super) fn sort(document: &RawDocument) -> Vec<SortKey> {
    let mut keys = Vec::new();
    for element in document.iter_elements().map_while(Result::ok) {
        let field = element.key().as_str();
        if field == "$natural" || element.element_type() == ElementType::EmbeddedDocument {
            continue;
        }
        keys.push(SortKey {
            target: Target::Field(field.to_owned()),
            direction: if is_negative(&element) { -1 } else { 1 },
            nulls_first: None,
        });
    }
    keys
}

/// Projected field names, sorted and without repeats. Their values (1, 0, `$slice`, ...)
/// are not kept.
pub(super) fn projection(document: &RawDocument) -> Vec<String> {
    let mut fields: Vec<String> = document
        .iter_elements()
        .map_while(Result::ok)
        .map(|element| element.key().as_str().to_owned())
        .collect();
    fields.sort_unstable();
    fields.dedup();
    fields
}

/// Whether a `limit` / `skip` is in effect: a number other than zero. Zero means "none".
pub(super) fn is_nonzero(element: &RawElement<'_>) -> bool {
    nonzero(number(element))
}

/// [`is_nonzero`] of a value already read.
pub(super) fn is_nonzero_value(value: RawBsonRef<'_>) -> bool {
    nonzero(number_of(value))
}

fn nonzero(number: Option<Number>) -> bool {
    match number {
        Some(Number::Int(value)) => value != 0,
        Some(Number::Float(value)) => value != 0.0,
        None => false,
    }
}

pub(super) fn is_negative(element: &RawElement<'_>) -> bool {
    match number(element) {
        Some(Number::Int(value)) => value < 0,
        Some(Number::Float(value)) => value < 0.0,
        None => false,
    }
}

enum Number {
    Int(i64),
    Float(f64),
}

fn number(element: &RawElement<'_>) -> Option<Number> {
    match element.element_type() {
        ElementType::Int32 | ElementType::Int64 | ElementType::Double | ElementType::Decimal128 => {
            number_of(element.value().ok()?)
        }
        _ => None,
    }
}

fn number_of(value: RawBsonRef<'_>) -> Option<Number> {
    match value {
        RawBsonRef::Int32(value) => Some(Number::Int(value.into())),
        RawBsonRef::Int64(value) => Some(Number::Int(value)),
        RawBsonRef::Double(value) => Some(Number::Float(value)),
        // Only its sign and whether it is zero matter here.
        RawBsonRef::Decimal128(value) => Some(Number::Int(decimal_signum(value).into())),
        _ => None,
    }
}
