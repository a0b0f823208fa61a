//! PostgreSQL advice end to end: a known workload through the real proxy, in front of a real
//! server with tens of thousands of rows, gives exactly the expected indexes, each verified
//! with HypoPG, and running them makes the real plans cheaper.
//!
//! What is proven:
//! - the list is exact: ESR keys and directions, a partial index (`deleted_at IS NULL` in
//!   every execution; enum tokens written in the SQL), an expression index on `lower(email)`,
//!   a trigram GIN index for an ILIKE infix, a GIN index for jsonb `@>`; nothing that exists;
//!   nothing that is a prefix of another; the existing index that is a prefix of another is
//!   a drop candidate;
//! - every B-tree recommendation carries HypoPG evidence (cost before > cost after); for the
//!   GIN ones, which HypoPG cannot model, `notes` says so (the real planner proves them below);
//! - the recommended DDL runs as written (CONCURRENTLY, outside a transaction), the real
//!   planner then uses each index and each query's real EXPLAIN cost falls, and the advice
//!   then recommends nothing more;
//! - `indextap recommend --format sql` is a migration whose up part creates exactly these
//!   indexes and whose rollback drops them, both run with psql;
//! - without HypoPG (a catalog user that cannot create it) and without any catalog URL, the
//!   advice says what it could not do;
//! - over the verification budget (`advice.max_verified_candidates`), candidates are left out,
//!   never recommended unverified, and the notes say so.
//! - expression keys round-trip through `pg_get_indexdef` into the key a query needs, and an
//!   existing expression index serves a query that casts its column (`canonical`).
//!
//! ## Layout
//! - the schema and the workload (`SCHEMA`, `workload`);
//! - the expected advice (`expected_recommendations`, `expected_serves`; the exact index of
//!   each recommendation is `pg_advice/unverified_recommendations.json`);
//! - helpers: connecting, waiting for the aggregate, EXPLAIN, pg_indexes, the migration;
//! - the tests; `canonical`: expression keys against the real `pg_get_indexdef`.

#[path = "pg_advice/canonical.rs"]
mod canonical;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use indextap_tests::postgres::{param_refs, Params};
use indextap_tests::tools::assert_success;
use indextap_tests::{free_port, IndextapOptions, IndextapProcess, Postgres};
use serde_json::{json, Value};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

const DATABASE: &str = "app";
/// How long the aggregate may take to show what was sent.
const SETTLE: Duration = Duration::from_secs(15);
/// A role that may log in and read the catalog, nothing more.
const READER: &str = "indextap_reader";
/// How many times the workload runs each query.
const ROUNDS: i64 = 10;

// ---------------------------------------------------------------------------------------
// Schema and workload.
// ---------------------------------------------------------------------------------------

/// Enough rows that a sequential scan costs far more than an index scan. `users` carries an
/// index the workload needs (it must not be recommended again) and its prefix (a drop).
const SCHEMA: &str = r#"
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE job_events (id bigserial PRIMARY KEY, job_id bigint NOT NULL, type text NOT NULL,
    "timestamp" timestamptz NOT NULL, deleted_at timestamptz, payload jsonb);
INSERT INTO job_events (job_id, type, "timestamp", deleted_at, payload)
SELECT g % 2000, (ARRAY['queued', 'started', 'finished', 'failed'])[g % 4 + 1],
       timestamptz '2024-01-01' + g * interval '1 minute',
       CASE WHEN g % 10 = 0 THEN timestamptz '2024-06-01' END,
       jsonb_build_object('kind', 'k' || (g % 50))
  FROM generate_series(1, 60000) AS g;
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text,
    org_id bigint NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO users (email, name, org_id, created_at)
SELECT 'user' || g || CASE WHEN g % 200 = 0 THEN '@smithfield.test' ELSE '@example.test' END,
       'User ' || g, g % 100, timestamptz '2023-01-01' + g * interval '1 hour'
  FROM generate_series(1, 30000) AS g;
CREATE INDEX users_org_id_created_at_idx ON users (org_id, created_at DESC);
CREATE INDEX users_org_id_idx ON users (org_id);
CREATE TABLE reportrun (id bigserial PRIMARY KEY, customer_id bigint NOT NULL,
    status text NOT NULL, started_at timestamptz NOT NULL, duration_ms int NOT NULL);
INSERT INTO reportrun (customer_id, status, started_at, duration_ms)
SELECT g % 500,
       CASE WHEN g % 50 = 0 THEN 'QUEUED' WHEN g % 50 = 1 THEN 'RUNNING'
            WHEN g % 7 = 0 THEN 'FAILED' ELSE 'DONE' END,
       timestamptz '2024-01-01' + g * interval '30 seconds', (g * 37) % 10000
  FROM generate_series(1, 60000) AS g;
ANALYZE;
"#;

/// The indexes the schema creates, primary keys included.
const EXISTING_INDEXES: [&str; 5] = [
    "job_events_pkey",
    "reportrun_pkey",
    "users_org_id_created_at_idx",
    "users_org_id_idx",
    "users_pkey",
];

/// A statement and its parameters for round `n`.
type Sent = (&'static str, fn(i32) -> Params);

/// One query of the workload.
struct Query {
    /// With bound parameters (Prisma, hand-written), or with literals the client
    /// interpolated (Django), where `{n}` is replaced by a number that changes every round.
    sql: &'static str,
    /// The parameters of round `n`; `None`: sent as a simple query.
    params: Option<fn(i64) -> Params>,
    /// One execution with literal values, for the real planner.
    explain: &'static str,
    /// The recommendation that serves it; `None` when an existing index already does.
    served_by: Option<&'static str>,
}

const JOB_TIMELINE: &str = "job_events_job_id_timestamp_partial_idx";
const JOB_PAYLOAD: &str = "job_events_payload_gin_idx";
const USERS_TRGM: &str = "users_email_trgm_idx";
const USERS_LOWER: &str = "users_lower_email_idx";
const REPORTRUN_ESR: &str = "reportrun_customer_id_started_at_duration_ms_idx";
const REPORTRUN_QUEUE: &str = "reportrun_started_at_partial_idx";

fn workload() -> Vec<Query> {
    vec![
        // Prisma: a job's timeline, soft-deleted rows excluded by every execution.
        Query {
            sql: r#"SELECT "public"."job_events"."id", "public"."job_events"."type", "public"."job_events"."timestamp" FROM "public"."job_events" WHERE ("public"."job_events"."job_id" = $1 AND "public"."job_events"."deleted_at" IS NULL) ORDER BY "public"."job_events"."timestamp" DESC LIMIT $2 OFFSET $3"#,
            params: Some(|n| vec![Box::new(17 + n), Box::new(20_i64), Box::new(0_i64)]),
            explain: r#"SELECT "public"."job_events"."id", "public"."job_events"."type", "public"."job_events"."timestamp" FROM "public"."job_events" WHERE ("public"."job_events"."job_id" = 17 AND "public"."job_events"."deleted_at" IS NULL) ORDER BY "public"."job_events"."timestamp" DESC LIMIT 20 OFFSET 0"#,
            served_by: Some(JOB_TIMELINE),
        },
        // Prisma: its count, served by the same index's prefix.
        Query {
            sql: r#"SELECT COUNT(*) FROM "public"."job_events" WHERE ("public"."job_events"."job_id" = $1 AND "public"."job_events"."deleted_at" IS NULL)"#,
            params: Some(|n| vec![Box::new(17 + n)]),
            explain: r#"SELECT COUNT(*) FROM "public"."job_events" WHERE ("public"."job_events"."job_id" = 17 AND "public"."job_events"."deleted_at" IS NULL)"#,
            served_by: Some(JOB_TIMELINE),
        },
        Query {
            sql: "SELECT id, email FROM users WHERE lower(email) = $1",
            params: Some(|n| vec![Box::new(format!("user{}@example.test", 100 + n))]),
            explain: "SELECT id, email FROM users WHERE lower(email) = 'user100@example.test'",
            served_by: Some(USERS_LOWER),
        },
        Query {
            sql: "SELECT id, email FROM users WHERE email ILIKE $1",
            params: Some(|_| vec![Box::new("%smith%".to_string())]),
            explain: "SELECT id, email FROM users WHERE email ILIKE '%smith%'",
            served_by: Some(USERS_TRGM),
        },
        // Served by users_org_id_created_at_idx, which exists.
        Query {
            sql: "SELECT id, email FROM users WHERE org_id = $1 ORDER BY created_at DESC LIMIT $2",
            params: Some(|n| vec![Box::new(n), Box::new(20_i64)]),
            explain:
                "SELECT id, email FROM users WHERE org_id = 3 ORDER BY created_at DESC LIMIT 20",
            served_by: None,
        },
        // Django's JSONField `contains`, interpolated by the client.
        Query {
            sql: r#"SELECT "job_events"."id" FROM "job_events" WHERE "job_events"."payload" @> '{"kind": "k{n}"}'::jsonb"#,
            params: None,
            explain: r#"SELECT "job_events"."id" FROM "job_events" WHERE "job_events"."payload" @> '{"kind": "k7"}'::jsonb"#,
            served_by: Some(JOB_PAYLOAD),
        },
        // Django: equality, sort, range.
        Query {
            sql: r#"SELECT "reportrun"."id", "reportrun"."status" FROM "reportrun" WHERE ("reportrun"."customer_id" = {n} AND "reportrun"."duration_ms" > 5000) ORDER BY "reportrun"."started_at" DESC LIMIT 21"#,
            params: None,
            explain: r#"SELECT "reportrun"."id", "reportrun"."status" FROM "reportrun" WHERE ("reportrun"."customer_id" = 42 AND "reportrun"."duration_ms" > 5000) ORDER BY "reportrun"."started_at" DESC LIMIT 21"#,
            served_by: Some(REPORTRUN_ESR),
        },
        // Django: a queue poller whose status list is written in the code.
        Query {
            sql: r#"SELECT "reportrun"."id" FROM "reportrun" WHERE "reportrun"."status" IN ('QUEUED', 'RUNNING') ORDER BY "reportrun"."started_at" ASC LIMIT {n}"#,
            params: None,
            explain: r#"SELECT "reportrun"."id" FROM "reportrun" WHERE "reportrun"."status" IN ('QUEUED', 'RUNNING') ORDER BY "reportrun"."started_at" ASC LIMIT 100"#,
            served_by: Some(REPORTRUN_QUEUE),
        },
    ]
}

/// Runs every query [`ROUNDS`] times; returns how many executions were sent.
async fn run_workload(client: &Client) -> u64 {
    let queries = workload();
    for n in 0..ROUNDS {
        for query in &queries {
            match query.params {
                Some(params) => {
                    client
                        .query(query.sql, &param_refs(&params(n)))
                        .await
                        .unwrap_or_else(|err| panic!("{}: {err:?}", query.sql));
                }
                None => {
                    let sql = query.sql.replace("{n}", &(40 + n).to_string());
                    client
                        .simple_query(&sql)
                        .await
                        .unwrap_or_else(|err| panic!("{sql}: {err:?}"));
                }
            }
        }
    }
    u64::try_from(queries.len()).unwrap_or(u64::MAX) * ROUNDS as u64
}

// ---------------------------------------------------------------------------------------
// The expected advice.
// ---------------------------------------------------------------------------------------

fn key(field: &str, direction: i8) -> Value {
    json!({ "field": field, "direction": direction })
}

/// What must be recommended once verified, sorted by name. HypoPG prices these
/// index-only scans no cheaper than plain index scans over tables never vacuumed (the
/// visibility map is empty), so verification leaves their `INCLUDE` columns out.
fn expected_recommendations() -> Vec<Value> {
    unverified_recommendations()
        .into_iter()
        .map(|mut recommendation| {
            if recommendation["method"] == "btree" {
                recommendation["include"] = json!([]);
                let statement = recommendation["statement"].as_str().unwrap_or_default();
                let without = match statement.split_once(" INCLUDE (") {
                    Some((head, tail)) => match tail.split_once(')') {
                        Some((_, rest)) => format!("{head}{rest}"),
                        None => statement.to_string(),
                    },
                    None => statement.to_string(),
                };
                recommendation["statement"] = json!(without);
            }
            recommendation
        })
        .collect()
}

/// What must be recommended without verification, sorted by name: the fields of each
/// recommendation that say which index it is and how to create it, as the advice JSON has them
/// (`pg_advice/unverified_recommendations.json`).
fn unverified_recommendations() -> Vec<Value> {
    serde_json::from_str(include_str!("pg_advice/unverified_recommendations.json"))
        .unwrap_or_else(|err| panic!("unverified_recommendations.json: {err}"))
}

/// Per recommendation, the shapes it serves (as the advice describes them), each run
/// [`ROUNDS`] times.
fn expected_serves() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        (
            JOB_TIMELINE,
            vec![
                "select job_events where deleted_at IS NULL and job_id = param",
                "select job_events where deleted_at IS NULL and job_id = param sort timestamp desc limit skip",
            ],
        ),
        (
            JOB_PAYLOAD,
            vec!["select job_events where payload @> param"],
        ),
        (
            REPORTRUN_ESR,
            vec!["select reportrun where customer_id = param and duration_ms > param sort started_at desc limit"],
        ),
        (
            REPORTRUN_QUEUE,
            vec!["select reportrun where status IN param sort started_at asc limit"],
        ),
        (USERS_TRGM, vec!["select users where email ILIKE param"]),
        (
            USERS_LOWER,
            vec![r#"select users where lower("email") = param"#],
        ),
    ])
}

/// The one drop candidate: `(org_id)` beside `(org_id, created_at DESC)`.
fn expected_drops() -> Value {
    json!([{
        "engine": "postgresql", "database": DATABASE, "schema": "public",
        "collection": "users", "name": "users_org_id_idx",
        "keys": [key("org_id", 1)], "method": "btree",
        "reason": "prefix of users_org_id_created_at_idx",
        "statement": r#"DROP INDEX CONCURRENTLY IF EXISTS "public"."users_org_id_idx";"#,
        "rollback": r#"CREATE INDEX CONCURRENTLY IF NOT EXISTS users_org_id_idx ON "public"."users" USING btree ("org_id");"#,
    }])
}

/// The notes for the recommendations HypoPG cannot model, sorted.
fn gin_notes() -> Vec<String> {
    [JOB_PAYLOAD, USERS_TRGM]
        .iter()
        .map(|name| format!("{name} is not verified: HypoPG cannot model gin indexes"))
        .collect()
}

/// The notes of an advice, sorted (their order follows the ranking, which follows timing).
fn notes(advice: &Value) -> Vec<String> {
    let mut notes: Vec<String> = advice["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|note| note.as_str().map(str::to_string))
        .collect();
    notes.sort();
    notes
}

// ---------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------

async fn connect(connection_string: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(connection_string, NoTls)
        .await
        .unwrap_or_else(|err| panic!("connect {connection_string}: {err}"));
    tokio::spawn(connection);
    client
}

/// A fresh server with [`DATABASE`] created and `schema` run in it, and a direct client.
async fn server_with(schema: &str) -> (Postgres, Client) {
    let server = Postgres::start();
    server.create_database(DATABASE).expect("create database");
    let direct = connect(&server.connection_string(DATABASE)).await;
    direct.batch_execute(schema).await.expect("schema and rows");
    (server, direct)
}

/// A proxy in front of `server`, reading the catalog through `admin_url` when given.
fn start_proxy(server: &Postgres, admin_url: Option<&str>) -> (IndextapProcess, SocketAddr) {
    start_proxy_with(server, admin_url, &[])
}

/// [`start_proxy`] with extra environment variables (settings) for the proxy.
fn start_proxy_with(
    server: &Postgres,
    admin_url: Option<&str>,
    env: &[(&str, &str)],
) -> (IndextapProcess, SocketAddr) {
    let pg_listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin_listen = format!("127.0.0.1:{}", free_port());
    let listen = pg_listen.to_string();
    let upstream = server.addr().to_string();
    let mut args = vec![
        "proxy",
        "--pg-listen",
        &listen,
        "--pg-upstream",
        &upstream,
        "--admin-listen",
        &admin_listen,
    ];
    if let Some(url) = admin_url {
        args.extend(["--pg-admin-url", url]);
    }
    let mut options = IndextapOptions::new(&args);
    options.env = env
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    (IndextapProcess::start_with(options), pg_listen)
}

/// Runs the workload against `database` through the proxy and waits until every execution
/// is counted.
async fn capture(server: &Postgres, proxy: &IndextapProcess, listen: SocketAddr, database: &str) {
    let client = connect(&server.connection_string_via(listen, database)).await;
    let sent = run_workload(&client).await;
    let deadline = Instant::now() + SETTLE;
    loop {
        let document = proxy.shapes_document().expect("GET /api/v1/shapes");
        let counted: u64 = document["shapes"]
            .as_array()
            .map(|shapes| shapes.iter().filter_map(|s| s["count"].as_u64()).sum())
            .unwrap_or(0);
        if counted >= sent {
            assert_eq!(counted, sent, "executions counted: {document}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {counted} of {sent} executions counted: {document}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the captured shapes (`/api/v1/shapes`) satisfy `captured`.
fn wait_for_shapes(proxy: &IndextapProcess, captured: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let document = proxy.get_json("/api/v1/shapes").unwrap_or_default();
        if captured(document["shapes"].as_array().map_or(&[], Vec::as_slice)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the shapes were not captured: {document}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn advice(proxy: &IndextapProcess) -> Value {
    proxy
        .get_json("/api/v1/recommendations")
        .expect("GET /api/v1/recommendations")
}

fn recommendations(advice: &Value) -> Vec<Value> {
    advice["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The identifying fields of each recommendation, sorted by name.
fn identities(advice: &Value) -> Vec<Value> {
    let mut identities: Vec<Value> = recommendations(advice)
        .iter()
        .map(|r| {
            json!({
                "engine": r["engine"], "database": r["database"], "schema": r["schema"],
                "collection": r["collection"], "name": r["name"], "keys": r["keys"],
                "method": r["method"], "unique": r["unique"], "partial": r["partial"],
                "include": r["include"], "statement": r["statement"],
            })
        })
        .collect();
    identities.sort_by_key(|r| r["name"].as_str().unwrap_or_default().to_string());
    identities
}

fn names(advice: &Value) -> Vec<String> {
    identities(advice)
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect()
}

/// The Total Cost of the real plan of `sql`, and the plan itself.
async fn explain(client: &Client, sql: &str) -> (f64, Value) {
    let messages = client
        .simple_query(&format!("EXPLAIN (FORMAT JSON) {sql}"))
        .await
        .unwrap_or_else(|err| panic!("EXPLAIN {sql}: {err:?}"));
    let text = messages
        .into_iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .expect("EXPLAIN returns a row");
    let plan: Value = serde_json::from_str(&text).expect("EXPLAIN JSON");
    let cost = plan[0]["Plan"]["Total Cost"]
        .as_f64()
        .expect("a Total Cost");
    (cost, plan)
}

/// Whether a plan scans the index `name`.
fn scans(plan: &Value, name: &str) -> bool {
    match plan {
        Value::Object(map) => map.iter().any(|(key, value)| {
            (key == "Index Name" && value.as_str() == Some(name)) || scans(value, name)
        }),
        Value::Array(items) => items.iter().any(|item| scans(item, name)),
        _ => false,
    }
}

/// The names in pg_indexes of the public schema, sorted.
async fn index_names(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .expect("pg_indexes")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Whether the HypoPG extension is installed in the connected database.
async fn hypopg_installed(client: &Client) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg')",
            &[],
        )
        .await
        .expect("pg_extension")
        .get(0)
}

fn sorted(names: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
    names.sort();
    names
}

/// `indextap recommend --from http://ADMIN --format sql`.
fn recommend_sql(proxy: &IndextapProcess) -> String {
    let output = Command::new(IndextapProcess::binary())
        .args(["recommend", "--from"])
        .arg(format!("http://{}", proxy.admin_addr()))
        .args(["--format", "sql"])
        .output()
        .expect("run indextap recommend");
    assert_success(&output, "indextap recommend")
}

/// The up and down parts of a migration.
fn split_migration(migration: &str) -> (&str, &str) {
    let (_, rest) = migration
        .split_once("-- migrate:up\n")
        .expect("a migrate:up marker");
    rest.split_once("-- migrate:down\n")
        .expect("a migrate:down marker")
}

/// The statements of a migration part: its lines that are not comments.
fn statements(part: &str) -> Vec<String> {
    part.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("--"))
        .map(str::to_string)
        .collect()
}

/// Runs a migration part with `psql -f`: every statement on its own, outside a transaction.
fn psql_file(server: &Postgres, dir: &std::path::Path, name: &str, sql: &str) {
    let path = dir.join(name);
    std::fs::write(&path, sql).expect("write the migration part");
    let path = path.display().to_string();
    server
        .psql_in(DATABASE, &["-q", "-f", &path])
        .unwrap_or_else(|err| panic!("psql -f {name}: {err:#}\n{sql}"));
}

// ---------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_advice_for_a_known_workload_and_its_migration() {
    let (server, direct) = server_with(SCHEMA).await;
    assert_eq!(index_names(&direct).await, sorted(EXISTING_INDEXES));

    // The catalog connection is the superuser's: the proxy creates HypoPG itself.
    let admin_url = server.url("postgres");
    let (proxy, listen) = start_proxy(&server, Some(&admin_url));
    capture(&server, &proxy, listen, DATABASE).await;

    // The exact list, nothing existing, nothing redundant.
    let advised = advice(&proxy);
    assert_eq!(
        identities(&advised),
        expected_recommendations(),
        "recommendations: {advised:#}"
    );
    assert_eq!(advised["drops"], expected_drops(), "drops");
    assert_eq!(notes(&advised), gin_notes(), "notes");
    let hypopg = hypopg_installed(&direct).await;
    assert!(hypopg, "the proxy created HypoPG in {DATABASE}");

    // Each recommendation serves its shapes, and the B-tree ones are verified.
    let serves = expected_serves();
    for recommendation in recommendations(&advised) {
        let name = recommendation["name"].as_str().expect("a name");
        let mut served: Vec<(String, u64)> = recommendation["serves"]
            .as_array()
            .expect("serves")
            .iter()
            .map(|s| {
                let text = s["shape"].as_str().unwrap_or_default().to_string();
                (text, s["count"].as_u64().unwrap_or(0))
            })
            .collect();
        served.sort();
        let wanted: Vec<(String, u64)> = serves[name]
            .iter()
            .map(|text| (text.to_string(), ROUNDS as u64))
            .collect();
        assert_eq!(served, wanted, "{name} serves");

        let evidence = &recommendation["evidence"];
        if recommendation["method"] == "btree" {
            assert_eq!(evidence["method"], "hypopg", "{name}: {recommendation:#}");
            let before = evidence["cost_before"].as_f64().expect("cost_before");
            let after = evidence["cost_after"].as_f64().expect("cost_after");
            assert!(
                after > 0.0 && before > after,
                "{name}: HypoPG cost {before} -> {after}"
            );
        } else {
            assert_eq!(*evidence, Value::Null, "{name}: HypoPG cannot model GIN");
        }
    }

    // The migration from the CLI: the same statements up, their rollback down.
    let migration = recommend_sql(&proxy);
    let (up, down) = split_migration(&migration);
    let mut created = statements(up);
    created.sort();
    let expected_statements: Vec<String> = expected_recommendations()
        .iter()
        .map(|r| r["statement"].as_str().expect("statement").to_string())
        .collect();
    assert_eq!(
        created,
        sorted(expected_statements.clone()),
        "up:\n{migration}"
    );
    assert!(
        up.contains(r#"-- DROP INDEX CONCURRENTLY IF EXISTS "public"."users_org_id_idx";"#),
        "the drop candidate is offered, commented out:\n{up}"
    );
    let mut dropped = statements(down);
    dropped.sort();
    let rollback: Vec<String> = expected_recommendations()
        .iter()
        .map(|r| {
            format!(
                r#"DROP INDEX CONCURRENTLY IF EXISTS "public"."{}";"#,
                r["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(dropped, sorted(rollback), "down:\n{migration}");

    // The real planner, before.
    let queries = workload();
    let mut before = Vec::new();
    for query in &queries {
        before.push(explain(&direct, query.explain).await.0);
    }

    // Each recommendation's own statement, run as given: outside a transaction.
    for statement in &expected_statements {
        direct
            .batch_execute(statement)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err:?}"));
    }
    let with_recommended = sorted(
        EXISTING_INDEXES
            .iter()
            .copied()
            .chain(names(&advised).iter().map(String::as_str)),
    );
    assert_eq!(index_names(&direct).await, with_recommended);
    direct.batch_execute("ANALYZE").await.expect("analyze");

    // The real planner, after: each served query scans its index and costs less.
    for (query, cost_before) in queries.iter().zip(&before) {
        let Some(index) = query.served_by else {
            continue;
        };
        let (cost_after, plan) = explain(&direct, query.explain).await;
        assert!(
            scans(&plan, index),
            "{index} is used by {}: {plan:#}",
            query.explain
        );
        assert!(
            cost_after < *cost_before,
            "{index}: real cost {cost_before} -> {cost_after} for {}",
            query.explain
        );
    }

    // Now that they exist, nothing more is recommended; the drop candidate stays.
    let after = advice(&proxy);
    assert_eq!(after["recommendations"], json!([]), "{after:#}");
    assert_eq!(after["drops"], expected_drops(), "drops");

    // The migration's rollback, then its up part, then its rollback again, with psql.
    let scratch = tempfile::tempdir().expect("tempdir");
    psql_file(&server, scratch.path(), "down.sql", down);
    assert_eq!(index_names(&direct).await, sorted(EXISTING_INDEXES));
    psql_file(&server, scratch.path(), "up.sql", up);
    assert_eq!(index_names(&direct).await, with_recommended);
    psql_file(&server, scratch.path(), "down.sql", down);
    assert_eq!(index_names(&direct).await, sorted(EXISTING_INDEXES));
}

/// A verification budget of one candidate (`advice.max_verified_candidates`): the known
/// workload has more B-tree candidates than that, so the heaviest is measured and every other
/// one is left out, never recommended unverified, and the notes say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_over_the_verification_budget_are_left_out_and_said_so() {
    let wanted = expected_recommendations()
        .iter()
        .filter(|r| r["method"] == "btree")
        .count();
    assert!(wanted > 1, "the workload must need more than the budget");
    let (server, _direct) = server_with(SCHEMA).await;
    let admin_url = server.url("postgres");
    let (proxy, listen) = start_proxy_with(
        &server,
        Some(&admin_url),
        &[("INDEXTAP_MAX_VERIFIED_CANDIDATES", "1")],
    );
    capture(&server, &proxy, listen, DATABASE).await;

    let advised = advice(&proxy);
    let btree: Vec<Value> = recommendations(&advised)
        .into_iter()
        .filter(|r| r["method"] == "btree")
        .collect();
    assert!(btree.len() <= 1, "at most the one measured: {advised:#}");
    for recommendation in &btree {
        assert_eq!(
            recommendation["evidence"]["method"], "hypopg",
            "measured: {recommendation:#}"
        );
    }
    assert!(
        notes(&advised).iter().any(|note| note.contains(
            "were not verified and are left out: the verification budget of 1 candidates per run"
        )),
        "the budget is named in the notes: {advised:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advice_without_hypopg_says_it_is_not_verified() {
    let (server, direct) = server_with(SCHEMA).await;

    // A catalog user that may read pg_index but not create HypoPG (not a superuser).
    direct
        .batch_execute(&format!("CREATE ROLE {READER} LOGIN"))
        .await
        .expect("create the reader role");
    let reader_url = format!("postgres://{READER}@127.0.0.1:{}/postgres", server.port());
    let (unprivileged, listen) = start_proxy(&server, Some(&reader_url));
    capture(&server, &unprivileged, listen, DATABASE).await;
    let advised = advice(&unprivileged);
    let hypopg_note = format!("HypoPG is not available on {DATABASE}: costs are not verified");
    assert_eq!(advised["notes"], json!([hypopg_note]), "{advised:#}");
    // Existing indexes were still read: the same list, none of it verified.
    let mut unverified = unverified_recommendations();
    unverified.sort_by_key(|r| r["name"].as_str().unwrap_or_default().to_string());
    assert_eq!(identities(&advised), unverified, "{advised:#}");
    assert!(
        recommendations(&advised)
            .iter()
            .all(|r| r["evidence"].is_null()),
        "{advised:#}"
    );
    assert_eq!(advised["drops"], expected_drops(), "drops");
    let hypopg = hypopg_installed(&direct).await;
    assert!(!hypopg, "nothing was created");

    // No catalog URL at all: neither existing indexes nor costs, and the notes say both.
    let (blind, listen) = start_proxy(&server, None);
    capture(&server, &blind, listen, DATABASE).await;
    let advised = advice(&blind);
    assert_eq!(
        advised["notes"],
        json!([
            "existing PostgreSQL indexes were not read (no --pg-admin-url): an index may already exist",
            hypopg_note,
        ]),
        "{advised:#}"
    );
    assert!(
        recommendations(&advised)
            .iter()
            .all(|r| r["evidence"].is_null()),
        "{advised:#}"
    );
    assert_eq!(
        advised["drops"],
        json!([]),
        "no catalog, no drop candidates"
    );
    // Not knowing users_org_id_created_at_idx exists, it proposes it: the reason it is
    // absent above is the catalog.
    let mut blind_names: Vec<String> = unverified_recommendations()
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .chain(["users_org_id_created_at_idx".to_string()])
        .collect();
    blind_names.sort();
    assert_eq!(names(&advised), blind_names, "{advised:#}");
    let migration = recommend_sql(&blind);
    assert!(
        migration.contains("-- note: HypoPG is not available on app: costs are not verified"),
        "the migration carries the notes as comments:\n{migration}"
    );
}

/// Details of reading the catalog, against the real server:
/// - an existing index's null ordering is part of what it serves: `(account_id, due_at DESC
///   NULLS LAST)` returns `ORDER BY due_at DESC NULLS LAST` in order, but not `ORDER BY
///   due_at DESC` (whose nulls come first), which needs an index of its own;
/// - Prisma's quoted camelCase names (`"JobEvent"."jobId"`) are matched with the indexes
///   that exist, and the recommended index is verified and created under those names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_null_ordering_and_quoted_names() {
    let (server, direct) = server_with(
            r#"CREATE TABLE invoices (id bigserial PRIMARY KEY, account_id bigint NOT NULL,
                 due_at timestamptz);
             INSERT INTO invoices (account_id, due_at)
             SELECT g % 1000, CASE WHEN g % 5 <> 0 THEN timestamptz '2024-01-01' + g * interval '1 hour' END
               FROM generate_series(1, 40000) AS g;
             CREATE INDEX invoices_account_id_due_at_idx
                 ON invoices (account_id, due_at DESC NULLS LAST);
             CREATE TABLE "JobEvent" (id serial PRIMARY KEY, "jobId" integer NOT NULL,
                 kind text NOT NULL, "createdAt" timestamp(3) NOT NULL);
             INSERT INTO "JobEvent" ("jobId", kind, "createdAt")
             SELECT g % 2000, 'kind' || (g % 7), timestamp '2024-01-01' + g * interval '1 minute'
               FROM generate_series(1, 40000) AS g;
             CREATE INDEX "JobEvent_jobId_createdAt_idx" ON "JobEvent" ("jobId", "createdAt" DESC);
             ANALYZE;"#,
    )
    .await;
    let admin_url = server.url("postgres");
    let (proxy, listen) = start_proxy(&server, Some(&admin_url));
    let client = connect(&server.connection_string_via(listen, DATABASE)).await;
    let statements: [Sent; 4] = [
        (
            "SELECT id FROM invoices WHERE account_id = $1 ORDER BY due_at DESC NULLS LAST LIMIT 10",
            |n| vec![Box::new(i64::from(n))],
        ),
        (
            "SELECT id FROM invoices WHERE account_id = $1 ORDER BY due_at DESC LIMIT 10",
            |n| vec![Box::new(i64::from(n))],
        ),
        (
            r#"SELECT "public"."JobEvent"."id", "public"."JobEvent"."kind" FROM "public"."JobEvent" WHERE "public"."JobEvent"."jobId" = $1 ORDER BY "public"."JobEvent"."createdAt" DESC LIMIT $2 OFFSET $3"#,
            |n| vec![Box::new(n), Box::new(20_i64), Box::new(0_i64)],
        ),
        (
            r#"SELECT "public"."JobEvent"."id" FROM "public"."JobEvent" WHERE ("public"."JobEvent"."jobId" = $1 AND "public"."JobEvent"."kind" = $2)"#,
            |n| vec![Box::new(n), Box::new(format!("kind{}", n % 7))],
        ),
    ];
    for n in 0..5 {
        for (sql, params) in &statements {
            client
                .query(*sql, &param_refs(&params(n)))
                .await
                .expect(sql);
        }
    }
    wait_for_shapes(&proxy, |shapes| shapes.len() >= statements.len());
    let advised = advice(&proxy);
    let recommended: Vec<(Value, Value, Value)> = identities(&advised)
        .iter()
        .map(|r| (r["name"].clone(), r["keys"].clone(), r["statement"].clone()))
        .collect();
    assert_eq!(
        recommended,
        vec![
            (
                json!("invoices_account_id_due_at_idx_2"),
                json!([key("account_id", 1), key("due_at", -1)]),
                json!(
                    r#"CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_account_id_due_at_idx_2 ON "public"."invoices" USING btree ("account_id", "due_at" DESC);"#
                ),
            ),
            (
                json!("jobevent_jobid_kind_idx"),
                json!([key("jobId", 1), key("kind", 1)]),
                json!(
                    r#"CREATE INDEX CONCURRENTLY IF NOT EXISTS jobevent_jobid_kind_idx ON "public"."JobEvent" USING btree ("jobId", "kind");"#
                ),
            ),
        ],
        "{advised:#}"
    );
    for recommendation in recommendations(&advised) {
        let evidence = &recommendation["evidence"];
        let before = evidence["cost_before"].as_f64().unwrap_or(0.0);
        let after = evidence["cost_after"].as_f64().unwrap_or(f64::INFINITY);
        assert!(before > after, "verified by HypoPG: {recommendation:#}");
    }
    assert_eq!(advised["drops"], json!([]), "{advised:#}");
    assert_eq!(advised["notes"], json!([]), "{advised:#}");

    for (_, _, statement) in &recommended {
        let statement = statement.as_str().expect("a statement");
        direct
            .batch_execute(statement)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err:?}"));
    }
    let after = advice(&proxy);
    assert_eq!(after["recommendations"], json!([]), "{after:#}");
}
