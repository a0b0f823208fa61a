//! MongoDB traffic through the real proxy yields exactly the right shapes.
//!
//! A table of driver operations, each run through `indextap proxy` against a collection of
//! its own, each with the exact shapes it must produce in `/api/v1/shapes` (the whole `shape`
//! object, namespace included), how often each ran, and the write load it must add. The
//! expectations follow MongoDB 8.0's query-shape rules: literals become their type, `$in`
//! lists of any length are one shape, implicit `$and` / `$eq` are explicit and the children
//! of an `$and` / `$or` are sorted, dotted paths stay as written, only an anchored
//! case-sensitive regex is a prefix, sort directions are kept, limit / skip are reduced to
//! presence, and a `getMore` continues the shape that opened its cursor.
//!
//! Seed data goes straight to the server, so the only traffic the proxy sees per collection
//! is the operation under test.
//!
//! ## Layout
//! - this file: the test (run every case, poll, compare), the case model, the expectation
//!   builders (`shape`, `leaf`, `sort_key`, ...) and the comparison (`check`).
//! - `finds`: the `find` cases (filters, modifiers, cursors).
//! - `commands`: aggregate, count, distinct, update, delete, findAndModify, insert.

#[path = "mongo_shapes/commands.rs"]
mod commands;
#[path = "mongo_shapes/finds.rs"]
mod finds;
mod mongo_common;

use std::future::Future;
use std::pin::Pin;

use bson::{doc, DateTime, Document};
use indextap_analyzer::testing::mongo::{self, filter_rules};
use indextap_analyzer::testing::{and, leaf, sort_key};
use indextap_tests::capture::write_counts;
use mongo_common::{shapes_on, wait_until, writes_on, MongoBehindProxy};
use mongodb::Collection;
use serde_json::{json, Value};

/// Every case runs in this database, on a collection named after the case.
const DATABASE: &str = "shapes";
/// Documents seeded into every case's collection (the getMore case reads all of them).
const SEEDED: usize = 45;

type OpFuture = Pin<Box<dyn Future<Output = mongodb::error::Result<()>> + Send>>;
/// An operation under test, on the case's collection reached through the proxy.
type Op = Box<dyn Fn(Collection<Document>) -> OpFuture>;

fn op<F, Fut>(run: F) -> Op
where
    F: Fn(Collection<Document>) -> Fut + 'static,
    Fut: Future<Output = mongodb::error::Result<()>> + Send + 'static,
{
    Box::new(move |collection| Box::pin(run(collection)))
}

/// One shape a case must produce.
struct Expected {
    shape: Value,
    count: u64,
    /// Documents returned, getMore batches included, when the case pins it.
    returned: Option<u64>,
    /// getMore round trips at least this many, when the case pins it.
    min_continuations: Option<u64>,
}

/// The write load a case must add to its collection: (inserts, updates, deletes).
type WriteLoad = Option<(u64, u64, u64)>;

/// The shapes a case must produce, given its collection's name.
type Shapes = Box<dyn Fn(&str) -> Vec<Expected>>;

struct Case {
    /// Also the collection's name.
    name: &'static str,
    run: Op,
    /// The shapes on the case's collection and on `{name}_users` (the `$lookup` target).
    shapes: Shapes,
    writes: WriteLoad,
}

fn case(
    name: &'static str,
    run: Op,
    shapes: impl Fn(&str) -> Vec<Expected> + 'static,
    writes: WriteLoad,
) -> Case {
    Case {
        name,
        run,
        shapes: Box::new(shapes),
        writes,
    }
}

/// A case that reads a `find` of each of `filters` to its end; together they must make one
/// `find` shape whose filter is the AND of `conjuncts`, counted once per filter.
fn finds(name: &'static str, filters: Vec<Document>, conjuncts: Vec<Value>) -> Case {
    let count = u64::try_from(filters.len()).unwrap_or(u64::MAX);
    let run = op(move |collection| {
        let filters = filters.clone();
        async move {
            for filter in filters {
                mongo_common::drain(collection.find(filter).await?).await?;
            }
            Ok(())
        }
    });
    let shapes = move |c: &str| {
        let filter = and(conjuncts.clone());
        vec![times(
            shape(c, json!({ "command": "find", "filter": filter })),
            count,
        )]
    };
    case(name, run, shapes, None)
}

fn seed_document(n: usize) -> Document {
    let status = ["A", "B", "C"][n % 3];
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    doc! {
        "uid": n % 5,
        "status": status,
        "qty": n,
        "sku": format!("sku-{n}"),
        "name": format!("smith-{n}"),
        "email": format!("user{n}@example.com"),
        "address": { "city": "Lyon", "zip": "69001" },
        "items": [ { "sku": format!("sku-{n}"), "qty": n % 4 } ],
        "scores": [n % 100, (n * 7) % 100],
        "created": DateTime::from_millis(1_700_000_000_000 + n * 60_000),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_of_operations_yields_exact_shapes() {
    let harness = MongoBehindProxy::start().await;
    let proxied = harness.client.database(DATABASE);
    let cases = cases();
    assert!(cases.len() >= 22, "the table covers every operation");

    for case in &cases {
        let seed: Vec<Document> = (0..SEEDED).map(seed_document).collect();
        for collection in [case.name.to_string(), format!("{}_users", case.name)] {
            harness.seeded(DATABASE, &collection, seed.clone()).await;
        }
        (case.run)(proxied.collection(case.name))
            .await
            .unwrap_or_else(|err| panic!("{}: the operation failed: {err}", case.name));
        wait_until(case.name, || check(case, &harness.shapes_document()));
    }

    // Once more at the end: a late observation must not have added anything anywhere.
    let last = harness.shapes_document();
    for case in &cases {
        if let Err(mismatch) = check(case, &last) {
            panic!("{}: changed after the fact\n{mismatch}", case.name);
        }
    }
    assert_eq!(last["rejected"], json!({}), "nothing was rejected");
    assert_eq!(last["other"]["count"], 0, "no shape overflowed");
}

/// `Ok` when the shapes and writes on the case's collections are exactly the expected ones.
fn check(case: &Case, document: &Value) -> Result<(), String> {
    let foreign = format!("{}_users", case.name);
    let mut seen: Vec<&Value> = shapes_on(document, DATABASE, case.name);
    seen.extend(shapes_on(document, DATABASE, &foreign));
    let mut expected = (case.shapes)(case.name);
    expected.sort_by_key(|e| e.shape.to_string());
    seen.sort_by_key(|entry| entry["shape"].to_string());

    let seen_shapes: Vec<&Value> = seen.iter().map(|entry| &entry["shape"]).collect();
    let expected_shapes: Vec<&Value> = expected.iter().map(|e| &e.shape).collect();
    if seen_shapes != expected_shapes {
        return Err(format!(
            "shapes differ\nexpected: {}\nseen:     {}",
            pretty(&expected_shapes),
            pretty(&seen_shapes)
        ));
    }
    for (entry, want) in seen.iter().zip(&expected) {
        let field = |name: &str| entry[name].as_u64().unwrap_or(u64::MAX);
        let mut problems = Vec::new();
        if field("count") != want.count {
            problems.push(format!("count {} != {}", entry["count"], want.count));
        }
        if entry["errors"] != 0 {
            problems.push(format!("errors {}", entry["errors"]));
        }
        if let Some(returned) = want.returned {
            if field("returned") != returned {
                problems.push(format!("returned {} != {returned}", entry["returned"]));
            }
        }
        if let Some(min) = want.min_continuations {
            if field("continuations") < min {
                problems.push(format!("continuations {} < {min}", entry["continuations"]));
            }
        }
        if !problems.is_empty() {
            return Err(format!("{}: {}", want.shape, problems.join(", ")));
        }
    }

    let writes = [case.name, foreign.as_str()]
        .map(|c| {
            writes_on(document, DATABASE, c)
                .map(write_counts)
                .transpose()
        })
        .into_iter()
        .collect::<Result<Vec<_>, String>>()?;
    let expected_writes = case.writes.map(|(inserts, updates, deletes)| {
        json!({
            "namespace": namespace(case.name),
            "inserts": inserts,
            "updates": updates,
            "deletes": deletes,
        })
    });
    if writes[0] != expected_writes || writes[1].is_some() {
        return Err(format!(
            "writes differ: expected {expected_writes:?}, seen {writes:?}"
        ));
    }
    Ok(())
}

fn pretty(values: &[&Value]) -> String {
    serde_json::to_string_pretty(values).unwrap_or_default()
}

// ---- expectation builders: the canonical shape JSON, written out -------------------------

fn namespace(collection: &str) -> Value {
    mongo::namespace(DATABASE, collection)
}

/// A whole shape: `parts` must give `command` and `filter`; every other field not given has
/// its neutral value (no sort, no limit, no skip, all fields, no options).
fn shape(collection: &str, parts: Value) -> Value {
    let Value::Object(parts) = parts else {
        panic!("shape parts must be an object");
    };
    let (Some(command), Some(filter)) = (parts["command"].as_str(), parts.get("filter")) else {
        panic!("shape parts must give command and filter: {parts:?}");
    };
    let mut shape = mongo::shape(DATABASE, collection, command, filter.clone());
    if let Some(shape_fields) = shape.as_object_mut() {
        shape_fields.extend(parts);
    }
    shape
}

/// The shapes of a case that yields one shape, once: `parts` as [`shape`] takes them.
fn one_shape(parts: Value) -> impl Fn(&str) -> Vec<Expected> {
    move |c| vec![once(shape(c, parts.clone()))]
}

fn once(shape: Value) -> Expected {
    times(shape, 1)
}

fn times(shape: Value, count: u64) -> Expected {
    Expected {
        shape,
        count,
        returned: None,
        min_continuations: None,
    }
}

/// The whole table.
fn cases() -> Vec<Case> {
    finds::cases()
        .into_iter()
        .chain(commands::cases())
        .collect()
}
