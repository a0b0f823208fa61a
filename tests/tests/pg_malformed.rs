//! Malformed PostgreSQL traffic through the real proxy, written byte by byte on a raw socket.
//!
//! For each case: the proxy does not panic (`/healthz` answers), counts what it saw in
//! `/metrics`, and keeps forwarding wherever the protocol allows, so the reply is the
//! server's own (an ErrorResponse it wrote, or its log line and closed connection), never the
//! proxy's failure. Other sessions, a psql run after each case and one raw session kept open
//! across all of them, go on working and being captured.
//!
//! ## Layout
//! - the startup phase: a truncated packet, absurd lengths (an HTTP request among them).
//! - after a valid startup: out-of-range lengths, an unknown type, a malformed body.

mod pg_common;

use std::net::Shutdown;
use std::time::Duration;

use pg_common::raw::{kinds, the_error, typed, Raw, PROTOCOL_3};
use pg_common::{field, metric_value, wait_for_shapes, PgBehindProxy};

/// A counter of the proxy's listener by `reason` (0 when absent).
fn reason_count(env: &PgBehindProxy, family: &str, reason: &str) -> f64 {
    let listener = env.listener();
    metric_value(
        &env.metrics(),
        family,
        &[("listener", listener.as_str()), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// The proxy's resident memory, in MiB.
fn resident_mib(env: &PgBehindProxy) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", env.proxy.pid())).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024
}

/// Everything that must hold between cases: the proxy is healthy, a new psql session
/// works, and the raw session opened at the start still answers.
struct Steady {
    raw: Raw,
    runs: u64,
}

impl Steady {
    fn open(env: &PgBehindProxy) -> Self {
        env.server
            .psql(&[
                "-c",
                "CREATE TABLE steady (id int PRIMARY KEY); INSERT INTO steady VALUES (1), (2);",
            ])
            .expect("create steady");
        Self {
            raw: Raw::started(env.listen),
            runs: 0,
        }
    }

    #[track_caller]
    fn check(&mut self, env: &PgBehindProxy, after: &str) {
        env.assert_healthy();
        let output = env.psql_ok("postgres", "SELECT id FROM steady WHERE id = 1");
        assert_eq!(output.trim(), "1", "psql after {after}");
        let replies = self.raw.query("SELECT id FROM steady WHERE id = 2");
        assert_eq!(kinds(&replies), "TDCZ", "the open session after {after}");
        self.runs += 2;
    }

    /// Every steady SELECT was captured.
    #[track_caller]
    fn assert_captured(&self, env: &PgBehindProxy) {
        let runs = self.runs;
        let shapes = wait_for_shapes(&env.proxy, "every steady SELECT", |shapes| {
            shapes
                .iter()
                .filter(|shape| shape["collection"] == "steady")
                .any(|shape| shape["count"].as_u64() >= Some(runs))
        });
        let steady: Vec<_> = shapes
            .iter()
            .filter(|shape| shape["collection"] == "steady")
            .collect();
        assert_eq!(steady.len(), 1, "{steady:#?}");
        assert_eq!(field(steady[0], "count"), runs, "{:#}", steady[0]);
        assert_eq!(field(steady[0], "errors"), 0, "{:#}", steady[0]);
    }
}

#[test]
fn malformed_startup_packets_are_refused_and_counted() {
    let env = PgBehindProxy::start();
    let mut steady = Steady::open(&env);
    steady.check(&env, "nothing");

    // A length that promises 40 bytes, 8 of them sent, then the client leaves.
    let mut raw = Raw::connect(env.listen);
    let mut partial = 40i32.to_be_bytes().to_vec();
    partial.extend_from_slice(&PROTOCOL_3.to_be_bytes());
    raw.send(&partial);
    raw.stream.shutdown(Shutdown::Write).expect("half-close");
    let replies = raw.until_closed();
    assert!(replies.is_empty(), "nothing to answer: {}", kinds(&replies));
    steady.check(&env, "a truncated startup packet");
    assert_eq!(
        reason_count(&env, "indextap_decode_errors_total", "startup_truncated"),
        1.0
    );

    // Lengths no startup packet can have: nothing of that size is read or allocated, and
    // the client hears why.
    let http = b"GET / HTTP/1.1\r\nHost: db\r\n\r\n".to_vec();
    let absurd: [Vec<u8>; 4] = [
        0x7fff_ffffi32.to_be_bytes().to_vec(),
        (-1i32).to_be_bytes().to_vec(),
        4i32.to_be_bytes().to_vec(),
        http,
    ];
    for (case, bytes) in absurd.iter().enumerate() {
        let mut raw = Raw::connect(env.listen);
        raw.send(bytes);
        let replies = raw.until_closed();
        let (code, message) = the_error(&replies);
        assert_eq!(code, "08P01", "case {case}: {message}");
        assert!(message.contains("length"), "case {case}: {message}");
        steady.check(&env, &format!("absurd startup length {case}"));
    }
    assert_eq!(
        reason_count(&env, "indextap_decode_errors_total", "startup_invalid"),
        4.0
    );
    let resident = resident_mib(&env);
    assert!(
        resident < 256,
        "{resident} MiB resident after absurd lengths"
    );

    // A client that connects and leaves without a byte (a TCP probe) is no decode error.
    drop(Raw::connect(env.listen));
    pg_common::wait_for_metric(
        &env.proxy,
        "indextap_inspection_events_total",
        &[("reason", "closed_before_startup")],
        1.0,
    );
    assert_eq!(
        reason_count(&env, "indextap_decode_errors_total", "startup_truncated"),
        1.0
    );
    steady.check(&env, "a silent client");
    steady.assert_captured(&env);
}

#[test]
fn malformed_messages_after_startup_reach_the_server_and_are_counted() {
    let env = PgBehindProxy::start();
    let mut steady = Steady::open(&env);
    steady.check(&env, "nothing");

    // Lengths outside 4..=1 GiB: the proxy stops framing that connection but forwards
    // the bytes, and the server ends the session itself (it logs, it does not answer).
    for (case, length) in [2i32, 0x7fff_fff0].into_iter().enumerate() {
        let mut raw = Raw::started(env.listen);
        let mut bytes = vec![b'Q'];
        bytes.extend_from_slice(&length.to_be_bytes());
        raw.send(&bytes);
        let replies = raw.until_closed();
        assert!(
            replies.iter().all(|(kind, _)| *kind == b'E'),
            "case {case}: {}",
            kinds(&replies)
        );
        steady.check(&env, &format!("a bad length, case {case}"));
    }
    let deadline = std::time::Instant::now() + pg_common::CAPTURE_TIMEOUT;
    while env.server.logs().matches("invalid message length").count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never saw both bad lengths:\n{}",
            env.server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        reason_count(&env, "indextap_decode_errors_total", "bad_length"),
        2.0
    );

    // A type byte no frontend message has: the server's own FATAL comes back.
    let mut raw = Raw::started(env.listen);
    raw.send(&typed(b'!', &[1, 2, 3, 4]));
    let replies = raw.until_closed();
    let (code, message) = the_error(&replies);
    assert_eq!(code, "08P01", "{message}");
    assert!(
        message.contains("invalid frontend message type 33"),
        "{message}"
    );
    steady.check(&env, "an unknown message type");
    pg_common::wait_for_metric(
        &env.proxy,
        "indextap_inspection_events_total",
        &[("reason", "unknown_message_type")],
        1.0,
    );

    // A known type with an unreadable body: the server's ERROR comes back, and after Sync the
    // same session goes on, still inspected.
    let mut raw = Raw::started(env.listen);
    raw.send(&typed(b'B', &[0xff, 0xff, 0xff, 0xff]));
    raw.send(&typed(b'S', &[]));
    let replies = raw.until_ready();
    let (code, message) = the_error(&replies);
    assert_eq!(code, "08P01", "{message}");
    let rows = raw.query("SELECT id FROM steady WHERE id = 2");
    assert_eq!(kinds(&rows), "TDCZ");
    pg_common::wait_for_metric(
        &env.proxy,
        "indextap_inspection_events_total",
        &[("reason", "malformed_message")],
        1.0,
    );
    steady.runs += 1;
    steady.check(&env, "a malformed Bind");
    steady.assert_captured(&env);
}
