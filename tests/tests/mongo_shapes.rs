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
//! - `table_of_operations_yields_exact_shapes`: the test: run every case, poll, compare.
//! - `cases`: the table.
//! - expectation builders (`shape`, `leaf`, `sort_key`, ...) and the comparison (`check`).

mod mongo_harness;

use std::future::Future;
use std::pin::Pin;

use bson::raw::CString;
use bson::{doc, oid::ObjectId, Bson, DateTime, Document, Regex};
use mongo_harness::{drain, shapes_on, wait_until, writes_on, MongoBehindProxy};
use mongodb::options::ReturnDocument;
use mongodb::Database;
use serde_json::{json, Value};

/// Every case runs in this database, on a collection named after the case.
const DATABASE: &str = "shapes";
/// Documents seeded into every case's collection (the getMore case reads all of them).
const SEEDED: usize = 45;

type OpFuture = Pin<Box<dyn Future<Output = mongodb::error::Result<()>> + Send>>;
/// An operation under test: the database, and the case's collection name.
type Op = Box<dyn Fn(Database, String) -> OpFuture>;

fn op<F, Fut>(run: F) -> Op
where
    F: Fn(Database, String) -> Fut + 'static,
    Fut: Future<Output = mongodb::error::Result<()>> + Send + 'static,
{
    Box::new(move |db, name| Box::pin(run(db, name)))
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

struct Case {
    /// Also the collection's name.
    name: &'static str,
    run: Op,
    /// The shapes on the case's collection and on `{name}_users` (the `$lookup` target).
    shapes: fn(&str) -> Vec<Expected>,
    writes: WriteLoad,
}

fn case(name: &'static str, run: Op, shapes: fn(&str) -> Vec<Expected>, writes: WriteLoad) -> Case {
    Case {
        name,
        run,
        shapes,
        writes,
    }
}

/// A BSON regular expression (not a `$regex` string).
fn regex(pattern: &str, options: &str) -> Regex {
    let cstring = |text: &str| {
        CString::try_from(text.to_string()).unwrap_or_else(|err| panic!("{text:?}: {err}"))
    };
    Regex {
        pattern: cstring(pattern),
        options: cstring(options),
    }
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
    let direct = harness.direct.database(DATABASE);
    let cases = cases();
    assert!(cases.len() >= 22, "the table covers every operation");

    for case in &cases {
        let seed: Vec<Document> = (0..SEEDED).map(seed_document).collect();
        for collection in [case.name.to_string(), format!("{}_users", case.name)] {
            direct
                .collection::<Document>(&collection)
                .insert_many(seed.clone())
                .await
                .unwrap_or_else(|err| panic!("{}: seeding {collection}: {err}", case.name));
        }
        (case.run)(proxied.clone(), case.name.to_string())
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

    let writes = [case.name, foreign.as_str()].map(|c| writes_on(document, DATABASE, c));
    let expected_writes = case.writes.map(|(inserts, updates, deletes)| {
        json!({
            "namespace": namespace(case.name),
            "inserts": inserts,
            "updates": updates,
            "deletes": deletes,
        })
    });
    if writes[0] != expected_writes.as_ref() || writes[1].is_some() {
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
    json!({ "engine": "mongodb", "database": DATABASE, "schema": null, "collection": collection })
}

/// A whole shape: `parts` must give `command` and `filter`; every other field not given has
/// its neutral value (no sort, no limit, no skip, all fields, no options).
fn shape(collection: &str, parts: Value) -> Value {
    let mut shape = json!({
        "namespace": namespace(collection),
        "sort": [],
        "limit": false,
        "skip": false,
        "projection": [],
        "group_by": [],
        "options": [],
    });
    let (Some(shape_fields), Value::Object(parts)) = (shape.as_object_mut(), parts) else {
        panic!("shape parts must be an object");
    };
    assert!(parts.contains_key("command") && parts.contains_key("filter"));
    shape_fields.extend(parts);
    shape
}

fn leaf(field: &str, operator: &str, class: &str, value_type: &str) -> Value {
    json!({ "leaf": {
        "target": { "field": field },
        "operator": operator,
        "class": class,
        "value_type": value_type,
    } })
}

fn and(children: Vec<Value>) -> Value {
    json!({ "and": children })
}

fn sort_key(field: &str, direction: i8) -> Value {
    json!({ "target": { "field": field }, "direction": direction })
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

// ---- the table ----------------------------------------------------------------------------

fn cases() -> Vec<Case> {
    vec![
        case(
            "find_filter_sort_limit_projection",
            op(|db, name| async move {
                let found = db
                    .collection::<Document>(&name)
                    .find(doc! { "status": "A", "qty": { "$gt": 5 } })
                    .sort(doc! { "qty": -1, "_id": 1 })
                    .limit(10)
                    .projection(doc! { "status": 1, "qty": 1, "_id": 0 })
                    .await?;
                drain(found).await.map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        // Children sorted: `qty` before `status`, whatever the order written.
                        "filter": and(vec![
                            leaf("qty", "$gt", "range", "number"),
                            leaf("status", "$eq", "eq", "string"),
                        ]),
                        "sort": [sort_key("qty", -1), sort_key("_id", 1)],
                        "limit": true,
                        "projection": ["_id", "qty", "status"],
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_skip_mixed_sort",
            op(|db, name| async move {
                let found = db
                    .collection::<Document>(&name)
                    .find(doc! {})
                    .sort(doc! { "uid": 1, "created": -1 })
                    .skip(20)
                    .await?;
                drain(found).await.map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![]),
                        "sort": [sort_key("uid", 1), sort_key("created", -1)],
                        "skip": true,
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_in_lists_of_any_length",
            op(|db, name| async move {
                let coll = db.collection::<Document>(&name);
                drain(
                    coll.find(doc! { "sku": { "$in": ["sku-1", "sku-2"] } })
                        .await?,
                )
                .await?;
                let longer = ["sku-3", "sku-4", "sku-5", "sku-6", "sku-7"];
                drain(
                    coll.find(doc! { "sku": { "$in": longer.to_vec() } })
                        .await?,
                )
                .await?;
                Ok(())
            }),
            |c| {
                vec![times(
                    shape(
                        c,
                        json!({
                            "command": "find",
                            "filter": and(vec![leaf("sku", "$in", "in", "string")]),
                        }),
                    ),
                    2,
                )]
            },
            None,
        ),
        case(
            "find_ranges",
            op(|db, name| async move {
                let filter = doc! {
                    "qty": { "$gte": 10, "$lt": 20 },
                    "created": { "$lt": DateTime::from_millis(1_800_000_000_000) },
                };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![
                            leaf("created", "$lt", "range", "date"),
                            leaf("qty", "$gte", "range", "number"),
                            leaf("qty", "$lt", "range", "number"),
                        ]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_dotted_paths",
            op(|db, name| async move {
                let filter = doc! { "address.city": "Lyon", "items.qty": { "$lte": 2 } };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![
                            leaf("address.city", "$eq", "eq", "string"),
                            leaf("items.qty", "$lte", "range", "number"),
                        ]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_explicit_and_is_flattened",
            op(|db, name| async move {
                let filter = doc! { "$and": [ { "uid": 3 }, { "status": { "$ne": "C" } } ] };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![
                            leaf("status", "$ne", "ne", "string"),
                            leaf("uid", "$eq", "eq", "number"),
                        ]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_or",
            op(|db, name| async move {
                let filter = doc! { "$or": [
                    { "vip": true },
                    { "status": "A", "qty": { "$lt": 5 } },
                ] };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        // One predicate per branch, branches sorted (an `and` before a leaf).
                        "filter": and(vec![json!({ "or": [
                            and(vec![
                                leaf("qty", "$lt", "range", "number"),
                                leaf("status", "$eq", "eq", "string"),
                            ]),
                            leaf("vip", "$eq", "eq", "bool"),
                        ] })]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_elem_match",
            op(|db, name| async move {
                let filter = doc! {
                    "scores": { "$elemMatch": { "$gte": 80 } },
                    "items": { "$elemMatch": { "sku": "sku-3", "qty": { "$gt": 1 } } },
                };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![
                            json!({ "elem_match": {
                                "path": "items",
                                "predicate": and(vec![
                                    leaf("qty", "$gt", "range", "number"),
                                    leaf("sku", "$eq", "eq", "string"),
                                ]),
                            } }),
                            // An operator-only $elemMatch tests the element itself.
                            json!({ "elem_match": {
                                "path": "scores",
                                "predicate": leaf("", "$gte", "range", "number"),
                            } }),
                        ]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_exists_and_null",
            op(|db, name| async move {
                let filter = doc! {
                    "email": { "$exists": true },
                    "phone": { "$exists": false },
                    "deleted_at": Bson::Null,
                };
                drain(db.collection::<Document>(&name).find(filter).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![
                            leaf("deleted_at", "$eq", "is_null", "null"),
                            leaf("email", "$exists", "exists", "none"),
                            leaf("phone", "$exists", "exists", "none"),
                        ]),
                    }),
                ))]
            },
            None,
        ),
        case(
            "find_regex_prefix",
            op(|db, name| async move {
                let coll = db.collection::<Document>(&name);
                let anchored = regex("^smith-1", "");
                drain(coll.find(doc! { "name": anchored }).await?).await?;
                drain(coll.find(doc! { "name": { "$regex": "^smith-2" } }).await?).await?;
                Ok(())
            }),
            |c| {
                vec![times(
                    shape(
                        c,
                        json!({
                            "command": "find",
                            "filter": and(vec![leaf("name", "$regex", "prefix", "regex")]),
                        }),
                    ),
                    2,
                )]
            },
            None,
        ),
        case(
            "find_regex_infix",
            op(|db, name| async move {
                let coll = db.collection::<Document>(&name);
                drain(coll.find(doc! { "name": { "$regex": "ith-1" } }).await?).await?;
                // Case-insensitive: anchored, but no tight index bounds, so not a prefix.
                let insensitive = regex("^SMITH", "i");
                drain(coll.find(doc! { "name": insensitive }).await?).await?;
                Ok(())
            }),
            |c| {
                vec![times(
                    shape(
                        c,
                        json!({
                            "command": "find",
                            "filter": and(vec![leaf("name", "$regex", "infix", "regex")]),
                        }),
                    ),
                    2,
                )]
            },
            None,
        ),
        case(
            "find_one_by_id",
            op(|db, name| async move {
                db.collection::<Document>(&name)
                    .find_one(doc! { "_id": ObjectId::new() })
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "find",
                        "filter": and(vec![leaf("_id", "$eq", "eq", "objectId")]),
                        "limit": true,
                    }),
                ))]
            },
            None,
        ),
        case(
            "same_shape_different_values",
            op(|db, name| async move {
                let coll = db.collection::<Document>(&name);
                drain(coll.find(doc! { "uid": 1, "status": "A" }).await?).await?;
                drain(coll.find(doc! { "status": "B", "uid": 4.5 }).await?).await?;
                Ok(())
            }),
            |c| {
                vec![times(
                    shape(
                        c,
                        json!({
                            "command": "find",
                            "filter": and(vec![
                                leaf("status", "$eq", "eq", "string"),
                                leaf("uid", "$eq", "eq", "number"),
                            ]),
                        }),
                    ),
                    2,
                )]
            },
            None,
        ),
        case(
            "get_more_across_batches",
            op(|db, name| async move {
                let cursor = db
                    .collection::<Document>(&name)
                    .find(doc! {})
                    .batch_size(10)
                    .await?;
                let all = drain(cursor).await?;
                assert_eq!(all.len(), SEEDED);
                Ok(())
            }),
            |c| {
                vec![Expected {
                    returned: Some(SEEDED as u64),
                    min_continuations: Some(4),
                    ..once(shape(
                        c,
                        json!({ "command": "find", "filter": and(vec![]) }),
                    ))
                }]
            },
            None,
        ),
        case(
            "aggregate_match_sort_limit",
            op(|db, name| async move {
                let pipeline = vec![
                    doc! { "$match": { "status": "A" } },
                    doc! { "$match": { "qty": { "$gte": 3 } } },
                    doc! { "$sort": { "created": -1 } },
                    doc! { "$limit": 5 },
                    doc! { "$project": { "status": 1, "qty": 1 } },
                ];
                drain(db.collection::<Document>(&name).aggregate(pipeline).await?)
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "aggregate",
                        "filter": and(vec![
                            leaf("qty", "$gte", "range", "number"),
                            leaf("status", "$eq", "eq", "string"),
                        ]),
                        "sort": [sort_key("created", -1)],
                        "limit": true,
                    }),
                ))]
            },
            None,
        ),
        case(
            "aggregate_lookup",
            op(|db, name| async move {
                let pipeline = vec![
                    doc! { "$match": { "uid": 2 } },
                    doc! { "$lookup": {
                        "from": format!("{name}_users"),
                        "localField": "sku",
                        "foreignField": "sku",
                        "as": "matches",
                    } },
                ];
                let joined =
                    drain(db.collection::<Document>(&name).aggregate(pipeline).await?).await?;
                assert_eq!(joined.len(), SEEDED / 5);
                Ok(())
            }),
            |c| {
                vec![
                    once(shape(
                        c,
                        json!({
                            "command": "aggregate",
                            "filter": and(vec![leaf("uid", "$eq", "eq", "number")]),
                        }),
                    )),
                    // The join probes the foreign collection by equality on `foreignField`,
                    // with values of whatever type the local documents hold.
                    once(shape(
                        &format!("{c}_users"),
                        json!({
                            "command": "lookup",
                            "filter": and(vec![leaf("sku", "$eq", "eq", "other")]),
                        }),
                    )),
                ]
            },
            None,
        ),
        case(
            "count_documents",
            op(|db, name| async move {
                let n = db
                    .collection::<Document>(&name)
                    .count_documents(doc! { "status": "A" })
                    .skip(1)
                    .limit(100)
                    .await?;
                assert_eq!(n, 14);
                Ok(())
            }),
            // The driver counts with an aggregate: $match, $skip, $limit, $group.
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "aggregate",
                        "filter": and(vec![leaf("status", "$eq", "eq", "string")]),
                        "limit": true,
                        "skip": true,
                    }),
                ))]
            },
            None,
        ),
        case(
            "estimated_document_count",
            op(|db, name| async move {
                let n = db
                    .collection::<Document>(&name)
                    .estimated_document_count()
                    .await?;
                assert_eq!(n, SEEDED as u64);
                Ok(())
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({ "command": "count", "filter": and(vec![]) }),
                ))]
            },
            None,
        ),
        case(
            "distinct",
            op(|db, name| async move {
                db.collection::<Document>(&name)
                    .distinct("sku", doc! { "qty": { "$gt": 1 } })
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "distinct",
                        "filter": and(vec![leaf("qty", "$gt", "range", "number")]),
                        "projection": ["sku"],
                    }),
                ))]
            },
            None,
        ),
        case(
            "update_many",
            op(|db, name| async move {
                db.collection::<Document>(&name)
                    .update_many(doc! { "status": "A" }, doc! { "$set": { "flag": true } })
                    .await
                    .map(drop)
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "update",
                        "filter": and(vec![leaf("status", "$eq", "eq", "string")]),
                        "options": ["multi"],
                    }),
                ))]
            },
            Some((0, 1, 0)),
        ),
        case(
            "update_one_upsert",
            op(|db, name| async move {
                let result = db
                    .collection::<Document>(&name)
                    .update_one(doc! { "sku": "sku-new" }, doc! { "$set": { "qty": 1 } })
                    .upsert(true)
                    .await?;
                assert!(result.upserted_id.is_some());
                Ok(())
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "update",
                        "filter": and(vec![leaf("sku", "$eq", "eq", "string")]),
                        "options": ["upsert"],
                    }),
                ))]
            },
            Some((0, 1, 0)),
        ),
        case(
            "delete_one",
            op(|db, name| async move {
                let result = db
                    .collection::<Document>(&name)
                    .delete_one(doc! { "uid": 1 })
                    .await?;
                assert_eq!(result.deleted_count, 1);
                Ok(())
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "delete",
                        "filter": and(vec![leaf("uid", "$eq", "eq", "number")]),
                        "limit": true,
                    }),
                ))]
            },
            Some((0, 0, 1)),
        ),
        case(
            "delete_many",
            op(|db, name| async move {
                let result = db
                    .collection::<Document>(&name)
                    .delete_many(doc! { "qty": { "$lt": 5 } })
                    .await?;
                assert_eq!(result.deleted_count, 5);
                Ok(())
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "delete",
                        "filter": and(vec![leaf("qty", "$lt", "range", "number")]),
                    }),
                ))]
            },
            Some((0, 0, 1)),
        ),
        case(
            "find_one_and_update",
            op(|db, name| async move {
                let updated = db
                    .collection::<Document>(&name)
                    .find_one_and_update(doc! { "status": "B" }, doc! { "$inc": { "qty": 1 } })
                    .sort(doc! { "qty": -1 })
                    .return_document(ReturnDocument::After)
                    .await?;
                assert!(updated.is_some());
                Ok(())
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "findAndModify",
                        "filter": and(vec![leaf("status", "$eq", "eq", "string")]),
                        "sort": [sort_key("qty", -1)],
                        "options": ["new"],
                    }),
                ))]
            },
            Some((0, 1, 0)),
        ),
        case(
            "find_one_and_delete",
            op(|db, name| async move {
                let deleted = db
                    .collection::<Document>(&name)
                    .find_one_and_delete(doc! { "created": { "$gte": DateTime::from_millis(0) } })
                    .await?;
                assert!(deleted.is_some());
                Ok(())
            }),
            |c| {
                vec![once(shape(
                    c,
                    json!({
                        "command": "findAndModify",
                        "filter": and(vec![leaf("created", "$gte", "range", "date")]),
                        "options": ["remove"],
                    }),
                ))]
            },
            Some((0, 0, 1)),
        ),
        case(
            "insert_is_write_load_only",
            op(|db, name| async move {
                let coll = db.collection::<Document>(&name);
                coll.insert_many((100..110).map(seed_document)).await?;
                coll.insert_one(seed_document(110)).await?;
                Ok(())
            }),
            |_| Vec::new(),
            Some((11, 0, 0)),
        ),
    ]
}
