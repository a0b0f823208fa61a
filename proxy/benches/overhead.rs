//! Round-trip overhead of the proxy, against HAProxy and against no proxy at all.
//!
//! Run with `cargo bench -p indextap-proxy --bench overhead` (a release build; cargo builds
//! the `indextap` binary with the same profile and the bench runs that binary).
//!
//! One process holds a FAKE MongoDB upstream (canned replies, see `fake_mongo`) and the load
//! clients; the proxies run as child processes in front of the fake upstream, each in a
//! session of its own (`setsid`), as services are, so that the kernel's per-session
//! scheduling treats them alike. Two loads, each at its client counts:
//! - `raw`: each client sends a prebuilt OP_MSG `find` (~200 bytes) and waits for its reply
//!   before sending the next (`load`), at 1 and 16 clients;
//! - `driver`: the Rust `mongodb` driver, 16 pooled connections running `find_one`
//!   (`driver`), with its handshakes and monitor.
//!
//! Each target gets a warm-up and a measured period, in turn: `direct` (the fake upstream),
//! `haproxy` (HAProxy in `mode tcp`) and `indextap` (the real binary, capturing every
//! command). The table gives throughput, p50 and p99 round-trip latency, the p99 added over
//! `direct`, and the CPU time the proxy process used per request (from `/proc`, warm-up
//! included; for indextap, with its analysis threads' share). The verdicts compare indextap
//! with HAProxy against the targets of issue 10, and a README table closes the output.
//! After the indextap runs the bench reads `/api/v1/shapes` and compares the captured `find`
//! count with the requests sent, and prints `/metrics`' dropped samples.
//!
//! The machine's cores are shared by the clients, the fake upstream and the proxy; nothing
//! is pinned. Other work on a shared machine comes and goes, so each run is `BENCH_ROUNDS`
//! rounds (default 3) of direct → HAProxy → indextap, and each target's figures add up its
//! rounds: a slow spell hits every target rather than one. Durations can be changed with
//! `BENCH_SECS` (measured, per round) and `BENCH_WARMUP_SECS`; `BENCH_INDEXTAP_CONFIG`
//! passes a `--config` file to indextap; `BENCH_LOADS` (`raw,driver`) and `BENCH_CLIENTS`
//! (`16`) pick runs, for experiments and profiles.
//!
//! ## Layout
//! - this file: the run order, the table and the targets' verdicts.
//! - `wire`: OP_MSG frames, prebuilt and patched; a frame reader.
//! - `fake_mongo`: the canned-reply upstream, on its own runtime thread.
//! - `load`: the closed-loop raw load client and its latency histogram.
//! - `driver`: the same loop through the `mongodb` driver.
//! - `targets`: HAProxy and indextap as child processes; indextap's admin API.
//! - `machine` (the analyzer's `benches/shared/machine.rs`): the CPU and the load.

#[path = "overhead/driver.rs"]
mod driver;
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

/// The loads and their client counts.
const RUNS: [(Load, usize); 3] = [(Load::Raw, 1), (Load::Raw, 16), (Load::Driver, 16)];
/// The added p99 latency at one client, in microseconds (issue 10).
const ADDED_P99_TARGET_MICROS: f64 = 100.0;
/// indextap's CPU per request may be at most this multiple of HAProxy's (issue 10).
const CPU_RATIO_TARGET: f64 = 1.1;
/// indextap's throughput must be at least this share of HAProxy's (issue 10).
const THROUGHPUT_RATIO_TARGET: f64 = 0.95;
/// The client count the CPU and throughput targets are set at.
const TARGET_CLIENTS: usize = 16;
/// indextap's analysis threads are named `indextap-analysis-N` (15 characters in /proc).
const ANALYSIS_THREAD: &str = "indextap-analys";

/// How the requests are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Prebuilt OP_MSG frames on plain sockets.
    Raw,
    /// The Rust `mongodb` driver.
    Driver,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Raw => "raw",
            Load::Driver => "driver",
        }
    }

    /// Runs `plan` against `target` on a single-threaded runtime of its own.
    fn run(self, target: SocketAddr, plan: LoadPlan) -> anyhow::Result<LoadResult> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .with_context(|| format!("the {} load's runtime", self.name()))?;
        match self {
            Load::Raw => runtime.block_on(load::run(target, plan)),
            Load::Driver => runtime.block_on(driver::run(target, plan)),
        }
    }
}

/// One measured run.
struct Run {
    load: Load,
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
    for (load, clients) in selected_runs() {
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
                let result = load
                    .run(*addr, plan)
                    .with_context(|| format!("{} load, {target}, {clients}", load.name()))?;
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
        captures.push((load, clients, captured, sent_through_indextap));
        for ((target, _, proxy), total) in targets.iter().zip(totals) {
            let Some((result, (cpu_total, cpu_analysis))) = total else {
                continue;
            };
            let per = result.sent.max(1) as f64;
            runs.push(Run {
                load,
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
    for (load, clients, captured, sent) in &captures {
        println!(
            "  after the {} {clients}-client run: captured {captured} of {sent} sent ({:.3}%)",
            load.name(),
            100.0 * *captured as f64 / (*sent).max(1) as f64
        );
    }
    let dropped = indextap.dropped_metrics()?;
    println!("indextap /metrics dropped samples:");
    for line in &dropped {
        println!("  {line}");
    }
    println!(
        "fake upstream answered {} requests in all",
        upstream.served()
    );
    println!();
    print_verdicts(&runs, &captures, &dropped);
    println!();
    print_readme_table(&runs);
    Ok(())
}

fn find<'a>(runs: &'a [Run], load: Load, target: &str, clients: usize) -> Option<&'a Run> {
    runs.iter()
        .find(|run| run.load == load && run.target == target && run.clients == clients)
}

fn added_p99(runs: &[Run], run: &Run) -> Option<f64> {
    let direct = find(runs, run.load, "direct", run.clients)?;
    Some(run.result.micros_at(0.99) - direct.result.micros_at(0.99))
}

fn print_table(runs: &[Run]) {
    println!(
        "| {:<6} | {:<9} | {:>7} | {:>9} | {:>9} | {:>8} | {:>8} | {:>13} | {:>19} |",
        "load",
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
        "|{:-<8}|{:-<11}|{:->9}|{:->11}|{:->11}|{:->10}|{:->10}|{:->15}|{:->21}|",
        "", "", "", "", "", "", "", "", ""
    );
    for run in runs {
        let added = match (run.target, added_p99(runs, run)) {
            ("direct", _) | (_, None) => "-".to_owned(),
            (_, Some(added)) => format!("{added:+.1}"),
        };
        let cpu = match (run.target, run.cpu) {
            (_, None) => "-".to_owned(),
            ("indextap", Some((total, analysis))) => {
                format!("{total:.1} ({analysis:.1} analysis)")
            }
            (_, Some((total, _))) => format!("{total:.1}"),
        };
        println!(
            "| {:<6} | {:<9} | {:>7} | {:>9} | {:>9.0} | {:>8.1} | {:>8.1} | {:>13} | {:>19} |",
            run.load.name(),
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

fn verdict(met: bool) -> &'static str {
    if met {
        "MET"
    } else {
        "MISSED"
    }
}

fn print_verdicts(runs: &[Run], captures: &[(Load, usize, u64, u64)], dropped: &[String]) {
    for load in [Load::Raw, Load::Driver] {
        let (Some(haproxy), Some(indextap)) = (
            find(runs, load, "haproxy", TARGET_CLIENTS),
            find(runs, load, "indextap", TARGET_CLIENTS),
        ) else {
            continue;
        };
        let name = load.name();
        let (ours, theirs) = (indextap.result.ops_per_sec(), haproxy.result.ops_per_sec());
        let ratio = ours / theirs;
        println!(
            "target: {name}, {TARGET_CLIENTS} clients: indextap ops/s >= {THROUGHPUT_RATIO_TARGET:.2} x haproxy: {} ({ours:.0} vs {theirs:.0} ops/s, {ratio:.2} x)",
            verdict(ratio >= THROUGHPUT_RATIO_TARGET),
        );
        if let (Some((ours, _)), Some((theirs, _))) = (indextap.cpu, haproxy.cpu) {
            let ratio = ours / theirs;
            println!(
                "target: {name}, {TARGET_CLIENTS} clients: indextap CPU/op <= {CPU_RATIO_TARGET:.1} x haproxy: {} ({ours:.1} vs {theirs:.1} µs/op, {ratio:.2} x)",
                verdict(ratio <= CPU_RATIO_TARGET),
            );
        }
    }
    if let (Some(indextap), Some(haproxy)) = (
        find(runs, Load::Raw, "indextap", 1),
        find(runs, Load::Raw, "haproxy", 1),
    ) {
        if let (Some(added), Some(theirs)) = (added_p99(runs, indextap), added_p99(runs, haproxy)) {
            println!(
                "target: raw, 1 client: indextap p99 added < {ADDED_P99_TARGET_MICROS:.0} µs: {} ({added:+.1} µs; haproxy {theirs:+.1} µs)",
                verdict(added < ADDED_P99_TARGET_MICROS),
            );
        }
    }
    if let Some((_, _, captured, sent)) = captures.last() {
        let none_dropped = dropped.iter().all(|line| line.ends_with(" 0"));
        println!(
            "target: indextap captures every command, 0 dropped: {} ({captured} of {sent}; {})",
            verdict(captured == sent && none_dropped),
            if none_dropped {
                "0 dropped"
            } else {
                "samples dropped"
            }
        );
    }
}

/// The rows the README's performance table is made of.
fn print_readme_table(runs: &[Run]) {
    println!(
        "README table (MongoDB, fake upstream; load average {}):",
        machine::load_average()
    );
    println!();
    println!("| MongoDB load | clients | HAProxy ops/s, CPU/op | indextap ops/s, CPU/op | indextap / HAProxy (ops/s, CPU) | p99 added (indextap, HAProxy) |");
    println!("|---|---|---|---|---|---|");
    for (load, clients) in selected_runs() {
        let (Some(haproxy), Some(indextap)) = (
            find(runs, load, "haproxy", clients),
            find(runs, load, "indextap", clients),
        ) else {
            continue;
        };
        let cpu = |run: &Run| run.cpu.map_or(0.0, |(total, _)| total);
        let added =
            |run: &Run| added_p99(runs, run).map_or("-".to_owned(), |a| format!("{a:+.0} µs"));
        println!(
            "| {} | {clients} | {:.1}k, {:.1} µs | {:.1}k, {:.1} µs | {:.2} x, {:.2} x | {}, {} |",
            load.name(),
            haproxy.result.ops_per_sec() / 1000.0,
            cpu(haproxy),
            indextap.result.ops_per_sec() / 1000.0,
            cpu(indextap),
            indextap.result.ops_per_sec() / haproxy.result.ops_per_sec(),
            cpu(indextap) / cpu(haproxy).max(f64::MIN_POSITIVE),
            added(indextap),
            added(haproxy),
        );
    }
}

/// The runs to make: `BENCH_LOADS` (`raw`, `driver`) and `BENCH_CLIENTS` (`16`, `1,16`)
/// narrow [`RUNS`] down, for profiling one of them.
fn selected_runs() -> Vec<(Load, usize)> {
    let list = |name: &str| -> Option<Vec<String>> {
        std::env::var(name)
            .ok()
            .map(|list| list.split(',').map(|item| item.trim().to_owned()).collect())
    };
    let loads = list("BENCH_LOADS");
    let clients = list("BENCH_CLIENTS");
    RUNS.into_iter()
        .filter(|(load, _)| {
            loads
                .as_ref()
                .is_none_or(|loads| loads.iter().any(|name| name == load.name()))
        })
        .filter(|(_, count)| {
            clients
                .as_ref()
                .is_none_or(|counts| counts.iter().any(|c| c == &count.to_string()))
        })
        .collect()
}

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
