//! The latency sketch: a sparse, mergeable log-bucket histogram (DDSketch's mapping) whose
//! size follows what was recorded, not the range it could record.
//!
//! A value `v` (µs, clamped to [`MIN_MICROS`]..=[`MAX_MICROS`]) falls in bucket
//! `k = ceil(ln v / ln γ)` with `γ = (1 + α) / (1 − α)`, and a bucket answers with the value
//! `2γᵏ / (γ + 1)`, which is within α of every value in it: a quantile read from the sketch is
//! within [`RELATIVE_ACCURACY`] (1 %) of the exact quantile, as in DDSketch (Masson et al.,
//! VLDB 2019). One hour at 1 % takes 1,101 buckets, so a key fits 16 bits.
//!
//! Only buckets that hold a value exist: each is one `u64`, the key in the top 16 bits and
//! the count in the low 48 (saturating at 2⁴⁸ − 1, 89 years of 100k executions a second), kept
//! sorted. A shape whose executions all took about the same time costs 8 bytes; the full
//! range, 8.8 KiB. Why not the `sketches-ddsketch` crate: its dense store allocates 128
//! `u64` buckets on the first value and carries a 176-byte header, so 10,000 shapes measured
//! 12 MiB for one value each (24 MiB with a spread of 1,000×), where this costs 0.3 MiB;
//! and its floating-point `sum` makes merging depend on the order.
//!
//! Merging adds counts bucket by bucket (saturating), so it is exactly commutative and
//! associative: a fleet merges to the same sketch in any order.
//!
//! The serialised form is the list of `[key, count]` pairs, sorted. Reading one folds
//! repeated or unsorted pairs and clamps keys and counts, so a hand-edited file never panics.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Relative accuracy α of every quantile read from a sketch.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// The smallest value a sketch tells apart, in µs: faster executions count as 1 µs.
pub const MIN_MICROS: u64 = 1;
/// The largest value a sketch tells apart, in µs (one hour): slower ones count as an hour.
pub const MAX_MICROS: u64 = 3_600_000_000;

/// Counts live in the low 48 bits of a bucket.
const COUNT_BITS: u32 = 48;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// `γ = (1 + α) / (1 − α)` and its logarithm, written out because `ln` is not `const`
/// (a test checks them against [`RELATIVE_ACCURACY`]).
const GAMMA: f64 = 1.020_202_020_202_02;
const LN_GAMMA: f64 = 0.020_000_666_706_669_435;

/// Values below this have their keys looked up in a table worked out once
/// ([`small_keys`]): a logarithm costs more than the rest of a record, and nearly every
/// latency is a few milliseconds at most.
const SMALL_MICROS: u64 = 8192;

/// The key of `micros`'s bucket.
fn key_of(micros: u64) -> u16 {
    let small = usize::try_from(micros)
        .ok()
        .and_then(|at| small_keys().get(at));
    match small {
        Some(key) => *key,
        None => computed_key(micros),
    }
}

/// The keys of `0..SMALL_MICROS`, each as [`computed_key`] gives it (16 KiB, made on first
/// use), so the table answers exactly what the logarithm would.
fn small_keys() -> &'static [u16] {
    static KEYS: std::sync::OnceLock<Box<[u16]>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| (0..SMALL_MICROS).map(computed_key).collect())
}

/// The key of `micros`'s bucket, from its logarithm.
///
/// Kept out of line: inlined, the release build computed the logarithm before it knew
/// whether the table answered (`ln` has no side effects, so the compiler may hoist it), and
/// every record paid for it all the same.
#[cold]
#[inline(never)]
fn computed_key(micros: u64) -> u16 {
    let value = micros.clamp(MIN_MICROS, MAX_MICROS) as f64;
    // `as` saturates; at one hour the key is 1,101, far inside u16.
    (value.ln() / LN_GAMMA).ceil().max(0.0) as u16
}

/// The largest key a value can map to.
fn max_key() -> u16 {
    key_of(MAX_MICROS)
}

/// The value a bucket answers with: within α of everything in `(γᵏ⁻¹, γᵏ]`.
fn value_of(key: u16) -> f64 {
    2.0 * (f64::from(key) * LN_GAMMA).exp() / (GAMMA + 1.0)
}

fn pack(key: u16, count: u64) -> u64 {
    (u64::from(key) << COUNT_BITS) | count.min(COUNT_MASK)
}

fn key(bin: u64) -> u16 {
    // The top 16 bits: the shift leaves nothing else.
    (bin >> COUNT_BITS) as u16
}

fn count(bin: u64) -> u64 {
    bin & COUNT_MASK
}

/// A latency distribution in microseconds. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencySketch {
    /// Non-empty buckets, sorted by key (the top bits, so sorted as integers too).
    bins: Vec<u64>,
}

impl LatencySketch {
    /// An empty sketch (no allocation).
    pub fn new() -> Self {
        Self::default()
    }

    /// A sketch holding `count` executions of `micros` each.
    pub fn with_value(micros: u64, count: u64) -> Self {
        let mut sketch = Self::new();
        sketch.record_n(micros, count);
        sketch
    }

    /// Record one execution.
    #[inline]
    pub fn record(&mut self, micros: u64) {
        self.record_n(micros, 1);
    }

    /// Record `n` executions of `micros` each.
    #[inline]
    pub fn record_n(&mut self, micros: u64, n: u64) {
        if n == 0 {
            return;
        }
        let key = key_of(micros);
        match self.bins.binary_search_by_key(&key, |bin| self::key(*bin)) {
            Ok(at) => {
                if let Some(bin) = self.bins.get_mut(at) {
                    *bin = pack(key, count(*bin).saturating_add(n));
                }
            }
            Err(at) => self.insert_bin(at, key, n),
        }
    }

    /// A new bucket at `at` (rare once a shape has run a while: kept out of line).
    #[cold]
    #[inline(never)]
    fn insert_bin(&mut self, at: usize, key: u16, n: u64) {
        // Grow by a quarter rather than double: a sketch gains buckets rarely, and the spare
        // capacity is memory every shape would carry.
        if self.bins.len() == self.bins.capacity() {
            self.bins.reserve_exact((self.bins.len() / 4).max(1));
        }
        self.bins.insert(at, pack(key, n));
    }

    /// Add another sketch's executions to this one.
    pub fn merge(&mut self, other: &LatencySketch) {
        if other.bins.is_empty() {
            return;
        }
        if self.bins.is_empty() {
            self.bins.clone_from(&other.bins);
            return;
        }
        let mut merged = Vec::with_capacity(self.bins.len() + other.bins.len());
        let (mut ours, mut theirs) = (self.bins.iter().peekable(), other.bins.iter().peekable());
        loop {
            let next = match (ours.peek(), theirs.peek()) {
                (Some(&&a), Some(&&b)) if key(a) == key(b) => {
                    ours.next();
                    theirs.next();
                    pack(key(a), count(a).saturating_add(count(b)))
                }
                (Some(&&a), Some(&&b)) if key(a) < key(b) => {
                    ours.next();
                    a
                }
                (_, Some(&&b)) => {
                    theirs.next();
                    b
                }
                (Some(&&a), None) => {
                    ours.next();
                    a
                }
                (None, None) => break,
            };
            merged.push(next);
        }
        merged.shrink_to_fit();
        self.bins = merged;
    }

    /// `a` and `b` merged.
    pub fn merged(a: &LatencySketch, b: &LatencySketch) -> LatencySketch {
        let mut out = a.clone();
        out.merge(b);
        out
    }

    /// How many executions were recorded.
    pub fn count(&self) -> u64 {
        self.bins
            .iter()
            .fold(0u64, |total, bin| total.saturating_add(count(*bin)))
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// The value at quantile `q` (0.0 ..= 1.0, so 0.95 is p95), in µs, within
    /// [`RELATIVE_ACCURACY`] of the `ceil(q × count)`-th smallest recorded value. An empty
    /// sketch gives 0; `q` outside the range is clamped.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // `as` saturates from f64, and the rank is clamped into 1..=total.
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for bin in &self.bins {
            seen = seen.saturating_add(count(*bin));
            if seen >= rank {
                return value_of(key(*bin));
            }
        }
        // Unreachable: the counts add up to `total`.
        self.bins.last().map_or(0.0, |bin| value_of(key(*bin)))
    }

    /// [`LatencySketch::quantile`] rounded to whole microseconds, for display: within 2 % (the
    /// rounding is exact below 50 µs, and adds under 1 % above).
    pub fn quantile_micros(&self, q: f64) -> u64 {
        // `as` saturates; the value is at most about an hour.
        self.quantile(q).round() as u64
    }

    /// The non-empty buckets as `(key, count)`, sorted by key.
    pub fn buckets(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.bins.iter().map(|bin| (key(*bin), count(*bin)))
    }

    /// Bytes this sketch holds on the heap (its buckets' allocation).
    pub fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<u64>()
    }

    /// A sketch of `(key, count)` pairs in any order: repeated keys add up, keys past the
    /// largest are clamped to it, empty buckets are dropped.
    pub fn from_buckets(pairs: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let last = max_key();
        let mut bins: Vec<u64> = pairs
            .into_iter()
            .filter(|&(_, n)| n > 0)
            .map(|(k, n)| pack(u16::try_from(k).unwrap_or(last).min(last), n))
            .collect();
        bins.sort_unstable();
        // Equal keys are now adjacent: fold them.
        bins.dedup_by(|later, kept| {
            if key(*later) != key(*kept) {
                return false;
            }
            *kept = pack(key(*kept), count(*kept).saturating_add(count(*later)));
            true
        });
        bins.shrink_to_fit();
        LatencySketch { bins }
    }
}

impl Serialize for LatencySketch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.buckets())
    }
}

impl<'de> Deserialize<'de> for LatencySketch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs = Vec::<(u64, u64)>::deserialize(deserializer)?;
        Ok(LatencySketch::from_buckets(pairs))
    }
}

#[cfg(test)]
mod tests;
