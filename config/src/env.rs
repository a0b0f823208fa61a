//! The environment layer: `INDEXTAP_*` variables.
//!
//! Every variable with the prefix must be one indextap knows, so a misspelt
//! `INDEXTAP_PG_UPSTREM` fails loudly instead of leaving the old upstream in place. Two names
//! are exempt: [`CONFIG_FILE_ENV`], which the CLI reads to find the file, and whatever
//! `admin.token_env` names (an operator may well call the token `INDEXTAP_ADMIN_TOKEN`).
//!
//! An empty variable counts as unset: container tooling often passes `NAME=` for "no value".

use std::ffi::OsStr;
use std::path::PathBuf;

use crate::error::ConfigError;
use crate::layer::{Layer, Origin, Setting};

/// The prefix every indextap variable starts with.
pub const ENV_PREFIX: &str = "INDEXTAP_";

/// The variable the CLI reads for the configuration file's path. Not a setting, so the
/// loader ignores it.
pub const CONFIG_FILE_ENV: &str = "INDEXTAP_CONFIG";

/// The environment layer, and the `INDEXTAP_*` names it did not recognise (not yet an error:
/// one of them may be the token variable, which is only known once every layer is applied).
pub(crate) struct EnvLayer {
    pub(crate) layer: Layer,
    pub(crate) unknown: Vec<String>,
}

/// Reads the `INDEXTAP_*` variables out of `vars`, ignoring every other variable.
pub(crate) fn read<I, K, V>(vars: I) -> Result<EnvLayer, ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut layer = Layer {
        origin: Origin::Env,
        ..Layer::default()
    };
    let mut unknown = Vec::new();
    for (name, value) in vars {
        let name = name.as_ref().to_string_lossy();
        if !name.starts_with(ENV_PREFIX) || name == CONFIG_FILE_ENV {
            continue;
        }
        let Some(key) = Setting::ALL.into_iter().find(|key| key.env_var() == name) else {
            unknown.push(name.into_owned());
            continue;
        };
        let Some(value) = value.as_ref().to_str() else {
            return Err(Origin::Env.error(key, "is not valid UTF-8"));
        };
        if value.is_empty() {
            continue;
        }
        set(&mut layer, key, value)?;
    }
    unknown.sort();
    Ok(EnvLayer { layer, unknown })
}

/// The error for an unknown variable, listing the known ones so the fix is obvious.
pub(crate) fn unknown_error(var: String) -> ConfigError {
    let known: Vec<&str> = Setting::ALL.iter().map(|key| key.env_var()).collect();
    ConfigError::Env {
        var,
        message: format!("unknown variable; known: {}", known.join(", ")),
    }
}

fn set(layer: &mut Layer, key: Setting, value: &str) -> Result<(), ConfigError> {
    let text = || Some(value.to_owned());
    let path = || Some(PathBuf::from(value));
    match key {
        Setting::AdminListen => layer.admin_listen = text(),
        Setting::AdminTokenFile => layer.admin_token_file = path(),
        Setting::AdminTokenEnv => layer.admin_token_env = text(),
        Setting::MongoListen => layer.mongo_listen = text(),
        Setting::MongoUpstream => layer.mongo_upstream = text(),
        Setting::MongoAdvertise => layer.mongo_advertise = text(),
        Setting::MongoAdminUri => layer.mongo_admin_uri = text(),
        Setting::MongoTlsMode => layer.mongo_tls.mode = Some(keyword(key, value)?),
        Setting::MongoTlsCert => layer.mongo_tls.cert_file = path(),
        Setting::MongoTlsKey => layer.mongo_tls.key_file = path(),
        Setting::PgListen => layer.pg_listen = text(),
        Setting::PgUpstream => layer.pg_upstream = text(),
        Setting::PgAdminUrl => layer.pg_admin_url = text(),
        Setting::PgTlsMode => layer.pg_tls.mode = Some(keyword(key, value)?),
        Setting::PgTlsCert => layer.pg_tls.cert_file = path(),
        Setting::PgTlsKey => layer.pg_tls.key_file = path(),
        Setting::StateDir => layer.state_dir = path(),
        Setting::StateIntervalSecs => layer.state_interval_secs = Some(number(key, value)?),
        Setting::SnapshotSink => layer.snapshot_sink = text(),
        Setting::SidecarId => layer.sidecar_id = text(),
        Setting::ShutdownGraceSecs => layer.shutdown_grace_secs = Some(number(key, value)?),
        Setting::LogFormat => layer.log_format = Some(keyword(key, value)?),
        Setting::LogLevel => layer.log_level = text(),
        Setting::MaxShapes => layer.max_shapes = Some(number(key, value)?),
        Setting::MongoVerify => layer.mongo_verify = Some(keyword(key, value)?),
        Setting::MongoSampleSize => layer.mongo_sample_size = Some(number(key, value)?),
        Setting::MinGainPercent => layer.min_gain_percent = Some(number(key, value)?),
        Setting::MaxIndexesPerNamespace => {
            layer.max_indexes_per_namespace = Some(number(key, value)?)
        }
        Setting::DropMinWindowSecs => layer.drop_min_window_secs = Some(number(key, value)?),
        Setting::IndexWriteCostUs => layer.index_write_cost_us = Some(number(key, value)?),
        Setting::MaxAggregateBytes => layer.max_aggregate_bytes = Some(number(key, value)?),
        Setting::MaxVerifiedCandidates => layer.max_verified_candidates = Some(number(key, value)?),
    }
    Ok(())
}

fn number<T: std::str::FromStr>(key: Setting, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| Origin::Env.error(key, format!("{value:?} is not a whole number")))
}

fn keyword<T>(key: Setting, value: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr<Err = crate::model::UnknownKeyword>,
{
    value
        .parse()
        .map_err(|e| Origin::Env.error(key, format!("{value:?}: {e}")))
}
