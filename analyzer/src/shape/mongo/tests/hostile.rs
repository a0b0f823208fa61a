//! Hostile input: every command field and every operator given every odd type, and command
//! bytes damaged one byte at a time. Nothing may panic; the lowering may only reject.

use bson::spec::BinarySubtype;
use bson::{rawdoc, Binary, RawBson, RawDocumentBuf, RawJavaScriptCodeWithScope, Timestamp};

use super::*;
use crate::shape::Rejection;

const COMMANDS: [&str; 13] = [
    "find",
    "aggregate",
    "count",
    "distinct",
    "update",
    "delete",
    "insert",
    "findAndModify",
    "findandmodify",
    "getMore",
    "killCursors",
    "hello",
    "explain",
];

const FIELDS: [&str; 20] = [
    "filter",
    "query",
    "q",
    "sort",
    "projection",
    "limit",
    "skip",
    "pipeline",
    "updates",
    "deletes",
    "documents",
    "cursors",
    "key",
    "remove",
    "new",
    "upsert",
    "multi",
    "u",
    "collection",
    "",
];

const OPERATORS: [&str; 36] = [
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$all",
    "$exists",
    "$type",
    "$regex",
    "$options",
    "$elemMatch",
    "$not",
    "$size",
    "$mod",
    "$near",
    "$geoWithin",
    "$bitsAllSet",
    "$and",
    "$or",
    "$nor",
    "$text",
    "$expr",
    "$where",
    "$jsonSchema",
    "$comment",
    "$match",
    "$sort",
    "$limit",
    "$skip",
    "$lookup",
    "$maxDistance",
    "$_internalX",
    "$",
];

fn odd_values() -> Vec<RawBson> {
    vec![
        RawBson::Int32(-1),
        RawBson::Int32(0),
        RawBson::Int64(i64::MIN),
        RawBson::Double(f64::NAN),
        RawBson::Double(-0.0),
        RawBson::Double(1e300),
        RawBson::String(String::new()),
        RawBson::String("$gt".to_owned()),
        RawBson::Boolean(true),
        RawBson::Null,
        RawBson::Undefined,
        RawBson::MinKey,
        RawBson::MaxKey,
        RawBson::Decimal128(bson::Decimal128::from_bytes([0xff; 16])),
        RawBson::Timestamp(Timestamp {
            time: 1,
            increment: 2,
        }),
        RawBson::Binary(Binary {
            subtype: BinarySubtype::Uuid,
            bytes: vec![0; 16],
        }),
        RawBson::RegularExpression(regex("^(", "zzz")),
        RawBson::JavaScriptCode("1".to_owned()),
        RawBson::JavaScriptCodeWithScope(RawJavaScriptCodeWithScope {
            code: "x".to_owned(),
            scope: rawdoc! { "s": 1 },
        }),
        RawBson::Document(rawdoc! {}),
        RawBson::Document(rawdoc! { "$gt": 1, "b": { "$in": 1 } }),
        RawBson::Document(rawdoc! { "a": { "$elemMatch": { "$or": [1] } } }),
        RawBson::Document(rawdoc! { "$match": 1, "$lookup": { "from": 1 } }),
        RawBson::Document(rawdoc! { "": { "": [] } }),
        bson::rawbson!([]),
        bson::rawbson!([1, "x", null, {}, []]),
        bson::rawbson!([{ "$match": { "$or": [] } }, { "q": 1 }, { "$sort": 1 }]),
        bson::rawbson!([{ "q": { "a": { "$not": { "$regex": 1 } } }, "limit": "x" }]),
    ]
}

fn lower_quietly(command: &MongoCommand) {
    let lowering = lower(command);
    for occurrence in &lowering.shapes {
        let _ = occurrence.shape.canonical();
    }
}

#[test]
fn odd_types_in_every_command_field() {
    let values = odd_values();
    for name in COMMANDS {
        for collection in values.iter().chain([&RawBson::String("c".to_owned())]) {
            for field in FIELDS {
                for value in &values {
                    let mut body = RawDocumentBuf::new();
                    body.append(key(name), collection.clone());
                    body.append(key(field), value.clone());
                    lower_quietly(&command(body.clone()));
                    for identifier in ["updates", "deletes", "documents"] {
                        lower_quietly(&with_sequence(
                            body.clone(),
                            identifier,
                            vec![rawdoc! { key(field): value.clone() }, rawdoc! {}],
                        ));
                    }
                }
            }
        }
    }
}

#[test]
fn odd_operands_for_every_operator_in_every_position() {
    let values = odd_values();
    for operator in OPERATORS {
        for value in &values {
            let mut operand = RawDocumentBuf::new();
            operand.append(key(operator), value.clone());
            let filters = [
                operand.clone(),
                rawdoc! { "a": operand.clone() },
                rawdoc! { "a": { "$elemMatch": operand.clone() } },
                rawdoc! { "a": { "$not": operand.clone() } },
                rawdoc! { "$or": [operand.clone(), { "a": operand.clone() }] },
                rawdoc! { "a": { "$regex": "^x", "$options": value.clone() } },
            ];
            for filter in filters {
                lower_quietly(&command(rawdoc! { "find": "c", "filter": filter.clone() }));
                lower_quietly(&command(rawdoc! {
                    "aggregate": "c",
                    "pipeline": [{ "$match": filter }, { key(operator): value.clone() }],
                }));
            }
        }
    }
}

fn valid_commands() -> Vec<RawDocumentBuf> {
    vec![
        rawdoc! {
            "find": "orders",
            "filter": { "a": { "$in": [1, 2] }, "$or": [{ "b": regex("^x", "i") }, { "c": null }] },
            "sort": { "d": -1 },
            "limit": 1,
        },
        rawdoc! {
            "aggregate": "orders",
            "pipeline": [{ "$match": { "a": { "$elemMatch": { "$gt": 1 } } } }, { "$lookup": { "from": "u", "foreignField": "f" } }],
        },
        rawdoc! { "update": "orders", "updates": [{ "q": { "a": { "$not": { "$type": [1, "string"] } } }, "multi": true }] },
        rawdoc! { "killCursors": "orders", "cursors": [1_i64, 2_i64] },
    ]
}

#[test]
fn damaged_bytes_never_panic() {
    for valid in valid_commands() {
        let bytes = valid.as_bytes().to_vec();
        for position in 0..bytes.len() {
            for replacement in [0x00, 0x01, 0x02, 0x03, 0x04, 0x0b, 0x10, 0x7f, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[position] = replacement;
                if let Ok(body) = RawDocumentBuf::from_bytes(damaged) {
                    lower_quietly(&command(body));
                }
            }
        }
        // Truncated at every length, with the length prefix and terminator made to agree.
        for length in 5..bytes.len() {
            let mut truncated = bytes[..length].to_vec();
            truncated[..4].copy_from_slice(&(length as i32).to_le_bytes());
            if let Some(last) = truncated.last_mut() {
                *last = 0;
            }
            if let Ok(body) = RawDocumentBuf::from_bytes(truncated) {
                lower_quietly(&command(body));
            }
        }
    }
}

#[test]
fn deep_nesting_of_every_kind_is_rejected_without_overflow() {
    let wrappers: [fn(RawDocumentBuf) -> RawDocumentBuf; 5] = [
        |inner| rawdoc! { "$and": [inner] },
        |inner| rawdoc! { "$or": [inner] },
        |inner| rawdoc! { "$nor": [inner] },
        |inner| rawdoc! { "a": { "$elemMatch": inner } },
        |inner| rawdoc! { "a": { "$not": { "$elemMatch": inner } } },
    ];
    for wrap in wrappers {
        let mut filter = rawdoc! { "a": 1 };
        for _ in 0..2_000 {
            filter = wrap(filter);
        }
        let lowering = lower(&command(rawdoc! { "find": "c", "filter": filter }));
        assert_eq!(lowering.rejected, Some(Rejection::MalformedFilter));
    }
}
