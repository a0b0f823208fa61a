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
//! Bounded in entries and in the bytes it keeps alive (texts and lowerings): past either,
//! it starts over empty, which costs one cache lookup per statement.
//!
//! ## Layout
//! - [`LoweringMemo`]: the memo, [`LoweringMemo::lower_shared`] its one entry point.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::FixedState;

use super::SqlCache;
use crate::command::{Request, SqlCommand, SqlProtocol};
use crate::shape::footprint::HeapSize;
use crate::shape::Lowering;

/// Statements memoised at most.
const MAX_ENTRIES: usize = 256;
/// Bytes of text and lowering the memo may keep alive.
const MAX_BYTES: usize = 256 * 1024;

/// Where a command's text and database live, and what else its lowering reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

#[derive(Debug)]
struct Entry {
    /// Held so that the addresses in the key stay theirs.
    _text: Arc<str>,
    _database: Arc<str>,
    lowering: Arc<Lowering>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct LoweringMemo {
    entries: HashMap<Identity, Entry, FixedState>,
    bytes: usize,
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
        if let Some(entry) = self.entries.get(&identity) {
            cache.count_hit();
            return Arc::clone(&entry.lowering);
        }
        let lowering = cache.lower_shared(command);
        self.keep(identity, command, &lowering);
        lowering
    }

    /// Statements memoised.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is memoised.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn keep(&mut self, identity: Identity, command: &SqlCommand, lowering: &Arc<Lowering>) {
        let bytes = command.text.len() + lowering.heap_size();
        if bytes > MAX_BYTES / 16 {
            // A huge statement would push out everything else: looked up in the cache.
            return;
        }
        if self.entries.len() >= MAX_ENTRIES || self.bytes + bytes > MAX_BYTES {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += bytes;
        self.entries.insert(
            identity,
            Entry {
                _text: Arc::clone(&command.text),
                _database: Arc::clone(&command.database),
                lowering: Arc::clone(lowering),
            },
        );
    }
}

#[cfg(test)]
mod tests;
