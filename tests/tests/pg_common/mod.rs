//! Shared by the PostgreSQL end-to-end tests (`pg_wire`, `pg_tls`, `pg_malformed`): a real
//! PostgreSQL behind the real `indextap` binary, client tools pointed at the proxy, and
//! polling of the admin API.
//!
//! ## Layout
//! - [`PgBehindProxy`]: a [`Postgres`] and an [`IndextapProcess`] in front of it.
//! - [`psql`] / [`pgbench`]: the client tools, run against any connection string.
//! - [`shapes`], [`writes`], [`wait_for_shapes`]: `/api/v1/shapes`, polled.
//! - [`metric_value`], [`wait_for_metric`]: one sample from `/metrics`.
//! - [`raw`]: a raw socket that speaks the protocol's framing.
#![allow(dead_code, unreachable_pub)]

pub mod raw;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use indextap_tests::ports::free_addr;
use indextap_tests::postgres::{bin_dir, CLIENT_ENV, SUPERUSER};
use indextap_tests::{IndextapProcess, Postgres, PostgresOptions};
use serde_json::Value;

/// How long observations may take to reach the aggregator.
pub const CAPTURE_TIMEOUT: Duration = Duration::from_secs(15);

/// A PostgreSQL cluster with `indextap proxy` in front of it.
pub struct PgBehindProxy {
    // Declared first: the proxy stops before the server it fronts.
    pub proxy: IndextapProcess,
    pub server: Postgres,
    pub listen: SocketAddr,
}

impl PgBehindProxy {
    /// A plain cluster and a proxy with default settings.
    pub fn start() -> Self {
        Self::start_with(PostgresOptions::default(), &[])
    }

    /// A cluster started with `options` and a proxy given `extra` arguments (TLS flags).
    pub fn start_with(options: PostgresOptions, extra: &[&str]) -> Self {
        let server = Postgres::start_with(options);
        let listen = free_addr();
        let admin = free_addr();
        let upstream = server.addr().to_string();
        let listen_text = listen.to_string();
        let admin_text = admin.to_string();
        let mut args = vec![
            "proxy",
            "--pg-listen",
            &listen_text,
            "--pg-upstream",
            &upstream,
            "--admin-listen",
            &admin_text,
        ];
        args.extend_from_slice(extra);
        let proxy = IndextapProcess::start(&args);
        Self {
            proxy,
            server,
            listen,
        }
    }

    /// A key=value connection string for `db` as the superuser, through the proxy.
    pub fn conninfo(&self, db: &str) -> String {
        self.server.connection_string_via(self.listen, db)
    }

    /// The same, straight to the server.
    pub fn direct_conninfo(&self, db: &str) -> String {
        self.server.connection_string(db)
    }

    /// tokio-postgres through the proxy, its connection driven on a task.
    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        connect(&self.conninfo(db)).await
    }

    /// tokio-postgres straight to the server.
    pub async fn connect_direct(&self, db: &str) -> tokio_postgres::Client {
        connect(&self.direct_conninfo(db)).await
    }

    /// `psql -c statement` through the proxy; panics with psql's stderr on failure.
    pub fn psql_ok(&self, db: &str, statement: &str) -> String {
        let output = psql(&self.conninfo(db), &["-c", statement]);
        assert_success(&output, statement);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The proxy's `/metrics` text.
    pub fn metrics(&self) -> String {
        self.proxy
            .get_text("/metrics")
            .unwrap_or_else(|err| panic!("GET /metrics: {err:#}"))
    }

    /// The proxy's listener name (the default: `postgres-<listen>`).
    pub fn listener(&self) -> String {
        format!("postgres-{}", self.listen)
    }

    /// Panics unless `/healthz` answers 200.
    pub fn assert_healthy(&self) {
        let reply = self
            .proxy
            .get("/healthz")
            .unwrap_or_else(|err| panic!("/healthz does not answer: {err:#}"));
        assert_eq!(reply.status, 200, "/healthz: {}", reply.body);
    }
}

/// tokio-postgres with `NoTls`, its connection driven on a task; panics when it cannot connect.
pub async fn connect(conninfo: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|err| panic!("connect {conninfo}: {err:?}"));
    tokio::spawn(connection);
    client
}

/// A client tool, preferring the server's own version of it, with a clean environment.
fn client_tool(tool: &str) -> Command {
    let bundled = bin_dir().map(|dir| dir.join(tool));
    let program = match bundled {
        Some(path) if path.is_file() => path,
        _ => PathBuf::from(tool),
    };
    let mut command = Command::new(program);
    for variable in CLIENT_ENV {
        command.env_remove(variable);
    }
    command.env("PGCONNECT_TIMEOUT", "10");
    command
}

/// `psql -X -At -v ON_ERROR_STOP=1 -d conninfo args...`; the output whatever the status.
pub fn psql(conninfo: &str, args: &[&str]) -> Output {
    client_tool("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo])
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run psql: {err}"))
}

/// `pgbench args... dbname` with host and port from `addr`, as the superuser.
pub fn pgbench(addr: SocketAddr, db: &str, args: &[&str]) -> Output {
    client_tool("pgbench")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-U", SUPERUSER])
        .args(args)
        .arg(db)
        .output()
        .unwrap_or_else(|err| panic!("cannot run pgbench: {err}"))
}

/// Panics with the tool's stderr unless it exited 0.
#[track_caller]
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The shapes `/api/v1/shapes` lists now.
pub fn shapes(proxy: &IndextapProcess) -> Vec<Value> {
    let document = proxy
        .shapes_document()
        .unwrap_or_else(|err| panic!("GET /api/v1/shapes: {err:#}"));
    document["shapes"].as_array().cloned().unwrap_or_default()
}

/// The write records `/api/v1/shapes` lists now.
pub fn writes(proxy: &IndextapProcess) -> Vec<Value> {
    let document = proxy
        .shapes_document()
        .unwrap_or_else(|err| panic!("GET /api/v1/shapes: {err:#}"));
    document["writes"].as_array().cloned().unwrap_or_default()
}

/// Polls `/api/v1/shapes` until `done` holds for the shape list; panics with the last list
/// after [`CAPTURE_TIMEOUT`].
#[track_caller]
pub fn wait_for_shapes(
    proxy: &IndextapProcess,
    what: &str,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + CAPTURE_TIMEOUT;
    loop {
        let current = shapes(proxy);
        if done(&current) {
            return current;
        }
        if Instant::now() >= deadline {
            let listing = serde_json::to_string_pretty(&current).unwrap_or_default();
            panic!("{what}: not seen within {CAPTURE_TIMEOUT:?}; shapes:\n{listing}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A numeric field of a shape (`count`, `errors`, `returned`).
#[track_caller]
pub fn field(shape: &Value, name: &str) -> u64 {
    shape[name]
        .as_u64()
        .unwrap_or_else(|| panic!("shape has no numeric {name}: {shape:#}"))
}

/// The value of the sample `name{labels}` in a Prometheus exposition, where `labels` is a
/// list of `key="value"` pairs that must all be present (in any order).
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, label_text) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let all_present = labels
                .iter()
                .all(|(key, wanted)| label_text.contains(&format!("{key}=\"{wanted}\"")));
            if !all_present {
                return None;
            }
            value.parse().ok()
        })
}

/// Polls `/metrics` until the sample reaches `at_least`; panics with the exposition otherwise.
#[track_caller]
pub fn wait_for_metric(
    proxy: &IndextapProcess,
    name: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> f64 {
    let deadline = Instant::now() + CAPTURE_TIMEOUT;
    loop {
        let text = proxy
            .get_text("/metrics")
            .unwrap_or_else(|err| panic!("GET /metrics: {err:#}"));
        if let Some(value) = metric_value(&text, name, labels) {
            if value >= at_least {
                return value;
            }
        }
        if Instant::now() >= deadline {
            panic!("{name}{labels:?} never reached {at_least} within {CAPTURE_TIMEOUT:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
