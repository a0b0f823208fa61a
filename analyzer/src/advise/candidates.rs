//! Candidates: one index per shape (per `$or` branch), keys in ESR order. (Being written.)
use std::collections::BTreeSet;

use super::IndexSpec;
use crate::shape::ShapeId;
use crate::snapshot::Snapshot;

/// A proposed index and the shapes it would serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The index.
    pub index: IndexSpec,
    /// The shapes it serves.
    pub serves: BTreeSet<ShapeId>,
}

/// One candidate per indexable shape (branch) in the snapshot.
pub fn from_snapshot(_snapshot: &Snapshot) -> Vec<Candidate> {
    Vec::new()
}
