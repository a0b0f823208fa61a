//! Shared by the MongoDB end-to-end tests of capture and advice (`mongo_shapes`,
//! `mongo_advice`, `leak`): a SecantusDB behind the real `indextap` binary, the Rust driver
//! pointed at the proxy (and one pointed straight at the server, to seed data and check what
//! really arrived), and polling of the admin API.
//!
//! Observations reach the aggregator asynchronously, so every check on the admin API polls
//! until its condition holds or [`CAPTURE_TIMEOUT`] passes, then fails with what it saw last.
//!
//! ## Layout
//! - [`MongoBehindProxy`]: the server, the proxy, and the two clients.
//! - [`wait_until`]: poll a check until it passes.
//! - [`shapes_on`], [`writes_on`]: the `/api/v1/shapes` entries of one collection.
//! - [`drain`]: read a cursor to its end.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bson::Document;
use futures::TryStreamExt;
use indextap_tests::ports::free_addr;
use indextap_tests::{IndextapOptions, IndextapProcess, SecantusDb, SecantusOptions};
use mongodb::{Client, Cursor};
use serde_json::Value;

/// How long observations may take to reach the aggregator.
pub const CAPTURE_TIMEOUT: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

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
        let listen = free_addr();
        let admin = free_addr();
        let mut args: Vec<String> = [
            "proxy",
            "--mongo-listen",
            &listen.to_string(),
            "--mongo-upstream",
            &server.addr().to_string(),
            "--admin-listen",
            &admin.to_string(),
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        args.extend(extra.iter().map(|arg| arg.to_string()));
        if admin_uri {
            args.extend(["--mongo-admin-uri".to_string(), server.uri()]);
        }
        let proxy = IndextapProcess::start_with(IndextapOptions {
            args,
            admin: Some(admin),
            env: env
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            ..IndextapOptions::default()
        });
        let client = Client::with_uri_str(server.uri_via(listen))
            .await
            .unwrap_or_else(|err| panic!("client through the proxy at {listen}: {err}"));
        let direct = server.client().await;
        Self {
            client,
            direct,
            proxy,
            server,
            listen,
        }
    }

    /// `http://ADMIN`, as the CLI's `--from` takes it.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.proxy.admin_addr())
    }

    /// `/api/v1/shapes` now.
    pub fn shapes_document(&self) -> Value {
        self.proxy
            .shapes_document()
            .unwrap_or_else(|err| panic!("GET /api/v1/shapes: {err:#}"))
    }

    /// `/api/v1/recommendations` (JSON) now.
    pub fn recommendations(&self) -> Value {
        self.proxy
            .get_json("/api/v1/recommendations")
            .unwrap_or_else(|err| panic!("GET /api/v1/recommendations: {err:#}"))
    }
}

/// Polls `check` until it returns `Ok`, and returns that; panics after [`CAPTURE_TIMEOUT`] with
/// the last error, which should say what was expected and what was seen.
#[track_caller]
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + CAPTURE_TIMEOUT;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not seen within {CAPTURE_TIMEOUT:?}\n{last}")
            }
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
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
