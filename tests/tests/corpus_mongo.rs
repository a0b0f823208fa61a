//! MongoDB advice on workloads other people's code sends: a MongoEngine application, driver
//! code that filters updates on the whole fetched document, reads of MongoDB's internal
//! namespaces, and a collection used only by `_id` beside an index nothing uses.
//!
//! Each workload runs (`tests/corpus/mongo_app.py`) through the real proxy in front of
//! SecantusDB, and its advice must pass `corpus/mongo_check.rs`. Each test says what a
//! careful DBA would do, and why.
//!
//! ## Layout
//! - `corpus/mongo_check.rs`: the checks, and the queries the application recorded.
//! - `corpus/tools.rs`: the corpus Python scripts.
//! - this file: one test per workload.

#[path = "corpus/expect.rs"]
mod expect;
#[path = "corpus/mongo_check.rs"]
mod mongo_check;
mod mongo_harness;
#[path = "corpus/tools.rs"]
mod tools;

use mongo_check::{check, recorded, Expectation};
use mongo_harness::{wait_until, MongoBehindProxy};

const DATABASE: &str = "corpus";
/// Drop advice needs a capture window (the tests' windows last seconds); a sample of 500
/// documents keeps SecantusDB's pure-Python `$group` within seconds.
const SHORT_WINDOW: [&str; 4] = ["--drop-min-window-secs", "1", "--mongo-sample-size", "500"];

/// Seeds the workload straight to the server, runs it through the proxy (recording what it
/// sends), and waits until the proxy counted `executions` on `collections`.
fn run(
    harness: &MongoBehindProxy,
    workload: &str,
    rounds: u32,
    record: &std::path::Path,
) -> Vec<mongo_check::Recorded> {
    let args = |uri: String, phase: &str| {
        vec![
            "--uri".to_string(),
            uri,
            "--workload".to_string(),
            workload.to_string(),
            "--phase".to_string(),
            phase.to_string(),
            "--rounds".to_string(),
            rounds.to_string(),
            "--record".to_string(),
            record.display().to_string(),
        ]
    };
    tools::python("mongo_app.py", &args(harness.server.uri(), "seed"));
    tools::python(
        "mongo_app.py",
        &args(harness.server.uri_via(harness.listen), "run"),
    );
    recorded(record)
}

fn wait_for_executions(harness: &MongoBehindProxy, executions: u64) {
    wait_until("the workload in /api/v1/shapes", || {
        let counted: u64 = harness.shapes_document()["shapes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|shape| shape["count"].as_u64())
            .sum();
        if counted >= executions {
            Ok(())
        } else {
            Err(format!("{counted} of {executions} executions counted"))
        }
    });
}

/// A MongoEngine blog. MongoEngine creates the unique index on `author.email`, which serves
/// the lookup by email. A careful DBA adds three: an author's published posts newest first
/// (which also serves counting and finding an author's posts), posts by tag newest first,
/// and authors by country: that count scans every author document on each call (about 6 ms
/// each here, measured), which an index on `country` turns into a lookup of a tenth of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongoengine_blog() {
    let harness = MongoBehindProxy::start_with(&SHORT_WINDOW, &[]).await;
    let scratch = tempfile::tempdir().expect("tempdir");
    let queries = run(&harness, "blog", 20, &scratch.path().join("queries.bson"));
    wait_for_executions(&harness, 20 * 5);
    let expectation = Expectation {
        max_recommendations: 3,
        max_keys: 3,
        must_serve: vec![
            ("post", vec!["author"]),
            ("post", vec!["tags"]),
            ("author", vec!["email"]),
            ("author", vec!["country"]),
        ],
        drops: vec![],
        absent_fields: vec![],
    };
    let advice = harness.recommendations();
    check(&advice, &harness.direct, DATABASE, &queries, &expectation).await;
}

/// Updates filtered on the whole fetched document: ten variants (one optional field each)
/// of an eight-field filter. `(w_id, d_id, c_id)` is unique, so a careful DBA adds one
/// index of at most three keys, which also serves the lookup that fetched the document and
/// the listing by district. The listing sorts on `updated_at`, which no document has: it is
/// never a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_document_update_filters() {
    let harness = MongoBehindProxy::start_with(&SHORT_WINDOW, &[]).await;
    let scratch = tempfile::tempdir().expect("tempdir");
    let queries = run(
        &harness,
        "whole_document",
        30,
        &scratch.path().join("queries.bson"),
    );
    wait_for_executions(&harness, 30 * 3);
    let expectation = Expectation {
        max_recommendations: 1,
        max_keys: 3,
        must_serve: vec![("customer", vec!["w_id", "d_id"])],
        drops: vec![],
        absent_fields: vec!["updated_at"],
    };
    let advice = harness.recommendations();
    check(&advice, &harness.direct, DATABASE, &queries, &expectation).await;
}

/// `--mongo-verify sample`: the whole-document workload's index is measured on a sample
/// copied into a scratch database: documents examined without and with it, and the sample's
/// size, in its evidence. The scratch database is gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_verification_measures_on_a_scratch_copy() {
    let mut args = SHORT_WINDOW.to_vec();
    args.extend(["--mongo-verify", "sample"]);
    let harness = MongoBehindProxy::start_with(&args, &[]).await;
    let scratch = tempfile::tempdir().expect("tempdir");
    let queries = run(
        &harness,
        "whole_document",
        30,
        &scratch.path().join("queries.bson"),
    );
    wait_for_executions(&harness, 30 * 3);
    let advice = harness.recommendations();
    let recommendation = &advice["recommendations"][0];
    let evidence = &recommendation["evidence"];
    assert_eq!(evidence["method"], "sample", "{advice:#}");
    let before = evidence["docs_examined_before"].as_f64().unwrap_or(0.0);
    let after = evidence["docs_examined_after"].as_f64().unwrap_or(f64::MAX);
    assert!(
        before > after,
        "the index examines fewer documents: {evidence:#}"
    );
    assert!(
        evidence["gain_percent"].as_f64().unwrap_or(0.0) >= 20.0,
        "{evidence:#}"
    );
    assert_eq!(evidence["sample_size"], 500, "{evidence:#}");
    let databases = harness
        .direct
        .list_database_names()
        .await
        .expect("listDatabases");
    assert!(
        !databases
            .iter()
            .any(|db| db.starts_with("indextap_scratch_")),
        "the scratch database is dropped: {databases:?}"
    );
    let expectation = Expectation {
        max_recommendations: 1,
        max_keys: 3,
        must_serve: vec![("customer", vec!["w_id", "d_id"])],
        drops: vec![],
        absent_fields: vec!["updated_at"],
    };
    check(&advice, &harness.direct, DATABASE, &queries, &expectation).await;
}

/// Reads of `local.startup_log`, `admin.system.users`, `config.settings` and
/// `corpus.system.profile`: counted as shapes, never advised on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_namespaces_are_never_advised_on() {
    let harness = MongoBehindProxy::start_with(&SHORT_WINDOW, &[]).await;
    let scratch = tempfile::tempdir().expect("tempdir");
    let queries = run(
        &harness,
        "internal",
        5,
        &scratch.path().join("queries.bson"),
    );
    wait_for_executions(&harness, 5 * 4);
    let advice = harness.recommendations();
    assert_eq!(
        advice["recommendations"],
        serde_json::json!([]),
        "internal namespaces: {advice:#}"
    );
    check(
        &advice,
        &harness.direct,
        DATABASE,
        &queries,
        &Expectation::default(),
    )
    .await;
}

/// A session store read and written only by `_id`, with an index on `user` that no query
/// uses while every insert maintains it: nothing to add, `user_1` to drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_index_is_proposed_for_dropping() {
    let harness = MongoBehindProxy::start_with_admin_uri(&SHORT_WINDOW, &[]).await;
    let scratch = tempfile::tempdir().expect("tempdir");
    let queries = run(&harness, "by_id", 20, &scratch.path().join("queries.bson"));
    wait_for_executions(&harness, 20 * 2);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let expectation = Expectation {
        max_recommendations: 0,
        max_keys: 0,
        must_serve: vec![],
        drops: vec!["user_1"],
        absent_fields: vec![],
    };
    let advice = harness.recommendations();
    check(&advice, &harness.direct, DATABASE, &queries, &expectation).await;
    let drop = &advice["drops"][0];
    assert!(
        drop["evidence"]["writes"].as_u64().unwrap_or(0) >= 20,
        "the drop says how many writes maintained the index: {drop:#}"
    );
    assert!(
        drop["evidence"]["window_secs"].as_f64().unwrap_or(0.0) > 0.0,
        "the drop says how long the window was: {drop:#}"
    );
    assert_eq!(
        drop["evidence"]["server_uses"], 0,
        "the drop carries the server's own usage counter: {drop:#}"
    );
}

/// The scratch databases on the server now.
async fn scratch_databases(direct: &mongodb::Client) -> Vec<String> {
    direct
        .list_database_names()
        .await
        .expect("listDatabases")
        .into_iter()
        .filter(|db| db.starts_with("indextap_scratch_"))
        .collect()
}

/// SIGTERM while `--mongo-verify sample` is still copying its sample: the proxy does not wait
/// for the verification (it would outlast any orchestrator's grace), it drops the scratch
/// database before it exits, and says so; nothing writes it back after the drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drops_the_scratch_database_of_an_unfinished_verification() {
    const DOCUMENTS: i64 = 20_000;
    let mut harness = MongoBehindProxy::start_with(
        &["--mongo-verify", "sample", "--mongo-sample-size", "20000"],
        &[("INDEXTAP_SHUTDOWN_GRACE_SECS", "1")],
    )
    .await;
    let direct: mongodb::Collection<bson::Document> =
        harness.direct.database(DATABASE).collection("events");
    let documents: Vec<bson::Document> = (0..DOCUMENTS)
        .map(|n| bson::doc! { "kind": n % 50, "n": n })
        .collect();
    direct.insert_many(documents).await.expect("seed");
    let events: mongodb::Collection<bson::Document> =
        harness.client.database(DATABASE).collection("events");
    for kind in 0..5 {
        events
            .find_one(bson::doc! { "kind": kind })
            .await
            .expect("find through the proxy");
    }
    wait_for_executions(&harness, 5);

    // The advice (and its verification) runs while the test waits for its scratch copy.
    let admin = harness.proxy.admin_addr();
    let asked = std::thread::spawn(move || {
        indextap_tests::http::get(admin, "/api/v1/recommendations").map(|reply| reply.status)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while scratch_databases(&harness.direct).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no scratch database appeared: {}",
            harness.proxy.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stopped = std::time::Instant::now();
    let status = harness.proxy.stop().expect("the proxy exits after SIGTERM");
    assert!(status.success(), "{status}: {}", harness.proxy.logs());
    let logs = harness.proxy.logs();
    assert!(
        logs.contains("dropped the scratch databases of an unfinished verification"),
        "shutdown, not the verification, dropped it ({:?} after SIGTERM): {logs}",
        stopped.elapsed()
    );
    let left = scratch_databases(&harness.direct).await;
    assert!(left.is_empty(), "left behind: {left:?}\n{logs}");
    // Nothing was still writing into it: a moment later it is still gone.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let left = scratch_databases(&harness.direct).await;
    assert!(left.is_empty(), "written back after the drop: {left:?}");
    let _ = asked.join();
}
