//! BSON types as a shape sees them: the [`ValueType`] a literal lowers to, the truth value
//! MongoDB gives an operand (`$exists: 0`), and the type names `$type` accepts.
//!
//! Everything here reads the element's type tag, and a value only where its truth is asked,
//! so strings and documents are never decoded to find their type.

use std::borrow::Cow;

use bson::raw::{RawArray, RawBsonRef, RawElement};
use bson::spec::ElementType;
use bson::Decimal128;

use crate::shape::ValueType;

/// The shape type of a BSON element type: literals become their type.
pub(super) fn value_type(element_type: ElementType) -> ValueType {
    match element_type {
        ElementType::Double | ElementType::Int32 | ElementType::Int64 | ElementType::Decimal128 => {
            ValueType::Number
        }
        ElementType::String | ElementType::Symbol => ValueType::String,
        ElementType::Boolean => ValueType::Bool,
        ElementType::Null | ElementType::Undefined => ValueType::Null,
        ElementType::DateTime | ElementType::Timestamp => ValueType::Date,
        ElementType::ObjectId => ValueType::ObjectId,
        ElementType::EmbeddedDocument => ValueType::Object,
        ElementType::Array => ValueType::Array,
        ElementType::RegularExpression => ValueType::Regex,
        ElementType::Binary => ValueType::BinData,
        ElementType::JavaScriptCode
        | ElementType::JavaScriptCodeWithScope
        | ElementType::DbPointer
        | ElementType::MinKey
        | ElementType::MaxKey => ValueType::Other,
    }
}

/// The type of a list operand (`$in`, `$nin`, `$all`) with its length dropped: the element
/// type when every element has the same one, otherwise (mixed, or empty) `Array`.
///
/// `None` when the array cannot be read.
pub(super) fn list_type(array: &RawArray) -> Option<ValueType> {
    let mut common = None;
    for element in array.iter_elements() {
        let element_type = value_type(element.ok()?.element_type());
        match common {
            None => common = Some(element_type),
            Some(seen) if seen == element_type => {}
            Some(_) => common = Some(ValueType::Array),
        }
    }
    Some(common.unwrap_or(ValueType::Array))
}

/// MongoDB's truth value of an operand (`BSONElement::trueValue`): false for `false`, zero,
/// null and undefined; true for anything else. `None` when the value cannot be read.
pub(super) fn truth(element: &RawElement<'_>) -> Option<bool> {
    match element.element_type() {
        ElementType::Null | ElementType::Undefined => return Some(false),
        ElementType::Boolean
        | ElementType::Int32
        | ElementType::Int64
        | ElementType::Double
        | ElementType::Decimal128 => {}
        _ => return Some(true),
    }
    Some(match element.value().ok()? {
        RawBsonRef::Boolean(value) => value,
        RawBsonRef::Int32(value) => value != 0,
        RawBsonRef::Int64(value) => value != 0,
        RawBsonRef::Double(value) => value != 0.0,
        RawBsonRef::Decimal128(value) => decimal_signum(value) != 0,
        _ => true,
    })
}

/// The sign of a decimal: -1, 0 or 1. Zero has one encoding per exponent; all share a zero
/// coefficient, which is the low 113 bits.
pub(super) fn decimal_signum(value: Decimal128) -> i8 {
    let bits = u128::from_le_bytes(value.bytes());
    if bits & ((1u128 << 113) - 1) == 0 {
        0
    } else if bits >> 127 == 1 {
        -1
    } else {
        1
    }
}

/// The type aliases `$type` accepts. Anything else is an error in MongoDB, and since an
/// unknown string could be data, it is never kept.
const TYPE_ALIASES: [&str; 22] = [
    "double",
    "string",
    "object",
    "array",
    "binData",
    "undefined",
    "objectId",
    "bool",
    "date",
    "null",
    "regex",
    "dbPointer",
    "javascript",
    "symbol",
    "javascriptWithScope",
    "int",
    "timestamp",
    "long",
    "decimal",
    "minKey",
    "maxKey",
    "number",
];

/// The `$type` alias as a static name, if `name` is one.
fn type_alias(name: &str) -> Option<&'static str> {
    TYPE_ALIASES.iter().copied().find(|alias| *alias == name)
}

/// Whether `code` is a BSON type number `$type` accepts (1 to 19, -1 MinKey, 127 MaxKey).
fn is_type_code(code: i64) -> bool {
    matches!(code, 1..=19 | -1 | 127)
}

/// The `$type` operand as a constant: an alias or a type number, or a sorted list of them
/// joined with `,`. Only names MongoDB knows are kept.
pub(super) fn type_names(element: &RawElement<'_>) -> Option<String> {
    if element.element_type() != ElementType::Array {
        return type_name(element).map(Cow::into_owned);
    }
    let mut names = Vec::new();
    for name in super::array_of(element)?.iter_elements() {
        names.push(type_name(&name.ok()?)?);
    }
    if names.is_empty() {
        return None;
    }
    names.sort_unstable();
    names.dedup();
    Some(names.join(","))
}

fn type_name(element: &RawElement<'_>) -> Option<Cow<'static, str>> {
    let code = match element.value().ok()? {
        RawBsonRef::String(name) => return type_alias(name).map(Cow::Borrowed),
        RawBsonRef::Int32(code) => i64::from(code),
        RawBsonRef::Int64(code) => code,
        RawBsonRef::Double(code) if code.fract() == 0.0 && code.abs() < 1e3 => code as i64,
        _ => return None,
    };
    if is_type_code(code) {
        Some(Cow::Owned(code.to_string()))
    } else {
        None
    }
}
