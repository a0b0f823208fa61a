//! What the proxy captured, read back from its admin API, and the polling that waits for it.
//!
//! Observations reach the aggregator asynchronously, so a test polls until its condition
//! holds or a deadline passes, then fails with what it saw last.
//!
//! ## Layout
//! - [`wait_until`], [`poll_until`]: poll a check until it passes, or panic with its last
//!   complaint.
//! - [`shapes`], [`writes`], [`wait_for_shapes`]: `GET /api/v1/shapes`; [`write_counts`]: a
//!   write record without the time it measured.

use std::convert::Infallible;
use std::time::Duration;

use serde_json::Value;

use crate::poll::poll;
use crate::IndextapProcess;

/// How long an observation may take to show in the admin API.
pub const CAPTURE_TIMEOUT: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Ok`, and returns that; after `timeout` panics naming
/// `what`, with the last error (which should say what was expected and what was seen).
#[track_caller]
pub fn poll_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let mut last = String::new();
    let found = poll(timeout, POLL_INTERVAL, || {
        Ok::<_, Infallible>(check().map_err(|complaint| last = complaint).ok())
    });
    match found {
        Ok(Some(value)) => value,
        _ => panic!("{what}: not seen within {timeout:?}\n{last}"),
    }
}

/// [`poll_until`] within [`CAPTURE_TIMEOUT`].
#[track_caller]
pub fn wait_until<T>(what: &str, check: impl FnMut() -> Result<T, String>) -> T {
    poll_until(what, CAPTURE_TIMEOUT, check)
}

/// `GET /api/v1/shapes`, every page ([`IndextapProcess::shapes_document`]); panics when it
/// does not answer 2xx.
pub fn shapes_document(proxy: &IndextapProcess) -> Value {
    proxy
        .shapes_document()
        .unwrap_or_else(|err| panic!("GET /api/v1/shapes: {err:#}"))
}

/// The shapes `/api/v1/shapes` lists now.
pub fn shapes(proxy: &IndextapProcess) -> Vec<Value> {
    list(shapes_document(proxy), "shapes")
}

/// The write records `/api/v1/shapes` lists now.
pub fn writes(proxy: &IndextapProcess) -> Vec<Value> {
    list(shapes_document(proxy), "writes")
}

/// A write record of `/api/v1/shapes` without its `insert_micros` (the inserts' measured
/// time, which varies from run to run), once checked: present when something was inserted,
/// and only then.
pub fn write_counts(write: &Value) -> Result<Value, String> {
    let mut counts = write.clone();
    let timed = counts
        .as_object_mut()
        .and_then(|fields| fields.remove("insert_micros"))
        .and_then(|micros| micros.as_u64())
        .is_some_and(|micros| micros > 0);
    let inserted = write["inserts"].as_u64().unwrap_or(0) > 0;
    if timed == inserted {
        Ok(counts)
    } else {
        Err(format!("the inserts' time is wrong in {write}"))
    }
}

fn list(mut document: Value, key: &str) -> Vec<Value> {
    match document[key].take() {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

/// Polls [`shapes`] until `done` holds for the list, and returns it; panics with the last
/// list after [`CAPTURE_TIMEOUT`].
#[track_caller]
pub fn wait_for_shapes(
    proxy: &IndextapProcess,
    what: &str,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    wait_until(what, || {
        let current = shapes(proxy);
        if done(&current) {
            Ok(current)
        } else {
            let listing = serde_json::to_string_pretty(&current).unwrap_or_default();
            Err(format!("shapes:\n{listing}"))
        }
    })
}
