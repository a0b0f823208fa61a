//! The file format: pretty JSON, with the format version checked before anything else.
//!
//! The version is read first, on its own, so that a file written by another version of
//! indextap is reported as such rather than as an obscure field error.

use serde::Deserialize;

use super::{Snapshot, FORMAT_VERSION};

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Not JSON, or not a snapshot of this format.
    #[error("not a valid snapshot: {0}")]
    Json(#[from] serde_json::Error),
    /// The document has no `version` field.
    #[error("not a snapshot: no \"version\" field")]
    MissingVersion,
    /// Written in a format this build does not read.
    #[error(
        "snapshot format version {found} is not supported: this build reads version {expected}"
    )]
    Version {
        /// The file's version.
        found: u64,
        /// [`FORMAT_VERSION`].
        expected: u32,
    },
}

impl SnapshotError {
    /// A fixed, low-cardinality label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SnapshotError::Json(_) => "invalid_json",
            SnapshotError::MissingVersion => "missing_version",
            SnapshotError::Version { .. } => "wrong_version",
        }
    }
}

/// Only the version; every other field is skipped.
#[derive(Deserialize)]
struct VersionProbe {
    version: Option<u64>,
}

impl Snapshot {
    /// The file format: pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Every map key is a string and no value is a float: serialisation cannot fail.
        serde_json::to_string_pretty(self).expect("a snapshot always serialises")
    }

    /// Reads a snapshot, rejecting any format version but [`FORMAT_VERSION`].
    pub fn from_json(text: &str) -> Result<Snapshot, SnapshotError> {
        let probe: VersionProbe = serde_json::from_str(text)?;
        match probe.version {
            None => return Err(SnapshotError::MissingVersion),
            Some(found) if found != u64::from(FORMAT_VERSION) => {
                return Err(SnapshotError::Version {
                    found,
                    expected: FORMAT_VERSION,
                })
            }
            Some(_) => {}
        }
        Ok(serde_json::from_str(text)?)
    }
}
