//! Consolidation. (Being written.)
use super::candidates::Candidate;

/// Drop candidates that another chosen candidate serves.
pub fn consolidate(candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates
}
