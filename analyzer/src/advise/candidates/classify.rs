//! What each leaf of a filter can do for an index.
//!
//! The engine's rules decide ([`EngineRules::leaf_use`]): the same operator class means
//! different things to the two engines (`IS NULL` is a key in MongoDB, a partial-index term
//! on PostgreSQL), and a constant that every execution carried (`$exists: true`,
//! `is_active = true`) makes a leaf a partial-index term instead of a key. A join leaf is an
//! equality on this table's column whatever the engine. A target no index can be written on
//! as recorded ([`EngineRules::builds_key`]) is left to the filter.

use crate::advise::{EngineRules, LeafUse};
use crate::shape::{BoundConstant, Leaf};

/// Classify one leaf, given the constants every execution of its shape carried.
pub(crate) fn classify(
    leaf: &Leaf,
    rules: &dyn EngineRules,
    constants: &[BoundConstant],
) -> LeafUse {
    if leaf.operator.is_join() {
        return LeafUse::Equality;
    }
    if !rules.builds_key(&leaf.target) {
        return LeafUse::FilterOnly;
    }
    let constant = constants
        .iter()
        .find(|bound| bound.target == leaf.target && bound.operator == leaf.operator)
        .map(|bound| &bound.constant);
    rules.leaf_use(leaf, constant)
}
