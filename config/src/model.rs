//! The configuration model: what `indextap.toml` may contain.
//!
//! Every struct rejects unknown keys, so a typo is an error that names the key rather than
//! a setting silently ignored. Every field has a default except a listener's `listen` and
//! `upstream`, which have no sensible one.
//!
//! ## Layout
//! - [`Config`]: the root, one field per TOML table.
//! - [`AdminConfig`], [`MongoConfig`] / [`MongoListener`], [`PostgresConfig`] /
//!   [`PostgresListener`], [`ListenerTls`] (both engines), [`CaptureConfig`],
//!   [`StateConfig`], [`SnapshotSinkConfig`], [`ShutdownConfig`], [`LogConfig`],
//!   [`AdviceConfig`], [`RuntimeConfig`]: the tables.
//! - [`TlsMode`], [`UpstreamTls`], [`LogFormat`], [`MongoVerify`]: the enumerations, with
//!   `FromStr` for the environment and the CLI and `Display`, from one keyword table each.
//! - [`Secret`]: a connection string that may hold a password; never shown by `Debug`.

use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[admin]`: the HTTP admin API and metrics.
    pub admin: AdminConfig,
    /// `[mongo]`: MongoDB listeners.
    pub mongo: MongoConfig,
    /// `[postgres]`: PostgreSQL listeners.
    pub postgres: PostgresConfig,
    /// `[capture]`: bounds on inspection and aggregation.
    pub capture: CaptureConfig,
    /// `[state]`: the periodic state file.
    pub state: StateConfig,
    /// `[snapshot_sink]`: where the aggregate is pushed so that it outlives the process.
    pub snapshot_sink: SnapshotSinkConfig,
    /// `[shutdown]`: draining on SIGTERM.
    pub shutdown: ShutdownConfig,
    /// `[log]`: log format and level.
    pub log: LogConfig,
    /// `[advice]`: how recommendations are chosen and verified.
    pub advice: AdviceConfig,
    /// `[runtime]`: the threads that carry the traffic.
    pub runtime: RuntimeConfig,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where the admin API listens (`IP:PORT` or `localhost:PORT`).
    pub listen: String,
    /// A file whose content (trimmed) is the bearer token the admin API requires.
    pub token_file: Option<PathBuf>,
    /// The name of an environment variable holding the bearer token.
    pub token_env: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".to_owned(),
            token_file: None,
            token_env: None,
        }
    }
}

/// `[mongo]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MongoConfig {
    /// A connection string used to read existing indexes and run `explain`. Optional: without
    /// it, advice is not checked against what exists.
    pub admin_uri: Option<Secret>,
    /// `[[mongo.listeners]]`.
    pub listeners: Vec<MongoListener>,
}

/// One MongoDB listener: clients connect to `listen`, bytes go to `upstream`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoListener {
    /// Where clients connect (`IP:PORT` or `localhost:PORT`).
    pub listen: String,
    /// The MongoDB server (`HOST:PORT`, hostnames allowed).
    pub upstream: String,
    /// The address written into `hello` replies in place of the upstream's, so that drivers
    /// keep talking through the proxy. Defaults to `listen` (filled in by [`crate::load()`]).
    #[serde(default)]
    pub advertise: Option<String>,
    /// A label for logs and metrics. Defaults to `mongo-<listen>` (filled in by
    /// [`crate::load()`]).
    #[serde(default)]
    pub name: Option<String>,
    /// What to do with a client that opens with a TLS handshake, and how to reach the
    /// upstream.
    #[serde(default)]
    pub tls: ListenerTls,
}

impl MongoListener {
    /// A listener with default settings.
    pub fn new(listen: impl Into<String>, upstream: impl Into<String>) -> Self {
        Self {
            listen: listen.into(),
            upstream: upstream.into(),
            advertise: None,
            name: None,
            tls: ListenerTls::default(),
        }
    }

    /// The address to advertise: `advertise`, or `listen` when unset.
    pub fn effective_advertise(&self) -> &str {
        self.advertise.as_deref().unwrap_or(&self.listen)
    }

    /// The label: `name`, or `mongo-<listen>` when unset.
    pub fn effective_name(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("mongo-{}", self.listen),
        }
    }
}

/// `[postgres]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// A connection string (URL or `key=value`) used to read `pg_index` and verify advice
    /// with HypoPG. Optional.
    pub admin_url: Option<Secret>,
    /// `[[postgres.listeners]]`.
    pub listeners: Vec<PostgresListener>,
}

/// One PostgreSQL listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresListener {
    /// Where clients connect (`IP:PORT` or `localhost:PORT`).
    pub listen: String,
    /// The PostgreSQL server (`HOST:PORT`, hostnames allowed).
    pub upstream: String,
    /// A label for logs and metrics. Defaults to `postgres-<listen>` (filled in by
    /// [`crate::load()`]).
    #[serde(default)]
    pub name: Option<String>,
    /// How `SSLRequest` is handled, and how to reach the upstream.
    #[serde(default)]
    pub tls: ListenerTls,
}

impl PostgresListener {
    /// A listener with default settings (TLS refused).
    pub fn new(listen: impl Into<String>, upstream: impl Into<String>) -> Self {
        Self {
            listen: listen.into(),
            upstream: upstream.into(),
            name: None,
            tls: ListenerTls::default(),
        }
    }

    /// The label: `name`, or `postgres-<listen>` when unset.
    pub fn effective_name(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("postgres-{}", self.listen),
        }
    }
}

/// `tls = { ... }` of a listener, MongoDB or PostgreSQL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerTls {
    /// What to do with a client's TLS: PostgreSQL's `SSLRequest`, or a MongoDB client's
    /// TLS handshake (MongoDB has no in-band upgrade: TLS starts on connect).
    pub mode: TlsMode,
    /// PEM certificate chain presented to clients (`terminate` only).
    pub cert_file: Option<PathBuf>,
    /// PEM private key for `cert_file` (`terminate` only).
    pub key_file: Option<PathBuf>,
    /// Whether the proxy speaks TLS to the upstream (`terminate` and `refuse`).
    pub upstream: UpstreamTls,
    /// PEM CA bundle that the upstream's certificate must chain to. Absent: any certificate
    /// is accepted, which is only acceptable in staging.
    pub upstream_ca_file: Option<PathBuf>,
}

/// What a listener does with a client's TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// PostgreSQL: answer `N`, so the client goes on in clear text (or gives up if it
    /// requires TLS). MongoDB: answer a TLS handshake with a TLS alert and close.
    #[default]
    Refuse,
    /// Terminate TLS at the proxy with its own certificate, so the traffic can be
    /// inspected. A MongoDB listener then requires TLS, as `mongod --tlsMode requireTLS`.
    Terminate,
    /// Relay TLS untouched to the server; such a session is not inspected.
    Passthrough,
}

/// Whether the proxy uses TLS towards the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamTls {
    /// Clear text.
    #[default]
    Disable,
    /// TLS, or fail the connection.
    Require,
}

/// The default analysis budget: 10,000 shapes of a mixed workload fit in it, and the whole
/// proxy stays within a 64 MiB sidecar limit (`scripts/bench-mem.sh` measures it).
pub const DEFAULT_MAX_AGGREGATE_BYTES: usize = 24 * 1024 * 1024;

/// The default cap on one inspected frame: larger frames are forwarded and inspected by their
/// header only. No larger than the total budget below, so that one such frame can be held.
pub const DEFAULT_MAX_INSPECT_BYTES: usize = 8 * 1024 * 1024;

/// The default budget of bytes gathered for inspection, all connections together: one
/// frame of the default inspection cap, or many smaller ones. With the aggregate's budget
/// and the proxy's baseline (about 52 MiB with 10,000 shapes and 2,000 idle connections) it
/// keeps a 64 MiB sidecar within its limit under multi-MiB statements (16 MiB took
/// `scripts/bench-mem.sh`'s large-frames phase to 66–70 MiB); a larger sidecar may raise it.
pub const DEFAULT_MAX_INSPECT_TOTAL_BYTES: usize = 8 * 1024 * 1024;

/// The smallest analysis budget accepted: below it, a busy proxy would evict shapes faster
/// than it could learn anything from them.
pub const MIN_MAX_AGGREGATE_BYTES: usize = 1024 * 1024;

/// `[capture]`: the bounds that keep memory and the data path safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Frames buffered per connection between the relay and its decoder. When full, frames
    /// are dropped (and counted), never waited for.
    pub channel_capacity: usize,
    /// Observations buffered between the decoders and the analyzer workers.
    pub analysis_queue: usize,
    /// Frames larger than this are forwarded but not inspected.
    pub max_inspect_bytes: usize,
    /// Bytes the whole process may hold for frames spread over several reads, which are
    /// gathered (copied) for inspection. A frame that finds no room is forwarded, inspected by
    /// its header only, and counted (`inspect_budget_exhausted`). At least
    /// `max_inspect_bytes`, so that the largest inspectable frame can be gathered.
    pub max_inspect_total_bytes: usize,
    /// Distinct shapes kept at most; past it, the coldest shapes are evicted into their
    /// collection's or table's "other" bucket.
    pub max_shapes: usize,
    /// Bytes the analysis state may hold: the shapes with their statistics, the other
    /// buckets, write counters and open cursors (seven eighths), and the SQL statement cache
    /// (one eighth). Past it, the coldest shapes are evicted as past `max_shapes`.
    pub max_aggregate_bytes: usize,
    /// Normalised SQL statements cached by text hash.
    pub sql_cache_entries: usize,
    /// Analyzer worker threads.
    pub workers: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 4096,
            analysis_queue: 65_536,
            max_inspect_bytes: DEFAULT_MAX_INSPECT_BYTES,
            max_inspect_total_bytes: DEFAULT_MAX_INSPECT_TOTAL_BYTES,
            max_shapes: 10_000,
            max_aggregate_bytes: DEFAULT_MAX_AGGREGATE_BYTES,
            sql_cache_entries: 4096,
            workers: 1,
        }
    }
}

/// `[state]`: where the aggregate survives restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Directory of the state file. Absent: nothing is saved.
    pub dir: Option<PathBuf>,
    /// Seconds between saves.
    pub interval_secs: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: None,
            interval_secs: 30,
        }
    }
}

impl StateConfig {
    /// `interval_secs` as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }
}

/// `[snapshot_sink]`: a store the aggregate is pushed to at every `state.interval_secs` and on
/// shutdown, one entry per sidecar, so that a fleet's data outlives its pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotSinkConfig {
    /// Where to push: `postgres://…` (a table, `indextap_snapshots`, in that database),
    /// `postgres` alone (the same through `postgres.admin_url`), `s3://bucket/prefix`
    /// (credentials from the usual `AWS_*` variables) or `file:///dir`. Absent: no sink.
    pub url: Option<Secret>,
    /// This sidecar's entry in the sink. Default: `$POD_NAME`, else `$HOSTNAME`, else the
    /// host name (filled in by the proxy at start).
    pub sidecar_id: Option<String>,
}

/// `[shutdown]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Seconds that open connections get to finish after SIGTERM before they are closed.
    pub grace_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { grace_secs: 10 }
    }
}

impl ShutdownConfig {
    /// `grace_secs` as a duration.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Human-readable lines or one JSON object per line.
    pub format: LogFormat,
    /// A `tracing` filter: a level (`info`) or directives (`indextap=debug,warn`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// `[runtime]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Data threads: each runs its connections from accept to close, relay and inspection
    /// together. 0 (the default) means half the cores the process may use, at least one.
    pub threads: usize,
}

/// The most data threads a configuration may ask for.
pub const MAX_THREADS: usize = 256;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// For log pipelines.
    Json,
}

/// `[advice]`: how recommendations are chosen, verified and pruned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdviceConfig {
    /// A verified candidate must cut the estimated cost of the shapes it serves by at least
    /// this many percent, or it is not recommended (the figure is in each `evidence`).
    pub min_gain_percent: u32,
    /// At most this many new indexes per table or collection, chosen greedily by what they
    /// save less what they cost on writes.
    pub max_indexes_per_namespace: usize,
    /// Unused existing indexes are proposed for dropping only after a capture window at
    /// least this long: a shorter one cannot tell a rarely used index from an unused one.
    pub drop_min_window_secs: u64,
    /// MongoDB verification on a sample of each collection, copied into a scratch database
    /// (it writes to the server, so it is off by default).
    pub mongo_verify: MongoVerify,
    /// Documents sampled per collection by `mongo_verify = "sample"` and by the statistics.
    pub mongo_sample_size: u32,
    /// What one index entry adds to one write, in microseconds, when it is pinned. Unset,
    /// it is measured: each namespace's inserts, timed per row, shared by the row and its
    /// existing indexes (20 µs where nothing was inserted through the proxy). A
    /// recommendation's net saving is its time saved less this times the writes it would
    /// maintain (the figure is in each `write_cost`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_write_cost_us: Option<u32>,
    /// At most this many PostgreSQL candidates are measured with HypoPG per recommendation
    /// run, heaviest first; a candidate that can no longer make its table's list is not
    /// measured at all. What is left is left out (never recommended unverified) and named in
    /// the notes.
    pub max_verified_candidates: usize,
}

impl Default for AdviceConfig {
    fn default() -> Self {
        Self {
            min_gain_percent: 20,
            max_indexes_per_namespace: 5,
            drop_min_window_secs: 24 * 60 * 60,
            mongo_verify: MongoVerify::Off,
            mongo_sample_size: 10_000,
            index_write_cost_us: None,
            max_verified_candidates: 500,
        }
    }
}

impl AdviceConfig {
    /// The shortest capture window that supports drop advice.
    pub fn drop_min_window(&self) -> Duration {
        Duration::from_secs(self.drop_min_window_secs)
    }
}

/// `advice.mongo_verify`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MongoVerify {
    /// No verification: MongoDB advice says it is not verified.
    #[default]
    Off,
    /// Copy a `$sample` of each collection into a scratch database and compare `explain`
    /// without and with each candidate.
    Sample,
}

/// A value that may embed a credential (a connection string with a password).
///
/// `Debug` and `Serialize` show `<redacted>`, so printing or exporting a [`Config`] never
/// leaks it; read the value through `Deref` (`config.mongo.admin_uri.as_deref()`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// A keyword that is not one of an enumeration's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected one of {expected}")]
pub struct UnknownKeyword {
    /// The accepted keywords, comma-separated.
    pub expected: &'static str,
}

/// `FromStr` (trimmed, any case) and `Display` for an enumeration, from one table of its
/// keywords, so that the parser, the printer and the error's list cannot disagree.
macro_rules! keywords {
    ($name:ident { $first:ident => $first_text:literal $(, $variant:ident => $text:literal)* $(,)? }) => {
        impl $name {
            /// The keyword of this value, as the TOML file, the environment and the CLI spell it.
            pub fn keyword(self) -> &'static str {
                match self {
                    $name::$first => $first_text,
                    $($name::$variant => $text,)*
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownKeyword;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $first_text => Ok($name::$first),
                    $($text => Ok($name::$variant),)*
                    _ => Err(UnknownKeyword {
                        expected: concat!($first_text $(, ", ", $text)*),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.keyword())
            }
        }
    };
}

keywords!(TlsMode { Refuse => "refuse", Terminate => "terminate", Passthrough => "passthrough" });
keywords!(UpstreamTls { Disable => "disable", Require => "require" });
keywords!(MongoVerify { Off => "off", Sample => "sample" });
keywords!(LogFormat { Text => "text", Json => "json" });
