//! What each leaf of a filter can do for an index, per engine.
//!
//! The same operator class means different things to the two engines: `IS NULL` is a key
//! in MongoDB (`{f: null}` is an equality) but belongs in a partial index's WHERE on
//! PostgreSQL, where NULLs are rare and `IS NULL` filters are usually soft-delete markers.
//! And a constant that every execution carried (`$exists: true`, `is_active = true`)
//! makes a leaf a partial-index term instead of a key.

use crate::advise::{Condition, IndexMethod, PartialTerm};
use crate::shape::{BoundConstant, Constant, Engine, Leaf, OpClass};

/// How one leaf is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeafUse {
    /// An equality: leads the key.
    Equality,
    /// `$in` / `IN (...)`: equality, unless a sort follows.
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
    /// Whether an index can use the leaf to find rows (a partial term alone cannot:
    /// an index needs keys).
    pub(crate) fn is_indexable(&self) -> bool {
        matches!(
            self,
            LeafUse::Equality | LeafUse::In | LeafUse::Range | LeafUse::Special(_)
        )
    }
}

/// Classify one leaf of a shape of `engine`, given the constants every execution carried.
pub(crate) fn classify(leaf: &Leaf, engine: Engine, constants: &[BoundConstant]) -> LeafUse {
    let constant = constants
        .iter()
        .find(|bound| bound.target == leaf.target && bound.operator == leaf.operator)
        .map(|bound| &bound.constant);
    let partial = |condition| {
        LeafUse::Partial(PartialTerm {
            target: leaf.target.clone(),
            condition,
        })
    };
    if leaf.operator.is_join() {
        return LeafUse::Equality;
    }
    match engine {
        Engine::Mongodb => match (constant, leaf.class) {
            // MongoDB's partialFilterExpression accepts `$exists: true` only.
            (Some(Constant::Exists(true)), _) => partial(Condition::Exists(true)),
            (Some(Constant::Type(name)), _) => partial(Condition::Type(name.clone())),
            (_, OpClass::Eq | OpClass::IsNull) => LeafUse::Equality,
            (_, OpClass::In) => LeafUse::In,
            (_, OpClass::Range | OpClass::Prefix) => LeafUse::Range,
            (_, OpClass::Text) => LeafUse::Special(IndexMethod::Text),
            _ => LeafUse::FilterOnly,
        },
        Engine::Postgresql => match (constant, leaf.class) {
            (_, OpClass::IsNull) => partial(Condition::IsNull),
            (_, OpClass::NotNull) => partial(Condition::IsNotNull),
            (Some(Constant::Bool(value)), _) => partial(Condition::Bool(*value)),
            (Some(Constant::Tokens(tokens)), _) if !tokens.is_empty() => {
                partial(Condition::InTokens(tokens.clone()))
            }
            (_, OpClass::Eq) => LeafUse::Equality,
            (_, OpClass::In) => LeafUse::In,
            (_, OpClass::Range | OpClass::Prefix) => LeafUse::Range,
            (_, OpClass::Infix) => LeafUse::Special(IndexMethod::GinTrgm),
            (_, OpClass::JsonContains) => LeafUse::Special(IndexMethod::Gin),
            _ => LeafUse::FilterOnly,
        },
    }
}
