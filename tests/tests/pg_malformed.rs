//! Malformed PostgreSQL traffic through the real proxy, written byte by byte on a raw socket.
//!
//! For each case: the proxy does not panic (`/healthz` answers), counts what it saw in
//! `/metrics`, and keeps forwarding wherever the protocol allows, so the reply is the
//! server's own (an ErrorResponse it wrote, or its log line and closed connection), never the
//! proxy's failure. Other sessions, a psql run after each case and one raw session kept open
//! across all of them, go on working and being captured.
//!
//! ## Layout
//! - [`Raw`]: a blocking socket that speaks the protocol's framing, nothing more.
//! - the startup phase: a truncated packet, absurd lengths (an HTTP request among them).
//! - after a valid startup: out-of-range lengths, an unknown type, a malformed body.

mod pg_common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use pg_common::{field, metric_value, wait_for_shapes, PgBehindProxy};

/// How long a read may block before the test calls the connection hung.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Protocol 3.0.
const PROTOCOL_3: i32 = 196_608;

/// One backend message: its type and body.
type Message = (u8, Vec<u8>);

/// A raw connection to the proxy.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the proxy");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        Self { stream }
    }

    /// Connects and completes a trust-authenticated startup as `postgres`.
    fn started(addr: SocketAddr) -> Self {
        let mut raw = Self::connect(addr);
        raw.send(&startup_packet(&[
            ("user", "postgres"),
            ("database", "postgres"),
        ]));
        let replies = raw.until_ready();
        assert_eq!(
            replies.first().map(|(kind, body)| (*kind, body.clone())),
            Some((b'R', 0i32.to_be_bytes().to_vec())),
            "trust authentication: AuthenticationOk first"
        );
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// The next message; `None` at a clean end of stream.
    fn message(&mut self) -> io::Result<Option<Message>> {
        let mut kind = [0u8; 1];
        if self.stream.read(&mut kind)? == 0 {
            return Ok(None);
        }
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length)?;
        let length = usize::try_from(i32::from_be_bytes(length))
            .ok()
            .filter(|length| (4..=1 << 20).contains(length))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad reply length"))?;
        let mut body = vec![0u8; length - 4];
        self.stream.read_exact(&mut body)?;
        Ok(Some((kind[0], body)))
    }

    /// Messages up to and including ReadyForQuery.
    fn until_ready(&mut self) -> Vec<Message> {
        let mut replies = Vec::new();
        loop {
            match self.message() {
                Ok(Some(message)) => {
                    let done = message.0 == b'Z';
                    replies.push(message);
                    if done {
                        return replies;
                    }
                }
                Ok(None) => panic!("closed before ReadyForQuery; got {}", kinds(&replies)),
                Err(err) => panic!("no ReadyForQuery ({err}); got {}", kinds(&replies)),
            }
        }
    }

    /// Messages until the other side closes. A reset after the last message counts as a
    /// close (the server may exit with our bytes unread); a timeout fails the test.
    fn until_closed(&mut self) -> Vec<Message> {
        let mut replies = Vec::new();
        loop {
            match self.message() {
                Ok(Some(message)) => replies.push(message),
                Ok(None) => return replies,
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return replies,
                Err(err) => panic!(
                    "the connection was not closed ({err}); got {}",
                    kinds(&replies)
                ),
            }
        }
    }

    /// A simple Query; its replies up to ReadyForQuery.
    fn query(&mut self, sql: &str) -> Vec<Message> {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.send(&typed(b'Q', &body));
        self.until_ready()
    }
}

/// A typed frontend message with a correct length.
fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![kind];
    bytes.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

fn startup_packet(parameters: &[(&str, &str)]) -> Vec<u8> {
    let mut body = PROTOCOL_3.to_be_bytes().to_vec();
    for (key, value) in parameters {
        for text in [key, value] {
            body.extend_from_slice(text.as_bytes());
            body.push(0);
        }
    }
    body.push(0);
    let mut bytes = (body.len() as i32 + 4).to_be_bytes().to_vec();
    bytes.extend_from_slice(&body);
    bytes
}

fn kinds(messages: &[Message]) -> String {
    messages.iter().map(|(kind, _)| *kind as char).collect()
}

/// An ErrorResponse's fields: (SQLSTATE, message).
fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut message) = (String::new(), String::new());
    for field in body.split(|byte| *byte == 0) {
        match field.split_first() {
            Some((b'C', value)) => code = String::from_utf8_lossy(value).into_owned(),
            Some((b'M', value)) => message = String::from_utf8_lossy(value).into_owned(),
            _ => {}
        }
    }
    (code, message)
}

/// The one ErrorResponse among `replies`.
#[track_caller]
fn the_error(replies: &[Message]) -> (String, String) {
    let errors: Vec<_> = replies.iter().filter(|(kind, _)| *kind == b'E').collect();
    assert_eq!(errors.len(), 1, "one ErrorResponse in {}", kinds(replies));
    error_fields(&errors[0].1)
}

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
