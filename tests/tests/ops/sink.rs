//! Snapshots that outlive the pod: sidecars push their aggregate to a snapshot sink, and
//! `indextap recommend|shapes|merge --from <sink>` merges every sidecar's entry.
//!
//! - PostgreSQL: two sidecars push to one table; one is killed with `kill -9`, the other
//!   stops cleanly; the sink still holds both, the killed one as of its last interval. No
//!   value from the traffic is in the table.
//! - Object storage, through object_store's local-filesystem backend (`file://`): the same
//!   merge, and a new pod with the same sidecar id takes up its entry.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use indextap_tests::{
    assert_absent, marker_string, IndextapOptions, IndextapProcess, Postgres, SecantusDb,
    SecantusOptions,
};

use super::{
    current_counts, loopback, mongo_finds, run_cli_ok, signal, wait_for_counts, wait_for_exit,
    wait_until,
};

/// How long a push may take to show in the sink.
const PUSHED_WITHIN: Duration = Duration::from_secs(20);

/// A MongoDB sidecar in front of `upstream`, pushing to `sink` as `id` every
/// `interval_secs`; its MongoDB listen address.
fn sidecar(
    upstream: SocketAddr,
    sink: &str,
    id: &str,
    interval_secs: u64,
) -> (IndextapProcess, SocketAddr) {
    let listen = loopback();
    let proxy = IndextapProcess::start_with(
        IndextapOptions::mongo(listen, upstream)
            .args(&["--snapshot-sink", sink, "--sidecar-id", id])
            .env("INDEXTAP_STATE_INTERVAL_SECS", &interval_secs.to_string()),
    );
    (proxy, listen)
}

/// `(collection, command)` → executions, from `indextap shapes --from <from>`.
fn sink_counts(from: &str) -> BTreeMap<(String, String), u64> {
    let shapes: serde_json::Value =
        serde_json::from_str(&run_cli_ok(&["shapes", "--from", from])).expect("shapes JSON");
    let mut counts = BTreeMap::new();
    for shape in shapes["shapes"].as_array().expect("shapes array") {
        let key = (
            shape["collection"].as_str().unwrap_or_default().to_owned(),
            shape["command"].as_str().unwrap_or_default().to_owned(),
        );
        *counts.entry(key).or_default() += shape["count"].as_u64().unwrap_or_default();
    }
    counts
}

fn count(counts: &BTreeMap<(String, String), u64>, collection: &str) -> u64 {
    counts
        .get(&(collection.to_owned(), "find".to_owned()))
        .copied()
        .unwrap_or_default()
}

/// Waits until the sink reports exactly `expected` finds per collection.
#[track_caller]
fn wait_for_sink(from: &str, expected: &[(&str, u64)]) {
    wait_until(
        &format!("the sink reports {expected:?}"),
        PUSHED_WITHIN,
        || {
            let counts = sink_counts_if_any(from);
            expected
                .iter()
                .all(|(collection, want)| count(&counts, collection) == *want)
                .then_some(())
        },
    );
}

/// [`sink_counts`], or nothing while the sink holds no snapshot yet.
fn sink_counts_if_any(from: &str) -> BTreeMap<(String, String), u64> {
    let output = super::run_cli(&["shapes", "--from", from]);
    if !output.status.success() {
        return BTreeMap::new();
    }
    sink_counts(from)
}

/// A recommendation's collection → executions of the shapes it serves.
fn served(advice: &str) -> BTreeMap<String, u64> {
    let advice: serde_json::Value = serde_json::from_str(advice).expect("advice JSON");
    let mut served = BTreeMap::new();
    for recommendation in advice["recommendations"]
        .as_array()
        .expect("recommendations")
    {
        let total: u64 = recommendation["serves"]
            .as_array()
            .map(|serves| serves.iter().filter_map(|s| s["count"].as_u64()).sum())
            .unwrap_or_default();
        let collection = recommendation["collection"].as_str().unwrap_or_default();
        *served.entry(collection.to_owned()).or_default() += total;
    }
    served
}

/// Finds whose filter value is a marker, which must never reach the sink.
async fn marker_finds(uri: &str, collection: &str, marker: &str) {
    let client = mongodb::Client::with_uri_str(uri).await.expect("client");
    let coll = client
        .database("app")
        .collection::<bson::Document>(collection);
    coll.find_one(bson::doc! { "sku": marker })
        .await
        .expect("find with a marker");
}

#[tokio::test]
async fn two_sidecars_push_to_postgres_and_a_killed_one_keeps_its_last_interval() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let sink_db = Postgres::start();
    sink_db.create_database("fleet").expect("create database");
    let sink = sink_db.url("fleet");

    // A pushes every second; B only at shutdown (its interval is an hour).
    let (mut a, a_listen) = sidecar(server.addr(), &sink, "sidecar-a", 1);
    let (mut b, b_listen) = sidecar(server.addr(), &sink, "sidecar-b", 3600);
    let marker = marker_string();

    mongo_finds(&server.uri_via(a_listen), &[("orders", 4)]).await;
    marker_finds(&server.uri_via(a_listen), "orders_marked", &marker).await;
    mongo_finds(&server.uri_via(b_listen), &[("users", 3)]).await;
    wait_for_counts(&a, &[("orders", "find", 4), ("orders_marked", "find", 1)]);
    wait_for_counts(&b, &[("users", "find", 3)]);

    // A's last interval holds its traffic; then it is killed, with no chance to flush.
    wait_for_sink(&sink, &[("orders", 4), ("orders_marked", 1)]);
    signal(a.pid(), "KILL");
    let (status, _) = wait_for_exit(&mut a, Duration::from_secs(5));
    assert!(!status.success(), "killed: {status}");

    // B has not pushed yet; its shutdown does.
    assert_eq!(
        count(&sink_counts(&sink), "users"),
        0,
        "B pushes at shutdown only"
    );
    mongo_finds(&server.uri_via(b_listen), &[("users", 2)]).await;
    wait_for_counts(&b, &[("users", "find", 5)]);
    assert!(b.stop().expect("B exited").success());

    let counts = sink_counts(&sink);
    assert_eq!(count(&counts, "orders"), 4, "{counts:?}");
    assert_eq!(count(&counts, "users"), 5, "{counts:?}");
    let advice = run_cli_ok(&["recommend", "--from", &sink, "--format", "json"]);
    let served = served(&advice);
    assert_eq!(served.get("orders"), Some(&4), "{advice}");
    assert_eq!(served.get("users"), Some(&5), "{advice}");

    // One row per sidecar, each a snapshot and nothing else, with no value from the traffic.
    let rows = sink_db
        .psql_in(
            "fleet",
            &[
                "-At",
                "-c",
                "SELECT sidecar_id, format_version, snapshot::text FROM indextap_snapshots ORDER BY 1",
            ],
        )
        .expect("read the sink table");
    let ids: Vec<&str> = rows
        .lines()
        .filter_map(|line| line.split('|').next())
        .collect();
    assert_eq!(ids, ["sidecar-a", "sidecar-b"], "{rows}");
    for line in rows.lines() {
        let snapshot = line.splitn(3, '|').nth(2).expect("snapshot column");
        indextap_analyzer::snapshot::Snapshot::from_json(snapshot).expect("a snapshot");
    }
    assert_absent(&rows, &[marker.as_str(), "a-1"], "the sink table");
}

#[tokio::test]
async fn a_file_sink_merges_sidecars_and_a_new_pod_takes_up_its_entry() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = format!("file://{}", dir.path().join("fleet").display());

    let (mut a, a_listen) = sidecar(server.addr(), &sink, "pod-a", 3600);
    let (mut b, b_listen) = sidecar(server.addr(), &sink, "pod-b", 3600);
    mongo_finds(&server.uri_via(a_listen), &[("orders", 2)]).await;
    mongo_finds(&server.uri_via(b_listen), &[("orders", 3), ("items", 1)]).await;
    wait_for_counts(&a, &[("orders", "find", 2)]);
    wait_for_counts(&b, &[("orders", "find", 3), ("items", "find", 1)]);
    assert!(a.stop().expect("a exited").success());
    assert!(b.stop().expect("b exited").success());

    for name in ["pod-a.json", "pod-b.json"] {
        assert!(dir.path().join("fleet").join(name).is_file(), "{name}");
    }
    let counts = sink_counts(&sink);
    assert_eq!(count(&counts, "orders"), 5, "{counts:?}");
    assert_eq!(count(&counts, "items"), 1, "{counts:?}");
    let merged = dir.path().join("merged.json");
    run_cli_ok(&["merge", &sink, "-o", &merged.display().to_string()]);
    assert_eq!(
        count(&sink_counts(&merged.display().to_string()), "orders"),
        5
    );

    // A rescheduled pod with the same id and no state file starts from its own entry.
    let (again, again_listen) = sidecar(server.addr(), &sink, "pod-a", 3600);
    assert!(
        again.logs().contains("restored from the snapshot sink"),
        "{}",
        again.logs()
    );
    wait_for_counts(&again, &[("orders", "find", 2)]);
    mongo_finds(&server.uri_via(again_listen), &[("orders", 1)]).await;
    wait_for_counts(&again, &[("orders", "find", 3)]);
    assert!(!current_counts(&again).is_empty());
}
