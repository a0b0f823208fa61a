//! TLS toward MongoDB clients, through the real proxy, with pymongo and mongosh
//! (`tls=true`, `tlsCAFile`) against SecantusDB.
//!
//! - `terminate`: the proxy completes the handshake with its own certificate, which the
//!   client verifies, and captures the session's shapes; a plain client is refused. The leg
//!   to the server is plain, or TLS verified against the server's CA (a configuration file
//!   whose relative CA path resolves beside it); the wrong CA is an upstream error.
//! - `passthrough`: the client verifies the *server's* certificate through the proxy; the
//!   session is relayed blind and counted as not inspected.
//! - `refuse` (the default): a TLS client gets a handshake failure at once.
//!
//! Each client works on its own collection, so what was captured says which sessions the
//! proxy could read.

mod mongo_common;

use indextap_tests::tools::{assert_success, mongosh, pymongo};
use indextap_tests::{
    IndextapOptions, IndextapProcess, SecantusDb, SecantusOptions, TestCertificate,
};
use mongo_common::{executions, metric, start_proxy, wait_for_metric, wait_for_shapes, MongoProxy};

/// Inserts into `sys.argv[2]`, then runs the same find five times: one shape,
/// `{status: <string>, qty: {$gt: <int>}}` sorted by `at`.
const FINDS: &str = r#"
import sys, pymongo
client = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=10000)
coll = client.app[sys.argv[2]]
coll.insert_many([{"status": "A", "qty": i, "at": i} for i in range(10)])
for i in range(5):
    list(coll.find({"status": "A", "qty": {"$gt": i}}).sort("at", -1).limit(3))
print("ok", coll.count_documents({}))
"#;

/// Runs one `ping`; prints `refused <error class>` when the connection cannot be made.
const PING: &str = r#"
import sys, pymongo
try:
    pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=3000).admin.command("ping")
    print("served")
except pymongo.errors.PyMongoError as error:
    print("refused", type(error).__name__, error)
"#;

/// `mongodb://<addr>/?directConnection=true` plus TLS options when `ca` is given.
fn uri(addr: impl std::fmt::Display, ca: Option<&TestCertificate>) -> String {
    match ca {
        Some(ca) => format!(
            "mongodb://localhost:{}/?directConnection=true&tls=true&tlsCAFile={}",
            port_of(&addr.to_string()),
            ca.cert().display()
        ),
        None => format!("mongodb://{addr}/?directConnection=true"),
    }
}

fn port_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(_, port)| port)
}

/// pymongo runs [`FINDS`] on `collection` through `uri`; it must succeed.
#[track_caller]
fn run_finds(uri: &str, collection: &str) {
    let stdout = assert_success(&pymongo(FINDS, &[uri, collection]), collection);
    assert_eq!(stdout.trim(), "ok 10", "{collection}");
}

/// pymongo pings through `uri`; whether it was served, and what it printed.
fn ping(uri: &str) -> (bool, String) {
    let stdout = assert_success(&pymongo(PING, &[uri]), "ping");
    (stdout.starts_with("served"), stdout)
}

/// Waits until the finds on `collection` were captured: five executions of one shape.
#[track_caller]
fn assert_finds_captured(proxy: &IndextapProcess, collection: &str) {
    let shapes = wait_for_shapes(proxy, collection, |shapes| {
        executions(shapes, "find", collection, &["status", "qty"]) >= 5
    });
    assert_eq!(
        executions(&shapes, "find", collection, &["status", "qty"]),
        5,
        "{collection}"
    );
}

/// A counter of the listener, by reason (0 when absent).
fn reason(proxy: &IndextapProcess, family: &str, reason: &str) -> f64 {
    metric(proxy, family, &[("reason", reason)])
}

/// Waits until the counter of `reason` is at least 1.
fn wait_for_reason(proxy: &IndextapProcess, family: &str, reason: &str) {
    wait_for_metric(proxy, family, &[("reason", reason)], 1.0);
}

fn tls_server(certificate: &TestCertificate) -> SecantusDb {
    let (cert, key) = (certificate.cert(), certificate.key());
    SecantusDb::start(SecantusOptions {
        extra_args: vec![
            "--tls-cert-file".into(),
            cert.display().to_string(),
            "--tls-key-file".into(),
            key.display().to_string(),
        ],
        ..SecantusOptions::standalone()
    })
}

/// A proxy in front of `server` that terminates TLS with `certificate`.
fn terminating_proxy(server: &SecantusDb, certificate: &TestCertificate) -> MongoProxy {
    let (cert, key) = (
        certificate.cert().display().to_string(),
        certificate.key().display().to_string(),
    );
    start_proxy(
        server.addr(),
        &[
            "--mongo-tls-mode",
            "terminate",
            "--mongo-tls-cert",
            &cert,
            "--mongo-tls-key",
            &key,
        ],
    )
}

#[test]
fn terminate_captures_pymongo_over_tls_and_refuses_plain_clients() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let proxy_cert = TestCertificate::generate();
    let mut proxy = terminating_proxy(&server, &proxy_cert);

    // The driver verifies the proxy's certificate (tlsCAFile) and host name.
    run_finds(&uri(proxy.listen, Some(&proxy_cert)), "over_tls");
    assert_finds_captured(&proxy.process, "over_tls");
    assert!(
        reason(
            &proxy.process,
            "indextap_inspection_events_total",
            "tls_client_session"
        ) >= 1.0
    );

    // A plain client is refused, as by a server that requires TLS.
    let (served, said) = ping(&uri(proxy.listen, None));
    assert!(!served, "a plain client must be refused: {said}");
    wait_for_reason(
        &proxy.process,
        "indextap_uninspected_sessions_total",
        "plaintext_refused",
    );
    // A client that does not trust the proxy's certificate fails its handshake.
    let stranger = TestCertificate::generate();
    let (served, said) = ping(&uri(proxy.listen, Some(&stranger)));
    assert!(!served, "an untrusted certificate must fail: {said}");
    wait_for_reason(
        &proxy.process,
        "indextap_decode_errors_total",
        "tls_handshake",
    );
    proxy.assert_alive();
}

#[test]
fn terminate_with_verified_tls_to_the_server_from_a_config_file() {
    let server_cert = TestCertificate::generate();
    let server = tls_server(&server_cert);
    let proxy_cert = TestCertificate::generate();
    let config_dir = tempfile::tempdir().expect("config dir");
    // Relative paths in the file resolve beside it, not in the working directory.
    for (name, from) in [
        ("proxy.crt", proxy_cert.cert()),
        ("proxy.key", proxy_cert.key()),
        ("server-ca.pem", server_cert.cert()),
        ("wrong-ca.pem", proxy_cert.cert()),
    ] {
        std::fs::copy(from, config_dir.path().join(name)).expect("copy PEM");
    }
    let (verified, wrong_ca, admin) = (
        indextap_tests::ports::free_addr(),
        indextap_tests::ports::free_addr(),
        indextap_tests::ports::free_addr(),
    );
    let tls = |ca: &str| {
        format!(
            "tls = {{ mode = \"terminate\", cert_file = \"proxy.crt\", key_file = \"proxy.key\", \
             upstream = \"require\", upstream_ca_file = \"{ca}\" }}"
        )
    };
    let config = format!(
        "[admin]\nlisten = \"{admin}\"\n\
         [[mongo.listeners]]\nname = \"verified\"\nlisten = \"{verified}\"\nupstream = \"localhost:{port}\"\n{}\n\
         [[mongo.listeners]]\nname = \"wrong-ca\"\nlisten = \"{wrong_ca}\"\nupstream = \"localhost:{port}\"\n{}\n",
        tls("server-ca.pem"),
        tls("wrong-ca.pem"),
        port = server.port(),
    );
    let path = config_dir.path().join("indextap.toml");
    std::fs::write(&path, config).expect("write config");
    let proxy = IndextapProcess::start_with(IndextapOptions::config(&path, admin));

    run_finds(&uri(verified, Some(&proxy_cert)), "tls_both_legs");
    assert_finds_captured(&proxy, "tls_both_legs");

    // The server's certificate does not chain to this listener's CA: an upstream error, and
    // the client is let go.
    let (served, said) = ping(&uri(wrong_ca, Some(&proxy_cert)));
    assert!(!served, "the wrong upstream CA must fail: {said}");
    wait_for_metric(
        &proxy,
        "indextap_upstream_connect_errors_total",
        &[("listener", "wrong-ca")],
        1.0,
    );
    assert_eq!(
        metric(
            &proxy,
            "indextap_upstream_connect_errors_total",
            &[("listener", "verified")]
        ),
        0.0
    );
}

#[test]
fn passthrough_relays_tls_to_the_server_uninspected() {
    let server_cert = TestCertificate::generate();
    let server = tls_server(&server_cert);
    let mut proxy = start_proxy(server.addr(), &["--mongo-tls-mode", "passthrough"]);

    // The driver verifies the server's own certificate, through the proxy.
    run_finds(&uri(proxy.listen, Some(&server_cert)), "passed_through");
    wait_for_reason(
        &proxy.process,
        "indextap_uninspected_sessions_total",
        "tls_passthrough",
    );
    let shapes = mongo_common::shapes(&proxy.process);
    assert_eq!(
        executions(&shapes, "find", "passed_through", &["status"]),
        0,
        "a passed-through session cannot be read"
    );
    proxy.assert_alive();
}

#[test]
fn refuse_answers_tls_with_a_handshake_failure() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let mut proxy = start_proxy(server.addr(), &[]);
    let client_cert = TestCertificate::generate();

    let (served, said) = ping(&uri(proxy.listen, Some(&client_cert)));
    assert!(!served, "refuse mode must not serve TLS: {said}");
    assert!(said.contains("SSL") || said.contains("handshake"), "{said}");
    wait_for_reason(
        &proxy.process,
        "indextap_uninspected_sessions_total",
        "tls_refused",
    );
    // Plain clients are served and captured as before.
    run_finds(&uri(proxy.listen, None), "plain");
    assert_finds_captured(&proxy.process, "plain");
    proxy.assert_alive();
}

#[test]
fn mongosh_over_tls_through_terminate_is_captured() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let proxy_cert = TestCertificate::generate();
    let proxy = terminating_proxy(&server, &proxy_cert);
    let cert = proxy_cert.cert().display().to_string();
    let script = r#"
        const coll = db.getSiblingDB("app").shell_orders;
        coll.insertMany([{status: "A", qty: 5, at: 1}, {status: "B", qty: 7, at: 2}]);
        for (let i = 0; i < 5; i++) {
            coll.find({status: "A", qty: {$gt: i}}).sort({at: -1}).limit(3).toArray();
        }
        print("count", coll.countDocuments({}));
    "#;
    let output = mongosh(
        &format!(
            "mongodb://localhost:{}/app?directConnection=true",
            proxy.listen.port()
        ),
        &["--tls", "--tlsCAFile", &cert],
        script,
    );
    let stdout = assert_success(&output, "mongosh");
    assert!(stdout.contains("count 2"), "{stdout}");
    assert_finds_captured(&proxy.process, "shell_orders");
}
