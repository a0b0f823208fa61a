//! Loading: file, then environment, then command line, then validation.
//!
//! Each source overrides the one before it. Defaults that depend on other settings (a
//! listener's name and advertised address) are filled in after every layer is applied, so
//! they follow the final `listen`.
//!
//! A relative path in the file is relative to the file's folder, so a configuration and the
//! certificates beside it move together; a relative path from the environment or a flag is
//! relative to the working directory, as a shell user expects.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::env;
use crate::error::ConfigError;
use crate::layer::{CliOverrides, Layer};
use crate::model::Config;

/// Loads the configuration: `file` (or the defaults when `None`) < `INDEXTAP_*` variables
/// of `env` < `overrides`, then [`Config::validate`].
///
/// `env` is any list of variables: `std::env::vars_os()` in the binary, a map in tests.
/// Variables without the `INDEXTAP_` prefix are ignored.
pub fn load<I, K, V>(
    file: Option<&Path>,
    env: I,
    overrides: CliOverrides,
) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut config = match file {
        Some(path) => read_file(path)?,
        None => Config::default(),
    };

    let env::EnvLayer { layer, unknown } = env::read(env)?;
    // The token variable is only known once the file and the environment have had their
    // say (the CLI cannot set it), and it is not a setting: let it through.
    let token_env = layer
        .admin_token_env
        .clone()
        .or_else(|| config.admin.token_env.clone());
    if let Some(var) = unknown
        .into_iter()
        .find(|var| Some(var) != token_env.as_ref())
    {
        return Err(env::unknown_error(var));
    }
    layer.apply(&mut config)?;
    Layer::from_cli(overrides)?.apply(&mut config)?;

    fill_derived_defaults(&mut config);
    config.validate()?;
    Ok(config)
}

/// Parses a configuration file, without validating it. Relative paths in it are resolved
/// against the file's folder.
pub fn read_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut config = parse_toml(&text).map_err(|message| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    })?;
    if let Some(folder) = path.parent() {
        resolve_paths(&mut config, folder);
    }
    Ok(config)
}

/// Every path setting of `config` that is relative becomes relative to `folder`.
fn resolve_paths(config: &mut Config, folder: &Path) {
    let resolve = |path: &mut Option<PathBuf>| {
        if let Some(path) = path.as_mut().filter(|path| path.is_relative()) {
            *path = folder.join(&*path);
        }
    };
    resolve(&mut config.admin.token_file);
    resolve(&mut config.state.dir);
    let mongo = config.mongo.listeners.iter_mut().map(|l| &mut l.tls);
    let postgres = config.postgres.listeners.iter_mut().map(|l| &mut l.tls);
    for tls in mongo.chain(postgres) {
        resolve(&mut tls.cert_file);
        resolve(&mut tls.key_file);
        resolve(&mut tls.upstream_ca_file);
    }
}

/// Parses configuration text, without validating it. The error is toml's message, which
/// names the offending key and shows its line.
pub fn parse_toml(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

fn fill_derived_defaults(config: &mut Config) {
    for listener in &mut config.mongo.listeners {
        if listener.name.is_none() {
            listener.name = Some(listener.effective_name());
        }
        if listener.advertise.is_none() {
            listener.advertise = Some(listener.listen.clone());
        }
    }
    for listener in &mut config.postgres.listeners {
        if listener.name.is_none() {
            listener.name = Some(listener.effective_name());
        }
    }
}
