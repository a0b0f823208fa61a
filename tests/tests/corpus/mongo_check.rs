//! What every MongoDB corpus workload's advice must pass, checked against SecantusDB and
//! independently of indextap's own logic:
//! - nothing on `admin`, `local`, `config` or a `system.*` collection;
//! - no key on `_id` (its unique index serves any equality on it), and none served by an
//!   existing index or another recommendation: its keys are not the leading keys of one of
//!   those, in any order;
//! - every recommended index builds with the driver, as written;
//! - once built, `explain` picks each one for at least one query the workload sent (the
//!   queries are recorded by the application's own driver, through command monitoring);
//! - no more indexes than a careful DBA would add, each pattern that needs one is served,
//!   and the expected unused indexes are proposed for dropping.
//!
//! SecantusDB's planner only considers an index whose keys cover every field of the filter.
//! An index narrower than the filter it serves (a unique prefix of a whole-document filter)
//! is therefore never picked there, though MongoDB's planner picks it; for such an index the
//! check asks instead that some recorded filter tests every one of its keys by equality.
//!
//! ## Layout
//! - [`Expectation`]: what a careful DBA would do with the workload.
//! - [`Recorded`]: a query the application sent.
//! - [`check`]: the checks above.
#![allow(unreachable_pub)]

use std::collections::BTreeSet;

use bson::{doc, Bson, Document};

use super::expect::{assert_as_a_dba_would, assert_evidence_or_note, Dba, Index};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use serde::Deserialize;
use serde_json::Value;

/// Databases that are never advised on.
const INTERNAL_DATABASES: [&str; 3] = ["admin", "local", "config"];

/// What a careful DBA would do with `workload`, from `tests/corpus/expectations_mongo.json`.
pub fn careful_dba(workload: &str) -> Expectation {
    super::expect::of_workload(
        "expectations_mongo.json",
        include_str!("../../corpus/expectations_mongo.json"),
        workload,
    )
}

/// What a careful DBA would do with a workload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The most indexes they would add.
    pub max_recommendations: usize,
    /// The fewest keys an index of this workload needs at most (a filter on a whole document
    /// needs a selective prefix, not every field).
    pub max_keys: usize,
    /// Patterns that need an index: a collection and the fields an index must lead with.
    #[serde(borrow)]
    pub must_serve: Vec<(&'static str, Vec<&'static str>)>,
    /// Existing indexes that no query uses while writes maintain them.
    #[serde(borrow)]
    pub drops: Vec<&'static str>,
    /// Fields no document has: never a key.
    #[serde(borrow)]
    pub absent_fields: Vec<&'static str>,
}

/// A query the application sent: database, collection, filter, sort.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub database: String,
    pub collection: String,
    pub filter: Document,
    pub sort: Option<Document>,
}

/// The queries recorded by `tests/corpus/mongo_app.py --record FILE`.
pub fn recorded(path: &std::path::Path) -> Vec<Recorded> {
    let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    let document = Document::from_reader(bytes.as_slice()).expect("recorded queries are BSON");
    document
        .get_array("queries")
        .expect("a queries array")
        .iter()
        .filter_map(Bson::as_document)
        .filter_map(|query| {
            Some(Recorded {
                database: query.get_str("database").ok()?.to_string(),
                collection: query.get_str("collection").ok()?.to_string(),
                filter: query.get_document("filter").ok()?.clone(),
                sort: query.get_document("sort").ok().cloned(),
            })
        })
        .collect()
}

async fn existing_indexes(client: &Client, database: &str) -> Vec<Index> {
    let db = client.database(database);
    let mut indexes = Vec::new();
    for collection in db.list_collection_names().await.expect("listCollections") {
        let cursor = db
            .collection::<Document>(&collection)
            .list_indexes()
            .await
            .expect("listIndexes");
        let models: Vec<IndexModel> = futures::TryStreamExt::try_collect(cursor)
            .await
            .expect("listIndexes cursor");
        for model in models {
            indexes.push(Index {
                table: collection.clone(),
                partial: false,
                name: model
                    .options
                    .and_then(|options| options.name)
                    .unwrap_or_default(),
                keys: model.keys.keys().cloned().collect(),
            });
        }
    }
    indexes
}

fn key_document(recommendation: &Value) -> Document {
    let mut keys = Document::new();
    for key in recommendation["keys"].as_array().into_iter().flatten() {
        let field = key["field"].as_str().unwrap_or_default();
        let direction = key["direction"].as_i64().unwrap_or(1);
        keys.insert(field, Bson::Int32(if direction < 0 { -1 } else { 1 }));
    }
    keys
}

/// The index names a winning plan scans.
fn scanned(plan: &Document, into: &mut BTreeSet<String>) {
    if let Ok(name) = plan.get_str("indexName") {
        into.insert(name.to_string());
    }
    if let Ok(input) = plan.get_document("inputStage") {
        scanned(input, into);
    }
    if let Ok(inputs) = plan.get_array("inputStages") {
        for input in inputs.iter().filter_map(Bson::as_document) {
            scanned(input, into);
        }
    }
}

/// The indexes `explain` picks for the recorded queries.
async fn used_by(client: &Client, queries: &[Recorded]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for query in queries {
        let mut find = doc! { "find": &query.collection, "filter": query.filter.clone() };
        if let Some(sort) = &query.sort {
            find.insert("sort", sort.clone());
        }
        let explained = client
            .database(&query.database)
            .run_command(doc! { "explain": find, "verbosity": "queryPlanner" })
            .await
            .unwrap_or_else(|err| panic!("explain {query:?}: {err}"));
        if let Ok(plan) = explained
            .get_document("queryPlanner")
            .and_then(|planner| planner.get_document("winningPlan"))
        {
            scanned(plan, &mut used);
        }
    }
    used
}

/// Whether a recorded filter tests every key of `index` by equality, with other fields
/// besides: MongoDB would use the index's equality prefix, SecantusDB does not consider it.
fn narrower_than_a_filter(index: &Index, queries: &[Recorded]) -> bool {
    queries
        .iter()
        .filter(|query| query.collection == index.table)
        .any(|query| {
            index.keys.iter().all(|key| {
                query
                    .filter
                    .get(key)
                    .is_some_and(|value| !matches!(value, Bson::Document(_)))
            }) && query.filter.len() > index.keys.len()
        })
}

/// Runs every check of the module docs on `advice` for `database`, with `direct` a client
/// straight to the server and `queries` what the application sent.
pub async fn check(
    advice: &Value,
    direct: &Client,
    database: &str,
    queries: &[Recorded],
    expectation: &Expectation,
) {
    let context = format!("advice: {advice:#}");
    assert_evidence_or_note(advice);
    let recommendations: Vec<Value> = advice["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for recommendation in &recommendations {
        let db = recommendation["database"].as_str().unwrap_or_default();
        let collection = recommendation["collection"].as_str().unwrap_or_default();
        assert!(
            !INTERNAL_DATABASES.contains(&db) && !collection.starts_with("system."),
            "advice on an internal namespace: {recommendation:#}\n{context}"
        );
    }
    let ours: Vec<Value> = recommendations
        .iter()
        .filter(|r| r["database"] == database)
        .cloned()
        .collect();
    let existing = existing_indexes(direct, database).await;
    // Partial or not, a recommendation is taken as serving what its keys lead.
    let proposed: Vec<Index> = ours
        .iter()
        .map(|recommendation| Index {
            partial: false,
            ..Index::recommended(recommendation)
        })
        .collect();
    for index in &proposed {
        assert!(
            !index.keys.iter().any(|key| key == "_id"),
            "{} keys _id, which its unique index serves\n{context}",
            index.name
        );
        assert!(
            index.keys.len() <= expectation.max_keys,
            "{} has {} keys, a careful DBA uses at most {}\n{context}",
            index.name,
            index.keys.len(),
            expectation.max_keys
        );
        for absent in &expectation.absent_fields {
            assert!(
                !index.keys.iter().any(|key| key == absent),
                "{} keys {absent}, which no document has\n{context}",
                index.name
            );
        }
    }
    let drops: Vec<String> = advice["drops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|drop| drop["database"] == database)
        .filter_map(|drop| drop["name"].as_str().map(str::to_string))
        .collect();
    let dba = Dba {
        max_recommendations: expectation.max_recommendations,
        must_serve: expectation.must_serve.clone(),
        drops: expectation.drops.clone(),
    };
    assert_as_a_dba_would(&proposed, &existing, drops, &dba, &context);

    let db = direct.database(database);
    for (recommendation, index) in ours.iter().zip(&proposed) {
        let model = IndexModel::builder()
            .keys(key_document(recommendation))
            .options(IndexOptions::builder().name(index.name.clone()).build())
            .build();
        if let Err(err) = db
            .collection::<Document>(&index.table)
            .create_index(model)
            .await
        {
            panic!("{} does not build: {err}\n{context}", index.name);
        }
    }
    let used = used_by(direct, queries).await;
    for index in &proposed {
        if used.contains(&index.name) {
            continue;
        }
        assert!(
            narrower_than_a_filter(index, queries),
            "explain never picks {} {:?} for the workload's queries (it picks {used:?})\n{context}",
            index.name,
            index.keys
        );
    }
}
