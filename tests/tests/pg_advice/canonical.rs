//! Expression keys round-trip through the real server: an index created the way a user or
//! an ORM writes it, read back with `pg_get_indexdef`, is the key a query on the same
//! expression needs (in the analyzer's one canonical text), and the analyzer's own DDL for
//! that query's target builds and reads back the same. Then, through the proxy, an existing
//! `upper(email::text)` index serves Django's `UPPER("users"."email"::text) = UPPER(...)`.

use indextap_analyzer::advise::engine::postgresql::ddl;
use indextap_analyzer::advise::{IndexKey, IndexMethod, IndexSpec};
use indextap_analyzer::command::SqlProtocol;
use indextap_analyzer::shape::sql::{index_form, lower_text, printed_key};
use indextap_analyzer::shape::{Namespace, Predicate, Target};
use serde_json::json;
use tokio_postgres::Client;

use super::{
    advice, connect, notes, recommendations, server_with, start_proxy, wait_for_shapes, DATABASE,
};

/// One column of each kind PostgreSQL treats differently in an index expression.
const TABLE: &str = r#"CREATE TABLE t (id int, email varchar(200), name text, "Name" text,
    code char(3), n int, payload jsonb, created_at timestamp, ts timestamptz)"#;

/// (the index as written, the same expression as a query writes it).
const CASES: &[(&str, &str)] = &[
    ("lower(email)", "lower(email)"),
    ("upper(email::text)", r#"UPPER("t"."email"::text)"#),
    ("upper(email)", r#"UPPER("t"."email"::text)"#),
    ("upper(email::text)", "upper(email)"),
    ("lower(name)", "LOWER(t.name)"),
    ("lower(name::text)", "lower(name)"),
    (r#"upper("Name")"#, r#"upper("Name")"#),
    ("lower(code)", "lower(code)"),
    ("lower(n::text)", "lower(n::text)"),
    ("md5(name)", "md5(name)"),
    ("(payload ->> 'kind')", "payload->>'kind'"),
    ("(payload #>> '{a,b}')", "payload #>> '{a,b}'"),
    (
        "to_tsvector('english', name)",
        "to_tsvector('english', name)",
    ),
    (
        "date_trunc('day', created_at)",
        "date_trunc('day', created_at)",
    ),
    ("date(created_at)", "date(created_at)"),
    ("(created_at::date)", "created_at::date"),
    (
        "((ts AT TIME ZONE 'UTC')::date)",
        "(ts AT TIME ZONE 'UTC')::date",
    ),
    (
        "EXTRACT(year FROM created_at)",
        "extract(year from created_at)",
    ),
];

/// The target of the one leaf of `SELECT id FROM t WHERE <expression> = $1`.
fn query_target(expression: &str) -> Target {
    let text = format!("SELECT id FROM t WHERE {expression} = $1");
    let lowering = lower_text(DATABASE, &text, SqlProtocol::Extended);
    let filter = lowering
        .shapes
        .first()
        .map(|occurrence| &occurrence.shape.filter);
    match filter {
        Some(Predicate::And(leaves)) => match leaves.as_slice() {
            [Predicate::Leaf(leaf)] => leaf.target.clone(),
            other => panic!("{text}: one leaf expected, got {other:?}"),
        },
        other => panic!("{text}: {other:?}"),
    }
}

/// What `pg_get_indexdef` prints for the first key of index `name`.
async fn printed(client: &Client, name: &str) -> String {
    let row = client
        .query_one(
            "SELECT pg_get_indexdef(c.oid, 1, true) FROM pg_class c WHERE c.relname = $1",
            &[&name],
        )
        .await
        .unwrap_or_else(|err| panic!("pg_get_indexdef of {name}: {err}"));
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expression_keys_read_back_as_queries_write_them() {
    let (_server, client) = server_with(TABLE).await;
    for (k, (indexed, queried)) in CASES.iter().enumerate() {
        let written = format!("written_{k}");
        client
            .batch_execute(&format!("CREATE INDEX {written} ON t (({indexed}))"))
            .await
            .unwrap_or_else(|err| panic!("{indexed}: {err}"));
        let from_catalog = printed_key(&printed(&client, &written).await);
        let target = query_target(queried);
        assert_eq!(
            index_form(&target),
            from_catalog,
            "index {indexed} (printed {:?}) against query {queried}",
            printed(&client, &written).await
        );

        let proposed = format!("proposed_{k}");
        let spec = IndexSpec::new(
            Namespace::postgres(DATABASE, "public", "t"),
            IndexMethod::Btree,
            vec![IndexKey::asc(target.clone())],
        );
        let statement = ddl::create_statement(&spec, &proposed);
        client
            .batch_execute(&statement)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
        assert_eq!(
            printed_key(&printed(&client, &proposed).await),
            from_catalog,
            "the index proposed for {queried} ({statement}) is the one written as {indexed}"
        );
    }
}

/// Django's `email__iexact`, and an index its authors created by hand for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_expression_index_serves_a_query_that_casts_its_column() {
    let (server, _direct) = server_with(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, email varchar(254) NOT NULL);
             INSERT INTO accounts (email) SELECT 'user' || g || '@example.test'
               FROM generate_series(1, 20000) AS g;
             CREATE INDEX accounts_upper_email ON accounts (upper(email::text));
             ANALYZE;",
    )
    .await;
    let admin_url = server.url("postgres");
    let (proxy, listen) = start_proxy(&server, Some(&admin_url));
    let client = connect(&server.connection_string_via(listen, DATABASE)).await;
    let django = r#"SELECT "accounts"."id", "accounts"."email" FROM "accounts" WHERE UPPER("accounts"."email"::text) = UPPER($1) LIMIT 21"#;
    for n in 0..5 {
        let email = format!("USER{n}@EXAMPLE.TEST");
        client.query(django, &[&email]).await.expect(django);
    }
    wait_for_shapes(&proxy, |shapes| {
        shapes.first().and_then(|shape| shape["count"].as_u64()) == Some(5)
    });
    let advised = advice(&proxy);
    assert_eq!(
        recommendations(&advised),
        Vec::<serde_json::Value>::new(),
        "{advised:#}"
    );
    assert_eq!(notes(&advised), Vec::<String>::new(), "{advised:#}");
    assert_eq!(advised["drops"], json!([]), "{advised:#}");
}
