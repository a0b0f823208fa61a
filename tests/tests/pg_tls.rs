//! TLS toward PostgreSQL clients, through the real proxy, with psql's `sslmode`.
//!
//! - `refuse`: the proxy answers SSLRequest with `N`. `disable` and `prefer` run in plaintext
//!   and are captured; `require` fails with libpq's usual refusal.
//! - `terminate`: the proxy answers `S` and speaks TLS with its own certificate; the leg to
//!   the server is plain. Every mode works, and everything is captured.
//! - `passthrough`: the server answers the SSLRequest; a TLS session is end-to-end encrypted,
//!   forwarded blind and counted as uninspected; a plaintext one is captured.
//!
//! Each client session touches its own table, so what was captured says which sessions the
//! proxy could read.

mod pg_common;

use std::path::Path;
use std::process::Output;

use indextap_tests::{PostgresOptions, TestCertificate};
use pg_common::{assert_success, psql, wait_for_shapes, PgBehindProxy};
use serde_json::Value;

/// Reports whether the server sees TLS on this session (`t` / `f`).
const SERVER_SIDE_SSL: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
/// What psql's `\conninfo` says of a TLS session.
const TLS_CONNINFO: &str = "SSL connection (protocol: TLS";

/// `probe_<name>` tables, one per client session.
fn create_probe_tables(env: &PgBehindProxy, names: &[&str]) {
    for name in names {
        env.server
            .psql(&[
                "-c",
                &format!("CREATE TABLE probe_{name} (id int PRIMARY KEY, tag text)"),
            ])
            .expect("create probe table");
    }
}

/// psql through the proxy with `sslmode` (and `extra` key=value settings): reports the
/// server's view of TLS, psql's `\conninfo`, and runs a SELECT on `probe_<table>`.
fn session(env: &PgBehindProxy, sslmode: &str, extra: &str, table: &str) -> Output {
    let conninfo = format!("{} sslmode={sslmode} {extra}", env.conninfo("postgres"));
    let probe = format!("SELECT id FROM probe_{table} WHERE tag = 'x'");
    psql(
        &conninfo,
        &["-c", SERVER_SIDE_SSL, "-c", "\\conninfo", "-c", &probe],
    )
}

/// The session's outcome: whether the server saw TLS, whether the client leg was TLS.
#[track_caller]
fn succeeded(output: &Output, what: &str) -> (bool, bool) {
    assert_success(output, what);
    let stdout = String::from_utf8_lossy(output.stdout.as_slice()).into_owned();
    let server_ssl = match stdout.lines().next() {
        Some("t") => true,
        Some("f") => false,
        other => panic!("{what}: pg_stat_ssl answered {other:?}:\n{stdout}"),
    };
    (server_ssl, stdout.contains(TLS_CONNINFO))
}

/// The shapes on `probe_<table>`.
fn probe_shapes<'a>(shapes: &'a [Value], table: &str) -> Vec<&'a Value> {
    let name = format!("probe_{table}");
    shapes
        .iter()
        .filter(|shape| shape["collection"] == name.as_str())
        .collect()
}

/// Waits until each of `tables` has a SELECT captured exactly once.
#[track_caller]
fn assert_captured_once(env: &PgBehindProxy, tables: &[&str]) -> Vec<Value> {
    let shapes = wait_for_shapes(&env.proxy, &format!("probes on {tables:?}"), |shapes| {
        tables
            .iter()
            .all(|table| !probe_shapes(shapes, table).is_empty())
    });
    for table in tables {
        let found = probe_shapes(&shapes, table);
        assert_eq!(found.len(), 1, "{table}: {found:#?}");
        assert_eq!(found[0]["count"], 1, "{table}: {:#}", found[0]);
        assert_eq!(found[0]["errors"], 0, "{table}: {:#}", found[0]);
    }
    shapes
}

/// A counter of the proxy's listener, by `reason` label (0 when absent).
fn counter(env: &PgBehindProxy, family: &str, reason: &str) -> f64 {
    let listener = env.listener();
    pg_common::metric_value(
        &env.metrics(),
        family,
        &[("listener", listener.as_str()), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn refuse_mode_serves_plaintext_and_refuses_required_tls() {
    let env = PgBehindProxy::start_with(PostgresOptions::default(), &["--pg-tls-mode", "refuse"]);
    create_probe_tables(&env, &["disable", "prefer"]);

    for sslmode in ["disable", "prefer"] {
        let output = session(&env, sslmode, "", sslmode);
        let (server_ssl, client_tls) = succeeded(&output, sslmode);
        assert!(!server_ssl, "{sslmode}: the server leg is plain");
        assert!(!client_tls, "{sslmode}: the proxy refused TLS");
    }

    let required = session(&env, "require", "", "disable");
    assert!(!required.status.success(), "sslmode=require must fail");
    let stderr = String::from_utf8_lossy(&required.stderr);
    assert!(
        stderr.contains("server does not support SSL, but SSL was required"),
        "{stderr}"
    );

    assert_captured_once(&env, &["disable", "prefer"]);
    env.assert_healthy();
}

#[test]
fn terminate_mode_speaks_tls_to_clients_and_plaintext_upstream() {
    let certificate = TestCertificate::generate();
    let (cert, key) = (
        path_text(&certificate.cert()),
        path_text(&certificate.key()),
    );
    let env = PgBehindProxy::start_with(
        PostgresOptions::default(),
        &[
            "--pg-tls-mode",
            "terminate",
            "--pg-tls-cert",
            &cert,
            "--pg-tls-key",
            &key,
        ],
    );
    create_probe_tables(&env, &["disable", "prefer", "require", "verify"]);

    let (server_ssl, client_tls) = succeeded(&session(&env, "disable", "", "disable"), "disable");
    assert!(!server_ssl && !client_tls, "disable stays plaintext");
    for sslmode in ["prefer", "require"] {
        let (server_ssl, client_tls) = succeeded(&session(&env, sslmode, "", sslmode), sslmode);
        assert!(client_tls, "{sslmode}: the client leg is TLS");
        assert!(
            !server_ssl,
            "{sslmode}: the proxy's leg to the server is plain"
        );
    }
    // The client verifies the proxy's own certificate and host name.
    let verified = session(
        &env,
        "verify-full",
        &format!("sslrootcert={cert}"),
        "verify",
    );
    let (server_ssl, client_tls) = succeeded(&verified, "verify-full");
    assert!(client_tls && !server_ssl);

    assert_captured_once(&env, &["disable", "prefer", "require", "verify"]);
    assert_eq!(
        counter(
            &env,
            "indextap_inspection_events_total",
            "tls_client_session"
        ),
        3.0,
        "prefer, require and verify-full were terminated"
    );
    assert_eq!(
        counter(
            &env,
            "indextap_uninspected_sessions_total",
            "tls_passthrough"
        ),
        0.0
    );
}

#[test]
fn passthrough_mode_leaves_tls_end_to_end_and_uninspected() {
    let env = PgBehindProxy::start_with(
        PostgresOptions {
            tls: true,
            ..PostgresOptions::default()
        },
        &["--pg-tls-mode", "passthrough"],
    );
    create_probe_tables(&env, &["disable", "prefer", "require", "verify"]);
    let ca = path_text(
        env.server
            .ca_cert_path()
            .expect("a TLS server has a CA file"),
    );

    for sslmode in ["prefer", "require"] {
        let (server_ssl, client_tls) = succeeded(&session(&env, sslmode, "", sslmode), sslmode);
        assert!(server_ssl && client_tls, "{sslmode}: TLS end to end");
    }
    // The client verifies the server's certificate, through the proxy.
    let verified = session(&env, "verify-full", &format!("sslrootcert={ca}"), "verify");
    let (server_ssl, client_tls) = succeeded(&verified, "verify-full");
    assert!(server_ssl && client_tls);
    let (server_ssl, client_tls) = succeeded(&session(&env, "disable", "", "disable"), "disable");
    assert!(!server_ssl && !client_tls, "disable stays plaintext");

    // The plaintext session ran last; once it is captured, the encrypted ones would have
    // been too, had the proxy been able to read them.
    let shapes = assert_captured_once(&env, &["disable"]);
    for table in ["prefer", "require", "verify"] {
        let found = probe_shapes(&shapes, table);
        assert!(found.is_empty(), "{table} was TLS: {found:#?}");
    }
    assert_eq!(
        counter(
            &env,
            "indextap_uninspected_sessions_total",
            "tls_passthrough"
        ),
        3.0,
        "prefer, require and verify-full were passed through"
    );
    env.assert_healthy();
}
