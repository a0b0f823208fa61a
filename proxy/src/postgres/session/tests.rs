//! Session decoding: simple and extended protocol, statements and portals, pipelining,
//! errors, COPY, malformed input.

use std::time::{Duration, Instant};

use bytes::Bytes;
use indextap_analyzer::command::{Observation, Request, SqlProtocol};

use super::PgSession;
use crate::tap::{CollectedEvents, Direction, Inspector, TapFrame};

/// Builds typed messages and feeds them, with a clock that moves 1 ms per frame.
struct Harness {
    session: PgSession,
    events: CollectedEvents,
    start: Instant,
    ticks: u64,
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![kind];
    bytes.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

fn cstr(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

fn query(text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, text);
    message(b'Q', &body)
}

fn parse(name: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, name);
    cstr(&mut body, text);
    body.extend_from_slice(&0u16.to_be_bytes());
    message(b'P', &body)
}

fn bind(portal: &str, statement: &str, values: &[Option<&str>]) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    cstr(&mut body, statement);
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&(values.len() as u16).to_be_bytes());
    for value in values {
        match value {
            Some(v) => {
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v.as_bytes());
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    body.extend_from_slice(&0u16.to_be_bytes());
    message(b'B', &body)
}

fn describe_portal(portal: &str) -> Vec<u8> {
    let mut body = vec![b'P'];
    cstr(&mut body, portal);
    message(b'D', &body)
}

fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    body.extend_from_slice(&max_rows.to_be_bytes());
    message(b'E', &body)
}

fn close(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    cstr(&mut body, name);
    message(b'C', &body)
}

fn sync() -> Vec<u8> {
    message(b'S', b"")
}

fn command_complete(tag: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, tag);
    message(b'C', &body)
}

fn data_row(value: &str) -> Vec<u8> {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend_from_slice(&(value.len() as i32).to_be_bytes());
    body.extend_from_slice(value.as_bytes());
    message(b'D', &body)
}

fn error(sqlstate: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [(b'S', "ERROR"), (b'C', sqlstate), (b'M', text)] {
        body.push(field);
        cstr(&mut body, value);
    }
    body.push(0);
    message(b'E', &body)
}

fn ready(status: u8) -> Vec<u8> {
    message(b'Z', &[status])
}

impl Harness {
    fn new() -> Self {
        Self {
            session: PgSession::new("app".into()),
            events: CollectedEvents::default(),
            start: Instant::now(),
            ticks: 0,
        }
    }

    fn feed(&mut self, direction: Direction, bytes: Vec<u8>) {
        self.ticks += 1;
        let frame = TapFrame {
            direction,
            bytes: Bytes::from(bytes),
            at: self.start + Duration::from_millis(self.ticks),
        };
        self.session
            .inspect(frame, &mut self.events)
            .expect("well-formed frame");
    }

    fn client(&mut self, frames: impl IntoIterator<Item = Vec<u8>>) -> &mut Self {
        for frame in frames {
            self.feed(Direction::Request, frame);
        }
        self
    }

    fn server(&mut self, frames: impl IntoIterator<Item = Vec<u8>>) -> &mut Self {
        for frame in frames {
            self.feed(Direction::Reply, frame);
        }
        self
    }

    fn texts(&self) -> Vec<String> {
        self.events
            .observations
            .iter()
            .map(|o| sql(o).text.to_string())
            .collect()
    }

    fn counted(&self, what: &str) -> usize {
        self.events.counts.iter().filter(|c| **c == what).count()
    }
}

fn sql(observation: &Observation) -> &indextap_analyzer::command::SqlCommand {
    match &observation.request {
        Request::Sql(command) => command,
        Request::Mongo(_) => panic!("not SQL"),
    }
}

#[test]
fn simple_query_is_one_observation_at_ready_for_query() {
    let mut h = Harness::new();
    h.client([query("SELECT * FROM t WHERE id = 1; UPDATE t SET a = 2")]);
    h.server([
        message(b'T', b"\0\0"),
        data_row("x"),
        data_row("y"),
        command_complete("SELECT 2"),
        command_complete("UPDATE 5"),
    ]);
    assert!(
        h.events.observations.is_empty(),
        "reported before ReadyForQuery"
    );
    h.server([ready(b'I')]);

    assert_eq!(h.events.observations.len(), 1);
    let observation = &h.events.observations[0];
    let command = sql(observation);
    assert_eq!(command.database, "app");
    assert_eq!(
        &*command.text,
        "SELECT * FROM t WHERE id = 1; UPDATE t SET a = 2"
    );
    assert_eq!(command.protocol, SqlProtocol::Simple);
    assert_eq!(command.parameters, 0);
    assert_eq!(observation.outcome.returned, 2);
    assert_eq!(observation.outcome.affected, 5);
    assert!(observation.outcome.is_ok());
    // Query at tick 1, ReadyForQuery at tick 7.
    assert_eq!(observation.outcome.latency, Duration::from_millis(6));
    assert_eq!(
        h.events.messages,
        [
            "Query",
            "RowDescription",
            "DataRow",
            "DataRow",
            "CommandComplete",
            "CommandComplete",
            "ReadyForQuery"
        ]
    );
}

#[test]
fn extended_query_reports_at_command_complete() {
    let mut h = Harness::new();
    h.client([
        parse("", "SELECT * FROM users WHERE email = $1"),
        bind("", "", &[Some("alice@example.com")]),
        describe_portal(""),
        execute("", 0),
        sync(),
    ]);
    h.server([
        message(b'1', b""),
        message(b'2', b""),
        message(b'T', b"\0\0"),
        data_row("1"),
        command_complete("SELECT 1"),
    ]);
    assert_eq!(h.events.observations.len(), 1);
    h.server([ready(b'I')]);
    assert_eq!(h.events.observations.len(), 1);

    let observation = &h.events.observations[0];
    let command = sql(observation);
    assert_eq!(&*command.text, "SELECT * FROM users WHERE email = $1");
    assert_eq!(command.parameters, 1);
    assert_eq!(command.protocol, SqlProtocol::Extended);
    assert_eq!(observation.outcome.returned, 1);
    // Execute at tick 4, CommandComplete at tick 10.
    assert_eq!(observation.outcome.latency, Duration::from_millis(6));
    assert!(!format!("{:?}", h.events.observations).contains("alice"));
    assert_eq!(h.counted("unpaired_reply"), 0);
}

#[test]
fn named_statements_are_reused_and_the_unnamed_one_is_replaced() {
    let mut h = Harness::new();
    h.client([
        parse("find_user", "SELECT * FROM users WHERE id = $1"),
        parse("", "SELECT 1"),
        sync(),
    ]);
    h.server([message(b'1', b""), message(b'1', b""), ready(b'I')]);
    for id in ["1", "2"] {
        h.client([bind("", "find_user", &[Some(id)]), execute("", 0), sync()]);
        h.server([
            message(b'2', b""),
            data_row("row"),
            command_complete("SELECT 1"),
            ready(b'I'),
        ]);
    }
    h.client([parse("", "DELETE FROM t WHERE a = $1 AND b = $2")]);
    h.client([bind("", "", &[Some("x"), None]), execute("", 0), sync()]);
    h.server([
        message(b'1', b""),
        message(b'2', b""),
        command_complete("DELETE 3"),
        ready(b'I'),
    ]);

    assert_eq!(
        h.texts(),
        [
            "SELECT * FROM users WHERE id = $1",
            "SELECT * FROM users WHERE id = $1",
            "DELETE FROM t WHERE a = $1 AND b = $2"
        ]
    );
    let last = &h.events.observations[2];
    assert_eq!(sql(last).parameters, 2);
    assert_eq!(last.outcome.affected, 3);
    // Both executions of the named statement share one text allocation.
    let first = &sql(&h.events.observations[0]).text;
    let second = &sql(&h.events.observations[1]).text;
    assert!(std::sync::Arc::ptr_eq(first, second));
}

#[test]
fn closed_statements_are_forgotten() {
    let mut h = Harness::new();
    h.client([
        parse("s", "SELECT 1"),
        close(b'S', "s"),
        bind("", "s", &[]),
        execute("", 0),
        sync(),
    ]);
    h.server([
        message(b'1', b""),
        message(b'3', b""),
        error("26000", "prepared statement \"s\" does not exist"),
        ready(b'I'),
    ]);
    assert!(h.events.observations.is_empty());
    assert_eq!(h.counted("unknown_statement"), 1);
}

#[test]
fn pipelined_executions_complete_in_order() {
    let mut h = Harness::new();
    h.client([
        parse("a", "SELECT a FROM t"),
        parse("b", "INSERT INTO t VALUES ($1)"),
        bind("pa", "a", &[]),
        execute("pa", 0),
        bind("pb", "b", &[Some("v")]),
        execute("pb", 0),
        bind("", "a", &[]),
        execute("", 0),
        sync(),
    ]);
    h.server([
        message(b'1', b""),
        message(b'1', b""),
        message(b'2', b""),
        data_row("1"),
        data_row("2"),
        command_complete("SELECT 2"),
        message(b'2', b""),
        command_complete("INSERT 0 1"),
        message(b'2', b""),
        data_row("1"),
        command_complete("SELECT 1"),
        ready(b'I'),
    ]);
    assert_eq!(
        h.texts(),
        [
            "SELECT a FROM t",
            "INSERT INTO t VALUES ($1)",
            "SELECT a FROM t"
        ]
    );
    let outcomes: Vec<(u64, u64)> = h
        .events
        .observations
        .iter()
        .map(|o| (o.outcome.returned, o.outcome.affected))
        .collect();
    assert_eq!(outcomes, [(2, 0), (0, 1), (1, 0)]);
}

#[test]
fn an_error_mid_pipeline_skips_the_rest_until_sync() {
    let mut h = Harness::new();
    h.client([
        parse("a", "SELECT 1"),
        parse("b", "INSERT INTO t VALUES ($1)"),
        parse("c", "SELECT 2"),
        bind("", "a", &[]),
        execute("", 0),
        bind("", "b", &[Some("dup")]),
        execute("", 0),
        bind("", "c", &[]),
        execute("", 0),
        sync(),
        // The next cycle is tracked normally.
        bind("", "c", &[]),
        execute("", 0),
        sync(),
    ]);
    h.server([
        message(b'1', b""),
        message(b'1', b""),
        message(b'1', b""),
        message(b'2', b""),
        data_row("1"),
        command_complete("SELECT 1"),
        message(b'2', b""),
        error(
            "23505",
            "duplicate key value violates unique constraint: Key (email)=(bob@example.com)",
        ),
        ready(b'E'),
        message(b'2', b""),
        data_row("2"),
        command_complete("SELECT 1"),
        ready(b'I'),
    ]);
    assert_eq!(
        h.texts(),
        ["SELECT 1", "INSERT INTO t VALUES ($1)", "SELECT 2"]
    );
    let errors: Vec<Option<&str>> = h
        .events
        .observations
        .iter()
        .map(|o| o.outcome.error.as_deref())
        .collect();
    assert_eq!(errors, [None, Some("23505"), None]);
    assert_eq!(h.counted("skipped_after_error"), 1);
    assert_eq!(h.counted("unpaired_reply"), 0);
    assert!(!format!("{:?}", h.events.observations).contains("bob"));
    assert!(!format!("{:?}", h.events.observations).contains("duplicate"));
}

#[test]
fn an_error_in_a_prepare_only_cycle_does_not_touch_the_next_cycle() {
    let mut h = Harness::new();
    h.client([
        parse("bad", "SELEC 1"),
        sync(),
        parse("", "SELECT 2"),
        bind("", "", &[]),
        execute("", 0),
        sync(),
    ]);
    h.server([
        error("42601", "syntax error at or near \"SELEC\""),
        ready(b'I'),
    ]);
    h.server([
        message(b'1', b""),
        message(b'2', b""),
        data_row("2"),
        command_complete("SELECT 1"),
        ready(b'I'),
    ]);
    assert_eq!(h.texts(), ["SELECT 2"]);
    assert!(h.events.observations[0].outcome.is_ok());
}

#[test]
fn simple_query_error_keeps_the_sqlstate_only() {
    let mut h = Harness::new();
    h.client([query("SELECT * FROM missing WHERE secret = 'hunter2'")]);
    h.server([
        error("42P01", "relation \"missing\" does not exist"),
        ready(b'I'),
    ]);
    let observation = &h.events.observations[0];
    assert_eq!(observation.outcome.error.as_deref(), Some("42P01"));
    let outcome = format!("{:?}", observation.outcome);
    assert!(!outcome.contains("relation"), "{outcome}");
}

#[test]
fn portal_suspended_runs_are_reported_once() {
    let mut h = Harness::new();
    h.client([
        parse("", "SELECT * FROM big"),
        bind("", "", &[]),
        execute("", 2),
        flush(),
    ]);
    h.server([
        message(b'1', b""),
        message(b'2', b""),
        data_row("1"),
        data_row("2"),
        message(b's', b""),
    ]);
    assert!(h.events.observations.is_empty());
    h.client([execute("", 2), sync()]);
    h.server([data_row("3"), command_complete("SELECT 1"), ready(b'I')]);
    assert_eq!(h.events.observations.len(), 1);
    let observation = &h.events.observations[0];
    assert_eq!(observation.outcome.returned, 3);
}

#[test]
fn a_suspended_portal_closed_early_is_reported_when_it_goes() {
    let mut h = Harness::new();
    h.client([
        parse("", "SELECT * FROM big"),
        bind("cur", "", &[]),
        execute("cur", 1),
        sync(),
    ]);
    h.server([
        message(b'1', b""),
        message(b'2', b""),
        data_row("1"),
        message(b's', b""),
        ready(b'T'),
    ]);
    assert!(h.events.observations.is_empty());
    h.client([close(b'P', "cur"), sync()]);
    assert_eq!(h.events.observations.len(), 1);
    assert_eq!(h.events.observations[0].outcome.returned, 1);
}

fn flush() -> Vec<u8> {
    message(b'H', b"")
}

#[test]
fn copy_from_stdin_is_a_write() {
    let mut h = Harness::new();
    h.client([query("COPY t (a, b) FROM STDIN")]);
    h.server([message(b'G', b"\0\0\x02\0\0\0\0")]);
    h.client([
        message(b'd', b"1\tsecret\n"),
        message(b'd', b"2\tother\n"),
        message(b'c', b""),
    ]);
    h.server([command_complete("COPY 2"), ready(b'I')]);
    let observation = &h.events.observations[0];
    assert_eq!(sql(observation).protocol, SqlProtocol::Copy);
    assert_eq!(observation.outcome.affected, 2);
    assert_eq!(observation.outcome.returned, 0);
}

#[test]
fn copy_to_stdout_returns_rows() {
    let mut h = Harness::new();
    h.client([query("COPY t TO STDOUT")]);
    h.server([
        message(b'H', b"\0\0\x01\0\0"),
        message(b'd', b"1\n"),
        message(b'c', b""),
        command_complete("COPY 1"),
        ready(b'I'),
    ]);
    let observation = &h.events.observations[0];
    assert_eq!(sql(observation).protocol, SqlProtocol::Simple);
    assert_eq!(observation.outcome.returned, 1);
}

#[test]
fn empty_queries_are_not_reported() {
    let mut h = Harness::new();
    h.client([query("  ")]);
    h.server([message(b'I', b""), ready(b'I')]);
    assert!(h.events.observations.is_empty());
    assert_eq!(h.counted("unpaired_reply"), 0);
}

#[test]
fn startup_replies_are_only_messages() {
    let mut h = Harness::new();
    h.server([
        message(b'R', &10i32.to_be_bytes()),
        message(b'R', &0i32.to_be_bytes()),
        message(b'S', b"server_version\x0016\0"),
        message(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]),
    ]);
    h.client([message(b'p', b"SCRAM-SHA-256\0\0\0\0\x04abcd")]);
    h.server([ready(b'I')]);
    assert!(h.events.observations.is_empty());
    assert!(h.events.messages.contains(&"PasswordMessage"));
    assert!(h.events.messages.contains(&"BackendKeyData"));
}

#[test]
fn unknown_types_are_counted_and_skipped() {
    let mut h = Harness::new();
    h.client([message(b'z', b"whatever")]);
    h.server([message(b'!', b"")]);
    h.client([query("SELECT 1")]);
    h.server([command_complete("SELECT 0"), ready(b'I')]);
    assert_eq!(h.counted("unknown_message_type"), 2);
    assert_eq!(h.texts(), ["SELECT 1"]);
}

#[test]
fn malformed_bodies_are_counted_and_pairing_survives() {
    let mut h = Harness::new();
    h.client([parse("", "SELECT 1"), bind("", "", &[])]);
    // An Execute with no max_rows field: its portal cannot be read, its run is still queued.
    h.client([message(b'E', b"\0"), sync()]);
    h.server([
        message(b'1', b""),
        message(b'2', b""),
        command_complete("SELECT 0"),
        ready(b'I'),
    ]);
    h.client([query("SELECT 2")]);
    h.server([message(b'E', b"C42"), ready(b'I')]);
    assert_eq!(h.texts(), ["SELECT 2"]);
    assert_eq!(h.counted("malformed_message"), 2);
    assert_eq!(
        h.events.observations[0].outcome.error.as_deref(),
        Some("unknown")
    );
    assert_eq!(h.counted("unpaired_reply"), 0);
}

#[test]
fn broken_framing_is_an_error() {
    let mut session = PgSession::new("app".into());
    let mut events = CollectedEvents::default();
    let frame = |bytes: &[u8]| TapFrame {
        direction: Direction::Request,
        bytes: Bytes::copy_from_slice(bytes),
        at: Instant::now(),
    };
    let err = session
        .inspect(frame(&[b'Q', 0, 0, 0, 2]), &mut events)
        .unwrap_err();
    assert_eq!(err.reason, "bad_length");
    let err = session
        .inspect(frame(&[b'Q', 0, 0]), &mut events)
        .unwrap_err();
    assert_eq!(err.reason, "truncated");
    let err = session
        .inspect(frame(&[b'S', 0, 0, 0, 4, 0]), &mut events)
        .unwrap_err();
    assert_eq!(err.reason, "bad_length");
    // A head-only frame (an over-cap message streamed past) still counts by type.
    let mut head = message(b'B', &[0u8; 64]);
    head.truncate(10);
    session.inspect(frame(&head), &mut events).unwrap();
    assert_eq!(events.counts, ["oversize_skipped"]);
}

#[test]
fn lost_frames_pause_tracking_until_the_owed_ready_for_query() {
    let mut h = Harness::new();
    h.client([query("SELECT 1")]);
    h.session.resync();
    // The client goes on; the reply to the first Query and then to the second arrive.
    h.client([query("SELECT 2")]);
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    assert!(h.events.observations.is_empty());
    h.client([query("SELECT 3")]);
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    assert_eq!(h.texts(), ["SELECT 3"]);
}

#[test]
fn an_overflowing_pipeline_is_dropped_not_misattributed() {
    let mut h = Harness::new();
    h.client([parse("", "INSERT INTO t VALUES (1)"), bind("", "", &[])]);
    for _ in 0..super::MAX_PENDING + 10 {
        h.client([execute("", 0)]);
    }
    h.client([sync()]);
    h.server((0..super::MAX_PENDING + 10).map(|_| command_complete("INSERT 0 1")));
    h.server([ready(b'I')]);
    assert!(h.events.observations.is_empty());
    assert_eq!(h.counted("pending_evicted"), super::MAX_PENDING);
    h.client([query("SELECT 1")]);
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    assert_eq!(h.texts(), ["SELECT 1"]);
}

#[test]
fn transaction_end_destroys_named_portals() {
    let mut h = Harness::new();
    h.client([parse("s", "SELECT 1"), bind("p", "s", &[]), sync()]);
    h.server([message(b'1', b""), message(b'2', b""), ready(b'I')]);
    h.client([execute("p", 0), sync()]);
    h.server([error("34000", "portal \"p\" does not exist"), ready(b'I')]);
    assert!(h.events.observations.is_empty());
    assert_eq!(h.counted("unknown_portal"), 1);
}

#[test]
fn random_bytes_never_panic() {
    // A small deterministic generator: the test must not depend on a seed source.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let kinds = b"QPBDECSHXdcfFpRSKv123sCIZENAtTDnGHWV?";
    for round in 0..20_000 {
        let mut session = PgSession::new("db".into());
        let mut events = CollectedEvents::default();
        for _ in 0..8 {
            let kind = kinds[(next() % kinds.len() as u64) as usize];
            let len = (next() % 40) as usize;
            let body: Vec<u8> = (0..len).map(|_| (next() % 7) as u8 * 40).collect();
            let mut bytes = message(kind, &body);
            if round % 3 == 0 {
                // Also try frames whose length field lies.
                let cut = (next() as usize) % bytes.len();
                bytes.truncate(cut.max(1));
            }
            let direction = if next() % 2 == 0 {
                Direction::Request
            } else {
                Direction::Reply
            };
            let _ = session.inspect(
                TapFrame {
                    direction,
                    bytes: Bytes::from(bytes),
                    at: Instant::now(),
                },
                &mut events,
            );
        }
    }
}
