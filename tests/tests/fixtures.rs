//! The fixtures themselves, proven against the real servers with the real drivers.
//!
//! These also pin down the facts about SecantusDB and PostgreSQL that the proxy depends on
//! (explain and listIndexes formats, the replica-set `hello`, SCRAM, HypoPG), so a server
//! upgrade that changes them fails here first, with a clear message.

use std::net::SocketAddr;
use std::process::Command;

use bson::{doc, Bson, Document};
use indextap_tests::postgres::{self, connect, SCRAM_PASSWORD, SCRAM_USER};
use indextap_tests::secantus::{
    all, explain_find, is_authentication_error, number, plan_stages, refused_find, winning_plan,
    REPLICA_SET_NAME,
};
use indextap_tests::tools::assert_success;
use indextap_tests::{
    free_port, IndextapOptions, IndextapProcess, Postgres, PostgresOptions, SecantusDb,
    SecantusOptions,
};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

const ORDERS: usize = 200;

fn order(n: usize) -> Document {
    let n = i64::try_from(n).expect("small");
    doc! {
        "user_id": n % 20,
        "status": if n % 3 == 0 { "shipped" } else { "pending" },
        "total": n * 7,
    }
}

/// `app.orders` with [`ORDERS`] documents.
async fn seeded_orders(db: &mongodb::Database) -> mongodb::Collection<Document> {
    let orders = db.collection::<Document>("orders");
    orders
        .insert_many((0..ORDERS).map(order))
        .await
        .expect("insert_many");
    orders
}

/// The server's `hello` answer, with `fields` added to the command as a driver adds them.
async fn admin_hello(client: &mongodb::Client, fields: Document) -> Document {
    let mut command = doc! { "hello": 1 };
    command.extend(fields);
    client
        .database("admin")
        .run_command(command)
        .await
        .expect("hello")
}

#[tokio::test]
async fn secantus_standalone_serves_crud_indexes_and_explain() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let client = server.client().await;
    let db = client.database("app");
    let orders = seeded_orders(&db).await;

    let found: Vec<Document> = all(orders
        .find(doc! { "user_id": 3_i64 })
        .sort(doc! { "total": -1 }))
    .await;
    assert_eq!(found.len(), ORDERS / 20);
    let totals: Vec<i64> = found.iter().map(|d| number(d, "total")).collect();
    assert!(totals.windows(2).all(|w| w[0] > w[1]), "sorted: {totals:?}");

    let grouped: Vec<Document> = all(orders.aggregate(vec![
        doc! { "$match": { "status": "shipped" } },
        doc! { "$group": { "_id": null, "count": { "$sum": 1 } } },
    ]))
    .await;
    let shipped = (0..ORDERS).filter(|n| n % 3 == 0).count() as i64;
    assert_eq!(grouped.len(), 1);
    assert_eq!(number(&grouped[0], "count"), shipped);

    let index = IndexModel::builder()
        .keys(doc! { "user_id": 1, "total": -1 })
        .options(
            IndexOptions::builder()
                .name("user_total".to_string())
                .build(),
        )
        .build();
    let created = orders.create_index(index).await.expect("createIndex");
    assert_eq!(created.index_name, "user_total");

    let indexes: Vec<IndexModel> = all(orders.list_indexes()).await;
    let described: Vec<(String, Document)> = indexes
        .iter()
        .map(|model| {
            let name = model
                .options
                .as_ref()
                .and_then(|options| options.name.clone())
                .unwrap_or_default();
            (name, model.keys.clone())
        })
        .collect();
    assert_eq!(
        described,
        vec![
            ("_id_".to_string(), doc! { "_id": 1 }),
            ("user_total".to_string(), doc! { "user_id": 1, "total": -1 }),
        ]
    );

    // Served by the index: FETCH over IXSCAN, and no document examined in vain.
    let explained = explain_find(&db, "orders", doc! { "user_id": 3_i64 }).await;
    let winning = winning_plan(&explained);
    assert_eq!(plan_stages(winning), ["FETCH", "IXSCAN"]);
    let ixscan = winning.get_document("inputStage").expect("inputStage");
    assert_eq!(ixscan.get_str("indexName").ok(), Some("user_total"));
    assert_eq!(
        ixscan.get_document("keyPattern").ok(),
        Some(&doc! { "user_id": 1, "total": -1 })
    );
    let stats = explained
        .get_document("executionStats")
        .expect("executionStats");
    assert_eq!(number(stats, "nReturned"), (ORDERS / 20) as i64);
    assert_eq!(number(stats, "totalDocsExamined"), (ORDERS / 20) as i64);
    assert_eq!(number(stats, "totalKeysExamined"), (ORDERS / 20) as i64);

    // Not served by any index: a COLLSCAN that examines the whole collection.
    let scanned = explain_find(&db, "orders", doc! { "status": "shipped" }).await;
    let winning = winning_plan(&scanned);
    assert_eq!(plan_stages(winning), ["COLLSCAN"]);
    let stats = scanned.get_document("executionStats").expect("stats");
    assert_eq!(number(stats, "totalDocsExamined"), ORDERS as i64);
    assert_eq!(number(stats, "nReturned"), shipped);
    assert_eq!(number(stats, "totalKeysExamined"), 0);

    // A standalone: no replica-set fields, and no wire compression offered even when asked.
    let hello = admin_hello(&client, doc! { "compression": ["zstd", "zlib", "snappy"] }).await;
    assert_eq!(hello.get_bool("isWritablePrimary").ok(), Some(true));
    for absent in ["setName", "hosts", "me", "primary", "compression"] {
        assert!(hello.get(absent).is_none(), "{absent} in {hello}");
    }
    assert!(number(&hello, "maxWireVersion") >= 17, "OP_MSG-era server");

    assert!(server.logs().contains("listening on"));
}

#[tokio::test]
async fn secantus_replica_set_is_discovered_without_direct_connection() {
    let server = SecantusDb::start(SecantusOptions::replica_set());
    assert!(!server.uri().contains("directConnection"));
    let client = server.client().await;

    let items = client.database("app").collection::<Document>("items");
    items
        .insert_one(doc! { "sku": "a-1", "qty": 4 })
        .await
        .expect("insert through the discovered primary");
    let found = items
        .find_one(doc! { "sku": "a-1" })
        .await
        .expect("find_one");
    assert_eq!(found.map(|d| number(&d, "qty")), Some(4));

    // What the proxy must rewrite so drivers keep talking to it and not to the server.
    let hello = admin_hello(&client, doc! {}).await;
    let advertised = server.advertised_host();
    assert_eq!(hello.get_str("setName").ok(), Some(REPLICA_SET_NAME));
    assert_eq!(
        hello.get_array("hosts").expect("hosts"),
        &vec![Bson::String(advertised.clone())]
    );
    assert_eq!(hello.get_str("me").ok(), Some(advertised.as_str()));
    assert_eq!(hello.get_str("primary").ok(), Some(advertised.as_str()));
    assert_eq!(hello.get_bool("isWritablePrimary").ok(), Some(true));
    assert_eq!(hello.get_bool("secondary").ok(), Some(false));
}

#[tokio::test]
async fn secantus_auth_requires_scram_sha_256_credentials() {
    let server = SecantusDb::start(
        SecantusOptions::standalone().with_auth("tapuser", "tap pass/with:odd@chars"),
    );
    let client = server.client().await;
    let notes = client.database("app").collection::<Document>("notes");
    notes
        .insert_one(doc! { "text": "hello" })
        .await
        .expect("authenticated insert");
    assert_eq!(notes.count_documents(doc! {}).await.expect("count"), 1);

    let hello = admin_hello(&client, doc! { "saslSupportedMechs": "admin.tapuser" }).await;
    assert_eq!(
        hello.get_array("saslSupportedMechs").expect("mechs"),
        &vec![Bson::String("SCRAM-SHA-256".into())]
    );

    // No credentials.
    let refused = refused_find(&format!(
        "mongodb://{}/?directConnection=true",
        server.addr()
    ))
    .await;
    assert!(
        refused.to_string().contains("requires authentication"),
        "{refused}"
    );

    let wrong_password = refused_find(&format!(
        "mongodb://tapuser:wrong@{}/?directConnection=true&authMechanism=SCRAM-SHA-256&serverSelectionTimeoutMS=5000",
        server.addr()
    ))
    .await;
    assert!(is_authentication_error(&wrong_password), "{wrong_password}");
}

#[tokio::test]
async fn postgres_runs_hypopg_and_tokio_postgres() {
    let server = Postgres::start();
    let client = server
        .create_database_with(
            "app",
            "CREATE EXTENSION hypopg;
             CREATE TABLE orders (id bigserial PRIMARY KEY, user_id int NOT NULL, total int);
             INSERT INTO orders (user_id, total) SELECT g % 1000, g FROM generate_series(1, 20000) g;
             ANALYZE orders;",
        )
        .await;

    let plan = explain_text(&client, "EXPLAIN SELECT * FROM orders WHERE user_id = 42").await;
    assert!(plan.contains("Seq Scan"), "{plan}");

    let row = client
        .query_one(
            "SELECT indexname FROM hypopg_create_index('CREATE INDEX ON orders (user_id)')",
            &[],
        )
        .await
        .expect("hypopg_create_index");
    let name: String = row.get(0);
    assert!(name.contains("orders_user_id"), "{name}");

    let plan = explain_text(&client, "EXPLAIN SELECT * FROM orders WHERE user_id = 42").await;
    assert!(
        plan.contains("Index Scan") || plan.contains("Bitmap"),
        "{plan}"
    );
    assert!(
        plan.contains(&name),
        "the hypothetical index is used: {plan}"
    );

    let existing = postgres::number(&client, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = 'orders'", &[]).await;
    assert_eq!(existing, 1, "only the primary key is real");
}

async fn explain_text(client: &tokio_postgres::Client, statement: &str) -> String {
    client
        .simple_query(statement)
        .await
        .expect("explain")
        .into_iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn postgres_serves_psql_and_pgbench() {
    let server = Postgres::start();
    server.create_database("bench").expect("create database");
    let version = server
        .psql_in("bench", &["-At", "-c", "SHOW server_version_num"])
        .expect("psql");
    let version: u32 = version.trim().parse().expect("a version number");
    assert!(version >= 130_000, "{version}");

    let failed = server.psql(&["-c", "SELECT * FROM no_such_table"]);
    assert!(
        failed.is_err(),
        "ON_ERROR_STOP makes a failing statement an error"
    );

    server
        .pgbench("bench", &["-i", "-s", "1", "-q"])
        .expect("pgbench -i");
    let report = server
        .pgbench("bench", &["-S", "-t", "50", "-c", "1"])
        .expect("pgbench -S");
    assert!(
        report.contains("number of transactions actually processed: 50/50"),
        "{report}"
    );
    let accounts = server
        .psql_in(
            "bench",
            &["-At", "-c", "SELECT count(*) FROM pgbench_accounts"],
        )
        .expect("count");
    assert_eq!(accounts.trim(), "100000");
}

#[tokio::test]
async fn postgres_scram_user_needs_its_password() {
    let server = Postgres::start();
    // SCRAM login with the right password.
    let client = connect(&server.scram_connection_string("postgres")).await;
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), SCRAM_USER);
    let method = server
        .psql(&[
            "-At",
            "-c",
            &format!("SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = '{SCRAM_USER}'"),
        ])
        .expect("pg_authid");
    assert_eq!(method.trim(), "SCRAM-SHA-256");

    let wrong = server
        .scram_connection_string("postgres")
        .replace(SCRAM_PASSWORD, "not-the-password");
    let refused = tokio_postgres::connect(&wrong, tokio_postgres::NoTls).await;
    let err = refused.err().expect("a wrong password is refused");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err:?}"
    );
}

#[test]
fn postgres_tls_variant_presents_a_verifiable_certificate() {
    let server = Postgres::start_with(PostgresOptions {
        tls: true,
        ..PostgresOptions::default()
    });
    let ca = server.ca_cert_path().expect("a TLS server has a CA file");
    for host in ["127.0.0.1", "localhost"] {
        let conninfo = format!(
            "host={host} port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
            server.port(),
            ca.display()
        );
        let output = Command::new("psql")
            .args(["-X", "-At", "-d", &conninfo, "-c"])
            .arg("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .output()
            .expect("psql");
        assert_eq!(assert_success(&output, host).trim(), "t", "{host}");
    }
}

/// The process guard, proven with a stand-in HTTP server until `indextap` itself runs.
#[test]
fn process_guard_waits_for_health_serves_json_and_captures_logs() {
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(site.path().join("healthz"), "ok").expect("healthz");
    std::fs::create_dir(site.path().join("api")).expect("api dir");
    std::fs::write(site.path().join("api/state.json"), r#"{"shapes": 3}"#).expect("json");

    let port = free_port();
    let admin = SocketAddr::from(([127, 0, 0, 1], port));
    let mut process = IndextapProcess::start_with(IndextapOptions {
        binary: Some("python3".into()),
        args: vec![
            "-u".into(),
            "-m".into(),
            "http.server".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--directory".into(),
            site.path().display().to_string(),
        ],
        admin: Some(admin),
        env: Vec::new(),
    });
    assert_eq!(process.admin_addr(), admin);
    assert_eq!(process.get_text("/healthz").expect("healthz"), "ok");
    let state = process.get_json("/api/state.json").expect("json");
    assert_eq!(state["shapes"], 3);
    let missing = process.get("/api/nothing").expect("a reply");
    assert_eq!(missing.status, 404);
    assert!(process.get_json("/api/nothing").is_err());
    assert!(
        process.logs().contains("GET /healthz"),
        "{}",
        process.logs()
    );

    let status = process.stop().expect("stopped");
    assert_eq!(
        status.code(),
        None,
        "ended by SIGTERM, not by itself: {status}"
    );
    assert!(process.exited().is_some());
    assert!(
        std::net::TcpStream::connect(admin).is_err(),
        "nothing listens any more"
    );
}

/// A server that cannot start fails the test, with the server's own words.
#[test]
#[should_panic(expected = "unrecognized arguments: --no-such-flag")]
fn secantus_that_cannot_start_fails_loudly() {
    let mut options = SecantusOptions::standalone();
    options.extra_args.push("--no-such-flag".into());
    let _server = SecantusDb::start(options);
}

#[test]
#[should_panic(expected = "indextap could not start: exited early")]
fn process_that_exits_at_once_fails_loudly() {
    let _process = IndextapProcess::start_with(IndextapOptions {
        binary: Some("false".into()),
        admin: Some(SocketAddr::from(([127, 0, 0, 1], free_port()))),
        ..IndextapOptions::default()
    });
}

/// SecantusDB's planner differs from mongod's in ways the advice verification must know:
/// an index is chosen only when its keys include every filtered field (no FETCH filter), and
/// a sort that the index could serve after an equality prefix still gets a SORT stage.
/// Pinned so that a SecantusDB upgrade that changes this is noticed.
#[tokio::test]
async fn secantus_planner_uses_only_indexes_covering_every_filtered_field() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let db = server.client().await.database("app");
    let orders = seeded_orders(&db).await;
    orders
        .create_index(IndexModel::builder().keys(doc! { "user_id": 1 }).build())
        .await
        .expect("createIndex");
    orders
        .create_index(
            IndexModel::builder()
                .keys(doc! { "status": 1, "total": -1 })
                .build(),
        )
        .await
        .expect("createIndex");

    let winning_stages = |filter: Document, sort: Option<Document>| {
        let db = db.clone();
        async move {
            let mut find = doc! { "find": "orders", "filter": filter };
            if let Some(sort) = sort {
                find.insert("sort", sort);
            }
            let explained = db
                .run_command(doc! { "explain": find, "verbosity": "queryPlanner" })
                .await
                .expect("explain");
            let winning = explained
                .get_document("queryPlanner")
                .and_then(|planner| planner.get_document("winningPlan"))
                .expect("winningPlan")
                .clone();
            plan_stages(&winning)
        }
    };

    assert_eq!(
        winning_stages(doc! { "user_id": 3_i64 }, None).await,
        ["FETCH", "IXSCAN"]
    );
    assert_eq!(
        winning_stages(doc! { "user_id": 3_i64, "status": "pending" }, None).await,
        ["COLLSCAN"],
        "mongod would use user_id_1 and filter in FETCH"
    );
    assert_eq!(
        winning_stages(doc! { "status": "pending" }, Some(doc! { "total": -1 })).await,
        ["SORT", "FETCH", "IXSCAN"],
        "mongod would need no SORT: status is an equality prefix of (status, total -1)"
    );
    assert_eq!(
        winning_stages(doc! { "user_id": 3_i64 }, Some(doc! { "user_id": 1 })).await,
        ["FETCH", "IXSCAN"],
        "a sort on the index's leading key needs no SORT stage"
    );
}
