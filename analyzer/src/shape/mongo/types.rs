//! BSON types as a shape sees them: the [`ValueType`] a literal lowers to, the truth value
//! MongoDB gives an operand (`$exists: 0`), and the type names `$type` accepts.
//!
//! Everything here reads the element's type tag, and a value only where its truth is asked,
//! so strings and documents are never decoded to find their type.

use bson::raw::{RawArray, RawBsonRef, RawElement};
use bson::spec::ElementType;

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
        // Decimal zero has one encoding per exponent; all share a zero coefficient, which
        // is the low 113 bits.
        RawBsonRef::Decimal128(value) => {
            u128::from_le_bytes(value.bytes()) & ((1u128 << 113) - 1) != 0
        }
        _ => true,
    })
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
pub(super) fn type_alias(name: &str) -> Option<&'static str> {
    TYPE_ALIASES.iter().copied().find(|alias| *alias == name)
}

/// Whether `code` is a BSON type number `$type` accepts (1 to 19, -1 MinKey, 127 MaxKey).
pub(super) fn is_type_code(code: i64) -> bool {
    matches!(code, 1..=19 | -1 | 127)
}
