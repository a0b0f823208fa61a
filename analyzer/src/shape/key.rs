//! A shape's structural key: a 128-bit hash of its tree, equal for equal shapes within a
//! process. The aggregate files shapes under it. Hashing the tree is cheap where the
//! [`ShapeId`](super::ShapeId) hashes the canonical JSON, but it still walks every predicate;
//! a cached SQL lowering is recorded thousands of times, so each occurrence keeps the key it
//! computed ([`KeyMemo`]).
//!
//! The tree's `Hash` writes are many and small (a discriminant, a length, a field name), and
//! xxh3's streaming state pays a call and a bounds check per write and a large state to set
//! up. So the writes are gathered into a reused buffer and hashed in one go, which gives the
//! same digest as streaming them (xxh3 hashes the concatenation either way).
//!
//! ## Layout
//! - [`structural_key`]: the hash; `with_gathered`, the reused buffer it gathers into.
//! - [`KeyMemo`]: an occurrence's key, computed on first use.

use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use xxhash_rust::xxh3::xxh3_128;

use super::Shape;

/// A shape's structural hash: equal shapes hash equal within a process (not across
/// versions: it is never stored).
pub fn structural_key(shape: &Shape) -> u128 {
    with_gathered(|buffer| gathered_key(shape, buffer))
}

/// Runs `gather` with the thread's gathering buffer, emptied (a fresh one if it is in
/// use).
fn with_gathered<R>(gather: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    GATHERED.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            let result = gather(&mut buffer);
            if buffer.capacity() > KEEP_BYTES {
                *buffer = Vec::new();
            }
            result
        }
        Err(_) => gather(&mut Vec::new()),
    })
}

fn gathered_key(shape: &Shape, buffer: &mut Vec<u8>) -> u128 {
    let mut gather = Gather(buffer);
    shape.hash(&mut gather);
    xxh3_128(gather.0)
}

/// The bytes a shape's `Hash` writes, in order.
struct Gather<'a>(&'a mut Vec<u8>);

impl Hasher for Gather<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// Never used: the digest is taken over the gathered bytes.
    fn finish(&self) -> u64 {
        0
    }
}

/// A buffer that grew past this for an unusually large shape is not kept.
const KEEP_BYTES: usize = 16 * 1024;

thread_local! {
    /// The analysis thread's gathering buffer, reused from shape to shape.
    static GATHERED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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
    fn gathering_gives_the_streamed_digest() {
        let shape = find("orders");
        let mut streamed = xxhash_rust::xxh3::Xxh3::new();
        shape.hash(&mut streamed);
        assert_eq!(structural_key(&shape), streamed.digest128());
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
