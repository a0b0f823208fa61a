//! Latency histograms in their portable form: sorted `(bucket value µs, count)` pairs.
//!
//! The pairs are the recorded buckets of an hdrhistogram with the snapshot's bounds
//! ([`super::HISTOGRAM_MAX_MICROS`], [`super::HISTOGRAM_SIGFIG`]); each value is the highest
//! value equivalent to its bucket. Merging and percentiles work on the pairs directly, so
//! neither allocates a full histogram (hundreds of KiB at these bounds).

use std::collections::BTreeMap;

use super::HistogramRecord;

impl HistogramRecord {
    /// The sum of two histograms, bucket by bucket: sorted by value, one pair per value,
    /// no empty bucket. Unsorted or repeated pairs (a hand-edited file) are folded too.
    pub fn merged(a: &HistogramRecord, b: &HistogramRecord) -> HistogramRecord {
        let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
        for &(value, count) in a.0.iter().chain(&b.0) {
            let total = buckets.entry(value).or_insert(0);
            *total = total.saturating_add(count);
        }
        HistogramRecord(buckets.into_iter().filter(|&(_, n)| n > 0).collect())
    }

    /// How many values were recorded.
    pub fn total_count(&self) -> u64 {
        self.0
            .iter()
            .fold(0u64, |total, &(_, count)| total.saturating_add(count))
    }

    /// The value at quantile `q` (0.0 ..= 1.0, so 0.95 is p95), in µs, as hdrhistogram's
    /// `value_at_quantile` computes it: the bucket holding the `ceil(q × total)`-th value.
    /// An empty histogram gives 0; `q` outside the range is clamped.
    pub fn percentile(&self, q: f64) -> u64 {
        let total = self.total_count();
        if total == 0 {
            return 0;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // `as` saturates from f64, and the rank is clamped into 1..=total.
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let sorted: std::borrow::Cow<'_, [(u64, u64)]> = if self.0.is_sorted() {
            std::borrow::Cow::Borrowed(&self.0)
        } else {
            let mut owned = self.0.clone();
            owned.sort_unstable();
            std::borrow::Cow::Owned(owned)
        };
        let mut seen = 0u64;
        for &(value, count) in sorted.iter() {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return value;
            }
        }
        // Unreachable when counts sum to `total`; the largest value is the honest answer.
        self.0.iter().map(|&(value, _)| value).max().unwrap_or(0)
    }
}
