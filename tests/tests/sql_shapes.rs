//! SQL shapes end to end: statements sent through the real proxy by tokio-postgres (extended
//! protocol) and as simple queries come out of `/api/v1/shapes` as exactly the canonical
//! shapes the analyzer defines, with the right counts, write load and rejections.
//!
//! The whole list of shapes is compared, not just a few: a statement that produced an extra
//! shape, lost one, or split one shape into two ids fails here.
//!
//! ## Layout
//! - expected shapes are built with the analyzer's own `testing::sql` builders, the ones its
//!   unit table uses;
//! - `cases`: each statement, how it is sent, and the shapes it must yield;
//! - the harness: server, schema (created directly, not through the proxy), proxy, client;
//! - the test: run every case through the proxy, wait for the counts, compare everything.

use std::error::Error;
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, BytesMut};
use indextap_analyzer::testing::sql::{expression, field, select, shape, sort, DATABASE};
use indextap_analyzer::testing::statements::{self, Statement};
use indextap_tests::capture::write_counts;
use indextap_tests::ports::free_addr;
use indextap_tests::postgres::connect;
use indextap_tests::{IndextapOptions, IndextapProcess, Postgres};
use serde_json::{json, Value};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::Client;

/// How long the aggregate may take to show what was sent.
const SETTLE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// The cases.
// ---------------------------------------------------------------------------------------

/// A bound parameter of the extended protocol.
enum Param {
    Int(i64),
    Text(&'static str),
    Ints(Vec<i64>),
    Jsonb(&'static str),
    Time(SystemTime),
}

/// jsonb in binary format: a version byte, then the JSON text (tokio-postgres has no jsonb
/// support without its serde feature).
#[derive(Debug)]
struct Jsonb(&'static str);

impl ToSql for Jsonb {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_u8(1);
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

impl Param {
    fn boxed(&self) -> Box<dyn ToSql + Sync + Send> {
        match self {
            Param::Int(value) => Box::new(*value),
            Param::Text(value) => Box::new(value.to_string()),
            Param::Ints(values) => Box::new(values.clone()),
            Param::Jsonb(text) => Box::new(Jsonb(text)),
            Param::Time(at) => Box::new(*at),
        }
    }
}

/// How a statement reaches the server.
enum Via {
    /// One Query message (several statements allowed).
    Simple,
    /// Parse/Bind/Execute with these parameters.
    Extended(Vec<Param>),
}

struct Case {
    sql: &'static str,
    via: Via,
    /// The server refuses it (a syntax error): the client sees an error.
    fails: bool,
    /// The shapes it yields, each counted once per execution.
    shapes: Vec<Value>,
}

fn simple(sql: &'static str, shapes: Vec<Value>) -> Case {
    Case {
        sql,
        via: Via::Simple,
        fails: false,
        shapes,
    }
}

/// A statement of the analyzer's table, sent `via` the simple or the extended protocol.
fn shared(statement: Statement, via: Via) -> Case {
    Case {
        sql: statement.sql,
        via,
        fails: false,
        shapes: statement.shapes,
    }
}

fn extended(sql: &'static str, params: Vec<Param>, shapes: Vec<Value>) -> Case {
    Case {
        sql,
        via: Via::Extended(params),
        fails: false,
        shapes,
    }
}

const SCHEMA: &str = r#"
CREATE TABLE upstream_reportrun (id bigserial PRIMARY KEY, customer_id bigint NOT NULL,
    status text NOT NULL, started_at timestamptz, finished_at timestamptz);
CREATE TABLE job_events (id bigserial PRIMARY KEY, job_id bigint NOT NULL, type text,
    "timestamp" timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz, payload jsonb);
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text, org_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
CREATE TABLE customers (id bigserial PRIMARY KEY, name text, region text);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint, status text, total numeric,
    created_at timestamptz NOT NULL DEFAULT now(), shipped_at timestamptz);
CREATE TABLE order_items (id bigserial PRIMARY KEY, order_id bigint, sku text,
    deleted_at timestamptz);
CREATE TABLE products (id bigserial PRIMARY KEY, name text, sku text, category text,
    price numeric);
CREATE TABLE tickets (id bigserial PRIMARY KEY, assignee_id bigint, reporter_id bigint,
    status text, priority int);
CREATE TABLE sales (id bigserial PRIMARY KEY, region text, created_at timestamptz,
    amount numeric);
CREATE TABLE sessions (id bigserial PRIMARY KEY, user_id bigint, expires_at timestamptz);
INSERT INTO users (email, name, org_id) VALUES ('someone@example.com', 'Someone', 1);
INSERT INTO customers (name, region) VALUES ('acme', 'EU');
"#;

fn orders_by_customers() -> Value {
    select("orders")
        .filter(vec![field("customer_id", "IN", "in", "param")])
        .projection(vec!["id"])
        .json()
}

fn cases() -> Vec<Case> {
    let week_ago = SystemTime::now() - Duration::from_secs(7 * 24 * 3600);
    vec![
        shared(statements::django_reportrun_list(), Via::Simple),
        // Another customer, a longer IN list: the same shape.
        simple(
            r#"SELECT "upstream_reportrun"."id", "upstream_reportrun"."customer_id" FROM "upstream_reportrun" WHERE ("upstream_reportrun"."customer_id" = 7 AND "upstream_reportrun"."status" IN ('QUEUED', 'RUNNING', 'FAILED')) ORDER BY "upstream_reportrun"."started_at" DESC LIMIT 21"#,
            vec![statements::django_reportrun_list_shape()],
        ),
        simple(
            r#"SELECT COUNT(*) AS "__count" FROM "upstream_reportrun" WHERE "upstream_reportrun"."customer_id" = 42"#,
            vec![select("upstream_reportrun")
                .filter(vec![field("customer_id", "=", "eq", "param")])
                .json()],
        ),
        // Django's `started_at__date=`: an expression on a column.
        simple(
            r#"SELECT "upstream_reportrun"."id" FROM "upstream_reportrun" WHERE ("upstream_reportrun"."started_at" AT TIME ZONE 'UTC')::date = '2024-05-01'::date"#,
            vec![select("upstream_reportrun")
                .filter(vec![expression(
                    r#"("started_at" AT TIME ZONE 'UTC')::DATE"#,
                    "started_at",
                    "=",
                    "eq",
                    "param",
                )])
                .projection(vec!["id"])
                .json()],
        ),
        shared(statements::django_reportrun_update(), Via::Simple),
        simple(
            r#"INSERT INTO "upstream_reportrun" ("customer_id", "status", "started_at") VALUES (42, 'QUEUED', '2024-01-01T00:00:00Z'::timestamptz) RETURNING "upstream_reportrun"."id""#,
            vec![],
        ),
        // Prisma: schema-qualified names, every value a parameter, LIMIT and OFFSET bound.
        shared(
            statements::prisma_job_events_page(),
            Via::Extended(vec![Param::Int(5), Param::Int(20), Param::Int(0)]),
        ),
        extended(
            r#"SELECT "public"."job_events"."id", "public"."job_events"."type" FROM "public"."job_events" WHERE ("public"."job_events"."job_id" = $1 AND "public"."job_events"."deleted_at" IS NULL) ORDER BY "public"."job_events"."timestamp" DESC LIMIT $2 OFFSET $3"#,
            vec![Param::Int(5), Param::Int(50), Param::Int(100)],
            vec![select("job_events")
                .filter(vec![
                    field("deleted_at", "IS NULL", "is_null", "none"),
                    field("job_id", "=", "eq", "param"),
                ])
                .sort(vec![sort("timestamp", -1)])
                .limit()
                .skip()
                .projection(vec!["id", "type"])
                .json()],
        ),
        extended(
            r#"SELECT "public"."users"."id", "public"."users"."email" FROM "public"."users" WHERE "public"."users"."org_id" = $1 ORDER BY "public"."users"."created_at" DESC, "public"."users"."id" ASC LIMIT $2 OFFSET $3"#,
            vec![Param::Int(1), Param::Int(10), Param::Int(0)],
            vec![select("users")
                .filter(vec![field("org_id", "=", "eq", "param")])
                .sort(vec![sort("created_at", -1), sort("id", 1)])
                .limit()
                .skip()
                .projection(vec!["email", "id"])
                .json()],
        ),
        extended(
            r#"INSERT INTO "public"."job_events" ("job_id","type","payload") VALUES ($1,$2,$3) RETURNING "public"."job_events"."id""#,
            vec![
                Param::Int(5),
                Param::Text("started"),
                Param::Jsonb(r#"{"kind": "build"}"#),
            ],
            vec![],
        ),
        // Joins with aliases; the LEFT JOIN's ON conditions belong to order_items.
        shared(
            statements::joins_with_aliases_and_an_outer_join(),
            Via::Extended(vec![Param::Text("EU")]),
        ),
        shared(
            statements::lower_email_lookup(),
            Via::Extended(vec![Param::Text("someone@example.com")]),
        ),
        simple(
            "SELECT count(*) FROM orders WHERE date(created_at) = '2024-05-01'",
            vec![select("orders")
                .filter(vec![expression(
                    r#"date("created_at")"#,
                    "created_at",
                    "=",
                    "eq",
                    "param",
                )])
                .json()],
        ),
        shared(statements::like_prefix(), Via::Simple),
        shared(
            statements::like_infix_or_parameter(),
            Via::Extended(vec![Param::Text("sku-%")]),
        ),
        shared(statements::ilike(), Via::Simple),
        simple(
            "SELECT id, email FROM users WHERE email ILIKE '%smith%'",
            vec![select("users")
                .filter(vec![field("email", "ILIKE", "infix", "param")])
                .projection(vec!["email", "id"])
                .json()],
        ),
        extended(
            "SELECT id FROM job_events WHERE payload->>'kind' = $1 AND payload @> $2",
            vec![Param::Text("build"), Param::Jsonb(r#"{"kind": "build"}"#)],
            vec![select("job_events")
                .filter(vec![
                    field("payload", "@>", "json_contains", "param"),
                    expression(r#""payload" ->> 'kind'"#, "payload", "=", "eq", "param"),
                ])
                .projection(vec!["id"])
                .json()],
        ),
        shared(
            statements::tickets_of_a_person(),
            Via::Extended(vec![Param::Int(3)]),
        ),
        // IN lists of different lengths: one shape, counted twice.
        simple(
            "SELECT id FROM orders WHERE customer_id IN (1, 2)",
            vec![orders_by_customers()],
        ),
        simple(
            "SELECT id FROM orders WHERE customer_id IN (3, 4, 5, 6, 7)",
            vec![orders_by_customers()],
        ),
        extended(
            "SELECT id FROM orders WHERE id = ANY($1)",
            vec![Param::Ints(vec![1, 2, 3])],
            vec![select("orders")
                .filter(vec![field("id", "= ANY", "in", "param")])
                .projection(vec!["id"])
                .json()],
        ),
        simple(
            "SELECT * FROM orders WHERE shipped_at IS NULL AND total BETWEEN 10 AND 20 \
             AND status NOT IN ('CANCELLED', 'REFUNDED')",
            vec![select("orders")
                .filter(vec![
                    field("shipped_at", "IS NULL", "is_null", "none"),
                    field("status", "NOT IN", "ne", "param"),
                    field("total", "BETWEEN", "range", "param"),
                ])
                .json()],
        ),
        extended(
            "SELECT region, sum(amount) FROM sales WHERE created_at >= $1 GROUP BY region ORDER BY region",
            vec![Param::Time(week_ago)],
            vec![select("sales")
                .filter(vec![field("created_at", ">=", "range", "param")])
                .sort(vec![sort("region", 1)])
                .projection(vec!["amount", "region"])
                .group_by(vec!["region"])
                .json()],
        ),
        extended(
            "SELECT * FROM orders WHERE customer_id = (SELECT id FROM customers WHERE name = $1)",
            vec![Param::Text("acme")],
            vec![
                select("customers")
                    .filter(vec![field("name", "=", "eq", "param")])
                    .projection(vec!["id"])
                    .json(),
                select("orders")
                    .filter(vec![field("customer_id", "=", "eq", "other")])
                    .json(),
            ],
        ),
        // sqlparser does not parse these, PostgreSQL does: rejected, nothing else breaks.
        simple("SELECT * FROM users FOR NO KEY UPDATE SKIP LOCKED", vec![]),
        extended("TABLE customers", vec![], vec![]),
        // Neither does PostgreSQL.
        Case {
            sql: "SELEC id FROM users",
            via: Via::Simple,
            fails: true,
            shapes: vec![],
        },
        extended(
            "UPDATE job_events SET deleted_at = now() WHERE job_id = $1 AND deleted_at IS NULL",
            vec![Param::Int(999)],
            vec![shape("update", "job_events")
                .filter(vec![
                    field("deleted_at", "IS NULL", "is_null", "none"),
                    field("job_id", "=", "eq", "param"),
                ])
                .json()],
        ),
        shared(
            statements::expired_sessions_delete(),
            Via::Extended(vec![Param::Int(1)]),
        ),
        simple(
            "INSERT INTO customers (name, region) VALUES ('a', 'EU'), ('b', 'US'), ('c', 'EU')",
            vec![],
        ),
        // Several statements in one Query message.
        shared(statements::several_in_one_text(), Via::Simple),
    ]
}

/// The write load the cases put on each table: (table, inserts, updates, deletes).
const WRITES: [(&str, u64, u64, u64); 5] = [
    ("customers", 3, 0, 0),
    ("job_events", 1, 1, 0),
    ("sessions", 0, 0, 1),
    ("upstream_reportrun", 1, 1, 0),
    ("users", 0, 1, 0),
];

/// Statements the analyzer could not parse (the sqlparser-only two and the syntax error).
const PARSE_ERRORS: u64 = 3;

// ---------------------------------------------------------------------------------------
// The harness.
// ---------------------------------------------------------------------------------------

async fn run(client: &Client, case: &Case) {
    let outcome = match &case.via {
        Via::Simple => client.simple_query(case.sql).await.map(drop),
        Via::Extended(params) => {
            let boxed: Vec<_> = params.iter().map(Param::boxed).collect();
            let refs: Vec<&(dyn ToSql + Sync)> = boxed
                .iter()
                .map(|param| param.as_ref() as &(dyn ToSql + Sync))
                .collect();
            client.query(case.sql, &refs).await.map(drop)
        }
    };
    match (outcome, case.fails) {
        (Ok(()), false) | (Err(_), true) => {}
        (Ok(()), true) => panic!("the server accepted {}", case.sql),
        (Err(err), false) => panic!("{}: {err:?}", case.sql),
    }
}

/// Every (shape, count) pair, merged by equal shapes.
fn tally(pairs: impl IntoIterator<Item = (Value, u64)>) -> Vec<(Value, u64)> {
    let mut tallied: Vec<(Value, u64)> = Vec::new();
    for (shape, count) in pairs {
        match tallied.iter_mut().find(|(seen, _)| *seen == shape) {
            Some((_, total)) => *total += count,
            None => tallied.push((shape, count)),
        }
    }
    tallied
}

fn pretty(pairs: &[&(Value, u64)]) -> String {
    pairs
        .iter()
        .map(|(shape, count)| format!("{count} x {shape}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn executions(document: &Value) -> u64 {
    document["shapes"]
        .as_array()
        .map(|shapes| shapes.iter().filter_map(|s| s["count"].as_u64()).sum())
        .unwrap_or(0)
}

fn parse_errors(document: &Value) -> u64 {
    document["rejected"]["sql_parse_error"]
        .as_u64()
        .unwrap_or(0)
}

/// Polls `/api/v1/shapes` until it has counted `executions` and `rejected` (or time runs
/// out); returns the last document.
fn settled(proxy: &IndextapProcess, executions_wanted: u64, rejected_wanted: u64) -> Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let document = proxy.shapes_document().expect("GET /api/v1/shapes");
        let done = executions(&document) >= executions_wanted
            && parse_errors(&document) >= rejected_wanted;
        if done || Instant::now() >= deadline {
            return document;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_through_the_proxy_yield_their_canonical_shapes() {
    let server = Postgres::start();
    let direct = server.create_database_with(DATABASE, SCHEMA).await;

    let listen_addr = free_addr();
    let proxy = IndextapProcess::start_with(IndextapOptions::postgres(listen_addr, server.addr()));
    let client = connect(&server.connection_string_via(listen_addr, DATABASE)).await;

    let cases = cases();
    assert!(cases.len() >= 25, "at least 25 statements");
    for case in &cases {
        run(&client, case).await;
    }
    // The connection still works after the rejected statements.
    let row = client
        .query_one("SELECT count(*) FROM customers WHERE region = $1", &[&"EU"])
        .await
        .expect("the connection still works");
    assert_eq!(row.get::<_, i64>(0), 3);

    let last = select("customers")
        .filter(vec![field("region", "=", "eq", "param")])
        .json();
    let mut expected = tally(
        cases
            .iter()
            .flat_map(|case| case.shapes.iter().cloned())
            .chain([last])
            .map(|shape| (shape, 1)),
    );
    let total: u64 = expected.iter().map(|(_, count)| count).sum();
    let document = settled(&proxy, total, PARSE_ERRORS);

    let mut actual = tally(
        document["shapes"]
            .as_array()
            .expect("a shapes array")
            .iter()
            .map(|entry| (entry["shape"].clone(), entry["count"].as_u64().unwrap_or(0))),
    );
    // One shape id per distinct shape: the list must not hold the same shape twice.
    assert_eq!(
        actual.len(),
        document["shapes"].as_array().map_or(0, Vec::len),
        "a shape is listed under two ids"
    );
    actual.sort_by_key(|(shape, _)| shape.to_string());
    expected.sort_by_key(|(shape, _)| shape.to_string());
    let missing: Vec<_> = expected.iter().filter(|e| !actual.contains(e)).collect();
    let unexpected: Vec<_> = actual.iter().filter(|a| !expected.contains(a)).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "shapes differ\n--- expected but not served ---\n{}\n--- served but not expected ---\n{}",
        pretty(&missing),
        pretty(&unexpected)
    );

    // Each entry's own fields agree with its shape.
    for entry in document["shapes"].as_array().into_iter().flatten() {
        assert_eq!(entry["engine"], "postgresql", "{entry}");
        assert_eq!(entry["database"], DATABASE, "{entry}");
        assert_eq!(
            entry["collection"],
            entry["shape"]["namespace"]["collection"]
        );
        assert_eq!(entry["command"], entry["shape"]["command"]);
        assert_eq!(entry["errors"], 0, "{entry}");
    }

    assert_eq!(
        document["rejected"],
        json!({ "sql_parse_error": PARSE_ERRORS }),
        "rejections"
    );
    let writes: Vec<Value> = WRITES
        .iter()
        .map(|(table, inserts, updates, deletes)| {
            json!({
                "namespace": {"engine": "postgresql", "database": DATABASE, "schema": "public",
                    "collection": table},
                "inserts": inserts, "updates": updates, "deletes": deletes,
            })
        })
        .collect();
    let seen: Vec<Value> = document["writes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|write| write_counts(write).unwrap_or_else(|err| panic!("{err}")))
        .collect();
    assert_eq!(seen, writes, "write load");

    // The rows the proxy forwarded did reach the server.
    let inserted = direct
        .query_one("SELECT count(*) FROM job_events WHERE job_id = 5", &[])
        .await
        .expect("count");
    assert_eq!(inserted.get::<_, i64>(0), 1);
}
