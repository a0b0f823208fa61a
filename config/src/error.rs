//! Configuration errors: each says where the bad setting came from (file, variable, flag)
//! and what is wrong with it, so an operator can fix it without reading code.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key or a wrongly typed value.
    #[error("configuration file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message: it names the key and shows the line.
        message: String,
    },
    /// An `INDEXTAP_*` environment variable is unknown or malformed.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// A command-line flag is malformed or incomplete.
    #[error("command-line flag {flag}: {message}")]
    Cli {
        /// The flag, e.g. `--pg-listen`.
        flag: String,
        /// What is wrong.
        message: String,
    },
    /// The merged configuration breaks one or more rules; every problem found is listed.
    #[error("invalid configuration:{}", Bullets(.0))]
    Invalid(Vec<String>),
}

/// Renders problems one per line, so a long list stays readable in a terminal.
struct Bullets<'a>(&'a [String]);

impl fmt::Display for Bullets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}
