//! The MongoDB data path end to end: the real `mongodb` driver, through the real `indextap`
//! binary, to a real SecantusDB.
//!
//! - Every common operation gives the same result through the proxy as directly, and is
//!   captured.
//! - The proxy is byte-transparent: two test recorders, one on each side of it, see the same
//!   bytes.
//! - A replica set is discovered through the proxy: `hello` replies name the proxy, so the
//!   driver never bypasses it.
//! - SCRAM-SHA-256 authentication passes through; a wrong password is refused.
//! - A dead upstream fails clients promptly, does not hurt the proxy, and is counted; once the
//!   upstream appears, the same proxy serves.

mod mongo_common;

use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use indextap_tests::secantus::{
    self, explain_find, find_existing, is_authentication_error, plan_stages, refused_find,
    winning_plan, REPLICA_SET_NAME,
};
use indextap_tests::{free_port, SecantusDb, SecantusOptions};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Client, Database, IndexModel};

use mongo_common::{
    executions, metric, reply_document, split_frames, start_proxy, wait_for_metric,
    wait_for_shapes, Recording, TestRecorder,
};

const ORDERS: i64 = 60;

fn order(n: i64) -> Document {
    doc! {
        "_id": n,
        "user_id": n % 6,
        "status": if n % 3 == 0 { "shipped" } else { "pending" },
        "total": n * 7,
        "tags": ["a", format!("t{}", n % 4)],
    }
}

async fn client(uri: &str) -> Client {
    Client::with_uri_str(uri)
        .await
        .unwrap_or_else(|err| panic!("client for {uri}: {err}"))
}

async fn collect(cursor: mongodb::Cursor<Document>) -> Vec<Document> {
    cursor.try_collect().await.expect("cursor")
}

/// Runs every operation the test covers and returns what each one answered, labelled. The
/// explain answer is reduced to what does not depend on timing.
async fn workload(db: &Database) -> Vec<(&'static str, Bson)> {
    let orders = db.collection::<Document>("orders");
    let mut results: Vec<(&'static str, Bson)> = Vec::new();

    let one = orders.insert_one(order(0)).await.expect("insert_one");
    results.push(("insert_one", one.inserted_id));
    let many = orders
        .insert_many((1..ORDERS).map(order))
        .await
        .expect("insert_many");
    let mut ids: Vec<(usize, Bson)> = many.inserted_ids.into_iter().collect();
    ids.sort_by_key(|(index, _)| *index);
    results.push((
        "insert_many",
        Bson::Array(ids.into_iter().map(|(_, id)| id).collect()),
    ));

    let found = orders
        .find(doc! { "user_id": 3_i64 })
        .sort(doc! { "total": -1 })
        .limit(5)
        .projection(doc! { "total": 1, "status": 1, "_id": 0 })
        .await
        .expect("find");
    results.push(("find", docs(collect(found).await)));

    // Small batches: the rest comes by getMore.
    let all = orders
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .batch_size(7)
        .await
        .expect("find all");
    results.push(("find_getmore", docs(collect(all).await)));

    let updated = orders
        .update_many(
            doc! { "status": "pending", "user_id": { "$lt": 2_i64 } },
            doc! { "$set": { "status": "held" } },
        )
        .await
        .expect("update_many");
    results.push((
        "update_many",
        Bson::Array(vec![
            Bson::Int64(i64::try_from(updated.matched_count).expect("small")),
            Bson::Int64(i64::try_from(updated.modified_count).expect("small")),
        ]),
    ));

    let deleted = orders
        .delete_one(doc! { "_id": 7_i64 })
        .await
        .expect("delete_one");
    results.push((
        "delete_one",
        Bson::Int64(i64::try_from(deleted.deleted_count).expect("small")),
    ));

    let changed = orders
        .find_one_and_update(doc! { "_id": 8_i64 }, doc! { "$inc": { "total": 1_i64 } })
        .return_document(ReturnDocument::After)
        .await
        .expect("find_one_and_update");
    results.push((
        "find_one_and_update",
        changed.map_or(Bson::Null, Bson::Document),
    ));

    let grouped = orders
        .aggregate(vec![
            doc! { "$match": { "total": { "$gte": 70_i64 } } },
            doc! { "$group": { "_id": "$status", "n": { "$sum": 1 }, "sum": { "$sum": "$total" } } },
            doc! { "$sort": { "_id": 1 } },
        ])
        .await
        .expect("aggregate");
    results.push(("aggregate", docs(collect(grouped).await)));

    let counted = orders
        .count_documents(doc! { "status": "shipped" })
        .await
        .expect("count_documents");
    let estimated = orders
        .estimated_document_count()
        .await
        .expect("estimated_document_count");
    let as_bson = |count: u64| Bson::Int64(i64::try_from(count).expect("small"));
    results.push(("count_documents", as_bson(counted)));
    results.push(("estimated_document_count", as_bson(estimated)));

    let distinct = orders
        .distinct(
            "status",
            doc! { "user_id": { "$in": [1_i64, 2_i64, 3_i64] } },
        )
        .await
        .expect("distinct");
    results.push(("distinct", Bson::Array(distinct)));

    let created = orders
        .create_index(
            IndexModel::builder()
                .keys(doc! { "user_id": 1, "total": -1 })
                .options(
                    IndexOptions::builder()
                        .name("user_total".to_string())
                        .build(),
                )
                .build(),
        )
        .await
        .expect("createIndex");
    results.push(("create_index", Bson::String(created.index_name)));

    let indexes: Vec<IndexModel> = secantus::all(orders.list_indexes()).await;
    let described: Vec<Bson> = indexes
        .into_iter()
        .map(|model| {
            let name = model.options.and_then(|o| o.name).unwrap_or_default();
            Bson::Document(doc! { "name": name, "key": model.keys })
        })
        .collect();
    results.push(("list_indexes", Bson::Array(described)));

    let explained = explain_find(db, "orders", doc! { "user_id": 3_i64 }).await;
    let stats = explained
        .get_document("executionStats")
        .unwrap_or_else(|_| panic!("explain has executionStats: {explained}"));
    let winning = winning_plan(&explained);
    let mut summary = doc! { "stages": plan_stages(winning) };
    for key in ["nReturned", "totalDocsExamined", "totalKeysExamined"] {
        let value = stats
            .get(key)
            .unwrap_or_else(|| panic!("executionStats.{key} in {stats}"));
        summary.insert(key, value.clone());
    }
    results.push(("explain", Bson::Document(summary)));

    results
}

fn docs(documents: Vec<Document>) -> Bson {
    Bson::Array(documents.into_iter().map(Bson::Document).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_through_the_proxy_answers_as_it_does_directly() {
    let direct_server = SecantusDb::start(SecantusOptions::standalone());
    let proxied_server = SecantusDb::start(SecantusOptions::standalone());
    let proxy = start_proxy(proxied_server.addr(), &[]);

    let direct = direct_server.client().await;
    let proxied = client(&proxied_server.uri_via(proxy.listen)).await;
    let expected = workload(&direct.database("app")).await;
    let through_proxy = workload(&proxied.database("app")).await;

    assert_eq!(expected.len(), through_proxy.len());
    for ((step, want), (_, got)) in expected.iter().zip(&through_proxy) {
        assert_eq!(got, want, "{step}: through the proxy vs directly");
    }
    // The workload is not trivial: the answers carry data.
    let answer = |step: &str| {
        expected
            .iter()
            .find(|(name, _)| *name == step)
            .map(|(_, value)| value.clone())
            .expect("step")
    };
    assert_eq!(
        answer("find_getmore").as_array().map(Vec::len),
        Some(ORDERS as usize)
    );
    let explain = answer("explain");
    let explain = explain.as_document().expect("explain summary");
    assert_eq!(
        explain.get_array("stages").expect("stages"),
        &vec![Bson::from("FETCH"), Bson::from("IXSCAN")]
    );

    // And each was captured: commands that read with a filter, by their filter's fields.
    wait_for_shapes(&proxy.process, "the workload's shapes", |shapes| {
        executions(shapes, "find", "orders", &["user_id"]) >= 1
            && executions(shapes, "find", "orders", &[]) >= 2
            && executions(shapes, "update", "orders", &["status", "user_id"]) >= 1
            && executions(shapes, "delete", "orders", &["_id"]) >= 1
            && executions(shapes, "findAndModify", "orders", &["_id"]) >= 1
            && executions(shapes, "aggregate", "orders", &["total"]) >= 1
            // countDocuments is an aggregate; estimatedDocumentCount is count.
            && executions(shapes, "aggregate", "orders", &["status"]) >= 1
            && executions(shapes, "count", "orders", &[]) >= 1
            && executions(shapes, "distinct", "orders", &["user_id"]) >= 1
    });
    direct.shutdown().await;
    proxied.shutdown().await;
}

/// The bytes each recorder saw, one entry per connection, sorted so that connections pair up
/// whatever order they were accepted in.
fn sorted_bytes(recordings: &[Recording]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut bytes: Vec<_> = recordings.iter().map(Recording::bytes).collect();
    bytes.sort();
    bytes
}

/// The bytes one side sent are exactly the bytes the other side got.
#[track_caller]
fn assert_same(connection: usize, (sender, sent): (&str, &[u8]), (receiver, got): (&str, &[u8])) {
    assert!(
        sent == got,
        "connection {connection}: {sender} {} bytes, {receiver} {} (first difference at {:?})",
        sent.len(),
        got.len(),
        first_difference(sent, got)
    );
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_reach_each_side_exactly_as_the_other_side_sent_them() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let at_upstream = TestRecorder::start(server.addr());
    // A small inspection cap, so that large messages take the uninspected streaming path.
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("indextap.toml");
    std::fs::write(&config, "[capture]\nmax_inspect_bytes = 65536\n").expect("config");
    let config = config.display().to_string();
    let proxy = start_proxy(at_upstream.addr(), &["--config", &config]);
    let at_client = TestRecorder::start(proxy.listen);

    let client = client(&format!(
        "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=15000",
        at_client.addr()
    ))
    .await;
    let events = client.database("app").collection::<Document>("events");
    events
        .insert_many((0..500_i64).map(|n| doc! { "_id": n, "kind": n % 5, "pad": "x".repeat(200) }))
        .await
        .expect("insert_many");
    // Over the inspection cap both ways: a large insert, and a large reply.
    events
        .insert_one(doc! { "_id": "big", "kind": 99, "blob": "y".repeat(300_000) })
        .await
        .expect("insert large");
    let big = find_existing(&events, doc! { "_id": "big" }).await;
    assert_eq!(big.get_str("blob").map(str::len).ok(), Some(300_000));
    let all: Vec<Document> = collect(
        events
            .find(doc! { "kind": { "$lt": 5_i64 } })
            .batch_size(40)
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(all.len(), 500);
    // Several requests at once, so the pool opens several connections.
    let concurrent: Vec<_> = (0..6_i64)
        .map(|kind| {
            let events = events.clone();
            tokio::spawn(async move {
                let found = events
                    .find(doc! { "kind": kind })
                    .await
                    .expect("find")
                    .try_collect::<Vec<_>>()
                    .await
                    .expect("cursor");
                let shipped = events
                    .update_many(doc! { "kind": kind }, doc! { "$set": { "seen": true } })
                    .await
                    .expect("update");
                (found.len(), shipped.matched_count)
            })
        })
        .collect();
    for task in concurrent {
        let (found, matched) = task.await.expect("task");
        assert_eq!(found as u64, matched);
    }
    events
        .delete_many(doc! { "kind": 4_i64 })
        .await
        .expect("delete_many");
    let grouped = collect(
        events
            .aggregate(vec![
                doc! { "$group": { "_id": "$kind", "n": { "$sum": 1 } } },
            ])
            .await
            .expect("aggregate"),
    )
    .await;
    assert_eq!(grouped.len(), 5, "kinds 0..4 minus 4, plus 99");
    client.shutdown().await;

    let client_side = at_client.wait_until_all_closed(Duration::from_secs(30));
    let upstream_side = at_upstream.wait_until_all_closed(Duration::from_secs(30));
    assert!(
        client_side.len() >= 2,
        "several connections: {}",
        client_side.len()
    );
    let total: usize = client_side.iter().map(|r| r.to_upstream.len()).sum();
    assert!(total > 400_000, "only {total} bytes went upstream");
    let client_side = sorted_bytes(&client_side);
    let upstream_side = sorted_bytes(&upstream_side);
    assert_eq!(
        client_side.len(),
        upstream_side.len(),
        "one upstream connection per client connection"
    );
    for (index, ((sent, received), (arrived, replied))) in
        client_side.iter().zip(&upstream_side).enumerate()
    {
        assert_same(
            index,
            ("the client sent", sent),
            ("the upstream received", arrived),
        );
        assert_same(
            index,
            ("the upstream sent", replied),
            ("the client received", received),
        );
    }

    // It was inspected all the same, and the large messages streamed past uninspected.
    wait_for_shapes(&proxy.process, "finds on events", |shapes| {
        executions(shapes, "find", "events", &["kind"]) >= 7
    });
    assert!(
        metric(
            &proxy.process,
            "indextap_inspection_events_total",
            &[("reason", "oversize_skipped")]
        ) >= 2.0
    );
}

fn hello_replies(stream: &[u8]) -> Vec<Document> {
    split_frames(stream)
        .into_iter()
        .filter_map(reply_document)
        .filter(|doc| doc.contains_key("isWritablePrimary") || doc.contains_key("ismaster"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_is_discovered_through_the_proxy_and_never_bypasses_it() {
    let server = SecantusDb::start(SecantusOptions::replica_set());
    let at_upstream = TestRecorder::start(server.addr());
    // No --mongo-advertise: the proxy advertises its own listen address.
    let proxy = start_proxy(at_upstream.addr(), &[]);
    let advertised = proxy.listen.to_string();

    let client = client(&format!(
        "mongodb://{advertised}/?replicaSet={REPLICA_SET_NAME}&serverSelectionTimeoutMS=15000"
    ))
    .await;
    let items = client.database("shop").collection::<Document>("items");
    items
        .insert_many((0..30_i64).map(|n| doc! { "sku": format!("s{n}"), "qty": n, "bin": n % 3 }))
        .await
        .expect("insert_many through the discovered primary");
    let found = collect(
        items
            .find(doc! { "bin": 1_i64 })
            .sort(doc! { "qty": -1 })
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(found.len(), 10);
    let counted = items
        .count_documents(doc! { "qty": { "$gte": 10_i64 } })
        .await
        .expect("count");
    assert_eq!(counted, 20);
    let grouped = collect(
        items
            .aggregate(vec![
                doc! { "$match": { "qty": { "$lt": 15_i64 } } },
                doc! { "$group": { "_id": "$bin", "n": { "$sum": 1 } } },
            ])
            .await
            .expect("aggregate"),
    )
    .await;
    assert_eq!(grouped.len(), 3);
    items
        .update_one(doc! { "sku": "s4" }, doc! { "$set": { "qty": 400_i64 } })
        .await
        .expect("update_one");
    items
        .delete_many(doc! { "bin": 2_i64 })
        .await
        .expect("delete_many");

    let shapes = wait_for_shapes(&proxy.process, "replica-set traffic", |shapes| {
        executions(shapes, "find", "items", &["bin"]) >= 1
            && executions(shapes, "aggregate", "items", &["qty"]) >= 2
            && executions(shapes, "update", "items", &["sku"]) >= 1
            && executions(shapes, "delete", "items", &["bin"]) >= 1
    });
    assert_eq!(executions(&shapes, "find", "items", &["bin"]), 1);
    wait_for_metric(
        &proxy.process,
        "indextap_inspection_events_total",
        &[("reason", "topology_rewritten")],
        1.0,
    );

    // What a client is told, seen by a recorder in front of the proxy: the proxy's address
    // only, while the upstream said its own.
    let at_client = TestRecorder::start(proxy.listen);
    let seeded = Client::with_uri_str(format!(
        "mongodb://{}/?replicaSet={REPLICA_SET_NAME}&serverSelectionTimeoutMS=15000",
        at_client.addr()
    ))
    .await
    .expect("client");
    seeded
        .database("shop")
        .collection::<Document>("items")
        .find_one(doc! { "sku": "s1" })
        .await
        .expect("find_one after discovery through a seed in front of the proxy")
        .expect("a document");
    let recordings = at_client.wait_for("a hello reply", Duration::from_secs(15), |rs| {
        rs.iter().any(|r| !hello_replies(&r.to_client).is_empty())
    });
    let upstream_address = server.advertised_host();
    let mut seen = 0;
    for recording in &recordings {
        for hello in hello_replies(&recording.to_client) {
            seen += 1;
            assert_eq!(
                hello.get_str("setName").ok(),
                Some(REPLICA_SET_NAME),
                "{hello}"
            );
            assert_eq!(
                hello.get_array("hosts").ok(),
                Some(&vec![Bson::String(advertised.clone())]),
                "{hello}"
            );
            assert_eq!(
                hello.get_str("me").ok(),
                Some(advertised.as_str()),
                "{hello}"
            );
            assert_eq!(
                hello.get_str("primary").ok(),
                Some(advertised.as_str()),
                "{hello}"
            );
        }
        let mut needle = upstream_address.clone().into_bytes();
        needle.push(0);
        assert!(
            !recording
                .to_client
                .windows(needle.len())
                .any(|window| window == needle),
            "the upstream's address {upstream_address} reached a client"
        );
    }
    assert!(seen >= 1);
    let upstream_said: Vec<Document> = at_upstream
        .recordings()
        .iter()
        .flat_map(|r| hello_replies(&r.to_client))
        .collect();
    assert!(
        upstream_said
            .iter()
            .any(|hello| hello.get_str("me").ok() == Some(upstream_address.as_str())),
        "the upstream advertised itself: {upstream_said:?}"
    );
    seeded.shutdown().await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_authentication_passes_through_the_proxy() {
    const USER: &str = "tapuser";
    const PASSWORD: &str = "proxy-scram-secret-4711";
    let server = SecantusDb::start(SecantusOptions::standalone().with_auth(USER, PASSWORD));
    let proxy = start_proxy(server.addr(), &[]);

    let client = client(&server.uri_via(proxy.listen)).await;
    let notes = client.database("app").collection::<Document>("notes");
    notes
        .insert_many((0..8_i64).map(|n| doc! { "author": format!("a{}", n % 2), "n": n }))
        .await
        .expect("authenticated insert through the proxy");
    let mine = collect(notes.find(doc! { "author": "a1" }).await.expect("find")).await;
    assert_eq!(mine.len(), 4);
    assert_eq!(
        notes
            .count_documents(doc! { "n": { "$gt": 2_i64 } })
            .await
            .expect("count"),
        5
    );
    wait_for_shapes(&proxy.process, "authenticated traffic", |shapes| {
        executions(shapes, "find", "notes", &["author"]) >= 1
            && executions(shapes, "aggregate", "notes", &["n"]) >= 1
    });

    // A wrong password is refused through the proxy.
    let refused = refused_find(&format!(
        "mongodb://{USER}:not-the-password@{}/?directConnection=true&authSource=admin\
         &authMechanism=SCRAM-SHA-256&serverSelectionTimeoutMS=5000",
        proxy.listen
    ))
    .await;
    assert!(is_authentication_error(&refused), "{refused}");

    // The handshake's secrets went by; none of them stayed.
    let shapes_text = proxy.process.get_text("/api/v1/shapes").expect("shapes");
    for (what, text) in [("logs", proxy.process.logs()), ("shapes", shapes_text)] {
        assert!(!text.contains(PASSWORD), "the password is in the {what}");
    }
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_fails_clients_promptly_and_the_proxy_serves_once_it_is_up() {
    let port = free_port();
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut proxy = start_proxy(upstream, &[]);

    let impatient = client(&format!(
        "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=2000",
        proxy.listen
    ))
    .await;
    let started = Instant::now();
    let failed = impatient
        .database("app")
        .run_command(doc! { "ping": 1 })
        .await
        .expect_err("nothing answers behind the proxy");
    let waited = started.elapsed();
    assert!(
        matches!(
            *failed.kind,
            mongodb::error::ErrorKind::ServerSelection { .. }
        ),
        "{failed}"
    );
    assert!(waited < Duration::from_secs(8), "took {waited:?}");
    proxy.assert_alive();
    wait_for_metric(
        &proxy.process,
        "indextap_upstream_connect_errors_total",
        &[],
        1.0,
    );
    impatient.shutdown().await;

    let _server = SecantusDb::start(SecantusOptions::standalone().on_port(port));
    let client = client(&format!(
        "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=15000",
        proxy.listen
    ))
    .await;
    let jobs = client.database("app").collection::<Document>("jobs");
    jobs.insert_one(doc! { "state": "queued", "priority": 3 })
        .await
        .expect("insert once the upstream is up");
    let queued = find_existing(&jobs, doc! { "state": "queued" }).await;
    assert_eq!(queued.get_i32("priority").ok(), Some(3));
    wait_for_shapes(&proxy.process, "traffic after recovery", |shapes| {
        executions(shapes, "find", "jobs", &["state"]) >= 1
    });
    proxy.assert_alive();
    client.shutdown().await;
}
