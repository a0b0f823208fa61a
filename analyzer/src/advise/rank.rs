//! Ranking. (Being written.)
use super::candidates::Candidate;
use super::Recommendation;
use crate::snapshot::Snapshot;

/// Turn candidates into recommendations, heaviest first.
pub fn rank(_candidates: Vec<Candidate>, _snapshot: &Snapshot) -> Vec<Recommendation> {
    Vec::new()
}
