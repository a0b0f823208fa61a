//! What every PostgreSQL corpus workload's advice must pass, checked against the real server
//! and independently of indextap's own logic:
//! - nothing on a system schema;
//! - each B-tree recommendation carries HypoPG evidence;
//! - none is served by an existing index (primary keys and unique constraints included) or by
//!   another recommendation: its keys are not the leading keys of one of those, in any order;
//! - every recommended statement builds on the real server, as written;
//! - once built, the real planner uses each one for at least one statement of the workload
//!   (replayed with `auto_explain` logging every plan);
//! - there are no more of them than a careful DBA would add, and each pattern that needs an
//!   index is served (by a recommendation or an index that exists);
//! - the existing indexes the workload never uses, while writes maintain them, are proposed
//!   for dropping.
//!
//! ## Layout
//! - [`PgCorpus`]: a server, a database, and the proxy in front of it (with the catalog URL).
//! - [`Expectation`]: what a careful DBA would do with the workload.
//! - [`check`]: the checks above.
#![allow(unreachable_pub)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use indextap_tests::capture::{poll_until, shapes_document};
use indextap_tests::ports::free_addr;
use indextap_tests::postgres::connect;
use indextap_tests::{IndextapOptions, IndextapProcess, Postgres};
use serde_json::Value;
use tokio_postgres::Client;

/// How long the aggregate may take to count what was sent.
const SETTLE: Duration = Duration::from_secs(30);

/// Schemas that are never advised on.
const SYSTEM_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];

/// A PostgreSQL server with one database and `indextap proxy` in front of it, reading the
/// catalog as the superuser (so it may create HypoPG).
pub struct PgCorpus {
    // Declared first: the proxy stops before the server it fronts.
    pub proxy: IndextapProcess,
    pub server: Postgres,
    pub listen: SocketAddr,
    pub database: &'static str,
}

impl PgCorpus {
    /// A fresh server with `database` created, and a proxy given `extra` arguments.
    pub fn start(database: &'static str, extra: &[&str]) -> Self {
        let server = Postgres::start();
        server
            .create_database(database)
            .unwrap_or_else(|err| panic!("create database {database}: {err:#}"));
        let listen = free_addr();
        let proxy = IndextapProcess::start_with(
            IndextapOptions::postgres(listen, server.addr())
                .args(&["--pg-admin-url", &server.url("postgres")])
                .args(extra),
        );
        Self {
            proxy,
            server,
            listen,
            database,
        }
    }

    /// tokio-postgres straight to the server.
    pub async fn direct(&self) -> Client {
        connect(&self.server.connection_string(self.database)).await
    }

    /// tokio-postgres through the proxy.
    pub async fn proxied(&self) -> Client {
        connect(
            &self
                .server
                .connection_string_via(self.listen, self.database),
        )
        .await
    }

    /// Waits until the aggregate has counted at least `executions` statements on tables of
    /// the workload's database.
    pub fn wait_for_executions(&self, executions: u64) {
        poll_until("the workload in /api/v1/shapes", SETTLE, || {
            let document = shapes_document(&self.proxy);
            let counted: u64 = document["shapes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|shape| shape["database"] == self.database)
                .filter_map(|shape| shape["count"].as_u64())
                .sum();
            if counted >= executions {
                Ok(())
            } else {
                Err(format!(
                    "only {counted} of {executions} executions counted: {document:#}"
                ))
            }
        });
    }

    /// The advice, as JSON.
    pub fn advice(&self) -> Value {
        self.proxy
            .get_json("/api/v1/recommendations")
            .expect("GET /api/v1/recommendations")
    }

    /// Makes every new session of the database log its plans (JSON) in the server log.
    pub async fn log_every_plan(&self, direct: &Client) {
        let database = self.database;
        direct
            .batch_execute(&format!(
                "ALTER DATABASE {database} SET session_preload_libraries = 'auto_explain';
                 ALTER DATABASE {database} SET auto_explain.log_min_duration = 0;
                 ALTER DATABASE {database} SET auto_explain.log_format = 'json';"
            ))
            .await
            .expect("enable auto_explain");
    }
}

pub use super::expect::Dba as Expectation;

/// What a careful DBA would do with `workload`, from `tests/corpus/expectations_pg.json`.
fn careful_dba(workload: &str) -> Expectation {
    super::expect::of_workload(
        "expectations_pg.json",
        include_str!("../../corpus/expectations_pg.json"),
        workload,
    )
}
use super::expect::{assert_as_a_dba_would, assert_evidence_or_note, Index};

fn unquote(text: &str) -> String {
    text.trim_matches('"').to_string()
}

/// The indexes of the public schema, as the server has them.
async fn catalog_indexes(client: &Client) -> Vec<Index> {
    client
        .query(
            "SELECT t.relname::text, c.relname::text, i.indpred IS NOT NULL,
                    array(SELECT pg_get_indexdef(i.indexrelid, k, true)
                            FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k)
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_class t ON t.oid = i.indrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
              WHERE n.nspname = 'public'",
            &[],
        )
        .await
        .expect("read pg_index")
        .iter()
        .map(|row| Index {
            table: row.get(0),
            name: row.get(1),
            partial: row.get(2),
            keys: row
                .get::<_, Vec<String>>(3)
                .iter()
                .map(|key| unquote(key))
                .collect(),
        })
        .collect()
}

/// The names of the indexes the logged plans scan (`auto_explain`, JSON format).
fn scanned_in_log(log: &str) -> BTreeSet<String> {
    let marker = "\"Index Name\": \"";
    let mut names = BTreeSet::new();
    let mut rest = log;
    while let Some(start) = rest.find(marker) {
        rest = &rest[start + marker.len()..];
        if let Some(end) = rest.find('"') {
            names.insert(rest[..end].to_string());
        }
    }
    names
}

/// Runs every check of the module docs, against what a careful DBA would do with `workload`.
/// `replay` runs (part of) the workload again, straight to the server in new sessions (only
/// those log their plans), once the recommended indexes are built. Returns the advice it
/// checked.
pub async fn check(corpus: &PgCorpus, workload: &str, replay: impl AsyncFnOnce()) -> Value {
    let expectation = &careful_dba(workload);
    let advice = corpus.advice();
    let context = format!("advice: {advice:#}");
    assert_evidence_or_note(&advice);
    let recommendations: Vec<Value> = advice["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let direct = corpus.direct().await;
    let existing = catalog_indexes(&direct).await;
    let proposed: Vec<Index> = recommendations.iter().map(Index::recommended).collect();

    for recommendation in &recommendations {
        let schema = recommendation["schema"].as_str().unwrap_or_default();
        assert!(
            !SYSTEM_SCHEMAS.contains(&schema) && !schema.starts_with("pg_toast"),
            "advice on a system schema: {recommendation:#}\n{context}"
        );
        if recommendation["method"] == "btree" {
            assert_eq!(
                recommendation["evidence"]["method"], "hypopg",
                "every B-tree recommendation is measured: {recommendation:#}\n{context}"
            );
        }
    }
    let drops: Vec<String> = advice["drops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|drop| drop["name"].as_str().map(str::to_string))
        .collect();
    assert_as_a_dba_would(&proposed, &existing, drops, expectation, &context);

    // Every statement builds as written, outside a transaction.
    for recommendation in &recommendations {
        let statement = recommendation["statement"].as_str().unwrap_or_default();
        if let Err(err) = direct.batch_execute(statement).await {
            panic!("{statement} does not build: {err:?}\n{context}");
        }
    }
    if recommendations.is_empty() {
        return advice;
    }
    direct.batch_execute("ANALYZE").await.expect("ANALYZE");
    corpus.log_every_plan(&direct).await;
    replay().await;
    let scanned = scanned_in_log(&corpus.server.logs());
    for index in &proposed {
        assert!(
            scanned.contains(&index.name),
            "the planner never used {} {:?} for the workload (it used {scanned:?})\n{context}",
            index.name,
            index.keys
        );
    }
    advice
}
