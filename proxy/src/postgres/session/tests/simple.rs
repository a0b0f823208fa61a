//! Simple Query, COPY, and the replies of the startup phase.

use super::*;

#[test]
fn simple_query_is_one_observation_per_statement() {
    let mut h = Harness::new();
    h.client([query("SELECT * FROM t WHERE id = 1; UPDATE t SET a = 2")]);
    h.server([
        row_description(),
        data_row("x"),
        data_row("y"),
        command_complete("SELECT 2"),
    ]);
    // The first statement is reported as soon as it completes.
    assert_eq!(h.events.observations.len(), 1);
    h.server([command_complete("UPDATE 5")]);
    assert_eq!(h.events.observations.len(), 2);
    h.server([ready(b'I')]);
    assert_eq!(
        h.events.observations.len(),
        2,
        "ReadyForQuery reports nothing"
    );

    let (select, update) = (&h.events.observations[0], &h.events.observations[1]);
    for (i, observation) in [select, update].into_iter().enumerate() {
        let command = sql(observation);
        assert_eq!(&*command.database, "app");
        assert_eq!(
            &*command.text,
            "SELECT * FROM t WHERE id = 1; UPDATE t SET a = 2"
        );
        assert_eq!(command.statement_index, Some(i));
        assert_eq!(command.protocol, SqlProtocol::Simple);
        assert_eq!(command.parameters, 0);
        assert!(observation.outcome.is_ok());
    }
    assert_eq!((select.outcome.returned, select.outcome.affected), (2, 0));
    assert_eq!((update.outcome.returned, update.outcome.affected), (0, 5));
    // Query at tick 1, first CommandComplete at tick 5, second at tick 6.
    assert_eq!(select.outcome.latency, Duration::from_millis(4));
    assert_eq!(update.outcome.latency, Duration::from_millis(1));
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
    assert_eq!(h.counted("unpaired_reply"), 0);
}

#[test]
fn statements_after_a_failed_one_are_not_reported() {
    let mut h = Harness::new();
    h.client([query(
        "SELECT 1 FROM t; SELECT 1 / 0 FROM t; SELECT * FROM never_ran",
    )]);
    h.server([
        row_description(),
        data_row("1"),
        command_complete("SELECT 1"),
        row_description(),
        error("22012", "division by zero"),
        ready(b'I'),
    ]);
    let indexed: Vec<_> = h
        .events
        .observations
        .iter()
        .map(|o| {
            (
                sql(o).statement_index,
                o.outcome.error.clone(),
                o.outcome.returned,
            )
        })
        .collect();
    assert_eq!(
        indexed,
        [(Some(0), None, 1), (Some(1), Some("22012".to_owned()), 0)]
    );
    assert_eq!(h.counted("unpaired_reply"), 0);

    // The session is in step for the next Query.
    h.client([query("SELECT * FROM t")]);
    h.server([command_complete("SELECT 0"), ready(b'I')]);
    assert_eq!(h.events.observations.len(), 3);
    assert_eq!(sql(&h.events.observations[2]).statement_index, Some(0));
    assert!(h.events.observations[2].outcome.is_ok());
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
    // Blank by Unicode's White_Space, as `str::trim` has it (vertical tab, ideographic space).
    for blank in ["  ", "", "\x0b\n", "\u{3000}\t"] {
        let mut h = Harness::new();
        h.client([query(blank)]);
        h.server([message(b'I', b""), ready(b'I')]);
        h.assert_unreported("unpaired_reply", 0);
    }
    let mut h = Harness::new();
    h.client([query("\u{3000} SELECT 1")]);
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    assert_eq!(h.texts(), ["\u{3000} SELECT 1"]);
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
    assert_eq!(h.counted("unpaired_reply"), 0);
    assert!(h.events.messages.contains(&"BackendKeyData"));
}
