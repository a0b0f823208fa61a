//! An index, existing or proposed, in engine-neutral form, and what names are made of.
//!
//! ESR, consolidation, the existing-index filter and ranking are written once over these
//! types. What an engine makes of them (its naming convention, its DDL) is in
//! [`super::engine`].
//!
//! ## Layout
//! - this file: [`IndexSpec`], [`IndexKey`], [`IndexMethod`], [`PartialTerm`], [`Condition`].
//! - [`naming`]: the pieces every naming convention uses (sanitising, truncating with a hash).

pub mod naming;

use serde::{Deserialize, Serialize};

use crate::shape::{Namespace, Target};

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
    /// A full, non-unique, unnamed index on `keys`.
    pub fn new(namespace: Namespace, method: IndexMethod, keys: Vec<IndexKey>) -> Self {
        Self {
            namespace,
            keys,
            method,
            partial: Vec::new(),
            include: Vec::new(),
            unique: false,
            name: None,
        }
    }

    /// The conventional name, by the engine's rules: MongoDB's `field_1_other_-1`, or
    /// PostgreSQL's `table_col_other_idx` (truncated to 63 bytes with a hash suffix).
    pub fn default_name(&self) -> String {
        self.namespace.engine.rules().index_name(self)
    }
}
