//! A PostgreSQL upstream that is down: clients get a prompt error, the proxy stays up, and
//! it serves again as soon as the server is back.

use std::time::{Duration, Instant};

use indextap_tests::metrics::metric;
use indextap_tests::postgres::connect;
use indextap_tests::{IndextapOptions, IndextapProcess, Postgres};
use tokio_postgres::NoTls;

use super::{loopback, wait_for_counts};

/// The value of `indextap_upstream_connect_errors_total` for PostgreSQL listeners.
fn upstream_errors(proxy: &IndextapProcess) -> f64 {
    metric(
        proxy,
        "indextap_upstream_connect_errors_total",
        &[("engine", "postgresql")],
    )
}

#[tokio::test]
async fn a_postgres_upstream_that_is_down_fails_clients_promptly_and_recovers() {
    let server = Postgres::start();
    server.stop_server().expect("stop the server");

    let listen = loopback();
    let mut proxy = IndextapProcess::start_with(IndextapOptions::postgres(listen, server.addr()));
    let conninfo = server.connection_string_via(listen, "postgres");

    for attempt in 1..=3 {
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_postgres::connect(&conninfo, NoTls),
        )
        .await
        .expect("the client is not left hanging");
        let elapsed = started.elapsed();
        assert!(
            outcome.is_err(),
            "attempt {attempt}: connected to a server that is down"
        );
        assert!(
            elapsed < Duration::from_secs(2),
            "attempt {attempt}: the error took {elapsed:?}"
        );
    }
    assert!(proxy.exited().is_none(), "the proxy survives");
    assert_eq!(proxy.get_text("/healthz").expect("healthz").trim(), "ok");
    assert!(upstream_errors(&proxy) >= 3.0, "each failure is counted");

    server.start_again().expect("start the server again");
    // The same proxy connects once the server is back.
    let client = connect(&conninfo).await;
    client
        .batch_execute("CREATE TABLE back (id int PRIMARY KEY)")
        .await
        .expect("DDL");
    for id in 0..3 {
        client
            .query("SELECT id FROM back WHERE id = $1", &[&id])
            .await
            .expect("query through the proxy");
    }
    wait_for_counts(&proxy, &[("back", "select", 3)]);
}
