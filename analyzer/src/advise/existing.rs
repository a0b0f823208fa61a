//! Existing indexes. (Being written.)
use super::candidates::Candidate;
use super::{DropCandidate, ExistingIndexes};

/// Remove candidates an existing index already serves.
pub fn filter(candidates: Vec<Candidate>, _existing: &ExistingIndexes) -> Vec<Candidate> {
    candidates
}

/// Existing indexes that are prefixes of other existing indexes.
pub fn redundant(_existing: &ExistingIndexes) -> Vec<DropCandidate> {
    Vec::new()
}
