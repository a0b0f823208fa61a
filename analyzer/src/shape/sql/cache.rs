//! The statement cache: most traffic repeats a few hundred statements, so a repeated text
//! costs one hash and one lookup, and a statement repeated with other values one pass over
//! its bytes, a hash and a lookup.
//!
//! Keys are 128-bit xxh3 hashes, seeded by the database, the protocol and the statement
//! index (which the lowering depends on), never the text itself: a text can hold values. At
//! 128 bits a collision is not a practical concern. A lookup tries up to three keys:
//! - the exact key, a hash of the text: prepared statements repeat verbatim;
//! - on a miss, the quick key (see `fingerprint::quick`), a hash of the text's bytes with
//!   plain literals replaced by their class, made without the tokenizer: `WHERE aid =
//!   94845` sent as a simple query shares the lowering of every other `aid`;
//! - on a miss, the masked key (see `fingerprint`), a hash of the text's tokens with value
//!   literals replaced by their kind: the same for texts the quick key cannot read
//!   (comments, dollar quotes, ...).
//!
//! A simple-protocol text tries its quick key before its exact key: such a text holding
//! values is never stored under its exact key, so the exact lookup would be a sure miss.
//!
//! A lowering is stored under its quick key when the text proves that key may stand for its
//! masked key (every literal masked, see `Quick::confirms`), else under its masked key; and
//! also under its exact key when the text will come back verbatim: a prepared statement
//! (extended protocol), or a text without a single literal (`BEGIN`, `SELECT ... WHERE deleted_at IS NULL`). A simple-protocol text
//! holding values rarely comes back verbatim, and would fill the cache with entries never
//! hit again. A text that does not tokenize is stored under its exact key only.
//!
//! The same store holds MongoDB's `find` and `count` lowerings under their structural keys
//! (see `mongo::cache`), within the same bounds.
//!
//! The cache is split into shards, each an LRU behind its own mutex, so threads lowering
//! different statements rarely wait on each other; the lowering itself runs outside any
//! lock.
//!
//! It is bounded twice: in entries, and in bytes ([`SqlCache::bounded`]), each entry charged
//! for its lowering's shapes and SQL text ([`footprint`](crate::shape::footprint)) and its
//! LRU node. A lowering stored under both its keys is charged twice: the bound errs on the
//! safe side. Past either bound, the least recently used entries go first.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64};

use super::fingerprint::{fingerprint, precut, quick as quick_key};
use crate::command::{SqlCommand, SqlProtocol};
use crate::shape::footprint::{allocation, HeapSize};
use crate::shape::Lowering;

/// Shards for caches big enough to split; small caches use one, to keep the bound exact.
const SHARDS: usize = 8;

/// One shard: lowerings by text hash, least recently used first out, with what each costs.
#[derive(Debug)]
struct Entries {
    lru: LruCache<u128, (Arc<Lowering>, usize)>,
    bytes: usize,
    max_bytes: usize,
}

type Shard = Mutex<Entries>;

/// What one entry holds: the lowering (its `Arc` allocation and everything inside), the LRU
/// node (key, value, two links) and its slot in the LRU's hash table.
fn entry_cost(lowering: &Lowering) -> usize {
    allocation(std::mem::size_of::<Lowering>() + 16)
        + lowering.heap_size()
        + allocation(std::mem::size_of::<(u128, Arc<Lowering>, usize)>() + 16)
        + 2 * std::mem::size_of::<usize>()
}

/// A bounded cache of SQL lowering, keyed by a hash of the statement text.
#[derive(Debug)]
pub struct SqlCache {
    shards: Box<[Shard]>,
    hits: AtomicU64,
    masked_hits: AtomicU64,
    quick_hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for SqlCache {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl SqlCache {
    /// A cache holding at most `capacity` statements; `0` caches nothing.
    pub fn new(capacity: usize) -> Self {
        Self::bounded(capacity, usize::MAX)
    }

    /// A cache holding at most `capacity` statements and `max_bytes` bytes.
    pub fn bounded(capacity: usize, max_bytes: usize) -> Self {
        let count = if capacity >= SHARDS * 16 { SHARDS } else { 1 };
        let shards = (0..count)
            .filter_map(|index| {
                // Spread the remainder so the shards add up to `capacity` exactly.
                let size = capacity / count + usize::from(index < capacity % count);
                NonZeroUsize::new(size).map(|size| {
                    Mutex::new(Entries {
                        lru: LruCache::new(size),
                        bytes: 0,
                        max_bytes: max_bytes / count,
                    })
                })
            })
            .collect();
        Self {
            shards,
            hits: AtomicU64::new(0),
            masked_hits: AtomicU64::new(0),
            quick_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Lower one statement text, from the cache when it was seen before.
    pub fn lower(&self, command: &SqlCommand) -> Lowering {
        Lowering::clone(&self.lower_shared(command))
    }

    /// Like [`SqlCache::lower`], without copying a cached lowering.
    pub fn lower_shared(&self, command: &SqlCommand) -> Arc<Lowering> {
        let seed = seed(command);
        // A simple-protocol text with values is never stored under its exact key, so its
        // quick key is tried first; a text without values has both keys, for one lowering.
        let simple = command.protocol == SqlProtocol::Simple;
        let mut quick = simple.then(|| quick_key(&command.text, seed)).flatten();
        if let Some(found) = quick.as_ref().and_then(|quick| self.get(quick.key)) {
            return self.quick_hit(found);
        }
        let exact = xxh3_128_with_seed(command.text.as_bytes(), seed);
        if let Some(found) = self.get(exact) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return found;
        }
        if !simple {
            quick = quick_key(&command.text, seed);
            if let Some(found) = quick.as_ref().and_then(|quick| self.get(quick.key)) {
                return self.quick_hit(found);
            }
        }
        // Long literals cut first: the masked key's tokenizer copies every literal it reads.
        // Texts that differ only inside a cut literal lower alike, so they may share a key.
        let cut = precut(&command.text);
        let masked = fingerprint(&cut, seed);
        // The quick key stands in for the masked key once the text proves it may.
        let quick = quick.filter(|quick| {
            masked.is_some_and(|masked| {
                quick.confirms(&command.text, &masked, |other| fingerprint(other, seed))
            })
        });
        if let Some(found) = masked.and_then(|masked| self.get(masked.key)) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            self.masked_hits.fetch_add(1, Ordering::Relaxed);
            if let Some(quick) = &quick {
                self.put(quick.key, &found);
            }
            return found;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let lowering = Arc::new(super::lower_precut(
            &command.database,
            &cut,
            command.protocol,
            command.statement_index,
        ));
        match masked {
            Some(masked) => {
                match &quick {
                    Some(quick) => self.put(quick.key, &lowering),
                    None => self.put(masked.key, &lowering),
                }
                if command.protocol == SqlProtocol::Extended || !masked.literals {
                    self.put(exact, &lowering);
                }
            }
            None => self.put(exact, &lowering),
        }
        lowering
    }

    /// A lookup answered before reaching the cache (a thread's
    /// [`LoweringMemo`](super::LoweringMemo)): counted as the exact-key hit it stands for.
    pub(crate) fn count_hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// A lookup answered by the quick key.
    fn quick_hit(&self, found: Arc<Lowering>) -> Arc<Lowering> {
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.masked_hits.fetch_add(1, Ordering::Relaxed);
        self.quick_hits.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// How many entries are cached: a statement stored under both its keys counts twice.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).lru.len()).sum()
    }

    /// Bytes the entries hold, as charged against the byte bound.
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).bytes).sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups answered from the cache, by either key.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The part of [`SqlCache::hits`] answered by the masked key: a text seen before only
    /// with other values.
    pub fn masked_hits(&self) -> u64 {
        self.masked_hits.load(Ordering::Relaxed)
    }

    /// The part of [`SqlCache::masked_hits`] answered by the quick key, without the
    /// tokenizer.
    pub fn quick_hits(&self) -> u64 {
        self.quick_hits.load(Ordering::Relaxed)
    }

    /// Lookups that had to lower the text.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// The lowering stored under `key`, if any (MongoDB's structural keys use it too).
    pub(crate) fn get(&self, key: u128) -> Option<Arc<Lowering>> {
        let shard = self.shard(key)?;
        lock(shard)
            .lru
            .get(&key)
            .map(|(lowering, _)| Arc::clone(lowering))
    }

    /// Store `lowering` under `key`, within the bounds.
    pub(crate) fn put(&self, key: u128, lowering: &Arc<Lowering>) {
        let Some(shard) = self.shard(key) else {
            return;
        };
        let cost = entry_cost(lowering);
        let mut entries = lock(shard);
        if cost > entries.max_bytes {
            // Bigger than the whole shard: lowered again each time rather than cached.
            return;
        }
        // `push` hands back what it replaced or pushed out to stay within the count.
        if let Some((_, (_, gone))) = entries.lru.push(key, (Arc::clone(lowering), cost)) {
            entries.bytes = entries.bytes.saturating_sub(gone);
        }
        entries.bytes += cost;
        while entries.bytes > entries.max_bytes {
            let Some((_, (_, gone))) = entries.lru.pop_lru() else {
                break;
            };
            entries.bytes = entries.bytes.saturating_sub(gone);
        }
    }

    fn shard(&self, key: u128) -> Option<&Shard> {
        let count = self.shards.len();
        if count == 0 {
            return None;
        }
        // The high bits pick the shard; the map inside hashes the whole key again.
        let index = usize::try_from((key >> 64) % count as u128).unwrap_or(0);
        self.shards.get(index)
    }
}

/// The seed of both keys: what the lowering reads besides the text.
fn seed(command: &SqlCommand) -> u64 {
    let protocol = match command.protocol {
        SqlProtocol::Simple => 1,
        SqlProtocol::Extended => 2,
        SqlProtocol::Copy => 3,
    };
    // `None` (the whole text) and each statement index seed differently.
    let statement = command.statement_index.map_or(0, |index| {
        u64::try_from(index).unwrap_or(u64::MAX).wrapping_add(1)
    });
    xxh3_64(command.database.as_bytes()).rotate_left(2) ^ protocol ^ statement.rotate_left(8)
}

/// A poisoned shard only means another thread panicked mid-update of an LRU whose entries
/// are immutable `Arc`s; the cache is still sound, so keep using it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
