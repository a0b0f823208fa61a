//! Malformed PostgreSQL traffic through the real proxy, written byte by byte on a raw socket.
//!
//! For each case: the proxy does not panic (`/healthz` answers), counts what it saw in
//! `/metrics`, and forwards what it cannot read, so the reply is the server's own (an
//! ErrorResponse it wrote, or its log line and closed connection), never the proxy's. Each
//! startup case is played twice, straight to the server and through the proxy, and the
//! client must hear the same bytes and the same close. Other sessions, a psql run after each
//! case and one raw session kept open across all of them, go on working and being captured.
//!
//! ## Layout
//! - the startup phase: garbage, absurd lengths, unknown protocols, requests out of turn,
//!   each compared with the server heard directly; a truncated packet.
//! - after a valid startup: out-of-range lengths, an unknown type, a malformed body.

mod pg_common;

use std::net::Shutdown;
use std::time::Duration;

use indextap_tests::transcript::{converse, converse_on, Heard, Step};
use pg_common::raw::{kinds, startup_packet, the_error, typed, Raw, PROTOCOL_3};
use pg_common::{field, metric_value, wait_for_shapes, PgBehindProxy};

/// How long a connection may stay quiet before it counts as left open.
const QUIET: Duration = Duration::from_secs(5);

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

/// A startup-phase case: what the client sends, and the `decode_errors` reason it is counted
/// under when the proxy forwards it unread (`None`: the proxy reads it).
struct StartupCase {
    name: &'static str,
    steps: Vec<Step>,
    reason: Option<&'static str>,
}

/// An 8-byte request with `code` (SSLRequest, GSSENCRequest).
fn request(code: i32) -> Vec<u8> {
    let mut bytes = 8i32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&code.to_be_bytes());
    bytes
}

const SSL_REQUEST: i32 = 80_877_103;

fn startup_cases() -> Vec<StartupCase> {
    let ssl = request(SSL_REQUEST);
    let http = b"GET / HTTP/1.1\r\nHost: db\r\n\r\n".to_vec();
    let mut old_protocol = startup_packet(&[("user", "postgres")]);
    old_protocol[4..8].copy_from_slice(&(2i32 << 16).to_be_bytes());
    let mut bare = 8i32.to_be_bytes().to_vec();
    bare.extend_from_slice(&PROTOCOL_3.to_be_bytes());
    // A plausible length, then noise where the protocol version goes.
    let mut noise = 16i32.to_be_bytes().to_vec();
    noise.extend_from_slice(b"\x13\x37garbage!\xff\x00");
    let length = |n: i32| vec![Step::Send(n.to_be_bytes().to_vec())];
    vec![
        StartupCase {
            name: "garbage (an HTTP request)",
            steps: vec![Step::Send(http.clone())],
            reason: Some("startup_invalid"),
        },
        StartupCase {
            name: "length 2^31-1",
            steps: length(i32::MAX),
            reason: Some("startup_invalid"),
        },
        StartupCase {
            name: "length -1",
            steps: length(-1),
            reason: Some("startup_invalid"),
        },
        StartupCase {
            name: "length 4",
            steps: length(4),
            reason: Some("startup_invalid"),
        },
        StartupCase {
            name: "garbage after SSLRequest",
            steps: vec![Step::Send(ssl.clone()), Step::Hear(1), Step::Send(http)],
            reason: Some("startup_invalid"),
        },
        StartupCase {
            name: "noise with a plausible length",
            steps: vec![Step::Send(noise)],
            reason: Some("startup_unsupported"),
        },
        StartupCase {
            name: "protocol 2.0",
            steps: vec![Step::Send(old_protocol)],
            reason: Some("startup_unsupported"),
        },
        StartupCase {
            name: "protocol 3.0 without parameters",
            steps: vec![Step::Send(bare)],
            reason: Some("startup_unsupported"),
        },
        StartupCase {
            name: "SSLRequest twice",
            steps: vec![Step::Send(ssl.clone()), Step::Hear(1), Step::Send(ssl)],
            reason: Some("startup_unexpected_request"),
        },
        StartupCase {
            name: "a StartupMessage for a database that does not exist",
            steps: vec![Step::Send(startup_packet(&[
                ("user", "postgres"),
                ("database", "no_such_db"),
            ]))],
            reason: None,
        },
    ]
}

#[test]
fn malformed_startup_packets_get_exactly_what_the_server_says() {
    let env = PgBehindProxy::start();
    let mut steady = Steady::open(&env);
    steady.check(&env, "nothing");

    let mut forwarded_unread = 0.0;
    for case in startup_cases() {
        let direct = converse(env.server.addr(), &case.steps, QUIET);
        let proxied = converse(env.listen, &case.steps, QUIET);
        assert!(
            direct.ending.is_closed(),
            "{}: the server itself left the connection open: {direct:?}",
            case.name
        );
        assert_same(case.name, &direct, &proxied);
        if let Some(reason) = case.reason {
            forwarded_unread += 1.0;
            pg_common::wait_for_metric(
                &env.proxy,
                "indextap_decode_errors_total",
                &[("reason", reason)],
                1.0,
            );
        }
        steady.check(&env, case.name);
    }
    assert_eq!(
        reason_count(
            &env,
            "indextap_uninspected_sessions_total",
            "undecodable_startup"
        ),
        forwarded_unread
    );
    assert_eq!(
        reason_count(&env, "indextap_decode_errors_total", "startup_invalid"),
        5.0
    );
    let resident = resident_mib(&env);
    assert!(
        resident < 256,
        "{resident} MiB resident after absurd lengths"
    );

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

/// The client heard the same bytes through the proxy as straight from the server, and the
/// connection ended the same way.
#[track_caller]
fn assert_same(name: &str, direct: &Heard, proxied: &Heard) {
    assert_eq!(
        String::from_utf8_lossy(&proxied.bytes),
        String::from_utf8_lossy(&direct.bytes),
        "{name}: the bytes differ"
    );
    assert_eq!(proxied.bytes, direct.bytes, "{name}: the bytes differ");
    assert_eq!(proxied.ending, direct.ending, "{name}: the close differs");
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

    // Each case once more, straight to the server and through the proxy: after the startup
    // (whose BackendKeyData differs per session), the client hears the same bytes and close.
    let bad_length = |length: i32| {
        let mut bytes = vec![b'Q'];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes
    };
    let unreadable_bind = [
        typed(b'B', &[0xff, 0xff, 0xff, 0xff]),
        typed(b'S', &[]),
        typed(b'X', &[]),
    ]
    .concat();
    let cases = [
        ("length 2", bad_length(2)),
        ("length 2^31-16", bad_length(0x7fff_fff0)),
        ("an unknown type", typed(b'!', &[1, 2, 3, 4])),
        ("an unreadable Bind", unreadable_bind),
    ];
    for (name, bytes) in cases {
        let steps = [Step::Send(bytes)];
        let direct = converse_on(Raw::started(env.server.addr()).stream, &steps, QUIET);
        let proxied = converse_on(Raw::started(env.listen).stream, &steps, QUIET);
        assert!(direct.ending.is_closed(), "{name}: {direct:?}");
        assert_same(name, &direct, &proxied);
    }
    steady.check(&env, "the cases compared with the server");
    steady.assert_captured(&env);
}
