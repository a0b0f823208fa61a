//! The extended protocol: statements, portals, pipelining, errors, suspended portals.

use super::*;

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
    h.server(bound([
        row_description(),
        data_row("1"),
        command_complete("SELECT 1"),
    ]));
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
    h.server(bound([command_complete("DELETE 3"), ready(b'I')]));

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
    h.assert_unreported("unknown_statement", 1);
}

/// A Bind's statement is looked up from the last lookup's copy when the name repeats: a
/// statement Parsed again under that name, or closed, after it was looked up is seen as it
/// is now, never as the copy.
#[test]
fn a_statement_replaced_or_closed_after_a_bind_is_seen_anew() {
    let mut h = Harness::new();
    let round = |h: &mut Harness, before: Vec<Vec<u8>>| {
        let mut frames = before;
        frames.extend([bind("", "s", &[]), execute("", 0), sync()]);
        h.client(frames);
        h.server(bound([command_complete("SELECT 1"), ready(b'I')]));
    };
    round(&mut h, vec![parse("s", "SELECT 1")]);
    round(&mut h, Vec::new());
    round(&mut h, vec![parse("s", "SELECT 2")]);
    round(&mut h, vec![close(b'S', "s"), parse("s", "SELECT 3")]);
    // Another name looked up in between, then the first one again.
    round(&mut h, vec![parse("t", "SELECT 4"), bind("p", "t", &[])]);
    assert_eq!(
        h.texts(),
        ["SELECT 1", "SELECT 1", "SELECT 2", "SELECT 3", "SELECT 3"]
    );
    h.client([close(b'S', "s"), bind("", "s", &[]), execute("", 0), sync()]);
    h.server(bound([
        error("26000", "prepared statement \"s\" does not exist"),
        ready(b'I'),
    ]));
    assert_eq!(h.counted("unknown_statement"), 1);
    assert_eq!(h.events.observations.len(), 5);
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
    h.server(bound([
        data_row("2"),
        command_complete("SELECT 1"),
        ready(b'I'),
    ]));
    assert_eq!(h.texts(), ["SELECT 2"]);
    assert!(h.events.observations[0].outcome.is_ok());
}

#[test]
fn portal_suspended_runs_are_reported_once() {
    let mut h = Harness::new();
    h.client(extended("SELECT * FROM big", "", 2, flush()));
    h.server(bound([data_row("1"), data_row("2"), message(b's', b"")]));
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
    h.client(extended("SELECT * FROM big", "cur", 1, sync()));
    h.server(bound([data_row("1"), message(b's', b""), ready(b'T')]));
    assert!(h.events.observations.is_empty());
    h.client([close(b'P', "cur"), sync()]);
    assert_eq!(h.events.observations.len(), 1);
    assert_eq!(h.events.observations[0].outcome.returned, 1);
}

#[test]
fn transaction_end_destroys_named_portals() {
    let mut h = Harness::new();
    h.client([parse("s", "SELECT 1"), bind("p", "s", &[]), sync()]);
    h.server([message(b'1', b""), message(b'2', b""), ready(b'I')]);
    h.client([execute("p", 0), sync()]);
    h.server([error("34000", "portal \"p\" does not exist"), ready(b'I')]);
    h.assert_unreported("unknown_portal", 1);
}

#[test]
fn a_statement_over_the_text_budget_is_not_kept() {
    let mut h = Harness::new();
    let huge = format!(
        "SELECT 1 /* {} */",
        "x".repeat(crate::postgres::session::MAX_STATEMENT_BYTES)
    );
    h.client([parse("big", &huge), parse("small", "SELECT 2"), sync()]);
    h.server([message(b'1', b""), message(b'1', b""), ready(b'I')]);
    for statement in ["big", "small"] {
        h.client([bind("", statement, &[]), execute("", 0), sync()]);
        h.server([
            message(b'2', b""),
            command_complete("SELECT 1"),
            ready(b'I'),
        ]);
    }
    assert_eq!(h.texts(), ["SELECT 2"]);
    assert_eq!(h.counted("statement_evicted"), 1);
    assert_eq!(h.counted("unknown_statement"), 1);
}

/// tokio-postgres sends Bind, Execute, Sync before it knows the statement is a COPY; the
/// server ignores that Sync in copy mode and answers only the one after CopyDone.
#[test]
fn a_sync_sent_during_copy_from_stdin_gets_no_ready_for_query() {
    let mut h = Harness::new();
    h.client([parse("s0", "COPY t (a) FROM STDIN"), sync()]);
    h.server([message(b'1', b""), message(b'n', b""), ready(b'I')]);
    h.client([bind("", "s0", &[]), execute("", 0), sync()]);
    h.server([message(b'2', b""), message(b'G', b"\0\0\x01\0\0")]);
    h.client([message(b'd', b"1\n"), message(b'c', b""), sync()]);
    h.server([command_complete("COPY 1"), ready(b'I')]);
    // The next statement is paired with its own reply.
    h.client([
        parse("", "SELECT a FROM t WHERE a = $1"),
        bind("", "", &[Some("1")]),
        execute("", 0),
        sync(),
    ]);
    h.server(bound([
        data_row("1"),
        command_complete("SELECT 1"),
        ready(b'I'),
    ]));
    assert_eq!(
        h.texts(),
        ["COPY t (a) FROM STDIN", "SELECT a FROM t WHERE a = $1"]
    );
    assert_eq!(sql(&h.events.observations[0]).protocol, SqlProtocol::Copy);
    assert_eq!(h.events.observations[0].outcome.affected, 1);
    assert_eq!(h.events.observations[1].outcome.returned, 1);
    assert_eq!(h.counted("sync_in_copy"), 1);
    assert_eq!(h.counted("unpaired_reply"), 0);
}

/// A COPY that fails leaves copy mode: the client's next Sync is answered.
#[test]
fn a_failed_copy_from_stdin_answers_the_next_sync() {
    let mut h = Harness::new();
    h.client(extended("COPY t (a) FROM STDIN", "", 0, sync()));
    h.server(bound([message(b'G', b"\0\0\x01\0\0")]));
    h.client([message(b'd', b"not a number\n")]);
    h.server([error("22P02", "invalid input syntax")]);
    h.client([message(b'c', b""), sync()]);
    h.server([ready(b'I')]);
    h.client([query("SELECT 1 FROM t")]);
    h.server([data_row("1"), command_complete("SELECT 1"), ready(b'I')]);
    assert_eq!(h.texts(), ["COPY t (a) FROM STDIN", "SELECT 1 FROM t"]);
    assert_eq!(
        h.events.observations[0].outcome.error.as_deref(),
        Some("22P02")
    );
    assert_eq!(h.events.observations[1].outcome.returned, 1);
    assert_eq!(h.counted("unpaired_reply"), 0);
}

/// The relay hands a read's messages over as one run: walked in the session, they give the
/// same observations, message counts and counted events as one message per frame.
#[test]
fn a_run_of_messages_is_inspected_as_its_messages_one_by_one() {
    let requests = vec![
        parse("s", "SELECT * FROM t WHERE id = $1"),
        bind("", "s", &[Some("7")]),
        describe_portal(""),
        execute("", 0),
        sync(),
        bind("", "s", &[Some("8")]),
        execute("", 0),
        sync(),
    ];
    let replies = vec![
        message(b'1', b""),
        message(b'2', b""),
        row_description(),
        data_row("a"),
        data_row("b"),
        data_row("c"),
        command_complete("SHOW"),
        ready(b'I'),
        message(b'2', b""),
        error("22P02", "invalid input syntax: secret"),
        ready(b'I'),
    ];
    let mut apart = Harness::new();
    apart.client(requests.clone()).server(replies.clone());
    let mut together = Harness::new();
    together
        .client([requests.concat()])
        .server([replies.concat()]);

    let outcomes = |h: &Harness| -> Vec<(String, u64, Option<String>)> {
        h.events
            .observations
            .iter()
            .map(|o| {
                let outcome = &o.outcome;
                (
                    sql(o).text.to_string(),
                    outcome.returned,
                    outcome.error.clone(),
                )
            })
            .collect()
    };
    assert_eq!(outcomes(&together), outcomes(&apart));
    assert_eq!(
        outcomes(&together),
        [
            ("SELECT * FROM t WHERE id = $1".to_string(), 3, None),
            (
                "SELECT * FROM t WHERE id = $1".to_string(),
                0,
                Some("22P02".to_string())
            ),
        ]
    );
    assert_eq!(together.events.messages, apart.events.messages);
    assert_eq!(
        together.events.messages.len(),
        requests.len() + replies.len()
    );
    assert_eq!(together.events.counts, apart.events.counts);

    // Dropped, each run counts as its messages.
    let messages_in = PgSession::new("app".into()).messages_in();
    assert_eq!(messages_in(&requests.concat()), requests.len() as u64);
    assert_eq!(messages_in(&replies.concat()), replies.len() as u64);
}
