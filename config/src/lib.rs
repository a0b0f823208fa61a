//! indextap's configuration: one typed, validated [`Config`] from a TOML file, `INDEXTAP_*`
//! environment variables and command-line flags.
//!
//! Precedence is file < environment < command line. Unknown keys and unknown `INDEXTAP_*`
//! variables are errors that name the culprit, and [`load()`] validates the result, listing
//! every problem at once with the setting's path (`postgres.listeners[0].listen`), so a
//! proxy that starts is a proxy whose configuration made sense. See
//! `config/indextap.example.toml` for every key, documented.
//!
//! ```no_run
//! let config = indextap_config::load(
//!     Some(std::path::Path::new("indextap.toml")),
//!     std::env::vars_os(),
//!     indextap_config::CliOverrides::default(),
//! )?;
//! # Ok::<(), indextap_config::ConfigError>(())
//! ```
//!
//! ## Layout
//! - [`model`]: the configuration types and their defaults.
//! - `load`: [`load()`], file → environment → command line → validation.
//! - `env`: the `INDEXTAP_*` variables.
//! - `layer`: what the environment and the CLI may override, and how ([`CliOverrides`]).
//! - `validate`: the rules ([`Config::validate`]).
//! - [`sink`]: the snapshot sink's address ([`SinkTarget`]), shared with the CLI's `--from`.
//! - [`error`]: why loading fails ([`ConfigError`]).
// Lints: `[workspace.lints]` in the root Cargo.toml, and every public item documented.
#![warn(missing_docs)]

mod env;
pub mod error;
mod layer;
mod load;
pub mod model;
pub mod sink;
mod validate;

pub use env::{CONFIG_FILE_ENV, ENV_PREFIX};
pub use error::ConfigError;
pub use layer::CliOverrides;
pub use load::{load, parse_toml, read_file};
pub use model::{
    AdminConfig, AdviceConfig, CaptureConfig, Config, ListenerTls, LogConfig, LogFormat,
    MongoConfig, MongoListener, MongoVerify, PostgresConfig, PostgresListener, RuntimeConfig,
    Secret, ShutdownConfig, SnapshotSinkConfig, StateConfig, TlsMode, UpstreamTls,
    DEFAULT_MAX_AGGREGATE_BYTES, DEFAULT_MAX_INSPECT_TOTAL_BYTES, MAX_THREADS,
    MIN_MAX_AGGREGATE_BYTES,
};
pub use sink::{SinkTarget, SINK_FORMS};
