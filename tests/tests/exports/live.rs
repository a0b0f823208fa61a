//! Every format over a real workload: traffic through the proxy to PostgreSQL (with HypoPG)
//! and SecantusDB, the snapshot saved from `/api/v1/snapshot`, then rendered from the file.

use bson::{doc, Document};
use indextap_tests::capture::{shapes, wait_until};
use indextap_tests::ports::free_addr;
use indextap_tests::postgres::connect;
use indextap_tests::secantus::all;
use indextap_tests::{IndextapOptions, IndextapProcess, Postgres, SecantusDb, SecantusOptions};

use super::{recommend, FORMATS};

/// The PostgreSQL index the workload needs, as indextap names it.
const PG_INDEX: &str = "orders_customer_id_created_at_idx";
/// The MongoDB index the workload needs.
const MONGO_INDEX: &str = "project_id_1_status_1_opened_at_-1";

/// Polls the proxy until it reports `count` executions of shapes on `collection`.
fn wait_for_count(proxy: &IndextapProcess, collection: &str, count: u64) {
    wait_until(collection, || {
        let seen: u64 = shapes(proxy)
            .iter()
            .filter(|shape| shape["collection"] == collection)
            .filter_map(|shape| shape["count"].as_u64())
            .sum();
        match seen == count {
            true => Ok(()),
            false => Err(format!("{seen} executions seen, {count} expected")),
        }
    })
}

#[tokio::test]
async fn every_format_renders_the_advice_of_a_real_workload() {
    let postgres = Postgres::start();
    postgres.create_database("app").expect("create database");
    postgres
        .psql_in(
            "app",
            &[
                "-c",
                "CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL, \
                 status text NOT NULL, created_at timestamptz NOT NULL);
                 INSERT INTO orders (customer_id, status, created_at)
                   SELECT g % 2000, 'new', now() - g * interval '1 minute'
                   FROM generate_series(1, 40000) g;
                 ANALYZE orders;",
            ],
        )
        .expect("schema");
    let mongo = SecantusDb::start(SecantusOptions::standalone());

    let (pg_listen, mongo_listen) = (free_addr(), free_addr());
    let pg_admin = postgres.url("app");
    let proxy = IndextapProcess::start_with(
        IndextapOptions::postgres(pg_listen, postgres.addr()).args(&[
            "--pg-admin-url",
            &pg_admin,
            "--mongo-listen",
            &mongo_listen.to_string(),
            "--mongo-upstream",
            &mongo.addr().to_string(),
        ]),
    );

    let client = connect(&postgres.connection_string_via(pg_listen, "app")).await;
    let statement = client
        .prepare(
            "SELECT id, status FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 10",
        )
        .await
        .expect("prepare");
    for customer in 0..20_i32 {
        let rows = client.query(&statement, &[&customer]).await.expect("query");
        assert_eq!(rows.len(), 10);
    }

    let mongo_client = mongodb::Client::with_uri_str(mongo.uri_via(mongo_listen))
        .await
        .expect("client");
    let tickets = mongo_client
        .database("app")
        .collection::<Document>("tickets");
    tickets
        .insert_many(
            (0..50_i64).map(|n| doc! { "project_id": n % 5, "status": "open", "opened_at": n }),
        )
        .await
        .expect("insert");
    for project in 0..8_i64 {
        let _found: Vec<Document> = all(tickets
            .find(doc! { "project_id": project, "status": "open" })
            .sort(doc! { "opened_at": -1 }))
        .await;
    }
    wait_for_count(&proxy, "orders", 20);
    wait_for_count(&proxy, "tickets", 8);

    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot = dir.path().join("snapshot.json");
    std::fs::write(
        &snapshot,
        proxy.get_text("/api/v1/snapshot").expect("snapshot"),
    )
    .expect("save the snapshot");

    let mongo_admin = mongo.uri();
    let catalog = [
        "--pg-admin-url",
        pg_admin.as_str(),
        "--mongo-admin-uri",
        mongo_admin.as_str(),
    ];
    for (format, _) in FORMATS {
        let output = recommend(&snapshot, format, &catalog);
        let expected: &[&str] = match format {
            "mongosh" | "pymongo" => &[MONGO_INDEX],
            "sql" => &[PG_INDEX],
            // Django has no MongoDB backend, and shortens names to its 30-character limit.
            "django" => &[r#"models.Index(fields=["customer_id", "-created_at"]"#],
            _ => &[PG_INDEX, MONGO_INDEX],
        };
        for name in expected {
            assert!(
                output.contains(name),
                "{format} does not name {name}:\n{output}"
            );
        }
    }
    let markdown = recommend(&snapshot, "markdown", &catalog);
    assert!(
        markdown.contains("measured with hypopg"),
        "the PostgreSQL index is verified with HypoPG:\n{markdown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&recommend(&snapshot, "json", &catalog)).expect("JSON");
    let orders = json["recommendations"]
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["name"] == PG_INDEX)
        .expect("the PostgreSQL recommendation");
    assert_eq!(orders["serves"][0]["count"], 20, "{orders}");
    let evidence = &orders["evidence"];
    assert!(
        evidence["cost_after"].as_f64() < evidence["cost_before"].as_f64(),
        "the planner is cheaper with the index: {evidence}"
    );
}
