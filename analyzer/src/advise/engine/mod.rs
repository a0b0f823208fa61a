//! Engine rules: everything the advisor does differently for MongoDB and PostgreSQL.
//!
//! The advisor's core (candidates, consolidation, the existing-index filter, ranking,
//! verification) is written once and asks an [`EngineRules`] whenever the engines differ:
//! how a leaf can use an index, the exceptions to ESR, which indexes a collection or table
//! always has, how indexes are named, how advice is verified, what a write costs. It never
//! asks which engine it is advising on. [`Engine::rules`] is the one place that maps an
//! engine to its rules.
//!
//! ## Where a new rule goes
//! - A rule that holds for every engine (a key-order rule, a consolidation rule): in the
//!   core stage it belongs to, written over [`IndexSpec`] and the shape model.
//! - A rule that differs between engines: a method here, with the default that most engines
//!   want, and the engine-specific answer in that engine's folder. The core calls the
//!   method; it never matches on [`Engine`].
//! - A third engine: a folder beside `mongodb/` and `postgresql/` implementing
//!   [`EngineRules`], and one arm in [`Engine::rules`].
//!
//! ## Layout
//! - this file: [`EngineRules`], [`LeafUse`] (what the rules tell the core about a leaf),
//!   and [`Engine::rules`].
//! - [`mongodb`]: MongoDB's rules and index names.
//! - [`postgresql`]: PostgreSQL's rules, index names and `CREATE INDEX` text.

pub mod mongodb;
pub mod postgresql;

use super::{EvidenceMethod, IndexKey, IndexMethod, IndexSpec, PartialTerm, WriteLoad};
use crate::shape::{Constant, Engine, Leaf, Namespace, Target};

/// What one leaf of a filter can do for an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafUse {
    /// An equality: leads the key.
    Equality,
    /// `$in` / `IN (...)`: an equality, unless a sort follows (see
    /// [`EngineRules::in_keeps_sort_order`]).
    In,
    /// A bounded scan: range or anchored prefix. At most one per index.
    Range,
    /// A term of the partial predicate, not a key.
    Partial(PartialTerm),
    /// Needs an index of its own kind (text, GIN, trigram GIN) on this leaf's target.
    Special(IndexMethod),
    /// Left to the filter: no index helps with it.
    FilterOnly,
}

impl LeafUse {
    /// Whether an index can use the leaf to find rows (a partial term alone cannot: an
    /// index needs keys).
    pub fn is_indexable(&self) -> bool {
        matches!(
            self,
            LeafUse::Equality | LeafUse::In | LeafUse::Range | LeafUse::Special(_)
        )
    }

    /// A partial-predicate term on `leaf`'s target.
    pub fn partial(leaf: &Leaf, condition: super::Condition) -> Self {
        LeafUse::Partial(PartialTerm {
            target: leaf.target.clone(),
            condition,
        })
    }
}

/// What differs between engines, for every stage of the advice.
///
/// Implementations are stateless: the rules of an engine, not of a deployment. What is
/// learned from a catalog (existing indexes, statistics) reaches the core as data.
pub trait EngineRules: Sync {
    // Candidates: what a leaf does, and the exceptions to Equality, Sort, Range.

    /// What `leaf` can do for an index, given the non-data `constant` that every execution
    /// carried with it (a `$exists: true`, a boolean or enum token written into the SQL).
    /// Join leaves never reach this: the core reads them as equalities.
    fn leaf_use(&self, leaf: &Leaf, constant: Option<&Constant>) -> LeafUse;

    /// Whether an `$in` / `IN` key placed before a sort key keeps the index's order for
    /// that sort. When it does not, `$in` keys go after the sort keys, as a range.
    fn in_keeps_sort_order(&self) -> bool {
        false
    }

    /// Whether a sort on `target` can be served by an index key (MongoDB's `$natural` and
    /// `$meta` pseudo-fields cannot).
    fn sorts_on(&self, target: &Target) -> bool {
        self.builds_key(target)
    }

    /// Whether an index key, or a partial-predicate term, can be written on `target` as the
    /// shape recorded it. A PostgreSQL expression whose literal was hidden as a value
    /// (`coalesce("n", ?)`) cannot: its statement would not build. Such a leaf is left to
    /// the filter, and the advice says so in its notes.
    fn builds_key(&self, _target: &Target) -> bool {
        true
    }

    /// Whether an index key records its own NULLS FIRST / NULLS LAST placement.
    fn orders_nulls(&self) -> bool;

    /// Whether an index can carry covering columns (`INCLUDE`) for index-only scans.
    fn covers(&self) -> bool;

    /// The key of a special index (text, GIN, trigram) that serves a leaf on `target`.
    fn special_key(&self, _method: IndexMethod, target: &Target) -> IndexKey {
        IndexKey::asc(target.clone())
    }

    // Existing indexes.

    /// The indexes every collection or table of `namespace` has, whether or not a catalog
    /// read listed them (MongoDB's `_id` index). A unique one among them serves every
    /// shape that tests all of its keys for equality.
    fn implicit_indexes(&self, namespace: &Namespace) -> Vec<IndexSpec>;

    /// The form the engine stores an index key in: a proposed key and an existing index's
    /// key are the same key when their forms are equal (PostgreSQL prints
    /// `upper((email)::text)` for an index created on `upper("email"::text)`).
    fn key_form(&self, target: &Target) -> Target {
        target.clone()
    }

    /// Whether an existing index enforces something besides speed (a primary key, `_id`)
    /// and so is never proposed for dropping. Unique indexes are protected by the core.
    fn is_protected(&self, index: &IndexSpec) -> bool;

    /// Whether `namespace` belongs to the engine itself (system catalogs, internal
    /// databases and collections): its shapes may be counted, never advised on.
    fn is_system(&self, namespace: &Namespace) -> bool;

    // Names.

    /// The engine's conventional name for `index`, within [`Self::max_name_len`].
    fn index_name(&self, index: &IndexSpec) -> String;

    /// The longest index name the engine accepts, in bytes.
    fn max_name_len(&self) -> usize;

    /// Where index names must be unique: two indexes of one scope need two names.
    fn name_scope(&self, namespace: &Namespace) -> String;

    // Verification.

    /// How advice on this engine is verified, or `None` when it is not (yet).
    fn verification(&self) -> Option<EvidenceMethod>;

    /// The statement that creates `index` hypothetically for a planner to price, when
    /// advice on this engine is verified that way.
    fn hypothetical_ddl(&self, _index: &IndexSpec) -> Option<String> {
        None
    }

    // Write cost.

    /// How many times one more index on the namespace is written to under `load`: the
    /// maintenance cost every index adds to the writes.
    fn index_writes(&self, load: &WriteLoad) -> u64;
}

impl Engine {
    /// The advisor's rules for this engine.
    pub fn rules(self) -> &'static dyn EngineRules {
        match self {
            Engine::Mongodb => &mongodb::MongoDb,
            Engine::Postgresql => &postgresql::PostgreSql,
        }
    }
}
