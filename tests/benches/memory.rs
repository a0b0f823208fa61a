//! Memory benchmark: 10,000 distinct shapes and 2,000 idle client connections through the
//! real proxy in front of real servers, with the proxy's peak RSS and its admin latencies.
//!
//! What it does (run it with `scripts/bench-mem.sh`, which builds the release binary):
//! 1. starts SecantusDB, PostgreSQL (with room for the idle connections) and `indextap`
//!    (`$INDEXTAP_BIN`, the release build) with a state directory saved every 5 s, so the
//!    periodic snapshot is part of the peak;
//! 2. drives 8,000 distinct MongoDB `find` filters over 50 collections (the Rust driver) and
//!    2,000 distinct SQL statements over 20 tables (tokio-postgres, extended protocol);
//! 3. opens the idle client connections, 900 MongoDB (a `hello`, as a driver's pooled
//!    connection starts; SecantusDB refuses its 1,000th client) and the rest PostgreSQL (a
//!    full startup and authentication), and leaves them open;
//! 4. times the admin API: `/metrics`, a page of `/api/v1/shapes` (by total time and by p95),
//!    and `/api/v1/recommendations`;
//! 5. with the idle connections closed, sends large frames from many connections at once
//!    (half PostgreSQL statements, half MongoDB `find`s, each several MiB, spread over many
//!    reads), and prints that phase's own peak against its starting RSS plus the inspection
//!    budget (`capture.max_inspect_total_bytes`, 8 MiB by default);
//! 6. prints the proxy's RSS after each phase and its peak (`VmHWM`, `/proc/PID/status`),
//!    against the 64 MiB target.
//!
//! Environment: `BENCH_MEM_MONGO_SHAPES` (default 8000), `BENCH_MEM_SQL_SHAPES` (2000),
//! `BENCH_MEM_CONNECTIONS` (2000), `BENCH_MEM_LARGE_CONNECTIONS` (40),
//! `BENCH_MEM_LARGE_MIB` (4), `BENCH_MEM_LARGE_ROUNDS` (3), `INDEXTAP_BIN`. Everything it
//! starts stops at exit.
//!
//! ## Layout
//! - this file: the phases and the report.
//! - `workload`: the shapes, the idle connections and the large frames.
//! - `probe`: RSS from `/proc` and timed admin calls.

#[path = "memory/probe.rs"]
mod probe;
#[path = "memory/workload.rs"]
mod workload;

use std::time::{Duration, Instant};

use indextap_tests::metrics::{metric_value, Exposition};
use indextap_tests::ports::free_addr;
use indextap_tests::{
    IndextapOptions, IndextapProcess, Postgres, PostgresOptions, SecantusDb, SecantusOptions,
};

use probe::{Memory, Timings};

/// Idle MongoDB connections at most (see `main`).
const MAX_MONGO_IDLE: usize = 900;
/// The whole proxy must stay within this (a usual sidecar limit).
const TARGET_MIB: f64 = 64.0;
/// What each admin call must stay under at 10,000 shapes.
const METRICS_TARGET_MS: f64 = 25.0;
const PAGE_TARGET_MS: f64 = 100.0;
const ADVICE_TARGET_MS: f64 = 2_000.0;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let mongo_shapes = setting("BENCH_MEM_MONGO_SHAPES", 8_000);
    let sql_shapes = setting("BENCH_MEM_SQL_SHAPES", 2_000);
    let connections = setting("BENCH_MEM_CONNECTIONS", 2_000);
    // SecantusDB refuses a thousandth client connection (a fixed cap, one thread each), and
    // every client connection through the proxy is one upstream: MongoDB takes at most 900.
    let mongo_idle = (connections / 2).min(MAX_MONGO_IDLE);
    let pg_idle = connections - mongo_idle;

    let secantus = SecantusDb::start(SecantusOptions::standalone());
    let postgres = Postgres::start_with(PostgresOptions {
        max_connections: Some(u32::try_from(pg_idle + 50)?),
        ..PostgresOptions::default()
    });
    workload::create_tables(&postgres)?;

    let mongo_listen = free_addr();
    let pg_listen = free_addr();
    let admin = free_addr();
    let state_dir = tempfile::tempdir()?;
    let args = [
        "proxy".to_string(),
        format!("--mongo-listen={mongo_listen}"),
        format!("--mongo-upstream={}", secantus.addr()),
        format!("--pg-listen={pg_listen}"),
        format!("--pg-upstream={}", postgres.addr()),
        format!("--pg-admin-url={}", postgres.url(workload::DATABASE)),
        format!("--admin-listen={admin}"),
        format!("--state-dir={}", state_dir.path().display()),
        "--log-format=json".to_string(),
    ];
    let proxy = IndextapProcess::start_with(IndextapOptions {
        args: args.to_vec(),
        env: vec![("INDEXTAP_STATE_INTERVAL_SECS".into(), "5".into())],
        ..IndextapOptions::default()
    });
    let mut memory = Memory::of(proxy.pid());
    memory.phase("started")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    runtime.block_on(workload::mongo_shapes(
        &secantus.uri_via(mongo_listen),
        mongo_shapes,
    ))?;
    runtime.block_on(workload::sql_shapes(
        &postgres.connection_string_via(pg_listen, workload::DATABASE),
        sql_shapes,
    ))?;
    let expected = mongo_shapes + sql_shapes;
    let tracked = probe::wait_for_shapes(&proxy, expected, Duration::from_secs(120))?;
    println!(
        "drove {expected} distinct shapes in {:.1} s; the proxy tracks {tracked}",
        started.elapsed().as_secs_f64()
    );
    memory.phase(&format!("{tracked} shapes"))?;

    let idle = runtime.block_on(workload::idle_connections(
        mongo_listen,
        &postgres.connection_string_via(pg_listen, workload::DATABASE),
        mongo_idle,
        pg_idle,
    ))?;
    let open = probe::active_connections(&proxy)?;
    println!("opened {mongo_idle} idle MongoDB and {pg_idle} idle PostgreSQL client connections; the proxy counts {open} open");
    memory.phase(&format!("+{connections} idle connections"))?;
    // Let a periodic state save or two happen with everything held.
    std::thread::sleep(Duration::from_secs(6));
    memory.phase("after a state save")?;

    let mut timings = Timings::new(&proxy);
    timings.time("GET /metrics", "/metrics", 20, METRICS_TARGET_MS)?;
    timings.time(
        "GET /api/v1/shapes (page 1, by total time)",
        "/api/v1/shapes",
        20,
        PAGE_TARGET_MS,
    )?;
    timings.time(
        "GET /api/v1/shapes?sort=p95&offset=5000",
        "/api/v1/shapes?sort=p95&offset=5000",
        10,
        PAGE_TARGET_MS,
    )?;
    timings.time(
        "GET /api/v1/recommendations",
        "/api/v1/recommendations",
        3,
        ADVICE_TARGET_MS,
    )?;
    memory.phase("after the admin calls")?;
    drop(idle);

    let large = large_frames(
        &mut memory,
        &proxy,
        &runtime,
        &secantus,
        &postgres,
        pg_listen,
        mongo_listen,
    )?;

    let metrics = proxy.get_text("/metrics")?;
    let evicted = metric_value(&metrics, "indextap_shapes_evicted", &[]).unwrap_or(0.0);
    let charged = metric_value(&metrics, "indextap_aggregate_memory_bytes", &[]).unwrap_or(0.0);
    println!();
    memory.report(TARGET_MIB);
    println!(
        "aggregate: {tracked} shapes, {:.1} MiB charged against its budget, {evicted} evicted",
        charged / 1_048_576.0
    );
    println!("{large}");
    println!();
    timings.report();
    println!();
    println!("where each recommendation run's time went (the proxy's log):");
    for line in probe::advice_log(&proxy.logs()) {
        println!("  {line}");
    }
    Ok(())
}

/// The large-frames phase (step 5); its summary line.
fn large_frames(
    memory: &mut Memory,
    proxy: &IndextapProcess,
    runtime: &tokio::runtime::Runtime,
    secantus: &SecantusDb,
    postgres: &Postgres,
    pg_listen: std::net::SocketAddr,
    mongo_listen: std::net::SocketAddr,
) -> anyhow::Result<String> {
    let connections = setting("BENCH_MEM_LARGE_CONNECTIONS", 40);
    let mib = setting("BENCH_MEM_LARGE_MIB", 4);
    let rounds = setting("BENCH_MEM_LARGE_ROUNDS", 3);
    // The idle connections' sockets close in the background: let RSS settle first.
    std::thread::sleep(Duration::from_secs(2));
    let before = memory.restart_peak()?;
    let started = Instant::now();
    runtime.block_on(workload::large_frames(
        &postgres.connection_string_via(pg_listen, workload::DATABASE),
        &secantus.uri_via(mongo_listen),
        connections,
        mib << 20,
        rounds,
    ))?;
    let took = started.elapsed().as_secs_f64();
    memory.phase(&format!("{connections} conns x {mib} MiB frames"))?;
    let peak = memory.last_peak();
    // The last large observations may still be in the analyzer, holding their room until
    // analysed: wait for the gauge to settle, so what is left is a leak, not work in flight.
    let settling = Instant::now();
    let metrics = loop {
        let metrics = Exposition::fetch(proxy);
        let held = metrics
            .value("indextap_inspect_held_bytes", &[])
            .unwrap_or(0.0);
        if held == 0.0 || settling.elapsed() > Duration::from_secs(10) {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let settled = settling.elapsed().as_secs_f64();
    let value = |name: &str, labels: &[(&str, &str)]| metrics.value(name, labels).unwrap_or(0.0);
    let budget = value("indextap_inspect_budget_bytes", &[]) / 1_048_576.0;
    let verdict = if peak <= before + budget {
        "met"
    } else {
        "NOT met"
    };
    Ok(format!(
        "large frames: {connections} connections x {rounds} x {mib} MiB in {took:.1} s; peak {peak:.1} MiB from {before:.1} MiB, \
         +{:.1} MiB against the {budget:.0} MiB inspection budget: {verdict}; \
         {} frames or reads without room, {} samples dropped, {} bytes still held after {settled:.1} s",
        peak - before,
        value("indextap_inspection_events_total", &[("reason", "inspect_budget_exhausted")]),
        value("indextap_dropped_samples_total", &[]),
        value("indextap_inspect_held_bytes", &[]),
    ))
}
