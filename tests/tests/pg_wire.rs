//! The PostgreSQL data path through the real proxy: real PostgreSQL 15, tokio-postgres, psql
//! and pgbench, the real `indextap` binary.
//!
//! Every test checks two things: the client gets exactly what it would get without the proxy
//! (results compared with a direct connection, tools succeed), and the proxy captured each
//! statement with the right numbers in `/api/v1/shapes` (executions, rows, errors by SQLSTATE,
//! writes).
//!
//! ## Layout
//! - extended protocol: named prepared statements, the unnamed statement, pipelining (by
//!   tokio-postgres, and several Executes before one Sync on a raw socket).
//! - simple protocol: psql, multi-statement strings, errors with their SQLSTATE.
//! - pgbench in prepared and simple mode; COPY FROM STDIN.
//! - CancelRequest through the proxy; trust, SCRAM-SHA-256 and md5 authentication.
//! - statements spread over many reads from several connections at once, past the
//!   process-wide inspection budget.

mod pg_common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use indextap_tests::metrics::Exposition;
use indextap_tests::postgres::{number, SCRAM_PASSWORD, SCRAM_USER};
use indextap_tests::PostgresOptions;
use pg_common::raw::{bind, error_fields, execute, kinds, parse, sync, typed, Message, Raw};
use pg_common::{
    assert_success, connect, field, pgbench, psql, tally, wait_for_metric, wait_for_shapes,
    wait_until, writes, PgBehindProxy,
};
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

/// The shapes on `table` whose filter tests `column`: one statement's shape, when each
/// statement of a test filters its table on a different column.
fn filtered_on<'a>(shapes: &'a [Value], table: &str, column: &str) -> Vec<&'a Value> {
    let needle = format!("\"field\":\"{column}\"");
    shapes
        .iter()
        .filter(|shape| shape["collection"] == table)
        .filter(|shape| shape["shape"]["filter"].to_string().contains(&needle))
        .collect()
}

/// Waits until the statement on `table` filtering `column` has run `count` times; returns its
/// one shape.
#[track_caller]
fn wait_for_statement(env: &PgBehindProxy, table: &str, column: &str, count: u64) -> Value {
    let what = format!("the statement on {table} filtering {column}, {count} executions");
    let shapes = wait_for_shapes(&env.proxy, &what, |shapes| {
        filtered_on(shapes, table, column)
            .iter()
            .map(|shape| shape["count"].as_u64().unwrap_or(0))
            .sum::<u64>()
            >= count
    });
    let matching = filtered_on(&shapes, table, column);
    assert_eq!(matching.len(), 1, "one shape for {what}: {matching:#?}");
    matching[0].clone()
}

/// Rows as `(i32, i32)` pairs, for comparing proxied and direct results.
fn pairs(rows: &[tokio_postgres::Row]) -> Vec<(i32, i32)> {
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

fn ids(rows: &[tokio_postgres::Row]) -> Vec<i32> {
    rows.iter().map(|row| row.get(0)).collect()
}

/// A proxied server with the `accounts` table; clients straight to it and through the proxy.
async fn accounts_behind_proxy() -> (
    PgBehindProxy,
    tokio_postgres::Client,
    tokio_postgres::Client,
) {
    let env = PgBehindProxy::start();
    let direct = env.connect_direct("postgres").await;
    create_accounts(&direct).await;
    let proxied = env.connect("postgres").await;
    (env, direct, proxied)
}

/// `accounts`: 200 rows, 10 per owner, balances 0..200.
async fn create_accounts(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, owner int NOT NULL, balance int NOT NULL);
             INSERT INTO accounts SELECT g, g % 20, g FROM generate_series(0, 199) g;",
        )
        .await
        .expect("create accounts");
}

#[tokio::test]
async fn prepared_and_unnamed_statements_match_direct_and_are_counted() {
    let (env, direct, proxied) = accounts_behind_proxy().await;

    // A named prepared statement, parsed once and executed seven times.
    let sql = "SELECT id, balance FROM accounts WHERE owner = $1 ORDER BY id";
    let through_proxy = proxied.prepare(sql).await.expect("prepare via proxy");
    let straight = direct.prepare(sql).await.expect("prepare direct");
    let mut returned = 0;
    for owner in 0..7i32 {
        let via = proxied
            .query(&through_proxy, &[&owner])
            .await
            .expect("query");
        let reference = direct.query(&straight, &[&owner]).await.expect("query");
        assert_eq!(pairs(&via), pairs(&reference), "owner {owner}");
        returned += via.len() as u64;
    }
    assert_eq!(returned, 70);

    // The unnamed statement, parsed again with different SQL each time.
    let above = "SELECT id FROM accounts WHERE balance > $1 ORDER BY id";
    let exact = "SELECT id FROM accounts WHERE id = $1";
    let mut above_rows = 0;
    let mut exact_rows = 0;
    for round in 0..5i32 {
        let (sql, value) = if round % 2 == 0 {
            (above, 150 + round * 10)
        } else {
            (exact, round)
        };
        let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] =
            [(&value, Type::INT4)];
        let via = proxied.query_typed(sql, &params).await.expect("unnamed");
        let reference = direct.query_typed(sql, &params).await.expect("unnamed");
        assert_eq!(ids(&via), ids(&reference), "{sql} with {value}");
        if sql == above {
            above_rows += via.len() as u64;
        } else {
            exact_rows += via.len() as u64;
        }
    }
    assert_eq!((above_rows, exact_rows), (49 + 29 + 9, 2));

    let by_owner = wait_for_statement(&env, "accounts", "owner", 7);
    assert_eq!(tally(&by_owner), (7, 70, 0), "{by_owner:#}");
    let by_balance = wait_for_statement(&env, "accounts", "balance", 3);
    assert_eq!(field(&by_balance, "count"), 3, "{by_balance:#}");
    assert_eq!(field(&by_balance, "returned"), above_rows, "{by_balance:#}");
    let by_id = wait_for_statement(&env, "accounts", "id", 2);
    assert_eq!(field(&by_id, "count"), 2, "{by_id:#}");
    assert_eq!(field(&by_id, "returned"), exact_rows, "{by_id:#}");
}

#[tokio::test]
async fn pipelined_queries_match_direct_and_are_paired_with_their_own_replies() {
    let (env, direct, proxied) = accounts_behind_proxy().await;

    let by_owner = "SELECT id, balance FROM accounts WHERE owner = $1 ORDER BY id";
    let richest =
        "SELECT id, balance FROM accounts WHERE balance >= $1 ORDER BY balance DESC LIMIT 3";
    // Fails (22012) whenever the divisor is zero, between two queries that succeed.
    let ratio = "SELECT id, balance / $1 FROM accounts WHERE id = $2";
    let statements = [
        proxied.prepare(by_owner).await.expect("prepare"),
        proxied.prepare(richest).await.expect("prepare"),
        proxied.prepare(ratio).await.expect("prepare"),
    ];
    let rounds = 6i32;
    let (mut owner_rows, mut richest_rows, mut failures) = (0u64, 0u64, 0u64);
    for round in 0..rounds {
        let divisor = round % 3;
        // Joined futures are polled together: tokio-postgres writes all three requests
        // before it reads the first reply.
        let floor = 100 + round;
        let (owner_params, floor_params, ratio_params) =
            ([&round as _], [&floor as _], [&divisor as _, &round as _]);
        let (a, b, c) = tokio::join!(
            proxied.query(&statements[0], &owner_params),
            proxied.query(&statements[1], &floor_params),
            proxied.query(&statements[2], &ratio_params),
        );
        let a = a.expect("by owner");
        let b = b.expect("richest");
        assert_eq!(
            pairs(&a),
            pairs(&direct.query(by_owner, &[&round]).await.unwrap())
        );
        assert_eq!(
            pairs(&b),
            pairs(&direct.query(richest, &[&floor]).await.unwrap())
        );
        match c {
            Ok(rows) => {
                assert_ne!(divisor, 0);
                let reference = direct.query(ratio, &[&divisor, &round]).await.unwrap();
                assert_eq!(pairs(&rows), pairs(&reference));
            }
            Err(err) => {
                assert_eq!(divisor, 0, "{err:?}");
                assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO), "{err:?}");
                failures += 1;
            }
        }
        owner_rows += a.len() as u64;
        richest_rows += b.len() as u64;
    }
    assert_eq!(failures, 2);

    let owner = wait_for_statement(&env, "accounts", "owner", 6);
    assert_eq!(tally(&owner), (6, owner_rows, 0), "{owner:#}");
    let rich = wait_for_statement(&env, "accounts", "balance", 6);
    assert_eq!(tally(&rich), (6, richest_rows, 0), "{rich:#}");
    let ratio_shape = wait_for_statement(&env, "accounts", "id", 6);
    assert_eq!(tally(&ratio_shape), (6, 4, 2), "{ratio_shape:#}");
    assert_eq!(
        ratio_shape["error_codes"],
        serde_json::json!({"22012": 2}),
        "{ratio_shape:#}"
    );
}

/// Binds and executes each `(statement, parameters)` in the unnamed portal, then one Sync.
fn executes(runs: &[(&str, &[&str])]) -> Vec<u8> {
    let mut batch = Vec::new();
    for (statement, parameters) in runs {
        batch.extend(bind("", statement, parameters));
        batch.extend(execute(""));
    }
    batch.extend(sync());
    batch
}

/// What each statement answered in `replies` came to: its DataRow count, or its SQLSTATE.
fn outcomes(replies: &[Message]) -> Vec<Result<usize, String>> {
    let mut outcomes = Vec::new();
    let mut rows = 0;
    for (kind, body) in replies {
        match kind {
            b'D' => rows += 1,
            b'C' => outcomes.push(Ok(std::mem::take(&mut rows))),
            b'E' => outcomes.push(Err(error_fields(body).0)),
            _ => {}
        }
    }
    outcomes
}

/// Several Executes before one Sync, as a pipelining driver sends them, written on a raw
/// socket: tokio-postgres syncs after every statement.
#[test]
fn executes_pipelined_before_one_sync_are_paired_in_order() {
    let env = PgBehindProxy::start();
    env.psql_ok(
        "postgres",
        "CREATE TABLE parts (id int PRIMARY KEY, bin int NOT NULL, weight int NOT NULL);
         INSERT INTO parts SELECT g, g % 10, g FROM generate_series(1, 100) g;",
    );
    let mut raw = Raw::started(env.listen);
    let mut batch = parse("by_bin", "SELECT id FROM parts WHERE bin = $1");
    batch.extend(parse("heavy", "SELECT id FROM parts WHERE weight > $1"));
    batch.extend(parse(
        "ratio",
        "SELECT weight / $1 FROM parts WHERE id = $2",
    ));
    batch.extend(executes(&[
        ("by_bin", &["3"]),
        ("heavy", &["90"]),
        ("by_bin", &["4"]),
    ]));
    raw.send(&batch);
    let replies = raw.until_ready();
    assert_eq!(
        outcomes(&replies),
        [Ok(10), Ok(10), Ok(10)],
        "{}",
        kinds(&replies)
    );

    // A failure mid-pipeline: the server skips everything up to the Sync.
    raw.send(&executes(&[
        ("by_bin", &["5"]),
        ("ratio", &["0", "1"]),
        ("heavy", &["95"]),
    ]));
    let replies = raw.until_ready();
    assert_eq!(
        outcomes(&replies),
        [Ok(10), Err("22012".to_string())],
        "{}",
        kinds(&replies)
    );

    // Pairing goes on after the error.
    raw.send(&executes(&[("heavy", &["95"])]));
    assert_eq!(outcomes(&raw.until_ready()), [Ok(5)]);

    let by_bin = wait_for_statement(&env, "parts", "bin", 3);
    assert_eq!(tally(&by_bin), (3, 30, 0), "{by_bin:#}");
    let ratio = wait_for_statement(&env, "parts", "id", 1);
    assert_eq!(
        (field(&ratio, "count"), field(&ratio, "errors")),
        (1, 1),
        "{ratio:#}"
    );
    assert_eq!(ratio["error_codes"], serde_json::json!({"22012": 1}));
    let heavy = wait_for_statement(&env, "parts", "weight", 2);
    assert_eq!(
        (field(&heavy, "count"), field(&heavy, "returned")),
        (2, 15),
        "the Execute skipped after the error never ran: {heavy:#}"
    );
}

#[tokio::test]
async fn psql_simple_queries_multi_statement_strings_and_errors_are_captured() {
    let env = PgBehindProxy::start();
    env.psql_ok(
        "postgres",
        "CREATE TABLE notes (id int PRIMARY KEY, author int NOT NULL, body text);
         INSERT INTO notes SELECT g, g % 7, 'n' FROM generate_series(1, 70) g;
         CREATE TABLE tags (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO tags SELECT g, 't' || g FROM generate_series(1, 30) g;",
    );

    // One statement: the output equals the direct answer.
    let via = env.psql_ok(
        "postgres",
        "SELECT id FROM notes WHERE author = 3 ORDER BY id",
    );
    let reference = psql(
        &env.direct_conninfo("postgres"),
        &["-c", "SELECT id FROM notes WHERE author = 3 ORDER BY id"],
    );
    assert_success(&reference, "direct psql");
    assert_eq!(via, String::from_utf8_lossy(&reference.stdout));
    assert_eq!(via.lines().count(), 10);

    // Two statements in one Query message.
    let both = env.psql_ok(
        "postgres",
        "SELECT body FROM notes WHERE id = 5; SELECT name FROM tags WHERE name LIKE 't1%';",
    );
    assert!(both.starts_with("n\n"), "{both}");

    // Errors: division by zero at run time, an unknown column at parse-analysis time.
    // The server's error comes back through the proxy.
    for (statement, error) in [
        ("SELECT id / 0 FROM tags WHERE id < 4", "division by zero"),
        (
            "SELECT no_such_column FROM notes WHERE body = 'x'",
            "no_such_column",
        ),
    ] {
        let failed = psql(&env.conninfo("postgres"), &["-c", statement]);
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert!(!failed.status.success(), "{statement} must fail");
        assert!(stderr.contains(error), "{statement}: {stderr}");
    }

    let by_author = wait_for_statement(&env, "notes", "author", 1);
    assert_eq!(tally(&by_author), (1, 10, 0), "{by_author:#}");
    let by_note_id = wait_for_statement(&env, "notes", "id", 1);
    assert_eq!(field(&by_note_id, "count"), 1, "{by_note_id:#}");
    let by_tag_name = wait_for_statement(&env, "tags", "name", 1);
    assert_eq!(field(&by_tag_name, "count"), 1, "{by_tag_name:#}");

    let divided = wait_for_statement(&env, "tags", "id", 1);
    assert_eq!(field(&divided, "errors"), 1, "{divided:#}");
    assert_eq!(divided["error_codes"], serde_json::json!({"22012": 1}));
    let undefined = wait_for_statement(&env, "notes", "body", 1);
    assert_eq!(field(&undefined, "errors"), 1, "{undefined:#}");
    assert_eq!(undefined["error_codes"], serde_json::json!({"42703": 1}));
}

/// A multi-statement Query answers each statement with its own rows and its own outcome
/// (CommandComplete or ErrorResponse), so each statement's shape gets its own numbers.
#[tokio::test]
async fn multi_statement_queries_report_each_statement_on_its_own() {
    let env = PgBehindProxy::start();
    env.psql_ok(
        "postgres",
        "CREATE TABLE notes (id int PRIMARY KEY, author int NOT NULL);
         INSERT INTO notes SELECT g, g % 7 FROM generate_series(1, 70) g;
         CREATE TABLE tags (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO tags SELECT g, 't' || g FROM generate_series(1, 30) g;",
    );
    // 10 rows, then 1 row.
    env.psql_ok(
        "postgres",
        "SELECT id FROM notes WHERE author = 3; SELECT count(*) FROM tags WHERE id > 5;",
    );
    // Succeeds with 1 row, then fails: only the second statement failed.
    let failed = psql(
        &env.conninfo("postgres"),
        &[
            "-c",
            "SELECT name FROM tags WHERE name = 't1'; SELECT 1 / 0 FROM notes WHERE id = 1;",
        ],
    );
    assert!(!failed.status.success());

    let notes = wait_for_statement(&env, "notes", "author", 1);
    let count = wait_for_statement(&env, "tags", "id", 1);
    assert_eq!(field(&notes, "returned"), 10, "{notes:#}");
    assert_eq!(field(&count, "returned"), 1, "{count:#}");
    let named = wait_for_statement(&env, "tags", "name", 1);
    let divided = wait_for_statement(&env, "notes", "id", 1);
    assert_eq!(field(&divided, "errors"), 1, "{divided:#}");
    assert_eq!(
        (field(&named, "errors"), field(&named, "returned")),
        (0, 1),
        "the statement before the failing one succeeded: {named:#}"
    );
}

/// `indextap_messages_total` of one message type, on the proxy's one PostgreSQL listener.
fn messages(metrics: &str, kind: &str) -> u64 {
    let label = format!("kind=\"{kind}\"}} ");
    metrics
        .lines()
        .filter(|line| line.starts_with("indextap_messages_total{") && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The sum of `count` over the SELECT shapes on `table`.
fn select_count(shapes: &[Value], table: &str) -> u64 {
    shapes
        .iter()
        .filter(|shape| shape["collection"] == table && shape["command"] == "select")
        .map(|shape| shape["count"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn pgbench_runs_through_the_proxy_and_every_select_is_counted() {
    let env = PgBehindProxy::start();
    env.server
        .create_database("bench")
        .expect("create database");

    let init = pgbench(env.listen, "bench", &["-i", "-s", "1", "-q"]);
    assert_success(&init, "pgbench -i through the proxy");
    let accounts = psql(
        &env.direct_conninfo("bench"),
        &["-c", "SELECT count(*) FROM pgbench_accounts"],
    );
    assert_success(&accounts, "count accounts");
    assert_eq!(String::from_utf8_lossy(&accounts.stdout).trim(), "100000");
    let mut expected = 0;
    for mode in ["prepared", "simple"] {
        let before = env.metrics();
        let run = pgbench(
            env.listen,
            "bench",
            &["-S", "-t", "200", "-c", "4", "-M", mode],
        );
        assert_success(&run, mode);
        let report = String::from_utf8_lossy(&run.stdout);
        assert!(
            report.contains("number of transactions actually processed: 800/800"),
            "{mode}: {report}"
        );
        assert!(
            report.contains("number of failed transactions: 0 "),
            "{mode}: {report}"
        );
        expected += 800;
        let what = format!("{expected} SELECTs on pgbench_accounts after -M {mode}");
        let shapes = wait_for_shapes(&env.proxy, &what, |shapes| {
            select_count(shapes, "pgbench_accounts") >= expected
        });
        assert_eq!(
            select_count(&shapes, "pgbench_accounts"),
            expected,
            "{what}"
        );
        for shape in shapes
            .iter()
            .filter(|shape| shape["collection"] == "pgbench_accounts")
        {
            assert_eq!(field(shape, "errors"), 0, "{shape:#}");
        }
        // Every message is counted by its type, those the session only counts too (the relay
        // hands a read's messages over as one run).
        let after = env.metrics();
        let added = |kind: &str| messages(&after, kind) - messages(&before, kind);
        // pgbench's own set-up statements (simple Queries: vacuums, a count) run besides.
        let queries = added("Query");
        let statements = match mode {
            "prepared" => {
                for kind in ["Bind", "Describe", "Execute", "BindComplete"] {
                    assert_eq!(added(kind), 800, "{kind} messages over -M {mode}");
                }
                800 + queries
            }
            _ => queries,
        };
        assert_eq!(added("CommandComplete"), statements, "-M {mode}");
        // Each statement that returns rows returns one.
        assert!(added("DataRow") >= 800, "-M {mode}");
        assert_eq!(added("RowDescription"), added("DataRow"), "-M {mode}");
    }

    // pgbench -i loaded pgbench_accounts with `copy ... from stdin with (freeze on)`: a write.
    wait_for_insert(&env, "bench", "pgbench_accounts", 1);
}

/// Waits until `/api/v1/shapes` counts at least `at_least` inserts on `db`.`table`; returns
/// the count then.
#[track_caller]
fn wait_for_insert(env: &PgBehindProxy, db: &str, table: &str, at_least: u64) -> u64 {
    wait_until(&format!("{at_least} insert(s) on {db}.{table}"), || {
        let inserts = writes(&env.proxy)
            .into_iter()
            .filter(|write| {
                write["namespace"]["collection"] == table && write["namespace"]["database"] == db
            })
            .map(|write| write["inserts"].as_u64().unwrap_or(0))
            .sum::<u64>();
        match inserts >= at_least {
            true => Ok(inserts),
            false => Err(format!("{inserts} counted")),
        }
    })
}

#[tokio::test]
async fn copy_from_stdin_goes_through_and_counts_as_a_write() {
    let env = PgBehindProxy::start();
    env.psql_ok(
        "postgres",
        "CREATE TABLE imports (id int PRIMARY KEY, label text)",
    );
    let proxied = env.connect("postgres").await;
    let sink = proxied
        .copy_in("COPY imports (id, label) FROM STDIN")
        .await
        .expect("COPY FROM STDIN starts");
    futures::pin_mut!(sink);
    let mut data = String::new();
    for id in 1..=500 {
        data.push_str(&format!("{id}\tlabel-{id}\n"));
    }
    // Several CopyData messages, as a real loader sends them.
    for chunk in data.as_bytes().chunks(1000) {
        sink.send(Bytes::copy_from_slice(chunk))
            .await
            .expect("CopyData");
    }
    let copied = sink.finish().await.expect("CopyDone");
    assert_eq!(copied, 500);

    let direct = env.connect_direct("postgres").await;
    let stored = number(&direct, "SELECT count(*) FROM imports", &[]).await;
    assert_eq!(stored, 500);
    // The session goes on normally after the COPY.
    let after: i64 = proxied
        .query_one("SELECT count(*) FROM imports WHERE id > $1", &[&250i32])
        .await
        .expect("query after COPY")
        .get(0);
    assert_eq!(after, 250);

    // psql's \copy: COPY FROM STDIN over the simple protocol.
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let rows: String = (501..=600).map(|id| format!("{id}\tpsql-{id}\n")).collect();
    std::fs::write(file.path(), rows).expect("write rows");
    let meta = format!(
        "\\copy imports (id, label) FROM '{}'",
        file.path().display()
    );
    let copied = psql(&env.conninfo("postgres"), &["-c", &meta]);
    assert_success(&copied, "psql \\copy");
    assert_eq!(String::from_utf8_lossy(&copied.stdout).trim(), "COPY 100");
    let stored = number(&direct, "SELECT count(*) FROM imports", &[]).await;
    assert_eq!(stored, 600);

    // Each COPY FROM counts once on its table.
    let inserts = wait_for_insert(&env, "postgres", "imports", 2);
    assert_eq!(inserts, 2);
    let after_copy = wait_for_statement(&env, "imports", "id", 1);
    assert_eq!(field(&after_copy, "returned"), 1, "{after_copy:#}");
}

#[tokio::test]
async fn cancel_request_through_the_proxy_cancels_the_running_query() {
    let env = PgBehindProxy::start();
    let direct = env.connect_direct("postgres").await;
    let proxied = env.connect("postgres").await;
    // The token remembers the address the client connected to: the proxy.
    let token = proxied.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move { proxied.query("SELECT pg_sleep(30)", &[]).await });

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let active: i64 = direct
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE state = 'active' AND query = 'SELECT pg_sleep(30)' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if active == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "pg_sleep never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("CancelRequest through the proxy");
    let outcome = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the query ends promptly after the cancel")
        .expect("join");
    let err = outcome.expect_err("a cancelled query fails");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cancelled after {:?}",
        started.elapsed()
    );
    let listener = env.listener();
    wait_for_metric(
        &env.proxy,
        "indextap_inspection_events_total",
        &[
            ("listener", listener.as_str()),
            ("reason", "cancel_request"),
        ],
        1.0,
    );
}

/// `SELECT who FROM logins WHERE who = $1` as a proof that an authenticated session is
/// relayed and inspected; returns `current_user`.
async fn probe_session(client: &tokio_postgres::Client) -> String {
    let rows = client
        .query("SELECT id FROM logins WHERE who = $1", &[&"anyone"])
        .await
        .expect("query after authentication");
    assert!(rows.is_empty());
    client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("current_user")
        .get(0)
}

/// Adds `line` at the top of the server's pg_hba.conf (found with `SHOW hba_file`) and
/// reloads the configuration.
fn prepend_hba_line(env: &PgBehindProxy, line: &str) {
    let path = env
        .server
        .psql(&["-At", "-c", "SHOW hba_file"])
        .expect("SHOW hba_file");
    let path = path.trim();
    let current = std::fs::read_to_string(path).expect("read pg_hba.conf");
    // Rewriting in place keeps the file's owner and mode.
    std::fs::write(path, format!("{line}\n{current}")).expect("write pg_hba.conf");
    env.server
        .psql(&["-c", "SELECT pg_reload_conf()"])
        .expect("reload");
}

#[tokio::test]
async fn trust_scram_and_md5_authentication_work_through_the_proxy() {
    const MD5_USER: &str = "indextap_md5";
    const MD5_PASSWORD: &str = "md5-test-pw";
    let env = PgBehindProxy::start();
    env.psql_ok(
        "postgres",
        "CREATE TABLE logins (id int PRIMARY KEY, who text NOT NULL);
         GRANT SELECT ON logins TO PUBLIC;",
    );
    env.server
        .psql(&[
            "-c",
            &format!(
                "SET password_encryption = 'md5'; CREATE ROLE {MD5_USER} LOGIN PASSWORD '{MD5_PASSWORD}'"
            ),
        ])
        .expect("create the md5 role");
    prepend_hba_line(&env, &format!("host all {MD5_USER} 127.0.0.1/32 md5"));
    let stored = env
        .server
        .psql(&[
            "-At",
            "-c",
            &format!("SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = '{MD5_USER}'"),
        ])
        .expect("pg_authid");
    assert_eq!(stored.trim(), "md5");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let method = env
            .server
            .psql(&[
                "-At",
                "-c",
                &format!(
                    "SELECT auth_method FROM pg_hba_file_rules WHERE '{MD5_USER}' = ANY(user_name)"
                ),
            ])
            .expect("pg_hba_file_rules");
        if method.trim() == "md5" {
            break;
        }
        assert!(Instant::now() < deadline, "md5 rule not loaded: {method}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let via = |user: &str, password: Option<&str>| {
        let password = password
            .map(|password| format!(" password={password}"))
            .unwrap_or_default();
        format!(
            "host={} port={} user={user} dbname=postgres connect_timeout=10{password}",
            env.listen.ip(),
            env.listen.port()
        )
    };

    let trusted = connect(&env.conninfo("postgres")).await;
    assert_eq!(probe_session(&trusted).await, "postgres");
    let scram = connect(&via(SCRAM_USER, Some(SCRAM_PASSWORD))).await;
    assert_eq!(probe_session(&scram).await, SCRAM_USER);
    let md5 = connect(&via(MD5_USER, Some(MD5_PASSWORD))).await;
    assert_eq!(probe_session(&md5).await, MD5_USER);

    // Wrong passwords are refused by the server, and its refusal comes back unchanged.
    for user in [SCRAM_USER, MD5_USER] {
        let refused = tokio_postgres::connect(&via(user, Some("wrong")), tokio_postgres::NoTls)
            .await
            .err()
            .unwrap_or_else(|| panic!("{user}: a wrong password is refused"));
        assert_eq!(
            refused.code(),
            Some(&SqlState::INVALID_PASSWORD),
            "{user}: {refused:?}"
        );
    }

    let probes = wait_for_statement(&env, "logins", "who", 3);
    assert_eq!(field(&probes, "count"), 3, "{probes:#}");
    assert_eq!(field(&probes, "errors"), 0, "{probes:#}");
}

/// An INSERT of a `len`-byte text that differs from row to row and from byte to byte, so that
/// the server's copy can be checked against a formula (`stored_as_sent`).
fn large_insert(id: usize, len: usize) -> String {
    let body: String = (0..len)
        .map(|i| char::from(b'a' + ((i * 7 + id) % 26) as u8))
        .collect();
    format!("INSERT INTO big_docs VALUES ({id}, '{body}')")
}

/// The rows of `big_docs` as (id, length, whether the text is exactly what `large_insert` sent).
async fn stored_as_sent(client: &tokio_postgres::Client) -> Vec<(i32, i32, bool)> {
    let rows = client
        .query(
            "SELECT id, length(body), body = (SELECT string_agg(chr(97 + (i * 7 + id) % 26), '' ORDER BY i) \
             FROM generate_series(0, length(body) - 1) AS i) FROM big_docs ORDER BY id",
            &[],
        )
        .await
        .expect("read back big_docs");
    rows.iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// Waits until the proxy holds exactly `bytes` for inspection (reads are charged while the
/// proxy handles them, so a scrape can catch one in passing).
fn wait_for_held(env: &PgBehindProxy, bytes: usize) {
    wait_until(&format!("{bytes} bytes held for inspection"), || {
        let held = Exposition::fetch(&env.proxy).value("indextap_inspect_held_bytes", &[]);
        match held {
            Some(held) if held == bytes as f64 => Ok(()),
            held => Err(format!("{held:?} held")),
        }
    });
}

/// With a 1 MiB inspection budget, one connection holds most of it with a statement not yet
/// whole; four others send 600 KB statements at once, each spread over many reads. They find
/// no room: they reach the server unchanged, uncaptured, and counted. Once the first statement
/// is whole, the room comes back and the next large statement is captured again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_past_the_inspection_budget_are_forwarded_counted_and_room_comes_back() {
    const MIB: usize = 1 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("indextap.toml");
    std::fs::write(
        &config,
        format!("[capture]\nmax_inspect_bytes = {MIB}\nmax_inspect_total_bytes = {MIB}\n"),
    )
    .expect("config");
    let config = config.display().to_string();
    let env = PgBehindProxy::start_with(PostgresOptions::default(), &["--config", &config]);
    env.psql_ok(
        "postgres",
        "CREATE TABLE big_docs (id int PRIMARY KEY, body text)",
    );
    wait_for_held(&env, 0);

    let mut holder = Raw::started(env.listen);
    let mut query = large_insert(0, 900_000).into_bytes();
    query.push(0);
    let first = typed(b'Q', &query);
    let (head, tail) = first.split_at(first.len() - 10);
    holder.send(head);
    // The whole statement's room, taken once (the reads carrying it are charged only while
    // the proxy handles them).
    wait_for_held(&env, first.len());

    let senders: Vec<_> = (1..=4)
        .map(|id| {
            let conninfo = env.conninfo("postgres");
            tokio::spawn(async move {
                let client = connect(&conninfo).await;
                client
                    .batch_execute(&large_insert(id, 600_000))
                    .await
                    .expect("a statement over the budget still runs");
            })
        })
        .collect();
    for sender in senders {
        sender.await.expect("sender");
    }
    let exhausted = || {
        pg_common::metric_value(
            &env.metrics(),
            "indextap_inspection_events_total",
            &[("reason", "inspect_budget_exhausted")],
        )
    };
    // At least once per statement (a long read that found no room counts too).
    let without_room = exhausted().unwrap_or(0.0);
    assert!(without_room >= 4.0, "{}", env.metrics());

    holder.send(tail);
    let replies = holder.until_ready();
    assert_eq!(kinds(&replies), "CZ");
    wait_for_held(&env, 0);
    env.connect("postgres")
        .await
        .batch_execute(&large_insert(5, 600_000))
        .await
        .expect("insert after the room came back");

    // Only the two statements that had room were captured; all six were stored as sent.
    assert_eq!(wait_for_insert(&env, "postgres", "big_docs", 2), 2);
    assert_eq!(exhausted(), Some(without_room));
    let direct = env.connect_direct("postgres").await;
    let expected: Vec<_> = (0..=5)
        .map(|id| (id, if id == 0 { 900_000 } else { 600_000 }, true))
        .collect();
    assert_eq!(stored_as_sent(&direct).await, expected);
    wait_for_held(&env, 0);
}
