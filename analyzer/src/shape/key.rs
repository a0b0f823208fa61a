//! A shape's structural key: a 128-bit hash of its tree, equal for equal shapes within a
//! process. The aggregate files shapes under it. Hashing the tree is cheap where the
//! [`ShapeId`](super::ShapeId) hashes the canonical JSON, but it still walks every predicate;
//! a cached SQL lowering is recorded thousands of times, so each occurrence keeps the key it
//! computed ([`KeyMemo`]).
//!
//! ## Layout
//! - [`structural_key`]: the hash.
//! - [`KeyMemo`]: an occurrence's key, computed on first use.

use std::hash::Hash;
use std::sync::OnceLock;

use xxhash_rust::xxh3::Xxh3;

use super::Shape;

/// A shape's structural hash: equal shapes hash equal within a process (not across
/// versions: it is never stored).
pub fn structural_key(shape: &Shape) -> u128 {
    let mut hasher = Xxh3::new();
    shape.hash(&mut hasher);
    hasher.digest128()
}

/// The key of the shape beside it, once computed. A cache, not part of the value: it never
/// makes two occurrences unequal, and a clone starts empty, because a clone's shape may be
/// changed.
#[derive(Debug, Default)]
pub(crate) struct KeyMemo(OnceLock<u128>);

impl KeyMemo {
    /// The key of `shape`, which must be the shape this memo sits beside.
    pub(crate) fn get(&self, shape: &Shape) -> u128 {
        *self.0.get_or_init(|| structural_key(shape))
    }
}

impl Clone for KeyMemo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for KeyMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{Namespace, ShapeOccurrence};

    fn find(collection: &str) -> Shape {
        Shape::new(Namespace::mongo("app", collection), "find")
    }

    #[test]
    fn an_occurrence_keeps_the_key_of_its_shape() {
        let occurrence = ShapeOccurrence::from(find("orders"));
        assert_eq!(occurrence.key(), structural_key(&find("orders")));
        assert_eq!(occurrence.key(), occurrence.key());
        assert_ne!(occurrence.key(), structural_key(&find("users")));
    }

    #[test]
    fn a_clone_computes_the_key_of_its_own_shape() {
        let occurrence = ShapeOccurrence::from(find("orders"));
        let _ = occurrence.key();
        let mut changed = occurrence.clone();
        changed.shape = find("users");
        assert_eq!(changed.key(), structural_key(&find("users")));
    }

    #[test]
    fn the_memo_never_makes_occurrences_unequal() {
        let asked = ShapeOccurrence::from(find("orders"));
        let _ = asked.key();
        assert_eq!(asked, ShapeOccurrence::from(find("orders")));
    }
}
