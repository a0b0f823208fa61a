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
//!
//! ## Layout
//! - this file: the data, the workload, and the test.
//! - `expected`: the exact advice the workload must get.
//! - `explain`: the winning plan and its execution statistics.

#[path = "mongo_advice/expected.rs"]
mod expected;
#[path = "mongo_advice/explain.rs"]
mod explain;
mod mongo_common;

use std::process::{Command, Output};

use bson::{doc, Document};
use expected::{comparable_all, expected_drops, expected_recommendations};
use explain::explain;
use indextap_tests::IndextapProcess;
use mongo_common::{drain, shapes_on, wait_until, MongoBehindProxy};
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

/// Half of the users (and customers) have an email: the partial index covers only those.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_workload_yields_exactly_its_indexes() {
    let harness = MongoBehindProxy::start().await;
    let direct = harness.direct.database(DATABASE);
    let proxied = harness.client.database(DATABASE);

    for (collection, _) in WORKLOAD {
        let documents: Vec<Document> = (0..DOCUMENTS)
            .map(|n| {
                // Customers have emails too: the lookup by email has documents to find.
                if collection == "users" || collection == "customers" {
                    user(n)
                } else {
                    document(n)
                }
            })
            .collect();
        harness.seeded(DATABASE, collection, documents).await;
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
    // Every catalog was read: the one note says why the advice is not measured.
    let mut names: Vec<String> = expected_recommendations()
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    names.sort_unstable();
    let unmeasured = format!(
        "{} MongoDB recommendation(s) not verified (MongoDB advice is measured only with --mongo-verify sample): {}",
        names.len(),
        names.join(", ")
    );
    assert_eq!(
        advice["notes"],
        json!([unmeasured]),
        "every catalog was read"
    );

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
