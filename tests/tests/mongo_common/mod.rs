//! Shared by the MongoDB end-to-end tests (`mongo_wire`, `mongo_raw_frames`, `mongo_tls`,
//! `mongo_shapes`, `mongo_advice`, `leak`): the real `indextap` binary in front of an upstream
//! (or of a SecantusDB of its own, with the Rust driver pointed at both), the admin API read
//! back, and MongoDB messages read out of recorded bytes.
//!
//! ## Layout
//! - [`recorder`]: [`TestRecorder`], a byte-copying relay that records what it forwards.
//! - [`start_proxy`], [`MongoProxy`]: `indextap proxy` in front of any upstream address.
//! - [`MongoBehindProxy`]: a SecantusDB, the proxy, a client through it and one around it.
//! - [`shapes_on`], [`writes_on`], [`executions`], [`filter_fields`]: `/api/v1/shapes` read.
//! - polling and `/metrics`: re-exported from `indextap_tests::{capture, metrics}`.
//! - [`split_frames`], [`reply_document`]: MongoDB messages in a recorded byte stream.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod recorder;

use std::net::SocketAddr;

use bson::Document;
use futures::TryStreamExt;
use indextap_tests::ports::free_addr;
use indextap_tests::{IndextapOptions, IndextapProcess, SecantusDb, SecantusOptions};
use mongodb::{Client, Cursor};
use serde_json::Value;

pub use indextap_tests::capture::{shapes, wait_for_shapes, wait_until, CAPTURE_TIMEOUT};
pub use indextap_tests::metrics::{metric, wait_for_metric};
pub use recorder::{Recording, TestRecorder};

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
    start_proxy_with(upstream, extra, &[])
}

/// [`start_proxy`] with `env` variables too.
pub fn start_proxy_with(upstream: SocketAddr, extra: &[&str], env: &[(&str, &str)]) -> MongoProxy {
    let listen = free_addr();
    let options = env.iter().fold(
        IndextapOptions::mongo(listen, upstream).args(extra),
        |options, (key, value)| options.env(key, value),
    );
    MongoProxy {
        process: IndextapProcess::start_with(options),
        listen,
    }
}

/// A SecantusDB with `indextap proxy` in front of it.
pub struct MongoBehindProxy {
    // Declared first: the clients and the proxy go before the server they talk to.
    pub client: Client,
    pub direct: Client,
    pub proxy: IndextapProcess,
    pub server: SecantusDb,
    pub listen: SocketAddr,
}

impl MongoBehindProxy {
    /// A standalone server and a proxy with default settings.
    pub async fn start() -> Self {
        Self::start_with(&[], &[]).await
    }

    /// A standalone server and a proxy given `extra` arguments and `env` variables.
    pub async fn start_with(extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_proxy(extra, env, false).await
    }

    /// The same, with the server named as the proxy's `--mongo-admin-uri` (which the usage
    /// baseline of drop advice needs: without it the proxy never reads the catalog unasked).
    pub async fn start_with_admin_uri(extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_proxy(extra, env, true).await
    }

    async fn start_proxy(extra: &[&str], env: &[(&str, &str)], admin_uri: bool) -> Self {
        let server = SecantusDb::start(SecantusOptions::standalone());
        let uri = server.uri();
        let mut extra = extra.to_vec();
        if admin_uri {
            extra.extend(["--mongo-admin-uri", &uri]);
        }
        let MongoProxy { process, listen } = start_proxy_with(server.addr(), &extra, env);
        let client = Client::with_uri_str(server.uri_via(listen))
            .await
            .unwrap_or_else(|err| panic!("client through the proxy at {listen}: {err}"));
        let direct = server.client().await;
        Self {
            client,
            direct,
            proxy: process,
            server,
            listen,
        }
    }

    /// Inserts `documents` into `database.collection` on the server itself (traffic the proxy
    /// never sees); the collection as reached through the proxy.
    pub async fn seeded(
        &self,
        database: &str,
        collection: &str,
        documents: Vec<Document>,
    ) -> mongodb::Collection<Document> {
        self.direct
            .database(database)
            .collection::<Document>(collection)
            .insert_many(documents)
            .await
            .unwrap_or_else(|err| panic!("seeding {database}.{collection}: {err}"));
        self.client.database(database).collection(collection)
    }

    /// `http://ADMIN`, as the CLI's `--from` takes it.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.proxy.admin_addr())
    }

    /// `/api/v1/shapes` now.
    pub fn shapes_document(&self) -> Value {
        indextap_tests::capture::shapes_document(&self.proxy)
    }

    /// `/api/v1/recommendations` (JSON) now.
    pub fn recommendations(&self) -> Value {
        self.proxy
            .get_json("/api/v1/recommendations")
            .unwrap_or_else(|err| panic!("GET /api/v1/recommendations: {err:#}"))
    }
}

/// The `/api/v1/shapes` entries on `database.collection`.
pub fn shapes_on<'a>(document: &'a Value, database: &str, collection: &str) -> Vec<&'a Value> {
    document["shapes"]
        .as_array()
        .map(|shapes| {
            shapes
                .iter()
                .filter(|entry| entry["database"] == database && entry["collection"] == collection)
                .collect()
        })
        .unwrap_or_default()
}

/// The `writes` entry of `database.collection`, if any write was seen there.
pub fn writes_on<'a>(document: &'a Value, database: &str, collection: &str) -> Option<&'a Value> {
    document["writes"].as_array().and_then(|writes| {
        writes.iter().find(|entry| {
            entry["namespace"]["database"] == database
                && entry["namespace"]["collection"] == collection
        })
    })
}

/// Reads a cursor to its end.
pub async fn drain(cursor: Cursor<Document>) -> mongodb::error::Result<Vec<Document>> {
    cursor.try_collect().await
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
