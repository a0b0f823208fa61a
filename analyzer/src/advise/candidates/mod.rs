//! Candidates: the indexes each shape needs, keys in ESR order.
//!
//! Every shape of the snapshot is expanded into alternatives (one per `$or` / `OR` branch),
//! each alternative's leaves are classified (key, partial-index term, special index, or
//! filter-only), and each alternative gets a B-tree candidate in ESR order plus the text /
//! GIN / trigram candidates its special leaves need. Candidates are per shape here;
//! [`super::consolidate`] merges them across shapes.
//!
//! ## Layout
//! - this file: [`Candidate`], [`KeyRole`], [`from_snapshot`].
//! - `classify`: what a leaf can do for an index (the engine's rules decide).
//! - `expand`: filter → alternatives (AND of leaves).
//! - `esr`: alternative → candidates, with the namespace-wide equality order.

mod classify;
mod esr;
mod expand;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeSet;

use super::{IndexKey, IndexSpec, LeafUse};
use crate::catalog::CatalogFacts;
use crate::shape::{Command, Leaf, ShapeId, Target};
use crate::snapshot::{ShapeRecord, Snapshot};
use classify::classify;
use expand::{expand, Expansion};

pub(crate) use esr::MAX_INCLUDE;

/// What a key does for the shapes a candidate serves. Only sort keys care about direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyRole {
    /// Tested for equality by every shape that reaches it: direction is irrelevant.
    Equality,
    /// Gives the order of some shape's sort: its direction matters, relative to the others.
    Sort,
    /// Scanned as a range (or an `$in` after a sort): direction is irrelevant.
    Range,
}

/// A proposed index and the shapes it would serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The index.
    pub index: IndexSpec,
    /// The shapes it serves.
    pub serves: BTreeSet<ShapeId>,
    /// What each key of `index.keys` does, position by position.
    pub roles: Vec<KeyRole>,
    /// Every field each served shape tests for equality, including those a unique prefix
    /// left out of the keys (common to all the shapes it serves). Empty: the equality keys.
    pub found: BTreeSet<Target>,
}

impl Candidate {
    /// A candidate serving one shape. Missing roles are taken as [`KeyRole::Sort`], the
    /// strictest (direction matters).
    pub fn new(index: IndexSpec, shape: ShapeId, mut roles: Vec<KeyRole>) -> Self {
        roles.resize(index.keys.len(), KeyRole::Sort);
        Self {
            index,
            serves: BTreeSet::from([shape]),
            roles,
            found: BTreeSet::new(),
        }
    }

    /// The targets the served shapes test for equality: [`Self::found`], or the equality
    /// keys when it is empty.
    pub fn equality_targets(&self) -> BTreeSet<Target> {
        if !self.found.is_empty() {
            return self.found.clone();
        }
        self.equality_keys()
    }

    /// Sets [`Self::found`] once the keys and roles are final, left empty when it is just
    /// the equality keys (as it is for most candidates): a one-element set is a whole B-tree
    /// node, and there are thousands of candidates.
    pub fn set_found(&mut self, found: BTreeSet<Target>) {
        self.found = if found == self.equality_keys() {
            BTreeSet::new()
        } else {
            found
        };
    }

    fn equality_keys(&self) -> BTreeSet<Target> {
        self.index
            .keys
            .iter()
            .zip(&self.roles)
            .filter(|(_, role)| **role == KeyRole::Equality)
            .map(|(key, _)| key.target.clone())
            .collect()
    }

    /// Whether an index with `keys` serves every shape this candidate serves: this
    /// candidate's keys are a prefix of `keys`, and its sort keys scan in the order of
    /// `keys`, all forwards or all backwards. Equality and range keys match in any direction,
    /// and the leading equality keys in any order: `(b, a, c)` finds what `(a, b, c)` finds
    /// when `a` and `b` are both tested for equality.
    pub fn is_served_by(&self, keys: &[IndexKey]) -> bool {
        let Some(prefix) = keys.get(..self.index.keys.len()) else {
            return false;
        };
        let equal = self
            .roles
            .iter()
            .take_while(|role| **role == KeyRole::Equality)
            .count()
            .min(prefix.len());
        if !same_targets(&self.index.keys[..equal], &prefix[..equal]) {
            return false;
        }
        let mut forwards = true;
        let mut backwards = true;
        let rest = self.index.keys[equal..]
            .iter()
            .zip(&prefix[equal..])
            .zip(&self.roles[equal..]);
        for ((mine, theirs), role) in rest {
            if mine.target != theirs.target {
                return false;
            }
            if *role == KeyRole::Sort {
                forwards &= mine.same_order(theirs);
                backwards &= mine.reversed().same_order(theirs);
            }
        }
        forwards || backwards
    }
}

/// Whether two runs of keys name the same set of targets, in any order. Consolidation asks
/// this of every pair of candidates in a family, so it compares in place rather than build
/// two sets: the runs are a few keys long.
fn same_targets(mine: &[IndexKey], theirs: &[IndexKey]) -> bool {
    let within = |a: &[IndexKey], b: &[IndexKey]| {
        a.iter()
            .all(|key| b.iter().any(|other| other.target == key.target))
    };
    within(mine, theirs) && within(theirs, mine)
}

/// One alternative of a filter: its leaves, each with what it does for an index.
type Branch = Vec<(Leaf, LeafUse)>;

/// One candidate per indexable shape (per branch) in the snapshot, without statistics.
pub fn from_snapshot(snapshot: &Snapshot) -> Vec<Candidate> {
    from_snapshot_with(snapshot, &CatalogFacts::default())
}

/// One candidate per indexable shape (per branch) in the snapshot; the catalog's statistics
/// order equality keys and cut them at a unique prefix.
///
/// Deterministic: the same snapshot and facts give the same candidates in the same order.
pub fn from_snapshot_with(snapshot: &Snapshot, facts: &CatalogFacts) -> Vec<Candidate> {
    // Two passes, each shape's branches made again in the second: held for every shape at
    // once between the passes, they would be the run's largest allocation.
    let mut usage = esr::Usage::default();
    for record in snapshot.shapes.values() {
        if let Some(branches) = branches(record) {
            usage.record(&record.shape, record.count, &branches);
        }
    }
    let mut candidates = Vec::new();
    for (id, record) in &snapshot.shapes {
        let Some(branches) = branches(record) else {
            continue;
        };
        let statistics = facts.statistics.get(&record.shape.namespace);
        for branch in &branches {
            candidates.extend(esr::branch_candidates(
                *id,
                &record.shape,
                branch,
                &usage,
                statistics,
            ));
        }
    }
    // Grown by doubling: the spare room would outlive this call.
    candidates.shrink_to_fit();
    candidates
}

/// The classified alternatives of one shape's filter, or `None` when no index can help it.
fn branches(record: &ShapeRecord) -> Option<Vec<Branch>> {
    let shape = &record.shape;
    // Inserts have no filter to serve; their cost is counted as write load.
    if shape.command == Command::Insert {
        return None;
    }
    let rules = shape.namespace.engine.rules();
    let use_of = |leaf: &Leaf| classify(leaf, rules, &record.constants);
    let Expansion::Branches(branches) = expand(&shape.filter, &|leaf| use_of(leaf).is_indexable())
    else {
        return None;
    };
    Some(
        branches
            .into_iter()
            .map(|branch| {
                branch
                    .into_iter()
                    .map(|leaf| {
                        let usage = use_of(&leaf);
                        (leaf, usage)
                    })
                    .collect()
            })
            .collect(),
    )
}
