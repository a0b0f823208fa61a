//! The pipeline from a connection's frames to the analyzer.
//!
//! Per connection, an inspection task drains the tap channel into the engine's
//! [`Inspector`]; its observations go, with `try_send`, into one bounded queue that a
//! dedicated analysis thread drains into the [`Aggregator`]. Neither step ever makes the
//! data path wait: a full queue drops and counts.
//!
//! ## Layout
//! - [`Analysis`]: the shared queue, the aggregator and the SQL cache; the analysis thread.
//! - [`inspect_connection`]: one connection's inspection task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indextap_analyzer::aggregate::Aggregator;
use indextap_analyzer::command::Observation;
use indextap_analyzer::shape::{self, sql::SqlCache};
use tokio::sync::mpsc;

use crate::admin::metrics::ListenerMetrics;
use crate::relay::{TapItem, TapReceiver};
use crate::tap::{Events, Inspector};

/// The analyzer side of the proxy: one queue in, one aggregator.
#[derive(Debug, Clone)]
pub struct Analysis {
    queue: mpsc::Sender<Observation>,
    /// What has been learned so far.
    pub aggregator: Arc<Aggregator>,
    /// Observations queued, and observations recorded: equal when the analyzer is idle.
    accepted: Arc<AtomicU64>,
    recorded: Arc<AtomicU64>,
}

impl Analysis {
    /// Start the analysis threads; they end when every sender is dropped.
    pub fn start(
        aggregator: Arc<Aggregator>,
        queue_len: usize,
        sql_cache_entries: usize,
        workers: usize,
    ) -> Self {
        let (queue, receiver) = mpsc::channel::<Observation>(queue_len.max(1));
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let cache = Arc::new(SqlCache::new(sql_cache_entries.max(1)));
        let recorded = Arc::new(AtomicU64::new(0));
        for worker in 0..workers.max(1) {
            let receiver = receiver.clone();
            let aggregator = aggregator.clone();
            let cache = cache.clone();
            let recorded = recorded.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("indextap-analysis-{worker}"))
                .spawn(move || analysis_loop(&receiver, &aggregator, &cache, &recorded));
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start an analysis thread");
            }
        }
        Self {
            queue,
            aggregator,
            accepted: Arc::new(AtomicU64::new(0)),
            recorded,
        }
    }

    /// Offer an observation; false when it had to be dropped.
    pub fn offer(&self, observation: Observation) -> bool {
        let accepted = self.queue.try_send(observation).is_ok();
        if accepted {
            self.accepted.fetch_add(1, Ordering::Release);
        }
        accepted
    }

    /// Wait, up to `limit`, until every queued observation has been recorded: the last
    /// state flush at shutdown should hold the last queries.
    pub async fn settle(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.recorded.load(Ordering::Acquire) < self.accepted.load(Ordering::Acquire)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn analysis_loop(
    receiver: &std::sync::Mutex<mpsc::Receiver<Observation>>,
    aggregator: &Aggregator,
    cache: &SqlCache,
    recorded: &AtomicU64,
) {
    // Drain on a tick rather than wake per observation: a wake-up costs more than lowering
    // and recording one command, and nobody needs advice fresher than a few milliseconds.
    let mut batch = Vec::with_capacity(ANALYSIS_BATCH);
    loop {
        let closed = {
            let mut guard = receiver.lock().unwrap_or_else(|e| e.into_inner());
            drain(&mut guard, &mut batch)
        };
        if batch.is_empty() {
            if closed {
                return;
            }
            std::thread::sleep(ANALYSIS_TICK);
            continue;
        }
        for observation in batch.drain(..) {
            let lowering = shape::lower(&observation.request, cache);
            aggregator.record(&observation, lowering);
            recorded.fetch_add(1, Ordering::Release);
        }
    }
}

/// How long the analysis thread sleeps when its queue is empty.
const ANALYSIS_TICK: Duration = Duration::from_millis(2);
/// How many observations one lock of the queue takes at most.
const ANALYSIS_BATCH: usize = 1024;

/// Move what is queued into `batch`; true once every sender is gone and the queue is empty.
fn drain(receiver: &mut mpsc::Receiver<Observation>, batch: &mut Vec<Observation>) -> bool {
    while batch.len() < ANALYSIS_BATCH {
        match receiver.try_recv() {
            Ok(observation) => batch.push(observation),
            Err(mpsc::error::TryRecvError::Empty) => return false,
            Err(mpsc::error::TryRecvError::Disconnected) => return true,
        }
    }
    false
}

struct ConnectionEvents<'a> {
    analysis: &'a Analysis,
    metrics: &'a ListenerMetrics,
}

impl Events for ConnectionEvents<'_> {
    fn observation(&mut self, observation: Observation) {
        if !self.analysis.offer(observation) {
            self.metrics.drop_observation();
        }
    }
    fn message(&mut self, kind: &'static str) {
        self.metrics.message(kind);
    }
    fn count(&mut self, what: &'static str) {
        self.metrics.event(what);
    }
}

/// Drain one connection's tap into its inspector until the connection ends or the
/// inspector gives up. Dropping the receiver tells the relay to stop tapping.
pub async fn inspect_connection(
    mut tap: TapReceiver,
    mut inspector: Box<dyn Inspector>,
    analysis: Analysis,
    metrics: ListenerMetrics,
) {
    let mut events = ConnectionEvents {
        analysis: &analysis,
        metrics: &metrics,
    };
    let mut batch = Vec::with_capacity(INSPECTION_BATCH);
    // Wake on the first frame, then let a few more arrive and take them all at once: a busy
    // connection costs a wake-up per tick instead of one per frame, an idle one costs nothing.
    while tap.frames.recv_many(&mut batch, INSPECTION_BATCH).await > 0 {
        tokio::time::sleep(INSPECTION_TICK).await;
        while batch.len() < INSPECTION_BATCH {
            match tap.frames.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if tap.take_dropped() {
            inspector.resync();
        }
        for item in batch.drain(..) {
            let frame = match item {
                TapItem::Frame(frame) => frame,
                TapItem::Oversize(header) => {
                    inspector.oversize(header, &mut events);
                    continue;
                }
            };
            if let Err(error) = inspector.inspect(frame, &mut events) {
                metrics.decode_error(error.reason);
                tracing::info!(listener = %metrics.listener, reason = error.reason, detail = %error.detail,
                    "stopped inspecting a connection; it keeps forwarding");
                return;
            }
        }
    }
}

/// How long an inspection task lets frames gather after the first one woke it.
const INSPECTION_TICK: Duration = Duration::from_millis(5);
/// How many frames an inspection task takes per wake-up at most.
const INSPECTION_BATCH: usize = 256;
