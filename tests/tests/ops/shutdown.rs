//! SIGTERM drains: the proxy stops accepting, lets in-flight requests finish within
//! `shutdown.grace_secs`, flushes the state and exits 0; past the grace period it closes what
//! is still open.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use indextap_analyzer::snapshot::Snapshot;
use indextap_tests::postgres::{connect, number};
use indextap_tests::{IndextapOptions, IndextapProcess, Postgres};
use tokio_postgres::NoTls;

use super::{accepts, loopback, signal, wait_for_counts, wait_for_exit, write_file};

/// A proxy in front of `server` with this grace period and a state directory.
fn proxy_with_grace(
    server: &Postgres,
    grace_secs: u64,
    dir: &Path,
) -> (IndextapProcess, SocketAddr) {
    let (admin, listen) = (loopback(), loopback());
    let config = write_file(
        dir,
        "indextap.toml",
        &format!(
            "[admin]\nlisten = \"{admin}\"\n\n[[postgres.listeners]]\nlisten = \"{listen}\"\n\
             upstream = \"{}\"\n\n[shutdown]\ngrace_secs = {grace_secs}\n\n[state]\ndir = \"{}\"\n",
            server.addr(),
            dir.join("state").display()
        ),
    );
    let proxy = IndextapProcess::start_with(IndextapOptions::config(&config, admin));
    (proxy, listen)
}

/// Waits until the server itself runs `statement` (so it is in flight at the proxy).
async fn wait_until_running(server: &Postgres, statement: &str) {
    let watcher = connect(&server.connection_string("postgres")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running = number(
            &watcher,
            "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'",
            &[&statement],
        )
        .await;
        if running > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{statement} never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls (off the runtime's threads) until nothing accepts on `addr`.
async fn wait_until_refused(addr: SocketAddr, timeout: Duration) -> Duration {
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        while accepts(addr) {
            assert!(
                started.elapsed() < timeout,
                "{addr} still accepts connections {timeout:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    })
    .await
    .expect("poller")
}

fn saved_state(dir: &Path) -> Snapshot {
    let path = dir.join("state").join("indextap-state.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("no state at {}: {err}", path.display()));
    Snapshot::from_json(&text).expect("a usable state file")
}

/// The saved count of shapes on `table`.
fn saved_count(snapshot: &Snapshot, table: &str) -> u64 {
    snapshot
        .shapes
        .values()
        .filter(|record| record.shape.namespace.collection == table)
        .map(|record| record.count)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_0_with_the_state_flushed() {
    const STATEMENT: &str = "SELECT pg_sleep(2), id FROM drain_probe WHERE id = 1";
    let server = Postgres::start();
    server
        .psql(&[
            "-c",
            "CREATE TABLE drain_probe (id int PRIMARY KEY); INSERT INTO drain_probe VALUES (1)",
        ])
        .expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut proxy, listen) = proxy_with_grace(&server, 10, dir.path());
    let conninfo = server.connection_string_via(listen, "postgres");

    let client = connect(&conninfo).await;
    client
        .simple_query("SELECT id FROM drain_probe WHERE id = 1")
        .await
        .expect("a first query through the proxy");
    wait_for_counts(&proxy, &[("drain_probe", "select", 1)]);

    let in_flight = tokio::spawn(async move {
        let result = client.simple_query(STATEMENT).await.map(|rows| rows.len());
        (client, result)
    });
    wait_until_running(&server, STATEMENT).await;
    let signalled = Instant::now();
    signal(proxy.pid(), "TERM");

    wait_until_refused(listen, Duration::from_secs(2)).await;
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        tokio_postgres::connect(&conninfo, NoTls).await.err()
    })
    .await
    .expect("a new connection is refused at once");
    assert!(
        refused.is_some(),
        "a new connection after SIGTERM succeeded"
    );
    assert!(
        proxy.exited().is_none(),
        "the proxy waits for the request in flight"
    );

    let (client, result) = in_flight.await.expect("query task");
    let messages = result.expect("the request in flight completes through the draining proxy");
    assert!(messages >= 2, "a row and the command completion");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "within the grace period"
    );

    // The client is done: its connection closes and the proxy has nothing left to wait for.
    drop(client);
    let (status, after_close) = wait_for_exit(&mut proxy, Duration::from_secs(8));
    assert!(status.success(), "a drained shutdown exits 0: {status}");
    assert!(
        after_close < Duration::from_secs(5),
        "exit {after_close:?} after the last connection closed: it should not wait out the grace"
    );
    assert_eq!(
        saved_count(&saved_state(dir.path()), "drain_probe"),
        2,
        "the flushed state holds both queries, the drained one included"
    );
    assert!(proxy.logs().contains("stopped"), "{}", proxy.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_period_the_proxy_closes_what_is_open_and_exits() {
    const STATEMENT: &str = "SELECT pg_sleep(30)";
    let server = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut proxy, listen) = proxy_with_grace(&server, 1, dir.path());

    let client = connect(&server.connection_string_via(listen, "postgres")).await;
    let in_flight = tokio::spawn(async move { client.simple_query(STATEMENT).await.map(drop) });
    wait_until_running(&server, STATEMENT).await;
    let signalled = Instant::now();
    signal(proxy.pid(), "TERM");

    let (status, waited) = wait_for_exit(&mut proxy, Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(6),
        "exited {waited:?} after SIGTERM with a 1 s grace period"
    );
    let outcome = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the client learns promptly that its connection is gone")
        .expect("query task");
    assert!(outcome.is_err(), "the 30 s query cannot have completed");
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert!(
        proxy.logs().contains("grace period over"),
        "{}",
        proxy.logs()
    );
    saved_state(dir.path());
}
