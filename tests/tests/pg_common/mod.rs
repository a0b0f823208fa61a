//! Shared by the PostgreSQL end-to-end tests (`pg_wire`, `pg_tls`, `pg_malformed`): a real
//! PostgreSQL behind the real `indextap` binary, client tools pointed at the proxy, and
//! polling of the admin API.
//!
//! ## Layout
//! - [`PgBehindProxy`]: a [`Postgres`] and an [`IndextapProcess`] in front of it.
//! - [`psql`] / [`pgbench`]: the client tools, run against any connection string.
//! - [`shapes`], [`writes`], [`wait_for_shapes`]: `/api/v1/shapes`, polled (from
//!   `indextap_tests::capture`).
//! - [`metric_value`], [`wait_for_metric`]: `/metrics` (from `indextap_tests::metrics`).
//! - [`raw`]: a raw socket that speaks the protocol's framing.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod raw;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};

use indextap_tests::ports::free_addr;
pub use indextap_tests::postgres::connect;
use indextap_tests::postgres::{bin_dir, CLIENT_ENV, SUPERUSER};
use indextap_tests::{IndextapOptions, IndextapProcess, Postgres, PostgresOptions};
use serde_json::Value;

pub use indextap_tests::capture::{shapes, wait_for_shapes, wait_until, writes, CAPTURE_TIMEOUT};
pub use indextap_tests::metrics::{metric_value, wait_for_metric};
pub use indextap_tests::tools::assert_success;

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
        let proxy = IndextapProcess::start_with(
            IndextapOptions::postgres(listen, server.addr()).args(extra),
        );
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

/// A numeric field of a shape (`count`, `errors`, `returned`).
#[track_caller]
pub fn field(shape: &Value, name: &str) -> u64 {
    shape[name]
        .as_u64()
        .unwrap_or_else(|| panic!("shape has no numeric {name}: {shape:#}"))
}

/// A shape's `(count, returned, errors)`.
#[track_caller]
pub fn tally(shape: &Value) -> (u64, u64, u64) {
    (
        field(shape, "count"),
        field(shape, "returned"),
        field(shape, "errors"),
    )
}
