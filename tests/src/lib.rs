//! Fixtures for indextap's end-to-end tests: real servers, real drivers, the real binary.
//!
//! Every fixture is a guard: it owns a child process (and a temporary directory), knows how to
//! reach it, and stops it on `Drop`. A fixture that cannot start **panics** with the reason and
//! the tail of the child's log: a test that needs a server must fail, never silently pass.
//! With `CI=true` the panic also says so, because there the tools are expected to be installed
//! (`.ci/run` installs them).
//!
//! Starting is synchronous (it blocks until the server answers), so a fixture can be started
//! from a plain `#[test]` or from inside `#[tokio::test]` alike.
//!
//! ## Layout
//! - [`ports`]: free loopback ports and waiting for a port to accept connections.
//! - [`secantus`]: [`SecantusDb`], a MongoDB-wire server (standalone, replica set, SCRAM auth).
//! - [`postgres`]: [`Postgres`], an ephemeral PostgreSQL cluster (trust + one SCRAM user,
//!   optional TLS), with `psql` / `pgbench` helpers.
//! - [`proxy`]: [`IndextapProcess`], the `indextap` binary run as a child, with its logs and
//!   its admin HTTP API.
//! - [`certs`]: [`TestCertificate`], a self-signed certificate and key as PEM files.
//! - [`tools`]: client tools run as children: pymongo scripts and mongosh.
//! - [`compressing_front`]: [`CompressingFront`], a fake that gives SecantusDB OP_COMPRESSED
//!   (snappy, zlib, zstd) by decompressing requests and compressing their replies.
//! - [`http`]: small blocking HTTP client calls (ureq) for admin APIs.
//! - [`capture`]: `/api/v1/shapes` read back, and polling until a check passes.
//! - [`metrics`]: `/metrics` parsed (prometheus-parse) and looked up one way.
//! - [`poll`]: the one wait loop, for whatever happens in its own time.
//! - [`service`]: [`service::LoopbackService`], an in-test TCP service on its own thread (the
//!   compressing front and the MongoDB tests' recorder).
//! - [`markers`]: unique strings and numbers to plant in traffic, and [`assert_absent`] to
//!   prove they never come out again.
//! - [`transcript`]: what a raw client hears (bytes and the close), to compare a server heard
//!   through the proxy with the same server heard directly.
//! - [`leak`]: every place indextap's output can be read (admin API, CLI, logs, state file),
//!   gathered and searched for markers.
//! - `child` (private): the shared child-process guard (log file, SIGTERM then kill).
// Lints: `[workspace.lints]` in the root Cargo.toml.

pub mod capture;
pub mod certs;
mod child;
pub mod compressing_front;
pub mod http;
pub mod leak;
pub mod markers;
pub mod metrics;
pub mod poll;
pub mod ports;
pub mod postgres;
pub mod proxy;
pub mod secantus;
pub mod service;
pub mod tools;
pub mod transcript;

use std::path::PathBuf;

pub use certs::TestCertificate;
pub use compressing_front::CompressingFront;
pub use markers::{assert_absent, marker_number, marker_string, Markers};
pub use ports::{free_port, wait_for_port};
pub use postgres::{Postgres, PostgresOptions};
pub use proxy::{IndextapOptions, IndextapProcess};
pub use secantus::{Credentials, SecantusDb, SecantusOptions};

/// True when the environment says we run in CI (`CI=true` or `CI=1`).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// Ends the test: `what` could not start. Always a panic, so a test that needs a server can
/// never pass without one. Outside CI the message also says how to get the tools.
#[track_caller]
pub(crate) fn startup_failed(what: &str, reason: &str, log_tail: &str, hint: &str) -> ! {
    let context = if is_ci() {
        "CI=true: every fixture must start here".to_string()
    } else {
        format!("hint: {hint}")
    };
    panic!(
        "{what} could not start: {reason}\n({context})\n--- last log lines ---\n{log_tail}\n--- end of log ---"
    );
}
