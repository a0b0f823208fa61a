//! Operating indextap for real: what an operator meets when the binary runs as a sidecar or
//! a service, proven against the real binary, real servers and real drivers.
//!
//! ## Layout
//! - `config`: configuration errors stop the start before anything listens; file < env <
//!   flag precedence; several listeners per engine from one file.
//! - `state`: the state file survives SIGTERM, `kill -9` (at most one interval lost) and
//!   corruption (moved aside, fresh start); one proxy per state directory.
//! - `sink`: snapshots pushed to a PostgreSQL table or a directory outlive the sidecars, and
//!   `recommend|shapes|merge --from <sink>` merges them.
//! - `shutdown`: SIGTERM drains in-flight requests within the grace period.
//! - `admin`: the bearer-token guard on the admin API, and its loopback default.
//! - `fleet`: snapshots of several proxies merge into one advice, in any order.
//! - `upstream`: a PostgreSQL upstream that is down, then comes back.
//! - this file: helpers shared by those modules.

#[path = "ops/admin.rs"]
mod admin;
#[path = "ops/config.rs"]
mod config;
#[path = "ops/fleet.rs"]
mod fleet;
#[path = "ops/shutdown.rs"]
mod shutdown;
#[path = "ops/sink.rs"]
mod sink;
#[path = "ops/state.rs"]
mod state;
#[path = "ops/upstream.rs"]
mod upstream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use indextap_tests::capture::{poll_until, shapes_document};
// A loopback address with a fresh free port.
use indextap_tests::ports::free_addr as loopback;
use indextap_tests::tools::assert_success;
use indextap_tests::IndextapProcess;

/// How long an observation may take to reach the admin API.
const OBSERVED_WITHIN: Duration = Duration::from_secs(10);

/// The `indextap` binary, with none of the caller's `INDEXTAP_*` variables: indextap rejects
/// unknown ones, and a test states every variable it means to pass.
fn indextap() -> Command {
    let mut command = Command::new(IndextapProcess::binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("INDEXTAP_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// Runs an `indextap` subcommand to completion.
fn run_cli(args: &[&str]) -> Output {
    indextap()
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run indextap {args:?}: {err}"))
}

/// Runs an `indextap` subcommand that must succeed; its stdout.
#[track_caller]
fn run_cli_ok(args: &[&str]) -> String {
    assert_success(&run_cli(args), &format!("indextap {args:?}"))
}

/// Writes `text` to `dir/name`; its path.
fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
    path
}

/// Polls `probe` until it returns `Some`, or panics after `timeout` naming `what`.
#[track_caller]
fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    poll_until(what, timeout, || probe().ok_or_else(String::new))
}

/// Sends `signal` (`TERM`, `KILL`) to `pid` through kill(1): this crate has no `unsafe`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Waits for the proxy to exit by itself; its status and how long that took.
#[track_caller]
fn wait_for_exit(proxy: &mut IndextapProcess, timeout: Duration) -> (ExitStatus, Duration) {
    let started = Instant::now();
    let status = wait_until("the proxy exits", timeout, || proxy.exited());
    (status, started.elapsed())
}

/// One shape as `/api/v1/shapes` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShapeCount {
    collection: String,
    command: String,
    count: u64,
}

/// Every shape's count, by shape id, from a `/api/v1/shapes` document.
fn shape_counts(shapes: &serde_json::Value) -> BTreeMap<String, ShapeCount> {
    let list = shapes["shapes"]
        .as_array()
        .unwrap_or_else(|| panic!("no shapes array in {shapes}"));
    list.iter()
        .map(|shape| {
            let text = |key: &str| shape[key].as_str().unwrap_or_default().to_owned();
            (
                text("shape_id"),
                ShapeCount {
                    collection: text("collection"),
                    command: text("command"),
                    count: shape["count"].as_u64().unwrap_or_default(),
                },
            )
        })
        .collect()
}

/// The proxy's current shape counts.
fn current_counts(proxy: &IndextapProcess) -> BTreeMap<String, ShapeCount> {
    shape_counts(&shapes_document(proxy))
}

/// The count of the `command` shapes on `collection`, summed over shapes.
fn count_of(counts: &BTreeMap<String, ShapeCount>, collection: &str, command: &str) -> u64 {
    counts
        .values()
        .filter(|shape| shape.collection == collection && shape.command == command)
        .map(|shape| shape.count)
        .sum()
}

/// Waits until every `(collection, command, count)` is exactly what the proxy reports;
/// then every shape's count.
#[track_caller]
fn wait_for_counts(
    proxy: &IndextapProcess,
    expected: &[(&str, &str, u64)],
) -> BTreeMap<String, ShapeCount> {
    poll_until("the shape counts", OBSERVED_WITHIN, || {
        let last = current_counts(proxy);
        let seen: Vec<u64> = expected
            .iter()
            .map(|(collection, command, _)| count_of(&last, collection, command))
            .collect();
        if expected
            .iter()
            .zip(&seen)
            .all(|((_, _, want), got)| want == got)
        {
            Ok(last)
        } else {
            Err(format!(
                "expected counts {expected:?}, the proxy reports {seen:?}: {last:?}"
            ))
        }
    })
}

/// Whether something accepts TCP connections on `addr` right now.
fn accepts(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Runs `times` finds on each collection of database `app` through `uri`: one shape per
/// collection (`{sku: <string>}`, newest first).
async fn mongo_finds(uri: &str, work: &[(&str, u64)]) {
    let client = mongodb::Client::with_uri_str(uri)
        .await
        .unwrap_or_else(|err| panic!("client for {uri}: {err}"));
    let db = client.database("app");
    for (collection, times) in work {
        let collection = db.collection::<bson::Document>(collection);
        for _ in 0..*times {
            let _found: Vec<bson::Document> = collection
                .find(bson::doc! { "sku": "a-1" })
                .sort(bson::doc! { "at": -1 })
                .await
                .expect("find through the proxy")
                .try_collect()
                .await
                .expect("cursor");
        }
    }
}

/// `indextap proxy` in front of one MongoDB server, with more arguments.
fn mongo_proxy(upstream: SocketAddr, listen: SocketAddr, more: &[&str]) -> IndextapProcess {
    IndextapProcess::start_with(indextap_tests::IndextapOptions::mongo(listen, upstream).args(more))
}
