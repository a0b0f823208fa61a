//! Round-trip overhead of the proxy, against HAProxy and against no proxy at all.
//!
//! Run with `cargo bench -p indextap-proxy --bench overhead` (a release build; cargo builds
//! the `indextap` binary with the same profile and the bench runs that binary).
//!
//! One process holds a FAKE MongoDB upstream (canned replies, see `fake_mongo`) and a load
//! client; the proxies run as child processes in front of the fake upstream. For 1 and then
//! 16 concurrent clients, each target gets a warm-up and a measured period, in turn:
//! - `direct`: the client talks to the fake upstream;
//! - `haproxy`: HAProxy 2.6 in `mode tcp`;
//! - `indextap`: the real binary, capturing every command.
//!
//! Each client sends a realistic OP_MSG `find` (~200 bytes) and waits for its reply before
//! sending the next. The table gives throughput, p50 and p99 round-trip latency, the p99
//! added over `direct`, and the CPU time the proxy process used per request (from `/proc`,
//! warm-up included; for indextap, with its analysis threads' share). After the indextap runs the bench reads `/api/v1/shapes` and compares
//! the captured `find` count with the requests sent, and prints `/metrics`' dropped samples.
//!
//! The machine's cores are shared by the client, the fake upstream and the proxy; nothing is
//! pinned. Other work on a shared machine comes and goes, so each concurrency runs
//! `BENCH_ROUNDS` rounds (default 3) of direct → HAProxy → indextap, and each target's
//! figures add up its rounds: a slow spell hits every target rather than one.
//! Durations can be changed with `BENCH_SECS` (measured, per round) and `BENCH_WARMUP_SECS`;
//! `BENCH_INDEXTAP_CONFIG` passes a `--config` file to indextap, and `BENCH_CLIENTS` picks
//! the client counts (`16`), for experiments and profiles.
//!
//! ## Layout
//! - this file: the run order, the table and the targets' verdicts.
//! - `wire`: OP_MSG frames, prebuilt and patched; a frame reader.
//! - `fake_mongo`: the canned-reply upstream, on its own runtime thread.
//! - `load`: the closed-loop load client and its latency histogram.
//! - `targets`: HAProxy and indextap as child processes; indextap's admin API.
//! - `machine` (the analyzer's `benches/shared/machine.rs`): the CPU and the load.

#[path = "overhead/fake_mongo.rs"]
mod fake_mongo;
#[path = "overhead/load.rs"]
mod load;
#[path = "../../analyzer/benches/shared/machine.rs"]
mod machine;
#[path = "overhead/targets.rs"]
mod targets;
#[path = "overhead/wire.rs"]
mod wire;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use fake_mongo::FakeMongo;
use load::{LoadPlan, LoadResult};
use targets::Proxy;

/// Concurrent clients per run.
const CONCURRENCY: [usize; 2] = [1, 16];
/// The added p99 latency this bench exists to check, in microseconds.
const ADDED_P99_TARGET_MICROS: f64 = 100.0;
/// indextap's analysis threads are named `indextap-analysis-N` (15 characters in /proc).
const ANALYSIS_THREAD: &str = "indextap-analys";

/// One measured run.
struct Run {
    target: &'static str,
    clients: usize,
    result: LoadResult,
    /// The proxy's CPU µs per request sent (total, analysis threads); `None` for direct.
    cpu: Option<(f64, f64)>,
}

fn main() -> anyhow::Result<()> {
    let warm_up = Duration::from_secs(env_secs("BENCH_WARMUP_SECS", 1));
    let measure = Duration::from_secs(env_secs("BENCH_SECS", 5));
    let rounds = env_secs("BENCH_ROUNDS", 3).max(1);
    println!("indextap-proxy overhead bench (release build)");
    println!(
        "machine: {} cores ({}), shared by the load client, the fake upstream and the proxy; nothing pinned",
        machine::cores(),
        machine::cpu_model()
    );
    println!("load average at start: {}", machine::load_average());
    println!(
        "each run: {} s warm-up, then {} s measured; {rounds} rounds of direct, haproxy, indextap, added up; closed loop, one request in flight per client",
        warm_up.as_secs(),
        measure.as_secs()
    );

    let upstream = FakeMongo::start()?;
    let binary = Path::new(env!("CARGO_BIN_EXE_indextap"));
    let haproxy = Proxy::haproxy(upstream.addr)?;
    let indextap = Proxy::indextap(binary, upstream.addr)?;
    println!(
        "fake MongoDB upstream {} · haproxy {} · indextap {} (admin {}), binary {}",
        upstream.addr,
        haproxy.listen,
        indextap.listen,
        indextap.admin.map_or_else(String::new, |a| a.to_string()),
        binary.display()
    );
    println!();

    let ticks = targets::ticks_per_sec();
    let mut runs = Vec::new();
    let mut sent_through_indextap = 0u64;
    let mut captures = Vec::new();
    for clients in concurrency() {
        let plan = LoadPlan {
            clients,
            warm_up,
            measure,
        };
        let targets: [(&'static str, SocketAddr, Option<&Proxy>); 3] = [
            ("direct", upstream.addr, None),
            ("haproxy", haproxy.listen, Some(&haproxy)),
            ("indextap", indextap.listen, Some(&indextap)),
        ];
        // Per target: the results and the proxy's CPU micros (total, analysis), added up.
        let mut totals: Vec<Option<(LoadResult, (f64, f64))>> = vec![None, None, None];
        for _ in 0..rounds {
            for ((target, addr, proxy), total) in targets.iter().zip(totals.iter_mut()) {
                let before = proxy.map(|p| p.cpu(ANALYSIS_THREAD)).transpose()?;
                let result =
                    load::run(*addr, plan).with_context(|| format!("{target}, {clients}"))?;
                let cpu = match (proxy, before) {
                    (Some(proxy), Some(before)) => {
                        let after = proxy.cpu(ANALYSIS_THREAD)?;
                        before.micros(&after, ticks)
                    }
                    _ => (0.0, 0.0),
                };
                if *target == "indextap" {
                    sent_through_indextap += result.sent;
                }
                *total = Some(match total.take() {
                    None => (result, cpu),
                    Some((mut sum, (cpu_total, cpu_analysis))) => {
                        sum.absorb(&result);
                        (sum, (cpu_total + cpu.0, cpu_analysis + cpu.1))
                    }
                });
            }
        }
        let captured = indextap.wait_captured(sent_through_indextap)?;
        captures.push((clients, captured, sent_through_indextap));
        for ((target, _, proxy), total) in targets.iter().zip(totals) {
            let Some((result, (cpu_total, cpu_analysis))) = total else {
                continue;
            };
            let per = result.sent.max(1) as f64;
            runs.push(Run {
                target,
                clients,
                cpu: proxy.map(|_| (cpu_total / per, cpu_analysis / per)),
                result,
            });
        }
    }

    print_table(&runs);
    println!();
    println!(
        "capture (indextap /api/v1/shapes, find on app.orders, cumulative, warm-up included):"
    );
    for (clients, captured, sent) in &captures {
        println!(
            "  after the {clients}-client run: captured {captured} of {sent} sent ({:.3}%)",
            100.0 * *captured as f64 / (*sent).max(1) as f64
        );
    }
    println!("indextap /metrics dropped samples:");
    for line in indextap.dropped_metrics()? {
        println!("  {line}");
    }
    println!(
        "fake upstream answered {} requests in all",
        upstream.served()
    );
    println!();
    print_verdicts(&runs, &captures);
    Ok(())
}

fn find<'a>(runs: &'a [Run], target: &str, clients: usize) -> Option<&'a Run> {
    runs.iter()
        .find(|run| run.target == target && run.clients == clients)
}

fn print_table(runs: &[Run]) {
    println!(
        "| {:<9} | {:>7} | {:>9} | {:>9} | {:>8} | {:>8} | {:>13} | {:>19} |",
        "target",
        "clients",
        "requests",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "p99 added µs",
        "proxy CPU µs/req"
    );
    println!(
        "|{:-<11}|{:->9}|{:->11}|{:->11}|{:->10}|{:->10}|{:->15}|{:->21}|",
        "", "", "", "", "", "", "", ""
    );
    for run in runs {
        let direct = find(runs, "direct", run.clients);
        let added = match (run.target, direct) {
            ("direct", _) | (_, None) => "-".to_owned(),
            (_, Some(direct)) => format!(
                "{:+.1}",
                run.result.micros_at(0.99) - direct.result.micros_at(0.99)
            ),
        };
        let cpu = match (run.target, run.cpu) {
            (_, None) => "-".to_owned(),
            ("indextap", Some((total, analysis))) => {
                format!("{total:.1} ({analysis:.1} analysis)")
            }
            (_, Some((total, _))) => format!("{total:.1}"),
        };
        println!(
            "| {:<9} | {:>7} | {:>9} | {:>9.0} | {:>8.1} | {:>8.1} | {:>13} | {:>19} |",
            run.target,
            run.clients,
            run.result.measured,
            run.result.ops_per_sec(),
            run.result.micros_at(0.50),
            run.result.micros_at(0.99),
            added,
            cpu
        );
    }
}

fn print_verdicts(runs: &[Run], captures: &[(usize, u64, u64)]) {
    let verdict = |met: bool| if met { "MET" } else { "MISSED" };
    for clients in concurrency() {
        let (Some(direct), Some(haproxy), Some(indextap)) = (
            find(runs, "direct", clients),
            find(runs, "haproxy", clients),
            find(runs, "indextap", clients),
        ) else {
            continue;
        };
        let (ours, theirs) = (indextap.result.ops_per_sec(), haproxy.result.ops_per_sec());
        println!(
            "target: indextap throughput >= haproxy at {clients} client(s): {} ({ours:.0} vs {theirs:.0} ops/s, {:.1}%)",
            verdict(ours >= theirs),
            100.0 * ours / theirs
        );
        let added = indextap.result.micros_at(0.99) - direct.result.micros_at(0.99);
        println!(
            "target: indextap p99 added < {ADDED_P99_TARGET_MICROS:.0} µs at {clients} client(s): {} ({added:+.1} µs; haproxy {:+.1} µs)",
            verdict(added < ADDED_P99_TARGET_MICROS),
            haproxy.result.micros_at(0.99) - direct.result.micros_at(0.99)
        );
    }
    if let Some((_, captured, sent)) = captures.last() {
        println!(
            "target: indextap captures every command: {} ({captured} of {sent})",
            verdict(captured == sent)
        );
    }
}

/// The client counts to run: `BENCH_CLIENTS` (`16`, `1,16`) for profiling one of them.
fn concurrency() -> Vec<usize> {
    std::env::var("BENCH_CLIENTS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .filter(|list: &Vec<usize>| !list.is_empty())
        .unwrap_or_else(|| CONCURRENCY.to_vec())
}

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
