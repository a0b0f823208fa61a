//! Advice: from aggregated shapes to the indexes the traffic needs.
//!
//! Written once for both engines, over [`IndexSpec`] and the shapes in a [`Snapshot`].
//!
//! ## Layout
//! - this file: the advice ([`Recommendation`], [`Advice`]) and [`advise`].
//! - [`index`]: the index model ([`IndexSpec`] and its parts) and naming helpers.
//! - [`engine`]: [`EngineRules`], what differs between MongoDB and PostgreSQL, one
//!   implementation per engine. The rest of this module asks the rules, never the engine.
//! - [`candidates`]: one candidate per shape (per `$or` branch), keys in ESR order.
//! - [`consolidate`]: drop prefix-redundant candidates, merge those that serve the same shapes.
//! - [`existing`]: skip what an existing index already serves; list redundant existing indexes.
//! - [`verify`]: planner evidence (PostgreSQL HypoPG costs), keep what the planner would use.
//! - [`rank`]: order by the total time of the shapes each index serves.

pub mod candidates;
pub mod consolidate;
pub mod engine;
pub mod existing;
pub mod index;
pub mod rank;
#[cfg(test)]
mod tests;
pub mod verify;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::shape::{Namespace, ShapeId};
use crate::snapshot::Snapshot;
pub use engine::{EngineRules, LeafUse};
pub use index::{Condition, IndexKey, IndexMethod, IndexSpec, PartialTerm};

/// A shape an index serves, with its measured weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// The shape.
    pub shape_id: ShapeId,
    /// A readable rendering of the shape: names, operators and types, never values.
    #[serde(default)]
    pub shape: String,
    /// How many times it ran.
    pub count: u64,
    /// Total time it took, in milliseconds.
    pub total_ms: f64,
    /// Its 95th-percentile latency, in milliseconds.
    pub p95_ms: f64,
}

crate::spelling::open! {
    /// How a recommendation's evidence was measured.
    pub enum EvidenceMethod {
        /// PostgreSQL planner costs, without and with a HypoPG hypothetical index.
        Hypopg => "hypopg",
    }
}

/// Planner evidence for one recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// How it was measured.
    pub method: EvidenceMethod,
    /// Estimated total cost of the served shapes without the index (sum over shapes).
    pub cost_before: f64,
    /// The same with the hypothetical index.
    pub cost_after: f64,
}

/// Write load on a namespace: every index there slows these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteLoad {
    /// Inserted documents/rows.
    pub inserts: u64,
    /// Update statements.
    pub updates: u64,
    /// Delete statements.
    pub deletes: u64,
    /// Read executions on the namespace.
    pub reads: u64,
}

/// One recommended index, with the evidence for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The index.
    pub index: IndexSpec,
    /// Its name.
    pub name: String,
    /// The shapes it serves, heaviest first.
    pub serves: Vec<Served>,
    /// Planner evidence, when it was measured.
    pub evidence: Option<Evidence>,
    /// The write load on its namespace.
    pub write_load: WriteLoad,
}

impl Recommendation {
    /// Total milliseconds spent by the shapes this index serves: the ranking key.
    pub fn total_ms(&self) -> f64 {
        self.serves.iter().map(|s| s.total_ms).sum()
    }
}

/// An existing index worth dropping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropCandidate {
    /// The redundant index.
    pub index: IndexSpec,
    /// Its name.
    pub name: String,
    /// Why: e.g. "prefix of status_1_delivery_date_-1".
    pub reason: String,
}

/// Existing indexes, per namespace, as read from the catalog.
pub type ExistingIndexes = BTreeMap<Namespace, Vec<IndexSpec>>;

/// The whole advice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    /// Recommended indexes, most valuable first.
    pub recommendations: Vec<Recommendation>,
    /// Existing indexes that are prefixes of others.
    pub drops: Vec<DropCandidate>,
    /// Caveats about how the advice was made ("HypoPG is not available: costs are not
    /// verified", "existing indexes of app.orders could not be read").
    pub notes: Vec<String>,
}

/// From a snapshot of the traffic and the existing indexes, the advice (before verification).
pub fn advise(snapshot: &Snapshot, existing: &ExistingIndexes) -> Advice {
    let candidates = candidates::from_snapshot(snapshot);
    let chosen = consolidate::consolidate(candidates);
    let kept = existing::filter(chosen, existing);
    let drops = existing::redundant(existing);
    let recommendations = rank::rank(kept, snapshot, existing);
    Advice {
        recommendations,
        drops,
        notes: Vec::new(),
    }
}
