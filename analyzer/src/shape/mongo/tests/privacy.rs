//! Values never leave the lowering: marker values planted everywhere a command carries a
//! value must not appear in any canonical form or in the lowering's debug output.

use bson::{rawdoc, RawDocumentBuf};

use super::*;

const MARKER: &str = "zq7MARKERx81";
const MARKER_NUMBER: i64 = 918_273_645;

fn marked_commands() -> Vec<MongoCommand> {
    let marker_regex = regex(&format!("^{MARKER}"), "i");
    let filter = rawdoc! {
        "email": MARKER,
        "n": MARKER_NUMBER,
        "f": MARKER_NUMBER as f64 + 0.5,
        "status": { "$in": [MARKER, format!("{MARKER}-2")] },
        "tags": { "$all": [MARKER], "$nin": [MARKER_NUMBER] },
        "name": { "$regex": format!("^{MARKER}"), "$options": "" },
        "bio": marker_regex.clone(),
        "age": { "$gt": MARKER_NUMBER, "$ne": MARKER },
        "doc": { "inner": MARKER },
        "seen": { "$exists": MARKER_NUMBER },
        "items": { "$elemMatch": { "sku": MARKER, "$comment": MARKER } },
        "scores": { "$elemMatch": { "$gte": MARKER_NUMBER } },
        "not": { "$not": { "$eq": MARKER } },
        "$or": [{ "a": MARKER }, { "b": { "$lt": MARKER_NUMBER } }],
        "$nor": [{ "c": MARKER }],
        "$text": { "$search": MARKER },
        "$expr": { "$eq": ["$x", MARKER] },
        "$where": format!("this.x == '{MARKER}'"),
        "$comment": MARKER,
    };
    let statement = |q: RawDocumentBuf| rawdoc! { "q": q, "u": { "$set": { "x": MARKER } }, "limit": MARKER_NUMBER };
    vec![
        command(rawdoc! {
            "find": "people",
            "filter": filter.clone(),
            "sort": { "a": MARKER_NUMBER },
            "projection": { "a": MARKER, "b": MARKER_NUMBER },
            "limit": MARKER_NUMBER,
            "skip": MARKER_NUMBER,
            "hint": MARKER,
            "comment": MARKER,
            "let": { "v": MARKER },
        }),
        command(rawdoc! {
            "aggregate": "people",
            "pipeline": [
                { "$match": filter.clone() },
                { "$limit": MARKER_NUMBER },
                { "$lookup": { "from": "other", "localField": "a", "foreignField": "b", "as": "c",
                               "pipeline": [{ "$match": { "x": MARKER } }] } },
                { "$addFields": { "m": MARKER } },
            ],
            "cursor": {},
        }),
        command(rawdoc! { "count": "people", "query": filter.clone(), "limit": MARKER_NUMBER }),
        command(rawdoc! { "distinct": "people", "key": "k", "query": filter.clone() }),
        command(rawdoc! { "update": "people", "updates": [statement(filter.clone())] }),
        with_sequence(
            rawdoc! { "delete": "people" },
            "deletes",
            vec![statement(filter.clone())],
        ),
        with_sequence(
            rawdoc! { "insert": "people" },
            "documents",
            vec![rawdoc! { "email": MARKER, "n": MARKER_NUMBER }],
        ),
        command(rawdoc! {
            "findAndModify": "people",
            "query": filter,
            "update": { "$set": { "x": MARKER } },
            "sort": { "a": MARKER_NUMBER },
        }),
        // Rejected commands must not echo what they could not parse either.
        command(rawdoc! { "find": "people", "filter": { "a": { key(MARKER): MARKER } } }),
        command(rawdoc! { "find": "people", "filter": { "a": { "$type": MARKER } } }),
        command(rawdoc! { "find": "people", "filter": MARKER }),
    ]
}

#[test]
fn marker_values_never_reach_shapes_or_debug_output() {
    let forbidden = [
        MARKER.to_owned(),
        MARKER_NUMBER.to_string(),
        (MARKER_NUMBER as f64 + 0.5).to_string(),
    ];
    let commands = marked_commands();
    let mut shapes = 0;
    for command in &commands {
        let lowering = lower(command);
        shapes += lowering.shapes.len();
        let debug = format!("{lowering:?}");
        let canonical: Vec<String> = lowering
            .shapes
            .iter()
            .map(|occurrence| occurrence.shape.canonical())
            .collect();
        for marker in &forbidden {
            assert!(!debug.contains(marker.as_str()), "{marker} leaked: {debug}");
            for text in &canonical {
                assert!(!text.contains(marker.as_str()), "{marker} leaked: {text}");
            }
        }
    }
    // The markers sat in filters that were lowered, not skipped.
    assert!(shapes >= 8, "only {shapes} shapes");
}
