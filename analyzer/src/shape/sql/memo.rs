//! One analysis thread's memo of its prepared statements' lowerings: a prepared statement
//! arrives again and again with the very same shared text (`Arc<str>`), so the thread finds
//! its lowering by the text's address, without hashing the text, the database or locking a
//! shard of the [`SqlCache`].
//!
//! An entry keeps the text and database `Arc`s it is keyed by alive, so their addresses
//! cannot be reused by another text while it stands; a lowering depends on nothing but the
//! database, the text, the protocol and the statement index, so an entry never goes stale
//! (an entry the cache has since evicted still lowers the same). Only extended-protocol
//! commands are memoised: a simple Query's text is a new allocation each time.
//!
//! Bounded in entries (a table of [`SLOTS`] slots, two ways: a statement lives in its slot
//! or the next, so two hot statements on one slot do not push each other out) and in the
//! bytes it keeps alive (texts and lowerings): past that, it starts over empty, which costs
//! one cache lookup per statement.
//!
//! ## Layout
//! - [`LoweringMemo`]: the memo, [`LoweringMemo::lower_shared`] its one entry point.

use std::sync::Arc;

use super::SqlCache;
use crate::command::{Request, SqlCommand, SqlProtocol};
use crate::shape::footprint::HeapSize;
use crate::shape::Lowering;

/// Slots of the table (a power of two): statements memoised at most.
pub(crate) const SLOTS: usize = 256;
/// Bytes of text and lowering the memo may keep alive.
const MAX_BYTES: usize = 256 * 1024;

/// Where a command's text and database live, and what else its lowering reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    text: usize,
    database: usize,
    statement_index: Option<usize>,
}

impl Identity {
    fn of(command: &SqlCommand) -> Self {
        Self {
            text: Arc::as_ptr(&command.text).cast::<u8>().addr(),
            database: Arc::as_ptr(&command.database).cast::<u8>().addr(),
            statement_index: command.statement_index,
        }
    }

    /// The first of its two slots (an even one): the text's address, mixed so that its
    /// high bits pick (allocations are aligned, so the low bits say little).
    fn slot(&self) -> usize {
        let mixed = (self.text ^ self.database.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> (usize::BITS - SLOTS.trailing_zeros())) & !1
    }
}

#[derive(Debug)]
struct Entry {
    identity: Identity,
    /// Held so that the addresses in `identity` stay theirs.
    _text: Arc<str>,
    _database: Arc<str>,
    lowering: Arc<Lowering>,
    bytes: usize,
}

/// See the module docs.
#[derive(Debug)]
pub struct LoweringMemo {
    slots: Box<[Option<Entry>]>,
    bytes: usize,
}

impl Default for LoweringMemo {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| None).collect(),
            bytes: 0,
        }
    }
}

impl LoweringMemo {
    /// [`crate::shape::lower_shared`], from the memo when this thread lowered the same
    /// prepared statement (the same shared text) before; counted as a cache hit.
    pub fn lower_shared(&mut self, request: &Request, cache: &SqlCache) -> Arc<Lowering> {
        let command = match request {
            Request::Sql(command) if command.protocol == SqlProtocol::Extended => command,
            _ => return crate::shape::lower_shared(request, cache),
        };
        let identity = Identity::of(command);
        let first = identity.slot();
        for at in [first, first | 1] {
            if let Some(Some(entry)) = self.slots.get(at) {
                if entry.identity == identity {
                    cache.count_hit();
                    return Arc::clone(&entry.lowering);
                }
            }
        }
        let lowering = cache.lower_shared(command);
        self.keep(identity, first, command, &lowering);
        lowering
    }

    /// Statements memoised.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Whether nothing is memoised.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Put the newcomer first in its pair of slots; the one it displaces takes the second,
    /// whose former holder goes.
    fn keep(
        &mut self,
        identity: Identity,
        first: usize,
        command: &SqlCommand,
        lowering: &Arc<Lowering>,
    ) {
        let bytes = command.text.len() + lowering.heap_size();
        if bytes > MAX_BYTES / 16 {
            // A huge statement would push out everything else: looked up in the cache.
            return;
        }
        let newcomer = Entry {
            identity,
            _text: Arc::clone(&command.text),
            _database: Arc::clone(&command.database),
            lowering: Arc::clone(lowering),
            bytes,
        };
        let Some([first, second]) = self.slots.get_mut(first..=first | 1) else {
            return;
        };
        let displaced = first.replace(newcomer);
        let gone = std::mem::replace(second, displaced);
        self.bytes = self.bytes + bytes - gone.map_or(0, |gone| gone.bytes);
        if self.bytes > MAX_BYTES {
            // Start over, keeping the newcomer.
            let kept = first.take();
            self.slots.iter_mut().for_each(|slot| *slot = None);
            self.bytes = 0;
            if let Some(kept) = kept {
                self.bytes = kept.bytes;
                if let Some(slot) = self.slots.get_mut(kept.identity.slot()) {
                    *slot = Some(kept);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
