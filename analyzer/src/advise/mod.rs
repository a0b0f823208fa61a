//! Advice: from aggregated shapes to the indexes the traffic needs.
//!
//! Written once for both engines, over [`IndexSpec`] and the shapes in a [`Snapshot`].
//!
//! ## Layout
//! - this file: the model ([`IndexSpec`], [`Recommendation`], [`Advice`]) and [`advise`].
//! - [`candidates`]: one candidate per shape (per `$or` branch), keys in ESR order.
//! - [`consolidate`]: drop prefix-redundant candidates, merge those that serve the same shapes.
//! - [`existing`]: skip what an existing index already serves; list redundant existing indexes.
//! - [`verify`]: planner evidence (PostgreSQL HypoPG costs), keep what the planner would use.
//! - [`rank`]: order by the total time of the shapes each index serves.

pub mod candidates;
pub mod consolidate;
pub mod existing;
pub mod rank;
#[cfg(test)]
mod tests;
pub mod verify;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::shape::{Namespace, ShapeId, Target};
use crate::snapshot::Snapshot;

/// One key of an index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IndexKey {
    /// The field, column, or expression.
    pub target: Target,
    /// 1 ascending, -1 descending (ignored by text, GIN and trigram indexes).
    pub direction: i8,
    /// PostgreSQL `NULLS FIRST` (true) / `NULLS LAST` (false), only when it differs from the
    /// default for the direction (ASC NULLS LAST, DESC NULLS FIRST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nulls_first: Option<bool>,
}

impl IndexKey {
    /// An ascending key.
    pub fn asc(target: Target) -> Self {
        Self::new(target, 1)
    }

    /// A descending key.
    pub fn desc(target: Target) -> Self {
        Self::new(target, -1)
    }

    /// A key with the default null ordering.
    pub fn new(target: Target, direction: i8) -> Self {
        Self {
            target,
            direction,
            nulls_first: None,
        }
    }

    /// Whether nulls come first in a scan of this key, spelled out or by default.
    pub fn effective_nulls_first(&self) -> bool {
        self.nulls_first.unwrap_or(self.direction < 0)
    }

    /// The same key scanned backwards: direction and null placement both flip.
    pub fn reversed(&self) -> Self {
        let direction = -self.direction;
        let nulls_first = !self.effective_nulls_first();
        Self {
            target: self.target.clone(),
            direction,
            nulls_first: (nulls_first != (direction < 0)).then_some(nulls_first),
        }
    }

    /// Whether two keys order rows the same way (same target, direction and null placement).
    pub fn same_order(&self, other: &IndexKey) -> bool {
        self.target == other.target
            && self.direction == other.direction
            && self.effective_nulls_first() == other.effective_nulls_first()
    }
}

/// The access method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexMethod {
    /// A B-tree (MongoDB's ordinary index).
    Btree,
    /// MongoDB text index.
    Text,
    /// PostgreSQL GIN (jsonb containment).
    Gin,
    /// PostgreSQL GIN with `gin_trgm_ops` (infix LIKE / ILIKE).
    GinTrgm,
}

/// One condition of a partial index's predicate. Only non-data constants appear here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// `{f: {$exists: bool}}`.
    Exists(bool),
    /// `{f: {$type: "name"}}`.
    Type(String),
    /// `f IS NULL`.
    IsNull,
    /// `f IS NOT NULL`.
    IsNotNull,
    /// `f = true|false`.
    Bool(bool),
    /// `f IN ('A', 'B')` with enum-like tokens written in the SQL.
    InTokens(Vec<String>),
}

/// One conjunct of a partial index predicate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartialTerm {
    /// The column or field.
    pub target: Target,
    /// The condition on it.
    pub condition: Condition,
}

/// An index, existing or proposed, in engine-neutral form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndexSpec {
    /// The collection or table.
    pub namespace: Namespace,
    /// The keys, in order.
    pub keys: Vec<IndexKey>,
    /// The access method.
    pub method: IndexMethod,
    /// The partial predicate (AND of the terms); empty for a full index.
    #[serde(default)]
    pub partial: Vec<PartialTerm>,
    /// Covering columns (PostgreSQL `INCLUDE`).
    #[serde(default)]
    pub include: Vec<String>,
    /// Whether the index is unique.
    #[serde(default)]
    pub unique: bool,
    /// The name, for existing indexes (and once a recommendation is named).
    #[serde(default)]
    pub name: Option<String>,
}

impl IndexSpec {
    /// The conventional name: MongoDB's `field_1_other_-1`, or PostgreSQL's
    /// `table_col_other_idx` (truncated to 63 bytes with a hash suffix).
    pub fn default_name(&self) -> String {
        crate::export::naming::index_name(self)
    }
}

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
