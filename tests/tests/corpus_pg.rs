//! PostgreSQL advice on workloads other people wrote: sysbench's Lua OLTP workloads,
//! pgbench's built-in scripts (with its start-up queries on `pg_catalog`), a TPC-C-like
//! application (composite primary keys, comma joins with unqualified columns), and the SQL
//! that Django (psycopg2, literals) and SQLAlchemy (psycopg 3, server-side parameters, flags
//! passed as parameters) emit for small models.
//!
//! Each workload runs through the real proxy in front of a real server, and its advice must
//! pass `corpus/pg_check.rs`: everything builds, nothing is served already, the planner uses
//! each index, no more indexes than a careful DBA would add, and the unused index that writes
//! maintain is proposed for dropping. Each test says what that DBA would do, and why.
//!
//! ## Layout
//! - `corpus/pg_check.rs`: the server, the proxy, and the checks.
//! - `corpus/tools.rs`: sysbench and the corpus Python scripts; `pg_common`: pgbench.
//! - `corpus/tpcc.rs`: the TPC-C-like schema and transactions.
//! - this file: one test per workload.

#[path = "corpus/expect.rs"]
mod expect;
#[path = "corpus/pg_check.rs"]
mod pg_check;
mod pg_common;
#[path = "corpus/tools.rs"]
mod tools;
#[path = "corpus/tpcc.rs"]
mod tpcc;

use pg_check::{check, PgCorpus};
use pg_common::assert_success;

/// Drop advice needs a capture window; the tests' windows last seconds.
const SHORT_WINDOW: [&str; 2] = ["--drop-min-window-secs", "1"];

/// A server with sysbench's table (10,000 rows, `prepare` run straight to it by `prepare`'s
/// script, then analyzed), and 100 events of each of `workloads` run through the proxy.
async fn sysbench(prepare: &str, workloads: &[&str]) -> PgCorpus {
    let corpus = PgCorpus::start("sbtest", &SHORT_WINDOW);
    let args = [
        "--tables=1",
        "--table-size=10000",
        "--threads=1",
        "--time=0",
    ];
    tools::sysbench(corpus.server.addr(), "sbtest", prepare, &args, "prepare");
    corpus
        .direct()
        .await
        .batch_execute("ANALYZE")
        .await
        .expect("ANALYZE");
    let run = [args.as_slice(), &["--events=100"]].concat();
    for workload in workloads {
        tools::sysbench(corpus.listen, "sbtest", workload, &run, "run");
    }
    corpus
}

/// sysbench `oltp_read_write`: every statement finds rows by the primary key, so a careful
/// DBA adds nothing. The secondary index `k_1` serves no statement, and every `UPDATE ... SET
/// k = k + 1` rewrites it: it is proposed for dropping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysbench_oltp_read_write() {
    let corpus = sysbench("oltp_read_write", &["oltp_read_write"]).await;
    // 18 statements a transaction, and a margin for sysbench's own.
    corpus.wait_for_executions(100 * 14);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let advice = check(&corpus, "sysbench_oltp_read_write", async || {}).await;
    let evidence = &advice["drops"][0]["evidence"];
    assert_eq!(
        evidence["server_uses"], 0,
        "idx_scan did not grow: {advice:#}"
    );
    assert!(
        evidence["writes"].as_u64().unwrap_or(0) >= 100,
        "every UPDATE ... SET k = k + 1 maintained it: {advice:#}"
    );
    assert!(
        evidence["window_secs"].as_f64().unwrap_or(0.0) >= 1.0,
        "the window is said: {advice:#}"
    );
    assert_eq!(
        advice["drops"][0]["rollback"],
        r#"CREATE INDEX CONCURRENTLY IF NOT EXISTS k_1 ON "public"."sbtest1" USING btree ("k");"#
    );
}

/// sysbench's read workloads and `oltp_update_index`: point selects and updates by the
/// primary key, `k BETWEEN` ranges and `k IN (...)` points, which `k_1` serves. Nothing to
/// add, and nothing to drop: `k_1` is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysbench_reads_and_index_updates() {
    let workloads = [
        "oltp_point_select",
        "select_random_ranges",
        "select_random_points",
        "oltp_update_index",
    ];
    let corpus = sysbench("oltp_common", &workloads).await;
    corpus.wait_for_executions(350);
    check(&corpus, "sysbench_reads_and_index_updates", async || {}).await;
}

/// pgbench's built-in scripts (`tpcb-like`, `simple-update`, `select-only`), prepared and
/// simple: every statement finds its row by the primary key; `pgbench_history` is only
/// inserted into. pgbench's start-up queries read `pg_catalog`: counted, never advised on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_builtin_scripts() {
    let corpus = PgCorpus::start("bench", &SHORT_WINDOW);
    let pgbench = |addr, args: &[&str]| {
        let output = pg_common::pgbench(addr, "bench", args);
        assert_success(&output, &format!("pgbench {args:?}"));
    };
    pgbench(corpus.server.addr(), &["-i", "-s", "1", "-q"]);
    for mode in ["prepared", "simple"] {
        let scripts = [
            "-b",
            "tpcb-like",
            "-b",
            "simple-update",
            "-b",
            "select-only",
        ];
        pgbench(
            corpus.listen,
            &[&scripts[..], &["-t", "100", "-M", mode]].concat(),
        );
    }
    corpus.wait_for_executions(400);
    check(&corpus, "pgbench_builtin_scripts", async || {}).await;
}

/// The TPC-C transactions. The primary keys serve every lookup, whatever the order of the
/// columns in the WHERE clause; the comma join of New-Order finds the customer by its key and
/// the warehouse by its own. A careful DBA adds the two indexes the benchmark's kits add:
/// customers by last name (Payment, Order-Status) and orders by customer (Order-Status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpcc_transactions() {
    let corpus = PgCorpus::start("tpcc", &SHORT_WINDOW);
    corpus
        .direct()
        .await
        .batch_execute(tpcc::SCHEMA)
        .await
        .expect("TPC-C schema and rows");
    let executions = tpcc::run(&corpus.proxied().await, 10).await;
    corpus.wait_for_executions(executions);
    // A new session: plans are logged by the sessions that start after `check` asks for it.
    check(&corpus, "tpcc_transactions", async || {
        tpcc::run(&corpus.direct().await, 2).await;
    })
    .await;
}

fn python_args(port: u16, database: &str, phase: &str, rounds: u32) -> Vec<String> {
    vec![
        "--port".to_string(),
        port.to_string(),
        "--database".to_string(),
        database.to_string(),
        "--phase".to_string(),
        phase.to_string(),
        "--rounds".to_string(),
        rounds.to_string(),
    ]
}

/// An ORM application of `tests/corpus`: its schema and rows straight to the server, its
/// workload (`executions` statements at least, in 30 rounds) through the proxy, then the
/// checks, replaying 5 rounds. Returns the advice it checked.
async fn orm_application(
    script: &str,
    database: &'static str,
    executions: u64,
    workload: &str,
) -> serde_json::Value {
    let corpus = PgCorpus::start(database, &SHORT_WINDOW);
    let server = corpus.server.port();
    tools::python(script, &python_args(server, database, "schema", 0));
    tools::python(
        script,
        &python_args(corpus.listen.port(), database, "workload", 30),
    );
    corpus.wait_for_executions(executions);
    check(&corpus, workload, async || {
        tools::python(script, &python_args(server, database, "workload", 5));
    })
    .await
}

/// Django with psycopg2 (literals interpolated by the client). Django indexes the unique
/// email and the foreign key by itself; those serve the lookups by email and by customer. A
/// careful DBA adds two: the queue poll (`status = 'pending' ORDER BY created_at`), and the
/// daily report's `created_at` range. Each round views the pages three times and places one
/// order: the write cost of an index on `shop_order` is measured from those inserts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_orm() {
    let advice = orm_application("django_shop.py", "shop", 30 * 12, "django_orm").await;
    let on_orders: Vec<&serde_json::Value> = advice["recommendations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["collection"] == "shop_order")
        .collect();
    assert!(!on_orders.is_empty(), "{advice:#}");
    for recommendation in on_orders {
        let cost = &recommendation["write_cost"];
        assert_eq!(cost["basis"], "measured", "{recommendation:#}");
        assert!(
            cost["per_write_ms"].as_f64().unwrap_or(0.0) > 0.0,
            "{recommendation:#}"
        );
        assert!(
            cost["writes"].as_u64().unwrap_or(0) >= 30,
            "30 inserts and the updates: {recommendation:#}"
        );
        let saving = recommendation["net_saving_ms"].as_f64().unwrap_or(0.0);
        assert!(saving > 0.0, "it pays for its writes: {recommendation:#}");
    }
}

/// SQLAlchemy with psycopg 3: parameters bound on the server, so the `deleted` and `paid`
/// flags are parameters, never constants a partial index could name. SQLAlchemy does not
/// index foreign keys. A careful DBA adds three: invoices by account (the soft-delete flag
/// beside it is a parameter, so a plain index), accounts by email, and the tenant's unpaid
/// invoices by due date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_orm_with_flags_as_parameters() {
    let workload = "sqlalchemy_orm_with_flags_as_parameters";
    orm_application("sqlalchemy_billing.py", "billing", 30 * 5, workload).await;
}
