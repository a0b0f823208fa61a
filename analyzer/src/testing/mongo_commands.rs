//! Generated `find` commands for the tests of the lowering cache's key: filters of few field
//! names and operators over values of every type, nested in `$and` / `$or` / `$nor`, with or
//! without sort, limit and projection, shaped as a driver sends them. Shared by the
//! analyzer's key tests and the proxy's, which checks the key it gathers on its validation
//! walk against the analyzer's.

use bson::{doc, Bson, Document};
use proptest::prelude::*;

/// A `find` with `filter` and the optional modifiers, as a driver sends it.
pub fn find(
    filter: Document,
    sort: Option<Document>,
    limit: Option<Bson>,
    projected: bool,
) -> Document {
    let mut body = doc! { "find": "orders", "filter": filter };
    if let Some(sort) = sort {
        body.insert("sort", sort);
    }
    if projected {
        body.insert("projection", doc! { "_id": 0, "total": 1 });
    }
    if let Some(limit) = limit {
        body.insert("limit", limit);
    }
    body.insert("lsid", doc! { "id": 7_i64 });
    body.insert("$db", "app");
    body
}

/// A filter value: any type, so keys split by type and lowerings by what MongoDB reads.
pub fn value() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        prop_oneof![Just(0.0), Just(-1.0), Just(2.5), Just(f64::NAN)].prop_map(Bson::Double),
        "[a-c]{0,3}".prop_map(Bson::String),
        any::<bool>().prop_map(Bson::Boolean),
        Just(Bson::Null),
        Just(Bson::Document(doc! { "x": 1 })),
    ]
}

/// An operator document: `{<operator>: <value or list>}`.
pub fn operand() -> impl Strategy<Value = Bson> {
    let field = prop_oneof![Just("a"), Just("b"), Just("c.d")];
    let operator = prop_oneof![
        Just("$eq"),
        Just("$ne"),
        Just("$gt"),
        Just("$lte"),
        Just("$exists"),
        Just("$in"),
        Just("$nin"),
        Just("$all"),
        Just("$size"),
        Just("$bogus"),
    ];
    (
        field,
        operator,
        value(),
        prop::collection::vec(value(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(_, operator, value, list, as_list)| {
            let operand = if as_list && operator != "$exists" {
                Bson::Array(list)
            } else {
                value
            };
            Bson::Document(doc! { operator: operand })
        })
}

/// A filter of leaves on a few fields, nested up to three levels in logical operators.
pub fn filter() -> impl Strategy<Value = Document> {
    let leaf = (
        prop_oneof![Just("a"), Just("b"), Just("c.d")],
        prop_oneof![value(), operand()],
    )
        .prop_map(|(field, value)| doc! { field: value });
    leaf.prop_recursive(3, 12, 3, |inner| {
        (
            prop_oneof![Just("$and"), Just("$or"), Just("$nor"), Just("x")],
            prop::collection::vec(inner.clone(), 0..3),
            inner,
        )
            .prop_map(|(operator, branches, rest)| {
                let mut filter = rest;
                let branches: Vec<Bson> = branches.into_iter().map(Bson::Document).collect();
                filter.insert(operator, branches);
                filter
            })
    })
}

/// A sort (of any direction's sign), a limit (zero, positive or negative) and whether
/// fields are projected.
pub fn modifiers() -> impl Strategy<Value = (Option<Document>, Option<Bson>, bool)> {
    (
        prop::option::of(
            prop::sample::select(vec![-2, -1, 0, 1, 3]).prop_map(|sign| {
                doc! { "at": sign, "b": -sign }
            }),
        ),
        prop::option::of(prop_oneof![Just(0), Just(5), Just(-5)].prop_map(Bson::Int32)),
        any::<bool>(),
    )
}

/// A command body of every kind the key reads or refuses: a `find` as [`find`] makes, a
/// `count` with its `query`, either with a regex or a `$type` somewhere (which the key
/// refuses), another command, or no `$db`.
pub fn body() -> impl Strategy<Value = Document> {
    let refused = prop_oneof![
        Just(None),
        Just(Some(doc! { "name": { "$regex": "^a", "$options": "i" } })),
        Just(Some(doc! { "name": { "$type": "string" } })),
        Just(Some(
            doc! { "name": Bson::RegularExpression(super::mongo::regex("^a", "")) }
        )),
    ];
    (
        filter(),
        modifiers(),
        refused,
        prop::sample::select(vec!["find", "count", "aggregate", "find-empty", "no-db"]),
    )
        .prop_map(|(mut filter, (sort, limit, projected), refused, command)| {
            if let Some(refused) = refused {
                filter.extend(refused);
            }
            let mut body = find(filter, sort, limit, projected);
            match command {
                "count" | "aggregate" => {
                    let mut renamed = doc! { command: "orders" };
                    for (name, value) in body.iter().skip(1) {
                        let name = if name == "filter" {
                            "query"
                        } else {
                            name.as_str()
                        };
                        renamed.insert(name, value.clone());
                    }
                    body = renamed;
                }
                "find-empty" => {
                    body.insert("find", "");
                }
                "no-db" => {
                    body.remove("$db");
                }
                _ => {}
            }
            body
        })
}
