//! The stable shape id: a hash of the canonical form.
//!
//! xxh3 is specified and portable, so the same shape gets the same id on every sidecar of a
//! fleet and across versions, which is what lets snapshots merge.

use serde::{Deserialize, Serialize};

use super::Shape;

/// A 64-bit hash of a shape's canonical form, shown as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShapeId(pub u64);

impl ShapeId {
    /// The id of a shape.
    pub fn of(shape: &Shape) -> Self {
        ShapeId(xxhash_rust::xxh3::xxh3_64(shape.canonical().as_bytes()))
    }
}

impl std::fmt::Display for ShapeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for ShapeId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(ShapeId)
    }
}

impl Serialize for ShapeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ShapeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
