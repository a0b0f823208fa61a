//! indextap's proxy: bytes, connections and time.
//!
//! Bytes are forwarded first and unchanged; inspection works on a copy, off the data path,
//! through bounded channels. A decode failure stops the inspection of that connection, never
//! its forwarding.
//!
//! ## Layout
//! - [`framing`]: splits a byte stream into frames without copying, with a size cap.
//! - [`budget`]: the process-wide budget of bytes held for frames gathered across reads.
//! - [`relay`]: the data path: bidirectional copy, taps, the one MongoDB reply rewrite.
//! - [`tap`]: what crosses from the data path to inspection ([`tap::Inspector`]).
//! - [`mongo`], [`postgres`]: wire decoding per engine, into [`indextap_analyzer::command`].
//! - [`pipeline`]: the bounded channel into the analyzer, and the workers behind it.
//! - [`catalog`]: existing indexes and planner verification, read from the databases.
//! - [`admin`]: the HTTP admin API and Prometheus metrics.
//! - [`state`]: the state file (periodic, atomic, reloaded on start), the state directory's
//!   lock, and the keeper that also pushes to the snapshot sink.
//! - [`sink`]: the snapshot sink (a PostgreSQL table, S3, a directory), read back by the CLI.
//! - [`tls`]: rustls material both engines share (the proxy's certificate, upstream TLS).
//! - [`server`]: listeners, accept loops, lifecycle (drain on SIGTERM).
//! - [`threads`]: the data threads, single-threaded runtimes; a connection stays on one.
//! - [`error`]: errors that say which side they came from.
//! - [`fuzzing`]: the entry points of the fuzz targets that decode wire traffic (`fuzz/`).
// Lints: `[workspace.lints]` in the root Cargo.toml; the wire decoders add their own.

pub mod admin;
pub mod budget;
pub mod catalog;
pub mod cli;
pub mod error;
pub mod framing;
pub mod fuzzing;
pub mod mongo;
pub mod pipeline;
pub mod postgres;
pub mod relay;
pub mod server;
pub mod sink;
pub mod state;
pub mod tap;
pub mod threads;
pub mod tls;
