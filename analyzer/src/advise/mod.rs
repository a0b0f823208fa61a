//! Advice: from aggregated shapes to the indexes the traffic needs.
//!
//! Written once for both engines, over [`IndexSpec`] and the shapes in a [`Snapshot`].
//!
//! ## Layout
//! - this file: the advice ([`Recommendation`], [`Advice`]) and [`advise`].
//! - [`index`]: the index model ([`IndexSpec`] and its parts) and naming helpers.
//! - [`engine`]: [`EngineRules`], what differs between MongoDB and PostgreSQL, one
//!   implementation per engine. The rest of this module asks the rules, never the engine.
//! - [`attribute`]: only user objects; unqualified columns of joins attributed with the
//!   catalog; fields no sampled document has left out.
//! - [`candidates`]: one candidate per shape (per `$or` branch), keys in ESR order.
//! - [`consolidate`]: drop prefix-redundant candidates, merge those that serve the same shapes.
//! - [`existing`]: skip what an existing index already serves; list redundant existing indexes.
//! - [`verify`]: planner evidence (PostgreSQL HypoPG costs), keep what the planner would use.
//! - [`rank`]: order by the estimated time each index saves, less what it costs on writes;
//!   keep the best within each namespace's budget.
//! - [`write_cost`]: what one more index costs on its namespace's writes, measured from the
//!   inserts' time where the traffic allows.
//! - [`settings`]: [`AdviceSettings`], the thresholds of `[advice]`.

pub mod attribute;
pub mod candidates;
#[cfg(test)]
mod catalog_tests;
pub mod consolidate;
pub mod engine;
pub mod existing;
pub mod index;
pub mod rank;
pub mod settings;
#[cfg(test)]
mod tests;
pub mod verify;
pub mod write_cost;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::CatalogFacts;
use crate::shape::{Namespace, ShapeId};
use crate::snapshot::Snapshot;
pub use engine::{EngineRules, LeafUse};
pub use index::{Condition, IndexKey, IndexMethod, IndexSpec, PartialTerm};
pub use settings::AdviceSettings;
pub use write_cost::{WriteCost, WriteCostBasis};

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
        /// MongoDB `explain` on a sample copied into a scratch database: documents
        /// examined without and with the index.
        Sample => "sample",
    }
}

/// Planner evidence for one recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// How it was measured.
    pub method: EvidenceMethod,
    /// Estimated total cost of the served shapes without the index (sum over shapes); for
    /// a sample, the documents examined.
    pub cost_before: f64,
    /// The same with the hypothetical index.
    pub cost_after: f64,
    /// For a sample: how many documents it held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_size: Option<u64>,
}

impl Evidence {
    /// The fraction of the served shapes' cost the index saves (0 when it saves nothing).
    pub fn gain(&self) -> f64 {
        if self.cost_before > 0.0 && self.cost_after.is_finite() {
            (1.0 - self.cost_after / self.cost_before).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
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
    /// What it would cost on those writes over the window.
    #[serde(default)]
    pub write_cost: WriteCost,
    /// What it is ranked by: the served shapes' time times the verified gain (the whole time
    /// when unverified), less its write cost, in milliseconds.
    #[serde(default)]
    pub net_saving_ms: f64,
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
    /// For an unused index: what was measured over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<DropEvidence>,
}

/// Why an unused index may go: over the window, no use and some writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropEvidence {
    /// Inserts, updates and deletes seen on its table or collection.
    pub writes: u64,
    /// How long the window was, in seconds.
    pub window_secs: f64,
    /// The server's own count of its uses over the window (`idx_scan`, `accesses.ops`).
    pub server_uses: u64,
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

/// From a snapshot of the traffic and the existing indexes, the advice (before
/// verification), with no other catalog facts and the default settings.
pub fn advise(snapshot: &Snapshot, existing: &ExistingIndexes) -> Advice {
    advise_with(
        snapshot,
        existing,
        &CatalogFacts::default(),
        &AdviceSettings::default(),
    )
}

/// From a snapshot, the existing indexes and what else the catalogs say, the advice
/// (before verification): user objects only, columns attributed, candidates in ESR order cut
/// at a unique prefix, consolidated, nothing an existing index serves, and the existing
/// indexes to drop (prefixes of others, and those unused over a long enough window).
pub fn advise_with(
    snapshot: &Snapshot,
    existing: &ExistingIndexes,
    facts: &CatalogFacts,
    settings: &AdviceSettings,
) -> Advice {
    let (attributed, notes) = attribute::attribute(snapshot, facts);
    // Each shape's own candidate first: a merged candidate only knows what all its shapes
    // have in common, so an existing index that serves each of them separately could be
    // missed once they are merged.
    let candidates = existing::filter(candidates::from_snapshot_with(&attributed, facts), existing);
    let chosen = consolidate::past_selective_prefix(consolidate::consolidate(candidates), facts);
    let kept = existing::filter(chosen, existing);
    let mut drops = existing::redundant(existing);
    for unused in existing::unused(&attributed, existing, facts, settings) {
        if !drops.iter().any(|drop| drop.index == unused.index) {
            drops.push(unused);
        }
    }
    let recommendations = rank::rank(kept, &attributed, existing, settings);
    Advice {
        recommendations,
        drops,
        notes,
    }
}
