//! One command per case, with the exact canonical JSON of every shape it lowers into.
//!
//! ## Layout
//! - `filters`: the filter rules, one `find` each.
//! - `commands`: every command kind, and commands that give no shape.

mod commands;
mod filters;

use bson::{rawdoc, RawDocumentBuf};
use serde_json::Value;

use super::*;
use crate::testing::mongo::filter_rules;

struct Case {
    name: &'static str,
    command: MongoCommand,
    shapes: Vec<Value>,
}

fn case(name: &'static str, command: MongoCommand, shapes: Vec<Value>) -> Case {
    Case {
        name,
        command,
        shapes,
    }
}

/// A `find` on `collection` with `filter` alone: one `find` shape, its filter the AND of
/// `conjuncts`.
fn find(
    name: &'static str,
    collection: &str,
    filter: RawDocumentBuf,
    conjuncts: Vec<Value>,
) -> Case {
    case(
        name,
        command(rawdoc! { "find": collection, "filter": filter }),
        vec![shape(collection, "find", and(conjuncts))],
    )
}

/// Every filter of the table shared with the end-to-end test, each in a `find` of its own.
fn shared_filter_cases() -> impl Iterator<Item = Case> {
    filter_rules().into_iter().flat_map(|rule| {
        let conjuncts = rule.conjuncts;
        rule.filters.into_iter().map(move |filter| {
            let filter = RawDocumentBuf::try_from(&filter).expect("a filter document");
            find(rule.name, "orders", filter, conjuncts.clone())
        })
    })
}

#[test]
fn every_case_lowers_to_its_exact_canonical_shapes() {
    let cases: Vec<Case> = shared_filter_cases()
        .chain(filters::cases())
        .chain(commands::cases())
        .collect();
    assert!(cases.len() >= 25);
    for case in cases {
        let lowering = lower(&case.command);
        assert_eq!(lowering.rejected, None, "{}", case.name);
        assert_eq!(canonical(&lowering), case.shapes, "{}", case.name);
    }
}

#[test]
fn the_cases_seed_the_mongo_fuzz_target() {
    let seeds: Vec<Vec<u8>> = filters::cases()
        .into_iter()
        .chain(commands::cases())
        .map(|case| case.command.body.into_bytes())
        .collect();
    let files = crate::testing::seeds::exercise(
        "mongo_command_lowering",
        &seeds,
        crate::fuzzing::mongo_command_lowering,
    );
    assert!(files >= 25, "only {files} committed seeds");
}

#[test]
fn canonical_text_is_the_documented_json() {
    let lowering = lower(&command(
        rawdoc! { "find": "orders", "filter": { "status": "A" } },
    ));
    let [occurrence] = lowering.shapes.as_slice() else {
        panic!("one shape expected, got {lowering:?}");
    };
    assert_eq!(
        occurrence.shape.canonical(),
        concat!(
            r#"{"namespace":{"engine":"mongodb","database":"app","schema":null,"collection":"orders"},"#,
            r#""command":"find","filter":{"and":[{"leaf":{"target":{"field":"status"},"#,
            r#""operator":"$eq","class":"eq","value_type":"string"}}]},"sort":[],"limit":false,"#,
            r#""skip":false,"projection":[],"group_by":[],"options":[]}"#
        )
    );
}
