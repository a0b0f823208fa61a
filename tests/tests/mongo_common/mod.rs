//! Shared by the MongoDB data-path tests (`mongo_wire`, `mongo_raw_frames`): the proxy in
//! front of an upstream, a test recorder, reading frames back out of recorded bytes, and
//! polling the admin API.
//!
//! ## Layout
//! - [`recorder`]: [`TestRecorder`], a byte-copying relay that records what it forwards.
//! - [`start_proxy`]: `indextap proxy` with a MongoDB listener on a fresh port.
//! - [`metric`], [`wait_for_metric`]: one family's samples from `/metrics`, summed.
//! - [`shapes`], [`wait_for_shapes`], [`filter_fields`]: `/api/v1/shapes`, polled.
//! - [`split_frames`], [`reply_document`]: MongoDB messages in a recorded byte stream.
#![allow(dead_code, unreachable_pub)]

pub mod recorder;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bson::Document;
use indextap_tests::ports::free_addr;
use indextap_tests::IndextapProcess;
use serde_json::Value;

#[allow(unused_imports)] // Each test file uses a different part.
pub use recorder::{Recording, TestRecorder};

/// How long observations and counters may take to show in the admin API.
pub const CAPTURE_TIMEOUT: Duration = Duration::from_secs(15);

/// A running proxy and the address its MongoDB listener accepts clients on.
pub struct MongoProxy {
    pub process: IndextapProcess,
    pub listen: SocketAddr,
}

impl MongoProxy {
    /// The proxy's `/healthz` answers 200 and the process has not exited.
    pub fn assert_alive(&mut self) {
        assert!(
            self.process.exited().is_none(),
            "the proxy exited:\n{}",
            self.process.logs()
        );
        let health = self.process.get("/healthz").expect("/healthz answers");
        assert_eq!(health.status, 200, "{}", health.body);
    }
}

/// `indextap proxy` listening on a fresh port in front of `upstream`, with `extra` arguments.
pub fn start_proxy(upstream: SocketAddr, extra: &[&str]) -> MongoProxy {
    let listen = free_addr();
    let admin = free_addr();
    let (listen_text, upstream_text, admin_text) =
        (listen.to_string(), upstream.to_string(), admin.to_string());
    let mut args = vec![
        "proxy",
        "--mongo-listen",
        &listen_text,
        "--mongo-upstream",
        &upstream_text,
        "--admin-listen",
        &admin_text,
    ];
    args.extend_from_slice(extra);
    MongoProxy {
        process: IndextapProcess::start(&args),
        listen,
    }
}

/// The sum of every sample of `family` (e.g. `indextap_decode_errors_total`) whose labels
/// include all of `labels`; 0 when there is none.
pub fn metric(proxy: &IndextapProcess, family: &str, labels: &[(&str, &str)]) -> f64 {
    let text = proxy.get_text("/metrics").expect("/metrics");
    metric_in(&text, family, labels)
}

/// [`metric`] over an exposition already fetched.
pub fn metric_in(text: &str, family: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, label_text) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if name != family {
                return None;
            }
            let matches = labels
                .iter()
                .all(|(key, value)| label_text.contains(&format!("{key}=\"{value}\"")));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .fold(0.0, |sum, value| sum + value)
}

/// Polls [`metric`] until it reaches `at_least`; panics with the exposition after
/// [`CAPTURE_TIMEOUT`].
pub fn wait_for_metric(
    proxy: &IndextapProcess,
    family: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> f64 {
    let deadline = Instant::now() + CAPTURE_TIMEOUT;
    loop {
        let text = proxy.get_text("/metrics").expect("/metrics");
        let value = metric_in(&text, family, labels);
        if value >= at_least {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("{family}{labels:?} is {value}, expected at least {at_least}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every shape in `/api/v1/shapes`.
pub fn shapes(proxy: &IndextapProcess) -> Vec<Value> {
    let document = proxy.shapes_document().expect("/api/v1/shapes");
    document["shapes"].as_array().cloned().unwrap_or_default()
}

/// Polls `/api/v1/shapes` until `done` holds; panics with the shapes after
/// [`CAPTURE_TIMEOUT`].
pub fn wait_for_shapes(
    proxy: &IndextapProcess,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + CAPTURE_TIMEOUT;
    loop {
        let found = shapes(proxy);
        if done(&found) {
            return found;
        }
        if Instant::now() >= deadline {
            let pretty = serde_json::to_string_pretty(&found).unwrap_or_default();
            panic!("{what}: not captured within {CAPTURE_TIMEOUT:?}; shapes:\n{pretty}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The executions counted for shapes of `command` on `collection` whose filter names every
/// field of `fields`.
pub fn executions(shapes: &[Value], command: &str, collection: &str, fields: &[&str]) -> u64 {
    shapes
        .iter()
        .filter(|shape| shape["command"] == command && shape["collection"] == collection)
        .filter(|shape| {
            let named = filter_fields(shape);
            fields.iter().all(|field| named.iter().any(|n| n == field))
        })
        .filter_map(|shape| shape["count"].as_u64())
        .sum()
}

/// The field names a shape's filter tests, in any depth of its predicate tree.
pub fn filter_fields(shape: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(field)) = map.get("field") {
                    out.push(field.clone());
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&shape["shape"]["filter"], &mut out);
    out
}

/// The whole MongoDB messages at the start of a byte stream (a trailing partial one is left
/// out).
pub fn split_frames(mut stream: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    while stream.len() >= 4 {
        let len = i32::from_le_bytes([stream[0], stream[1], stream[2], stream[3]]);
        let Ok(len) = usize::try_from(len) else { break };
        if len < 16 || len > stream.len() {
            break;
        }
        let (frame, rest) = stream.split_at(len);
        frames.push(frame);
        stream = rest;
    }
    frames
}

/// An int32 of a frame, little-endian.
pub fn frame_i32(frame: &[u8], at: usize) -> i32 {
    let bytes: [u8; 4] = frame[at..at + 4].try_into().expect("4 bytes");
    i32::from_le_bytes(bytes)
}

/// The reply document of an OP_MSG (its kind 0 section, first in every server reply) or
/// OP_REPLY (its first document) frame; `None` for anything else.
pub fn reply_document(frame: &[u8]) -> Option<Document> {
    let body = match frame_i32(frame, 12) {
        // flagBits, then the kind 0 byte.
        2013 if frame.get(20) == Some(&0) => frame.get(21..)?,
        // responseFlags, cursorID, startingFrom, numberReturned.
        1 => frame.get(36..)?,
        _ => return None,
    };
    Document::from_reader(body).ok()
}
