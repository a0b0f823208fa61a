//! The file format: compact JSON, with the format version checked before anything else.
//!
//! The version is read first, on its own, so that a file written by another version of
//! indextap is reported as such rather than as an obscure field error. Version 1 (latency as
//! HDR histogram `[value µs, count]` pairs) is converted: each pair's value is recorded into
//! a [`LatencySketch`], within the sketch's accuracy of what the histogram held.

use serde::Deserialize;
use serde_json::Value;

use super::{LatencySketch, Snapshot, FORMAT_VERSION};

/// The format whose latencies were HDR histogram pairs.
const HISTOGRAM_PAIRS_VERSION: u64 = 1;

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
    /// The file format: compact JSON.
    pub fn to_json(&self) -> String {
        // Every map key is a string and no value is a float: serialisation cannot fail.
        serde_json::to_string(self).expect("a snapshot always serialises")
    }

    /// The file format, written as it is produced: a large snapshot never exists as one
    /// string in memory.
    pub fn write_json(&self, writer: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(writer, self).map_err(std::io::Error::from)
    }

    /// Reads a snapshot of the current format, or of version 1 (converted); any other
    /// version is refused.
    pub fn from_json(text: &str) -> Result<Snapshot, SnapshotError> {
        let probe: VersionProbe = serde_json::from_str(text)?;
        match probe.version {
            None => Err(SnapshotError::MissingVersion),
            Some(found) if found == u64::from(FORMAT_VERSION) => Ok(serde_json::from_str(text)?),
            Some(HISTOGRAM_PAIRS_VERSION) => from_histogram_pairs(text),
            Some(found) => Err(SnapshotError::Version {
                found,
                expected: FORMAT_VERSION,
            }),
        }
    }
}

/// A version 1 snapshot, with every shape's histogram pairs recorded into a sketch.
fn from_histogram_pairs(text: &str) -> Result<Snapshot, SnapshotError> {
    let mut document: Value = serde_json::from_str(text)?;
    if let Some(shapes) = document.get_mut("shapes").and_then(Value::as_object_mut) {
        for record in shapes.values_mut() {
            let Some(latency) = record.get_mut("latency") else {
                continue;
            };
            let pairs: Vec<(u64, u64)> = serde_json::from_value(latency.take())?;
            let mut sketch = LatencySketch::new();
            for (micros, count) in pairs {
                sketch.record_n(micros, count);
            }
            *latency = serde_json::to_value(&sketch)?;
        }
    }
    // The probe found a version, but in a list as well as in an object: index only an object.
    if let Some(object) = document.as_object_mut() {
        object.insert("version".to_owned(), Value::from(FORMAT_VERSION));
    }
    Ok(serde_json::from_value(document)?)
}
