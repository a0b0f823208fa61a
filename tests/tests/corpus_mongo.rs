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
mod mongo_common;
#[path = "corpus/tools.rs"]
mod tools;

use mongo_check::{careful_dba, check, recorded, Expectation};
use mongo_common::{wait_until, MongoBehindProxy};

const DATABASE: &str = "corpus";
/// Drop advice needs a capture window (the tests' windows last seconds); a sample of 500
/// documents keeps SecantusDB's pure-Python `$group` within seconds.
const SHORT_WINDOW: [&str; 4] = ["--drop-min-window-secs", "1", "--mongo-sample-size", "500"];

/// A fresh SecantusDB and proxy (given `extra` flags, and the server as its
/// `--mongo-admin-uri` when `admin_uri`), a workload of `tests/corpus/mongo_app.py` seeded
/// straight to the server and run through the proxy for `rounds`, recording what it sends;
/// returned once the proxy counted `per_round` executions a round.
async fn run(
    extra: &[&str],
    admin_uri: bool,
    workload: &str,
    rounds: u32,
    per_round: u64,
) -> (MongoBehindProxy, Vec<mongo_check::Recorded>) {
    let harness = if admin_uri {
        MongoBehindProxy::start_with_admin_uri(extra, &[]).await
    } else {
        MongoBehindProxy::start_with(extra, &[]).await
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let record = scratch.path().join("queries.bson");
    let args = |uri: String, phase: &str| {
        [
            "--uri",
            &uri,
            "--workload",
            workload,
            "--phase",
            phase,
            "--rounds",
            &rounds.to_string(),
            "--record",
            &record.display().to_string(),
        ]
        .map(str::to_string)
        .to_vec()
    };
    tools::python("mongo_app.py", &args(harness.server.uri(), "seed"));
    tools::python(
        "mongo_app.py",
        &args(harness.server.uri_via(harness.listen), "run"),
    );
    let queries = recorded(&record);
    wait_for_executions(&harness, u64::from(rounds) * per_round);
    (harness, queries)
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

/// The advice now, once it passed every check of `corpus/mongo_check.rs`.
async fn checked(
    harness: &MongoBehindProxy,
    queries: &[mongo_check::Recorded],
    expectation: &Expectation,
) -> serde_json::Value {
    let advice = harness.recommendations();
    check(&advice, &harness.direct, DATABASE, queries, expectation).await;
    advice
}

/// A MongoEngine blog. MongoEngine creates the unique index on `author.email`, which serves
/// the lookup by email. A careful DBA adds three: an author's published posts newest first
/// (which also serves counting and finding an author's posts), posts by tag newest first,
/// and authors by country: that count scans every author document on each call (about 6 ms
/// each here, measured), which an index on `country` turns into a lookup of a tenth of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongoengine_blog() {
    let (harness, queries) = run(&SHORT_WINDOW, false, "blog", 20, 5).await;
    let expectation = careful_dba("mongoengine_blog");
    checked(&harness, &queries, &expectation).await;
}

/// What a careful DBA does with updates filtered on the whole fetched document: ten variants
/// (one optional field each) of an eight-field filter. `(w_id, d_id, c_id)` is unique, so one
/// index of at most three keys, which also serves the lookup that fetched the document and
/// the listing by district. The listing sorts on `updated_at`, which no document has: it is
/// never a key.
fn whole_document_expectation() -> Expectation {
    careful_dba("whole_document")
}

/// Updates filtered on the whole fetched document (see [`whole_document_expectation`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_document_update_filters() {
    let (harness, queries) = run(&SHORT_WINDOW, false, "whole_document", 30, 3).await;
    checked(&harness, &queries, &whole_document_expectation()).await;
}

/// `--mongo-verify sample`: the whole-document workload's index is measured on a sample
/// copied into a scratch database: documents examined without and with it, and the sample's
/// size, in its evidence. The scratch database is gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_verification_measures_on_a_scratch_copy() {
    let mut args = SHORT_WINDOW.to_vec();
    args.extend(["--mongo-verify", "sample"]);
    let (harness, queries) = run(&args, false, "whole_document", 30, 3).await;
    let advice = checked(&harness, &queries, &whole_document_expectation()).await;
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
    let databases = scratch_databases(&harness.direct).await;
    assert!(
        databases.is_empty(),
        "the scratch database is dropped: {databases:?}"
    );
}

/// Reads of `local.startup_log`, `admin.system.users`, `config.settings` and
/// `corpus.system.profile`: counted as shapes, never advised on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_namespaces_are_never_advised_on() {
    let (harness, queries) = run(&SHORT_WINDOW, false, "internal", 5, 4).await;
    let advice = checked(&harness, &queries, &Expectation::default()).await;
    assert_eq!(
        advice["recommendations"],
        serde_json::json!([]),
        "internal namespaces: {advice:#}"
    );
}

/// A session store read and written only by `_id`, with an index on `user` that no query
/// uses while every insert maintains it: nothing to add, `user_1` to drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_index_is_proposed_for_dropping() {
    let (harness, queries) = run(&SHORT_WINDOW, true, "by_id", 20, 2).await;
    std::thread::sleep(std::time::Duration::from_secs(2));
    let expectation = careful_dba("an_unused_index_is_proposed_for_dropping");
    let advice = checked(&harness, &queries, &expectation).await;
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
    let documents = (0..DOCUMENTS)
        .map(|n| bson::doc! { "kind": n % 50, "n": n })
        .collect();
    let events = harness.seeded(DATABASE, "events", documents).await;
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

/// A candidate the server's planner refuses, and every simpler one too: each lookup of
/// users by status carries `{email: {$exists: true}}`, so the candidate is `status_1` with
/// that `partialFilterExpression`. SecantusDB's planner picks neither that partial index nor
/// the plain `status_1` for such a filter (measured on the sample), so nothing is
/// recommended, and the notes say so, with the documents the lookup keeps examining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_candidate_tries_simpler_ones_then_says_what_it_costs() {
    let mut args = SHORT_WINDOW.to_vec();
    args.extend(["--mongo-verify", "sample"]);
    let harness = MongoBehindProxy::start_with(&args, &[]).await;
    let documents = (0..1_000)
        .map(|n| match n % 2 {
            0 => bson::doc! { "status": format!("s{}", n % 10), "email": format!("e{n}") },
            _ => bson::doc! { "status": format!("s{}", n % 10) },
        })
        .collect();
    let users = harness.seeded(DATABASE, "users", documents).await;
    for n in 0..20 {
        users
            .find_one(bson::doc! { "status": format!("s{}", n % 10), "email": { "$exists": true } })
            .await
            .expect("find through the proxy");
    }
    wait_for_executions(&harness, 20);
    let advice = harness.recommendations();
    assert_eq!(
        advice["recommendations"],
        serde_json::json!([]),
        "{advice:#}"
    );
    let notes: Vec<&str> = advice["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let kept = notes
        .iter()
        .find_map(|note| {
            note.strip_prefix("status_1_partial: no simpler index pays either; its heaviest shape keeps examining ")
        })
        .unwrap_or_else(|| panic!("no note on the refused candidate: {advice:#}"));
    let examined: f64 = kept
        .trim_end_matches(" sampled documents")
        .parse()
        .unwrap_or_else(|_| panic!("{kept}"));
    assert!(
        examined >= 500.0,
        "a scan of the sample, probe by probe: {kept}"
    );
    assert!(
        notes.iter().any(|note| note.starts_with(
            "the planner would not use 1 candidate index(es), left out: status_1_partial"
        )),
        "{advice:#}"
    );
}
