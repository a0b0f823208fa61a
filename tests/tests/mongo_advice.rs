//! A known MongoDB workload through the real proxy yields exactly its expected indexes.
//!
//! Each collection of the workload exercises one rule an expert applies:
//! - `customers`: an index that already exists (created beforehand) is not recommended again;
//! - `events`: shapes on `(a)` and on `(a, b)` give one index, `(a, b)`: prefixes serve prefixes;
//! - `orders`: `$in` followed by a sort goes after the sort key (ESR with `$in`);
//! - `payments`: equality, then sort (with its direction), then range;
//! - `users`: a `{email: {$exists: true}}` carried by every execution is a
//!   `partialFilterExpression`, not a key;
//! - `accounts`: an existing index that is a prefix of another is listed in `drops`, and the
//!   longer one serves the workload.
//!
//! The advice is read from `/api/v1/recommendations` and from `indextap recommend`, then the
//! recommended index is built with the driver and `explain` shows the served query now uses it.

mod mongo_harness;

use std::process::{Command, Output};

use bson::{doc, Bson, Document};
use indextap_tests::IndextapProcess;
use mongo_harness::{drain, shapes_on, wait_until, MongoBehindProxy};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use serde_json::{json, Value};

const DATABASE: &str = "advice";
/// Documents per collection: enough that a scan and an index lookup differ clearly.
const DOCUMENTS: i64 = 300;

fn document(n: i64) -> Document {
    let pick = |choices: &[&'static str]| {
        let len = i64::try_from(choices.len()).unwrap_or(1);
        choices[usize::try_from(n % len).unwrap_or(0)]
    };
    let status = pick(&["new", "paid", "shipped", "lost"]);
    let plan = pick(&["free", "pro", "team"]);
    let region = pick(&["eu", "us"]);
    doc! {
        "a": n % 10,
        "b": n % 7,
        "status": status,
        "created": n,
        "account": n % 20,
        "amount": n * 3,
        "plan": plan,
        "owner": n % 15,
        "region": region,
    }
}

/// Half of the users have an email: the partial index covers only those.
fn user(n: i64) -> Document {
    let mut user = document(n);
    if n % 2 == 0 {
        user.insert("email", format!("user{n}@example.com"));
    }
    user
}

async fn create_index(collection: &Collection<Document>, keys: Document, name: &str) {
    let model = IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().name(name.to_string()).build())
        .build();
    collection
        .create_index(model)
        .await
        .unwrap_or_else(|err| panic!("createIndex {name}: {err}"));
}

async fn find(db: &Database, collection: &str, filter: Document, sort: Option<Document>) {
    let coll = db.collection::<Document>(collection);
    let mut find = coll.find(filter);
    if let Some(sort) = sort {
        find = find.sort(sort);
    }
    let cursor = find
        .await
        .unwrap_or_else(|err| panic!("find on {collection}: {err}"));
    drain(cursor)
        .await
        .unwrap_or_else(|err| panic!("cursor on {collection}: {err}"));
}

/// Executions per collection, once the workload has run.
const WORKLOAD: [(&str, u64); 6] = [
    ("customers", 3),
    ("events", 5),
    ("orders", 3),
    ("payments", 3),
    ("users", 4),
    ("accounts", 2),
];

async fn run_workload(db: &Database) {
    for email in [
        "user2@example.com",
        "user4@example.com",
        "nobody@example.com",
    ] {
        find(db, "customers", doc! { "email": email }, None).await;
    }
    for a in [1, 2] {
        find(db, "events", doc! { "a": a }, None).await;
    }
    for (a, b) in [(1, 1), (2, 3), (4, 4)] {
        find(db, "events", doc! { "a": a, "b": b }, None).await;
    }
    for statuses in [
        vec!["new"],
        vec!["new", "paid"],
        vec!["lost", "paid", "shipped"],
    ] {
        let filter = doc! { "status": { "$in": statuses } };
        find(db, "orders", filter, Some(doc! { "created": -1 })).await;
    }
    for (account, amount) in [(1, 100), (2, 0), (3, 500)] {
        let filter = doc! { "account": account, "amount": { "$gte": amount } };
        find(db, "payments", filter, Some(doc! { "created": -1 })).await;
    }
    for plan in ["free", "pro", "team", "pro"] {
        let filter = doc! { "plan": plan, "email": { "$exists": true } };
        find(db, "users", filter, None).await;
    }
    for (owner, region) in [(1, "eu"), (2, "us")] {
        find(
            db,
            "accounts",
            doc! { "owner": owner, "region": region },
            None,
        )
        .await;
    }
}

/// What a recommendation must say, field by field.
fn expected_recommendation(
    collection: &str,
    keys: Value,
    partial: Value,
    name: &str,
    statement: &str,
    serves: Vec<u64>,
) -> Value {
    json!({
        "engine": "mongodb",
        "database": DATABASE,
        "collection": collection,
        "keys": keys,
        "method": "btree",
        "unique": false,
        "partial": partial,
        "include": [],
        "name": name,
        "statement": statement,
        "serves": serves,
    })
}

/// The fields of a served recommendation that [`expected_recommendation`] pins, with
/// `serves` reduced to the served shapes' execution counts, sorted.
fn comparable(recommendation: &Value) -> Value {
    let mut serves: Vec<u64> = recommendation["serves"]
        .as_array()
        .map(|served| {
            served
                .iter()
                .map(|s| s["count"].as_u64().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    serves.sort_unstable();
    let mut picked = serde_json::Map::new();
    for field in [
        "engine",
        "database",
        "collection",
        "keys",
        "method",
        "unique",
        "partial",
        "include",
        "name",
        "statement",
    ] {
        picked.insert(field.to_string(), recommendation[field].clone());
    }
    picked.insert("serves".to_string(), json!(serves));
    Value::Object(picked)
}

fn comparable_all(advice: &Value) -> Vec<Value> {
    let mut all: Vec<Value> = advice["recommendations"]
        .as_array()
        .map(|recommendations| recommendations.iter().map(comparable).collect())
        .unwrap_or_default();
    all.sort_by_key(|r| r["name"].to_string());
    all
}

fn expected_recommendations() -> Vec<Value> {
    let mut expected = vec![
        // (a) and (a, b): one index. `a` leads, as more shapes test it.
        expected_recommendation(
            "events",
            json!([{ "field": "a", "direction": 1 }, { "field": "b", "direction": 1 }]),
            Value::Null,
            "a_1_b_1",
            r#"db.getSiblingDB("advice").events.createIndex({a: 1, b: 1}, {name: "a_1_b_1"})"#,
            vec![2, 3],
        ),
        // $in after the sort key: the index returns documents in sort order.
        expected_recommendation(
            "orders",
            json!([{ "field": "created", "direction": -1 }, { "field": "status", "direction": 1 }]),
            Value::Null,
            "created_-1_status_1",
            r#"db.getSiblingDB("advice").orders.createIndex({created: -1, status: 1}, {name: "created_-1_status_1"})"#,
            vec![3],
        ),
        // Equality, sort, range.
        expected_recommendation(
            "payments",
            json!([
                { "field": "account", "direction": 1 },
                { "field": "created", "direction": -1 },
                { "field": "amount", "direction": 1 },
            ]),
            Value::Null,
            "account_1_created_-1_amount_1",
            r#"db.getSiblingDB("advice").payments.createIndex({account: 1, created: -1, amount: 1}, {name: "account_1_created_-1_amount_1"})"#,
            vec![3],
        ),
        // The $exists every execution carries is the partial filter, not a key.
        expected_recommendation(
            "users",
            json!([{ "field": "plan", "direction": 1 }]),
            json!({ "email": { "$exists": true } }),
            "plan_1_partial",
            r#"db.getSiblingDB("advice").users.createIndex({plan: 1}, {name: "plan_1_partial", partialFilterExpression: {email: {$exists: true}}})"#,
            vec![4],
        ),
    ];
    expected.sort_by_key(|r| r["name"].to_string());
    expected
}

fn expected_drops() -> Value {
    json!([{
        "engine": "mongodb",
        "database": DATABASE,
        "schema": null,
        "collection": "accounts",
        "name": "owner_1",
        "keys": [{ "field": "owner", "direction": 1 }],
        "method": "btree",
        "reason": "prefix of owner_1_region_1",
        "statement": r#"db.getSiblingDB("advice").accounts.dropIndex("owner_1")"#,
    }])
}

/// `indextap recommend --from URL args...`.
fn recommend(admin_url: &str, args: &[&str]) -> Output {
    Command::new(IndextapProcess::binary())
        .args(["recommend", "--from", admin_url])
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run indextap recommend: {err}"))
}

/// The `db.…` lines of a mongosh script, commented out or not.
fn mongosh_statements(script: &str) -> Vec<String> {
    let mut statements: Vec<String> = script
        .lines()
        .map(|line| line.trim().trim_start_matches("//").trim())
        .filter(|line| line.starts_with("db."))
        // A drop line ends with a comment giving the reason.
        .map(|line| line.split("  //").next().unwrap_or(line).trim().to_string())
        .collect();
    statements.sort();
    statements.dedup();
    statements
}

/// The stage names of a winning plan, outermost first, and the index an IXSCAN used.
fn plan_stages(plan: &Document) -> (Vec<String>, Option<String>) {
    let mut stages = Vec::new();
    let mut index = None;
    let mut stage = Some(plan);
    while let Some(current) = stage {
        if let Ok(name) = current.get_str("stage") {
            stages.push(name.to_string());
        }
        if let Ok(name) = current.get_str("indexName") {
            index = Some(name.to_string());
        }
        stage = current.get_document("inputStage").ok();
    }
    (stages, index)
}

fn number(document: &Document, key: &str) -> i64 {
    match document.get(key) {
        Some(Bson::Int32(value)) => i64::from(*value),
        Some(Bson::Int64(value)) => *value,
        Some(Bson::Double(value)) => *value as i64,
        other => panic!("{key} is not a number: {other:?} in {document}"),
    }
}

/// `explain` (executionStats) of a find: stages, index used, nReturned, totalDocsExamined.
async fn explain(
    db: &Database,
    collection: &str,
    filter: Document,
) -> (Vec<String>, Option<String>, i64, i64) {
    let explained = db
        .run_command(doc! {
            "explain": { "find": collection, "filter": filter },
            "verbosity": "executionStats",
        })
        .await
        .unwrap_or_else(|err| panic!("explain: {err}"));
    let winning = explained
        .get_document("queryPlanner")
        .and_then(|planner| planner.get_document("winningPlan"))
        .unwrap_or_else(|err| panic!("no winningPlan ({err}) in {explained}"));
    let (stages, index) = plan_stages(winning);
    let stats = explained
        .get_document("executionStats")
        .unwrap_or_else(|err| panic!("no executionStats ({err}) in {explained}"));
    (
        stages,
        index,
        number(stats, "nReturned"),
        number(stats, "totalDocsExamined"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_workload_yields_exactly_its_indexes() {
    let harness = MongoBehindProxy::start().await;
    let direct = harness.direct.database(DATABASE);
    let proxied = harness.client.database(DATABASE);

    for (collection, _) in WORKLOAD {
        let documents: Vec<Document> = (0..DOCUMENTS)
            .map(|n| {
                if collection == "users" {
                    user(n)
                } else {
                    document(n)
                }
            })
            .collect();
        direct
            .collection::<Document>(collection)
            .insert_many(documents)
            .await
            .unwrap_or_else(|err| panic!("seeding {collection}: {err}"));
    }
    create_index(
        &direct.collection("customers"),
        doc! { "email": 1 },
        "email_1",
    )
    .await;
    create_index(
        &direct.collection("accounts"),
        doc! { "owner": 1 },
        "owner_1",
    )
    .await;
    create_index(
        &direct.collection("accounts"),
        doc! { "owner": 1, "region": 1 },
        "owner_1_region_1",
    )
    .await;

    run_workload(&proxied).await;
    wait_until("the whole workload in /api/v1/shapes", || {
        let document = harness.shapes_document();
        let counts: Vec<(&str, u64)> = WORKLOAD
            .iter()
            .map(|(collection, _)| {
                let count = shapes_on(&document, DATABASE, collection)
                    .iter()
                    .map(|entry| entry["count"].as_u64().unwrap_or(0))
                    .sum();
                (*collection, count)
            })
            .collect();
        if counts == WORKLOAD {
            Ok(())
        } else {
            Err(format!("expected {WORKLOAD:?}, seen {counts:?}"))
        }
    });

    let advice = harness.recommendations();
    assert_eq!(
        comparable_all(&advice),
        expected_recommendations(),
        "recommendations:\n{advice:#}"
    );
    assert_eq!(advice["drops"], expected_drops(), "drops:\n{advice:#}");
    assert_eq!(advice["notes"], json!([]), "every catalog was read");

    // The CLI prints the same statements, and gates CI with exit status 3.
    let admin_url = harness.admin_url();
    let printed = recommend(&admin_url, &["--format", "mongosh"]);
    assert_eq!(printed.status.code(), Some(0), "{printed:?}");
    let script = String::from_utf8_lossy(&printed.stdout);
    let mut wanted: Vec<String> = expected_recommendations()
        .iter()
        .chain(expected_drops().as_array().into_iter().flatten())
        .filter_map(|r| r["statement"].as_str().map(str::to_string))
        .collect();
    // The rollback section drops each recommended index again.
    wanted.extend(expected_recommendations().iter().filter_map(|r| {
        let collection = r["collection"].as_str()?;
        let name = r["name"].as_str()?;
        Some(format!(
            r#"db.getSiblingDB("{DATABASE}").{collection}.dropIndex("{name}")"#
        ))
    }));
    wanted.sort();
    assert_eq!(
        mongosh_statements(&script),
        wanted,
        "mongosh script:\n{script}"
    );
    let api_script = harness
        .proxy
        .get_text("/api/v1/recommendations?format=mongosh")
        .expect("mongosh from the API");
    assert_eq!(mongosh_statements(&api_script), wanted);

    let gated = recommend(
        &admin_url,
        &["--format", "mongosh", "--fail-on-recommendations"],
    );
    assert_eq!(gated.status.code(), Some(3), "{gated:?}");
    assert_eq!(
        mongosh_statements(&String::from_utf8_lossy(&gated.stdout)),
        wanted
    );

    // Build the recommended (a, b) index: the served query goes from a full scan to an index
    // scan that examines only the documents it returns.
    let served = doc! { "a": 4, "b": 4 };
    let (stages, _, returned, examined) = explain(&proxied, "events", served.clone()).await;
    assert_eq!(stages, ["COLLSCAN"]);
    assert_eq!(examined, DOCUMENTS);
    let expected_returned = (0..DOCUMENTS).filter(|n| n % 10 == 4 && n % 7 == 4).count() as i64;
    assert_eq!(returned, expected_returned);

    let events = proxied.collection::<Document>("events");
    create_index(&events, doc! { "a": 1, "b": 1 }, "a_1_b_1").await;
    let (stages, index, returned, examined) = explain(&proxied, "events", served).await;
    assert_eq!(stages, ["FETCH", "IXSCAN"]);
    assert_eq!(index.as_deref(), Some("a_1_b_1"));
    assert_eq!(returned, expected_returned);
    assert!(returned > 0);
    assert_eq!(examined, returned, "no document examined in vain");

    // Now that it exists, it is no longer recommended; the others still are.
    let after = harness.recommendations();
    let remaining: Vec<Value> = expected_recommendations()
        .into_iter()
        .filter(|r| r["name"] != "a_1_b_1")
        .collect();
    assert_eq!(
        comparable_all(&after),
        remaining,
        "after createIndex:\n{after:#}"
    );
}
