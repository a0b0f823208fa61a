//! One command per case, with the exact canonical JSON of every shape it lowers into.
//!
//! ## Layout
//! - this file: the loop over every case, and the reader of the case files.
//! - `filters.json`: the filter rules, one `find` each.
//! - `commands.json`: every command kind, and commands that give no shape.
//!
//! A case file is a JSON list of `{ name, command, sequence?, shapes }`: the command body in
//! MongoDB extended JSON (key order kept, `$numberInt`/`$numberLong` where the BSON type is not
//! the one a plain JSON number reads as), an optional kind 1 document sequence, and the exact
//! canonical JSON of every shape, in order.

use bson::{rawdoc, Document, RawDocumentBuf};
use serde::Deserialize;
use serde_json::Value;

use super::*;
use crate::testing::mongo::filter_rules;

pub(super) struct Case {
    name: String,
    pub(super) command: MongoCommand,
    shapes: Vec<Value>,
}

/// A `find` on `collection` with `filter` alone: one `find` shape, its filter the AND of
/// `conjuncts`.
fn find(name: &str, collection: &str, filter: RawDocumentBuf, conjuncts: Vec<Value>) -> Case {
    Case {
        name: name.to_owned(),
        command: command(rawdoc! { "find": collection, "filter": filter }),
        shapes: vec![shape(collection, "find", and(conjuncts))],
    }
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

/// One case of a table file: a command on database `app`, the kind 1 sequence it carries if
/// any, and the exact canonical JSON of every shape it lowers into, in order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseRecord {
    name: String,
    command: Document,
    #[serde(default)]
    sequence: Option<SequenceRecord>,
    shapes: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceRecord {
    identifier: String,
    documents: Vec<Document>,
}

fn raw(document: &Document) -> RawDocumentBuf {
    RawDocumentBuf::try_from(document).expect("a table document")
}

/// Every case of the two case files.
pub(super) fn table_cases() -> impl Iterator<Item = Case> {
    [
        ("filters.json", include_str!("filters.json")),
        ("commands.json", include_str!("commands.json")),
    ]
    .into_iter()
    .flat_map(|(file, text)| {
        serde_json::from_str::<Vec<CaseRecord>>(text).unwrap_or_else(|err| panic!("{file}: {err}"))
    })
    .map(|record| {
        let body = raw(&record.command);
        let command = match record.sequence {
            Some(sequence) => with_sequence(
                body,
                &sequence.identifier,
                sequence.documents.iter().map(raw).collect(),
            ),
            None => command(body),
        };
        Case {
            name: record.name,
            command,
            shapes: record.shapes,
        }
    })
}

#[test]
fn every_case_lowers_to_its_exact_canonical_shapes() {
    let cases: Vec<Case> = shared_filter_cases().chain(table_cases()).collect();
    assert!(cases.len() >= 25);
    for case in cases {
        let lowering = lower(&case.command);
        assert_eq!(lowering.rejected, None, "{}", case.name);
        assert_eq!(canonical(&lowering), case.shapes, "{}", case.name);
    }
}

#[test]
fn the_cases_seed_the_mongo_fuzz_target() {
    let seeds: Vec<Vec<u8>> = table_cases()
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
