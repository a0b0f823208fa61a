//! Override layers: the settings that the environment and the command line may change, and
//! how one layer is laid over the configuration beneath it.
//!
//! Both layers have the same shape ([`Layer`]) so they follow the same rules; they differ
//! only in how a bad setting is named in an error (`INDEXTAP_PG_LISTEN` or `--pg-listen`).
//!
//! A `listen`/`upstream` pair replaces the addresses of the engine's first listener (its
//! other settings, such as TLS or an explicit name, are kept), or adds a listener when there
//! is none. One half of a pair without the other is an error, checked per layer, so the
//! message can name both halves in the same vocabulary.

use std::path::PathBuf;

use crate::error::ConfigError;
use crate::model::{
    Config, ListenerTls, LogFormat, MongoListener, MongoVerify, PostgresListener, Secret, TlsMode,
};

/// One overridable setting. Its environment variable and flag names come from here, so the
/// two vocabularies cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setting {
    AdminListen,
    AdminTokenFile,
    AdminTokenEnv,
    MongoListen,
    MongoUpstream,
    MongoAdvertise,
    MongoAdminUri,
    MongoTlsMode,
    MongoTlsCert,
    MongoTlsKey,
    PgListen,
    PgUpstream,
    PgAdminUrl,
    PgTlsMode,
    PgTlsCert,
    PgTlsKey,
    StateDir,
    StateIntervalSecs,
    SnapshotSink,
    SidecarId,
    ShutdownGraceSecs,
    LogFormat,
    LogLevel,
    MaxShapes,
    MongoVerify,
    MongoSampleSize,
    MinGainPercent,
    MaxIndexesPerNamespace,
    DropMinWindowSecs,
    IndexWriteCostUs,
    MaxAggregateBytes,
    MaxVerifiedCandidates,
}

impl Setting {
    pub(crate) const ALL: [Setting; 32] = [
        Setting::AdminListen,
        Setting::AdminTokenFile,
        Setting::AdminTokenEnv,
        Setting::MongoListen,
        Setting::MongoUpstream,
        Setting::MongoAdvertise,
        Setting::MongoAdminUri,
        Setting::MongoTlsMode,
        Setting::MongoTlsCert,
        Setting::MongoTlsKey,
        Setting::PgListen,
        Setting::PgUpstream,
        Setting::PgAdminUrl,
        Setting::PgTlsMode,
        Setting::PgTlsCert,
        Setting::PgTlsKey,
        Setting::StateDir,
        Setting::StateIntervalSecs,
        Setting::SnapshotSink,
        Setting::SidecarId,
        Setting::ShutdownGraceSecs,
        Setting::LogFormat,
        Setting::LogLevel,
        Setting::MaxShapes,
        Setting::MongoVerify,
        Setting::MongoSampleSize,
        Setting::MinGainPercent,
        Setting::MaxIndexesPerNamespace,
        Setting::DropMinWindowSecs,
        Setting::IndexWriteCostUs,
        Setting::MaxAggregateBytes,
        Setting::MaxVerifiedCandidates,
    ];

    /// The `INDEXTAP_*` variable that sets it.
    pub(crate) fn env_var(self) -> &'static str {
        match self {
            Setting::AdminListen => "INDEXTAP_ADMIN_LISTEN",
            Setting::AdminTokenFile => "INDEXTAP_ADMIN_TOKEN_FILE",
            Setting::AdminTokenEnv => "INDEXTAP_ADMIN_TOKEN_ENV",
            Setting::MongoListen => "INDEXTAP_MONGO_LISTEN",
            Setting::MongoUpstream => "INDEXTAP_MONGO_UPSTREAM",
            Setting::MongoAdvertise => "INDEXTAP_MONGO_ADVERTISE",
            Setting::MongoAdminUri => "INDEXTAP_MONGO_ADMIN_URI",
            Setting::MongoTlsMode => "INDEXTAP_MONGO_TLS_MODE",
            Setting::MongoTlsCert => "INDEXTAP_MONGO_TLS_CERT",
            Setting::MongoTlsKey => "INDEXTAP_MONGO_TLS_KEY",
            Setting::PgListen => "INDEXTAP_PG_LISTEN",
            Setting::PgUpstream => "INDEXTAP_PG_UPSTREAM",
            Setting::PgAdminUrl => "INDEXTAP_PG_ADMIN_URL",
            Setting::PgTlsMode => "INDEXTAP_PG_TLS_MODE",
            Setting::PgTlsCert => "INDEXTAP_PG_TLS_CERT",
            Setting::PgTlsKey => "INDEXTAP_PG_TLS_KEY",
            Setting::StateDir => "INDEXTAP_STATE_DIR",
            Setting::StateIntervalSecs => "INDEXTAP_STATE_INTERVAL_SECS",
            Setting::SnapshotSink => "INDEXTAP_SNAPSHOT_SINK",
            Setting::SidecarId => "INDEXTAP_SIDECAR_ID",
            Setting::ShutdownGraceSecs => "INDEXTAP_SHUTDOWN_GRACE_SECS",
            Setting::LogFormat => "INDEXTAP_LOG_FORMAT",
            Setting::LogLevel => "INDEXTAP_LOG_LEVEL",
            Setting::MaxShapes => "INDEXTAP_MAX_SHAPES",
            Setting::MongoVerify => "INDEXTAP_MONGO_VERIFY",
            Setting::MongoSampleSize => "INDEXTAP_MONGO_SAMPLE_SIZE",
            Setting::MinGainPercent => "INDEXTAP_MIN_GAIN_PERCENT",
            Setting::MaxIndexesPerNamespace => "INDEXTAP_MAX_INDEXES_PER_NAMESPACE",
            Setting::DropMinWindowSecs => "INDEXTAP_DROP_MIN_WINDOW_SECS",
            Setting::IndexWriteCostUs => "INDEXTAP_INDEX_WRITE_COST_US",
            Setting::MaxAggregateBytes => "INDEXTAP_MAX_AGGREGATE_BYTES",
            Setting::MaxVerifiedCandidates => "INDEXTAP_MAX_VERIFIED_CANDIDATES",
        }
    }

    /// The command-line flag that sets it (not every key has one in [`CliOverrides`]).
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Setting::AdminListen => "--admin-listen",
            Setting::AdminTokenFile => "--admin-token-file",
            Setting::AdminTokenEnv => "--admin-token-env",
            Setting::MongoListen => "--mongo-listen",
            Setting::MongoUpstream => "--mongo-upstream",
            Setting::MongoAdvertise => "--mongo-advertise",
            Setting::MongoAdminUri => "--mongo-admin-uri",
            Setting::MongoTlsMode => "--mongo-tls-mode",
            Setting::MongoTlsCert => "--mongo-tls-cert",
            Setting::MongoTlsKey => "--mongo-tls-key",
            Setting::PgListen => "--pg-listen",
            Setting::PgUpstream => "--pg-upstream",
            Setting::PgAdminUrl => "--pg-admin-url",
            Setting::PgTlsMode => "--pg-tls-mode",
            Setting::PgTlsCert => "--pg-tls-cert",
            Setting::PgTlsKey => "--pg-tls-key",
            Setting::StateDir => "--state-dir",
            Setting::StateIntervalSecs => "--state-interval-secs",
            Setting::SnapshotSink => "--snapshot-sink",
            Setting::SidecarId => "--sidecar-id",
            Setting::ShutdownGraceSecs => "--shutdown-grace-secs",
            Setting::LogFormat => "--log-format",
            Setting::LogLevel => "--log-level",
            Setting::MaxShapes => "--max-shapes",
            Setting::MongoVerify => "--mongo-verify",
            Setting::MongoSampleSize => "--mongo-sample-size",
            Setting::MinGainPercent => "--min-gain-percent",
            Setting::MaxIndexesPerNamespace => "--max-indexes-per-namespace",
            Setting::DropMinWindowSecs => "--drop-min-window-secs",
            Setting::IndexWriteCostUs => "--index-write-cost-us",
            Setting::MaxAggregateBytes => "--max-aggregate-bytes",
            Setting::MaxVerifiedCandidates => "--max-verified-candidates",
        }
    }
}

/// Where a layer came from, which decides how its errors name a setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Origin {
    #[default]
    Env,
    Cli,
}

impl Origin {
    pub(crate) fn name(self, key: Setting) -> &'static str {
        match self {
            Origin::Env => key.env_var(),
            Origin::Cli => key.flag(),
        }
    }

    pub(crate) fn error(self, key: Setting, message: impl Into<String>) -> ConfigError {
        match self {
            Origin::Env => ConfigError::Env {
                var: key.env_var().to_owned(),
                message: message.into(),
            },
            Origin::Cli => ConfigError::Cli {
                flag: key.flag().to_owned(),
                message: message.into(),
            },
        }
    }
}

/// Settings given by the command line. The proxy's clap parser fills it; `None` leaves the
/// setting to the environment or the file.
///
/// Enumerations are plain strings (`"terminate"`, `"json"`) so this crate needs no clap;
/// [`crate::load()`] parses them and names the flag when one is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliOverrides {
    /// `--mongo-listen`: with `--mongo-upstream`, replaces the first MongoDB listener.
    pub mongo_listen: Option<String>,
    /// `--mongo-upstream`.
    pub mongo_upstream: Option<String>,
    /// `--mongo-advertise`: for the first MongoDB listener.
    pub mongo_advertise: Option<String>,
    /// `--mongo-admin-uri`.
    pub mongo_admin_uri: Option<String>,
    /// `--mongo-tls-mode`: `refuse`, `terminate` or `passthrough`, for the first MongoDB
    /// listener.
    pub mongo_tls_mode: Option<String>,
    /// `--mongo-tls-cert`.
    pub mongo_tls_cert: Option<PathBuf>,
    /// `--mongo-tls-key`.
    pub mongo_tls_key: Option<PathBuf>,
    /// `--pg-listen`: with `--pg-upstream`, replaces the first PostgreSQL listener.
    pub pg_listen: Option<String>,
    /// `--pg-upstream`.
    pub pg_upstream: Option<String>,
    /// `--pg-admin-url`.
    pub pg_admin_url: Option<String>,
    /// `--pg-tls-mode`: `refuse`, `terminate` or `passthrough`, for the first PostgreSQL
    /// listener.
    pub pg_tls_mode: Option<String>,
    /// `--pg-tls-cert`.
    pub pg_tls_cert: Option<PathBuf>,
    /// `--pg-tls-key`.
    pub pg_tls_key: Option<PathBuf>,
    /// `--admin-listen`.
    pub admin_listen: Option<String>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--snapshot-sink`: `postgres://…`, `postgres`, `s3://…` or `file:///…`.
    pub snapshot_sink: Option<String>,
    /// `--sidecar-id`.
    pub sidecar_id: Option<String>,
    /// `--log-format`: `text` or `json`.
    pub log_format: Option<String>,
    /// `--mongo-verify`: `off` or `sample`.
    pub mongo_verify: Option<String>,
    /// `--mongo-sample-size`.
    pub mongo_sample_size: Option<u32>,
    /// `--min-gain-percent`.
    pub min_gain_percent: Option<u32>,
    /// `--max-indexes-per-namespace`.
    pub max_indexes_per_namespace: Option<usize>,
    /// `--drop-min-window-secs`.
    pub drop_min_window_secs: Option<u64>,
    /// `--index-write-cost-us`.
    pub index_write_cost_us: Option<u32>,
    /// `--max-aggregate-bytes`.
    pub max_aggregate_bytes: Option<usize>,
    /// `--max-verified-candidates`.
    pub max_verified_candidates: Option<usize>,
}

/// One layer of overrides, already parsed into typed values.
#[derive(Debug, Default)]
pub(crate) struct Layer {
    pub(crate) origin: Origin,
    pub(crate) admin_listen: Option<String>,
    pub(crate) admin_token_file: Option<PathBuf>,
    pub(crate) admin_token_env: Option<String>,
    pub(crate) mongo_listen: Option<String>,
    pub(crate) mongo_upstream: Option<String>,
    pub(crate) mongo_advertise: Option<String>,
    pub(crate) mongo_admin_uri: Option<String>,
    pub(crate) mongo_tls: TlsLayer,
    pub(crate) pg_listen: Option<String>,
    pub(crate) pg_upstream: Option<String>,
    pub(crate) pg_admin_url: Option<String>,
    pub(crate) pg_tls: TlsLayer,
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) state_interval_secs: Option<u64>,
    pub(crate) snapshot_sink: Option<String>,
    pub(crate) sidecar_id: Option<String>,
    pub(crate) shutdown_grace_secs: Option<u64>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) log_level: Option<String>,
    pub(crate) max_shapes: Option<usize>,
    pub(crate) mongo_verify: Option<MongoVerify>,
    pub(crate) mongo_sample_size: Option<u32>,
    pub(crate) min_gain_percent: Option<u32>,
    pub(crate) max_indexes_per_namespace: Option<usize>,
    pub(crate) drop_min_window_secs: Option<u64>,
    pub(crate) index_write_cost_us: Option<u32>,
    pub(crate) max_aggregate_bytes: Option<usize>,
    pub(crate) max_verified_candidates: Option<usize>,
}

/// The TLS settings of an engine's first listener that a layer may override.
#[derive(Debug, Default)]
pub(crate) struct TlsLayer {
    pub(crate) mode: Option<TlsMode>,
    pub(crate) cert_file: Option<PathBuf>,
    pub(crate) key_file: Option<PathBuf>,
}

impl TlsLayer {
    /// The setting that names the first override given, if any (for a missing listener).
    fn first_given(&self, [mode, cert, key]: [Setting; 3]) -> Option<Setting> {
        [
            (mode, self.mode.is_some()),
            (cert, self.cert_file.is_some()),
            (key, self.key_file.is_some()),
        ]
        .into_iter()
        .find_map(|(setting, given)| given.then_some(setting))
    }

    fn apply(self, tls: &mut ListenerTls) {
        if let Some(mode) = self.mode {
            tls.mode = mode;
        }
        if let Some(cert) = self.cert_file {
            tls.cert_file = Some(cert);
        }
        if let Some(key) = self.key_file {
            tls.key_file = Some(key);
        }
    }
}

const MONGO_TLS: [Setting; 3] = [
    Setting::MongoTlsMode,
    Setting::MongoTlsCert,
    Setting::MongoTlsKey,
];
const PG_TLS: [Setting; 3] = [Setting::PgTlsMode, Setting::PgTlsCert, Setting::PgTlsKey];

/// A keyword flag parsed, or an error naming the flag.
fn cli_keyword<T>(key: Setting, text: Option<String>) -> Result<Option<T>, ConfigError>
where
    T: std::str::FromStr<Err = crate::model::UnknownKeyword>,
{
    text.map(|text| {
        text.parse::<T>()
            .map_err(|e| Origin::Cli.error(key, format!("{text:?}: {e}")))
    })
    .transpose()
}

impl Layer {
    /// The command-line layer.
    pub(crate) fn from_cli(cli: CliOverrides) -> Result<Self, ConfigError> {
        Ok(Self {
            origin: Origin::Cli,
            mongo_verify: cli_keyword(Setting::MongoVerify, cli.mongo_verify)?,
            mongo_sample_size: cli.mongo_sample_size,
            min_gain_percent: cli.min_gain_percent,
            max_indexes_per_namespace: cli.max_indexes_per_namespace,
            drop_min_window_secs: cli.drop_min_window_secs,
            index_write_cost_us: cli.index_write_cost_us,
            admin_listen: cli.admin_listen,
            mongo_listen: cli.mongo_listen,
            mongo_upstream: cli.mongo_upstream,
            mongo_advertise: cli.mongo_advertise,
            mongo_admin_uri: cli.mongo_admin_uri,
            mongo_tls: TlsLayer {
                mode: cli_keyword(Setting::MongoTlsMode, cli.mongo_tls_mode)?,
                cert_file: cli.mongo_tls_cert,
                key_file: cli.mongo_tls_key,
            },
            pg_listen: cli.pg_listen,
            pg_upstream: cli.pg_upstream,
            pg_admin_url: cli.pg_admin_url,
            pg_tls: TlsLayer {
                mode: cli_keyword(Setting::PgTlsMode, cli.pg_tls_mode)?,
                cert_file: cli.pg_tls_cert,
                key_file: cli.pg_tls_key,
            },
            state_dir: cli.state_dir,
            snapshot_sink: cli.snapshot_sink,
            sidecar_id: cli.sidecar_id,
            log_format: cli_keyword(Setting::LogFormat, cli.log_format)?,
            max_aggregate_bytes: cli.max_aggregate_bytes,
            max_verified_candidates: cli.max_verified_candidates,
            ..Self::default()
        })
    }

    /// Lays this layer over `config`.
    pub(crate) fn apply(self, config: &mut Config) -> Result<(), ConfigError> {
        let origin = self.origin;

        overlay(&mut config.admin.listen, self.admin_listen);
        // A token source given here overrides the file's, whichever kind the file used.
        if self.admin_token_file.is_some() || self.admin_token_env.is_some() {
            config.admin.token_file = self.admin_token_file;
            config.admin.token_env = self.admin_token_env;
        }

        if let Some((listen, upstream)) =
            pair(origin, MONGO_PAIR, self.mongo_listen, self.mongo_upstream)?
        {
            readdress_first(
                &mut config.mongo.listeners,
                (listen, upstream),
                |first| (&mut first.listen, &mut first.upstream),
                MongoListener::new,
            );
        }
        if let Some(advertise) = self.mongo_advertise {
            let first = first_listener(
                &mut config.mongo.listeners,
                origin,
                Setting::MongoAdvertise,
                MONGO_PAIR,
            )?;
            first.advertise = Some(advertise);
        }
        if let Some(key) = self.mongo_tls.first_given(MONGO_TLS) {
            let first = first_listener(&mut config.mongo.listeners, origin, key, MONGO_PAIR)?;
            self.mongo_tls.apply(&mut first.tls);
        }

        if let Some((listen, upstream)) = pair(origin, PG_PAIR, self.pg_listen, self.pg_upstream)? {
            readdress_first(
                &mut config.postgres.listeners,
                (listen, upstream),
                |first| (&mut first.listen, &mut first.upstream),
                PostgresListener::new,
            );
        }
        if let Some(key) = self.pg_tls.first_given(PG_TLS) {
            let first = first_listener(&mut config.postgres.listeners, origin, key, PG_PAIR)?;
            self.pg_tls.apply(&mut first.tls);
        }

        let secret = |text: Option<String>| text.map(Secret::new).map(Some);
        overlay(&mut config.mongo.admin_uri, secret(self.mongo_admin_uri));
        overlay(&mut config.postgres.admin_url, secret(self.pg_admin_url));
        overlay(&mut config.snapshot_sink.url, secret(self.snapshot_sink));
        overlay(&mut config.state.dir, self.state_dir.map(Some));
        overlay(&mut config.state.interval_secs, self.state_interval_secs);
        overlay(
            &mut config.snapshot_sink.sidecar_id,
            self.sidecar_id.map(Some),
        );
        overlay(&mut config.shutdown.grace_secs, self.shutdown_grace_secs);
        overlay(&mut config.log.format, self.log_format);
        overlay(&mut config.log.level, self.log_level);
        overlay(&mut config.capture.max_shapes, self.max_shapes);
        let advice = &mut config.advice;
        overlay(&mut advice.mongo_verify, self.mongo_verify);
        overlay(&mut advice.mongo_sample_size, self.mongo_sample_size);
        overlay(&mut advice.min_gain_percent, self.min_gain_percent);
        overlay(
            &mut advice.max_indexes_per_namespace,
            self.max_indexes_per_namespace,
        );
        overlay(&mut advice.drop_min_window_secs, self.drop_min_window_secs);
        overlay(
            &mut advice.index_write_cost_us,
            self.index_write_cost_us.map(Some),
        );
        overlay(
            &mut config.capture.max_aggregate_bytes,
            self.max_aggregate_bytes,
        );
        overlay(
            &mut advice.max_verified_candidates,
            self.max_verified_candidates,
        );
        Ok(())
    }
}

/// `value`, where the layer sets it, replaces `target`.
fn overlay<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

/// The two settings that add an engine's first listener, and the engine's name for messages.
#[derive(Debug, Clone, Copy)]
struct ListenerPair {
    engine: &'static str,
    listen: Setting,
    upstream: Setting,
}

const MONGO_PAIR: ListenerPair = ListenerPair {
    engine: "MongoDB",
    listen: Setting::MongoListen,
    upstream: Setting::MongoUpstream,
};

const PG_PAIR: ListenerPair = ListenerPair {
    engine: "PostgreSQL",
    listen: Setting::PgListen,
    upstream: Setting::PgUpstream,
};

/// Both halves of a listen/upstream `pair`, or neither.
fn pair(
    origin: Origin,
    pair: ListenerPair,
    listen: Option<String>,
    upstream: Option<String>,
) -> Result<Option<(String, String)>, ConfigError> {
    match (listen, upstream) {
        (Some(listen), Some(upstream)) => Ok(Some((listen, upstream))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(origin.error(
            pair.listen,
            format!("is set without {}", origin.name(pair.upstream)),
        )),
        (None, Some(_)) => Err(origin.error(
            pair.upstream,
            format!("is set without {}", origin.name(pair.listen)),
        )),
    }
}

/// Puts `listen` and `upstream` on the first of `listeners` (its two fields, as `addresses`
/// hands them out), or adds a listener made by `new` when there is none.
fn readdress_first<L>(
    listeners: &mut Vec<L>,
    (listen, upstream): (String, String),
    addresses: impl FnOnce(&mut L) -> (&mut String, &mut String),
    new: impl FnOnce(String, String) -> L,
) {
    match listeners.first_mut() {
        Some(first) => {
            let (first_listen, first_upstream) = addresses(first);
            *first_listen = listen;
            *first_upstream = upstream;
        }
        None => listeners.push(new(listen, upstream)),
    }
}

/// The first of `listeners`, for a setting (`key`) that applies to it; when there is none,
/// the error that names the `pair` of settings that would add one.
fn first_listener<L>(
    listeners: &mut [L],
    origin: Origin,
    key: Setting,
    pair: ListenerPair,
) -> Result<&mut L, ConfigError> {
    listeners
        .first_mut()
        .ok_or_else(|| no_listener(origin, key, pair))
}

/// A per-listener setting with no listener to carry it.
fn no_listener(origin: Origin, key: Setting, pair: ListenerPair) -> ConfigError {
    origin.error(
        key,
        format!(
            "there is no {} listener to apply it to; configure one in the file or with {} and {}",
            pair.engine,
            origin.name(pair.listen),
            origin.name(pair.upstream)
        ),
    )
}
