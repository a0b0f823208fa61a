//! Prometheus metrics, per listener.
//!
//! Families are created once; each connection resolves its counters once at accept time
//! ([`ListenerMetrics`]), so the data path only touches atomics.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
    engine: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    listener: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    listener: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    listener: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    listener: String,
    stage: String,
}

/// Every metric indextap exports.
pub struct Metrics {
    registry: Registry,
    connections_total: Family<ListenerLabels, Counter>,
    connections_active: Family<ListenerLabels, Gauge>,
    bytes: Family<DirectionLabels, Counter>,
    messages: Family<KindLabels, Counter>,
    decode_errors: Family<ReasonLabels, Counter>,
    events: Family<ReasonLabels, Counter>,
    dropped_samples: Family<StageLabels, Counter>,
    upstream_connect_errors: Family<ListenerLabels, Counter>,
    uninspected_sessions: Family<ReasonLabels, Counter>,
    added_latency: Family<DirectionLabels, Histogram>,
    /// Distinct shapes tracked by the aggregator (set at scrape time).
    pub shapes_tracked: Gauge,
    /// Observations dropped because the analyzer fell behind.
    pub analysis_dropped: Counter,
    /// Executions counted in the "other" buckets (set at scrape time).
    pub shapes_overflow: Gauge<u64, AtomicU64>,
    /// Shapes evicted into their namespace's "other" bucket (set at scrape time).
    pub shapes_evicted: Gauge<u64, AtomicU64>,
    /// Writes to namespaces the full write counters could not take (set at scrape time).
    pub writes_untracked: Gauge<u64, AtomicU64>,
    /// Bytes the aggregate holds, as charged against its budget (set at scrape time).
    pub aggregate_bytes: Gauge<u64, AtomicU64>,
    /// The aggregate's byte budget (set at scrape time).
    pub aggregate_limit_bytes: Gauge<u64, AtomicU64>,
    /// Commands the lowerers could not use, by reason (set at scrape time).
    rejected: Family<ReasonLabels, Gauge<u64, AtomicU64>>,
    /// Bytes held now for frames gathered across reads (the inspection budget's counter).
    inspect_held_bytes: Gauge<u64, AtomicU64>,
    /// The inspection budget's limit.
    inspect_budget_bytes: Gauge<u64, AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 1 µs to ~16 s: the proxy's own overhead is in the microseconds.
    Histogram::new(exponential_buckets(0.000_001, 2.0, 25))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("indextap");
        let connections_total = Family::<ListenerLabels, Counter>::default();
        let connections_active = Family::<ListenerLabels, Gauge>::default();
        let bytes = Family::<DirectionLabels, Counter>::default();
        let messages = Family::<KindLabels, Counter>::default();
        let decode_errors = Family::<ReasonLabels, Counter>::default();
        let events = Family::<ReasonLabels, Counter>::default();
        let dropped_samples = Family::<StageLabels, Counter>::default();
        let upstream_connect_errors = Family::<ListenerLabels, Counter>::default();
        let uninspected_sessions = Family::<ReasonLabels, Counter>::default();
        let added_latency = Family::<DirectionLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let shapes_tracked = Gauge::default();
        let analysis_dropped = Counter::default();
        let shapes_overflow = Gauge::<u64, AtomicU64>::default();
        let shapes_evicted = Gauge::<u64, AtomicU64>::default();
        let writes_untracked = Gauge::<u64, AtomicU64>::default();
        let aggregate_bytes = Gauge::<u64, AtomicU64>::default();
        let aggregate_limit_bytes = Gauge::<u64, AtomicU64>::default();
        let rejected = Family::<ReasonLabels, Gauge<u64, AtomicU64>>::default();
        let inspect_held_bytes = Gauge::<u64, AtomicU64>::default();
        let inspect_budget_bytes = Gauge::<u64, AtomicU64>::default();

        registry.register(
            "connections",
            "Client connections accepted",
            connections_total.clone(),
        );
        registry.register(
            "connections_active",
            "Client connections open now",
            connections_active.clone(),
        );
        registry.register("bytes", "Bytes forwarded, by direction", bytes.clone());
        registry.register(
            "messages",
            "Wire messages seen, by opcode or message type",
            messages.clone(),
        );
        registry.register(
            "decode_errors",
            "Inspection stopped on a connection, by reason",
            decode_errors.clone(),
        );
        registry.register(
            "inspection_events",
            "Counted, non-fatal inspection events",
            events.clone(),
        );
        registry.register(
            "dropped_samples",
            "Frames or observations dropped because inspection fell behind",
            dropped_samples.clone(),
        );
        registry.register(
            "upstream_connect_errors",
            "Failed connections to the upstream",
            upstream_connect_errors.clone(),
        );
        registry.register(
            "uninspected_sessions",
            "Sessions forwarded without inspection, by reason",
            uninspected_sessions.clone(),
        );
        registry.register(
            "added_latency_seconds",
            "Time from reading a chunk to having forwarded it",
            added_latency.clone(),
        );
        registry.register(
            "shapes_tracked",
            "Distinct query shapes tracked",
            shapes_tracked.clone(),
        );
        registry.register(
            "analysis_dropped",
            "Observations dropped before the analyzer",
            analysis_dropped.clone(),
        );
        registry.register(
            "shapes_overflow_executions",
            "Executions counted in the other buckets (shapes evicted or past the bounds)",
            shapes_overflow.clone(),
        );
        registry.register(
            "shapes_evicted",
            "Shapes evicted into their collection's or table's other bucket",
            shapes_evicted.clone(),
        );
        registry.register(
            "writes_untracked",
            "Writes to collections or tables first written to once the write counters were full (counted here only)",
            writes_untracked.clone(),
        );
        registry.register(
            "aggregate_memory_bytes",
            "Bytes the aggregate holds, as charged against its budget",
            aggregate_bytes.clone(),
        );
        registry.register(
            "aggregate_memory_limit_bytes",
            "The aggregate's byte budget (capture.max_aggregate_bytes, less the SQL cache's share)",
            aggregate_limit_bytes.clone(),
        );
        registry.register(
            "rejected_commands",
            "Commands no shape could be made of, by reason",
            rejected.clone(),
        );
        registry.register(
            "inspect_held_bytes",
            "Bytes held for inspection of frames gathered across reads, charged against capture.max_inspect_total_bytes",
            inspect_held_bytes.clone(),
        );
        registry.register(
            "inspect_budget_bytes",
            "The budget for frames gathered across reads (capture.max_inspect_total_bytes)",
            inspect_budget_bytes.clone(),
        );

        Self {
            registry,
            connections_total,
            connections_active,
            bytes,
            messages,
            decode_errors,
            events,
            dropped_samples,
            upstream_connect_errors,
            uninspected_sessions,
            added_latency,
            shapes_tracked,
            analysis_dropped,
            shapes_overflow,
            shapes_evicted,
            writes_untracked,
            aggregate_bytes,
            aggregate_limit_bytes,
            rejected,
            inspect_held_bytes,
            inspect_budget_bytes,
        }
    }

    /// The process's inspection budget of `limit` bytes, counted in the held-bytes gauge.
    pub fn inspect_budget(&self, limit: usize) -> crate::budget::InspectBudget {
        self.inspect_budget_bytes.set(limit as u64);
        crate::budget::InspectBudget::new(limit, self.inspect_held_bytes.clone())
    }

    /// Resolve one listener's hot-path counters.
    pub fn listener(&self, listener: &str, engine: &str) -> ListenerMetrics {
        let labels = ListenerLabels {
            listener: listener.to_string(),
            engine: engine.to_string(),
        };
        let direction = |d: &str| DirectionLabels {
            listener: listener.to_string(),
            direction: d.to_string(),
        };
        // One statement per lookup: `get_or_create` returns a read guard, and a second
        // lookup that must insert takes the write lock. Two guards alive in one expression
        // would deadlock.
        let connections_total = self.connections_total.get_or_create(&labels).clone();
        let connections_active = self.connections_active.get_or_create(&labels).clone();
        let upstream_connect_errors = self.upstream_connect_errors.get_or_create(&labels).clone();
        let bytes_to_upstream = self.bytes.get_or_create(&direction("to_upstream")).clone();
        let bytes_to_client = self.bytes.get_or_create(&direction("to_client")).clone();
        let latency_to_upstream = self
            .added_latency
            .get_or_create(&direction("to_upstream"))
            .clone();
        let latency_to_client = self
            .added_latency
            .get_or_create(&direction("to_client"))
            .clone();
        let stage = |stage: &str| StageLabels {
            listener: listener.to_string(),
            stage: stage.to_string(),
        };
        let tap_dropped = self.dropped_samples.get_or_create(&stage("tap")).clone();
        let analysis_dropped = self
            .dropped_samples
            .get_or_create(&stage("analysis"))
            .clone();
        ListenerMetrics {
            listener: listener.to_string(),
            connections_total,
            connections_active,
            upstream_connect_errors,
            bytes_to_upstream,
            bytes_to_client,
            latency_to_upstream,
            latency_to_client,
            tap_dropped,
            analysis_dropped,
            messages: self.messages.clone(),
            decode_errors: self.decode_errors.clone(),
            events: self.events.clone(),
            uninspected: self.uninspected_sessions.clone(),
            identity: Arc::default(),
            analysis_dropped_total: self.analysis_dropped.clone(),
        }
    }

    /// Set a rejection count (from the aggregator, at scrape time).
    pub fn set_rejected(&self, reason: &str, count: u64) {
        self.rejected
            .get_or_create(&ReasonLabels {
                listener: "all".to_string(),
                reason: reason.to_string(),
            })
            .set(count);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One listener's counters, resolved once and cheap to clone into each connection.
#[derive(Clone)]
pub struct ListenerMetrics {
    /// The listener's name.
    pub listener: String,
    /// Connections accepted.
    pub connections_total: Counter,
    /// Connections open.
    pub connections_active: Gauge,
    /// Upstream connect failures.
    pub upstream_connect_errors: Counter,
    /// Bytes client → upstream.
    pub bytes_to_upstream: Counter,
    /// Bytes upstream → client.
    pub bytes_to_client: Counter,
    /// The proxy's added latency, client → upstream.
    pub latency_to_upstream: Histogram,
    /// The proxy's added latency, upstream → client.
    pub latency_to_client: Histogram,
    /// Frames dropped because a connection's inspector fell behind.
    pub tap_dropped: Counter,
    /// Observations dropped because the analyzer fell behind.
    pub analysis_dropped: Counter,
    analysis_dropped_total: Counter,
    messages: Family<KindLabels, Counter>,
    decode_errors: Family<ReasonLabels, Counter>,
    events: Family<ReasonLabels, Counter>,
    uninspected: Family<ReasonLabels, Counter>,
    /// One per [`Metrics::listener`] call, shared by the clones: tells these counters apart
    /// from another registry's listener of the same name.
    identity: Arc<()>,
}

impl ListenerMetrics {
    /// Whether both are clones of one [`Metrics::listener`] (the same counters).
    pub fn same_listener(&self, other: &ListenerMetrics) -> bool {
        Arc::ptr_eq(&self.identity, &other.identity)
    }
}

impl std::fmt::Debug for ListenerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerMetrics")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl ListenerMetrics {
    /// A wire message of this kind went by.
    pub fn message(&self, kind: &str) {
        self.messages(kind, 1);
    }

    /// `count` wire messages of this kind went by (an inspection task's tally).
    pub fn messages(&self, kind: &str, count: u64) {
        self.messages
            .get_or_create(&KindLabels {
                listener: self.listener.clone(),
                kind: kind.to_string(),
            })
            .inc_by(count);
    }

    /// The counter of one message kind, for an inspection task that resolves each kind once
    /// and adds its tallies up itself (the lookup allocates, the counter is an atomic).
    pub fn message_counter(&self, kind: &str) -> Counter {
        self.messages
            .get_or_create(&KindLabels {
                listener: self.listener.clone(),
                kind: kind.to_string(),
            })
            .clone()
    }

    /// The counter of one event kind, resolved once (see [`ListenerMetrics::message_counter`]).
    pub fn event_counter(&self, what: &str) -> Counter {
        self.events
            .get_or_create(&ReasonLabels {
                listener: self.listener.clone(),
                reason: what.to_string(),
            })
            .clone()
    }

    /// Inspection of a connection stopped for this reason.
    pub fn decode_error(&self, reason: &str) {
        self.decode_errors
            .get_or_create(&ReasonLabels {
                listener: self.listener.clone(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// A counted, non-fatal inspection event.
    pub fn event(&self, what: &str) {
        self.events(what, 1);
    }

    /// `count` events of one kind (an inspection task's tally).
    pub fn events(&self, what: &str, count: u64) {
        self.events
            .get_or_create(&ReasonLabels {
                listener: self.listener.clone(),
                reason: what.to_string(),
            })
            .inc_by(count);
    }

    /// A session is forwarded without inspection (`tls_passthrough`, ...).
    pub fn uninspected(&self, reason: &str) {
        self.uninspected
            .get_or_create(&ReasonLabels {
                listener: self.listener.clone(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// `count` observations were dropped before the analyzer (a batch that did not fit).
    pub fn drop_observations(&self, count: u64) {
        self.analysis_dropped.inc_by(count);
        self.analysis_dropped_total.inc_by(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_resolve_and_counts_show_in_the_exposition() {
        let metrics = Metrics::new();
        let mongo = metrics.listener("m1", "mongodb");
        let again = metrics.listener("m1", "mongodb");
        mongo.connections_total.inc();
        again.connections_total.inc();
        mongo.message("OP_MSG");
        mongo.decode_error("bad_length");
        mongo.tap_dropped.inc();
        let text = metrics.encode();
        for line in [
            r#"indextap_connections_total{listener="m1",engine="mongodb"} 2"#,
            r#"indextap_messages_total{listener="m1",kind="OP_MSG"} 1"#,
            r#"indextap_decode_errors_total{listener="m1",reason="bad_length"} 1"#,
            r#"indextap_dropped_samples_total{listener="m1",stage="tap"} 1"#,
            "indextap_added_latency_seconds_bucket",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
