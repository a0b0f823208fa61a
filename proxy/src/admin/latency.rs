//! The added-latency histogram: read-to-forwarded time of each chunk the relay moves.
//!
//! The relay observes it once per chunk, so an observation is two relaxed atomic additions
//! (the bucket and the sum, in whole nanoseconds) and a bucket found by arithmetic, where
//! `prometheus_client`'s `Histogram` took a lock and compared floats bucket by bucket. The
//! buckets are the ones that histogram had (1 µs doubling up to ~16.8 s, then +Inf), with
//! the same bounds in the exposition; the count is the buckets' total.
//!
//! ## Layout
//! - [`LatencyHistogram`]: observe, encode.
//! - `bucket`: which bucket a latency falls in.

use std::iter::once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Finite buckets: 1 µs × 2^0 ..= 2^24.
const FINITE: usize = 25;

/// A latency histogram whose clones share their counts.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram {
    inner: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Per bucket (not cumulative); the last is +Inf.
    buckets: [AtomicU64; FINITE + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    /// Count one latency.
    pub fn observe(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        if let Some(bucket) = self.inner.buckets.get(bucket(nanos)) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.inner
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }
}

/// The first bucket whose bound (1 µs × 2^k) is at least `nanos`: k is the bit length of
/// the latency in whole microseconds, rounded up, less one.
fn bucket(nanos: u64) -> usize {
    let micros = nanos.div_ceil(1_000);
    if micros <= 1 {
        return 0;
    }
    let k = (u64::BITS - (micros - 1).leading_zeros()) as usize;
    k.min(FINITE)
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let bounds = exponential_buckets(0.000_001, 2.0, FINITE as u16).chain(once(f64::MAX));
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.inner.buckets)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, count)| count).sum();
        let sum = self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    fn exposition(register: impl FnOnce(&mut Registry)) -> String {
        let mut registry = Registry::default();
        register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    }

    #[test]
    fn each_latency_lands_in_the_first_bucket_at_least_as_large() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1_000), 0);
        assert_eq!(bucket(1_001), 1);
        assert_eq!(bucket(2_000), 1);
        assert_eq!(bucket(2_001), 2);
        assert_eq!(bucket(4_000), 2);
        assert_eq!(bucket(1_000 << 24), 24);
        assert_eq!(bucket((1_000 << 24) + 1), FINITE);
        assert_eq!(bucket(u64::MAX), FINITE);
    }

    /// The exposition is the one `prometheus_client`'s histogram gave for the same
    /// latencies (bounds, cumulative counts, count), with the sum in whole nanoseconds.
    #[test]
    fn the_exposition_matches_the_float_histogram_it_replaces() {
        let latencies = [
            0,
            999,
            1_000,
            1_001,
            3_500,
            70_000,
            9_000_000,
            20_000_000_000,
        ];
        let ours = LatencyHistogram::default();
        let theirs = Histogram::new(exponential_buckets(0.000_001, 2.0, FINITE as u16));
        for nanos in latencies {
            ours.observe(Duration::from_nanos(nanos));
            theirs.observe(Duration::from_nanos(nanos).as_secs_f64());
        }
        assert_eq!(ours.count(), latencies.len() as u64);
        let ours = exposition(|r| r.register("latency", "", ours));
        let theirs = exposition(|r| r.register("latency", "", theirs));
        let buckets = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|line| !line.starts_with("latency_sum"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(buckets(&ours), buckets(&theirs));
        assert!(ours.contains("latency_sum 20.0090765"), "{ours}");
        assert!(
            ours.contains(r#"latency_bucket{le="0.000001"} 3"#),
            "{ours}"
        );
    }
}
