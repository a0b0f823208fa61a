//! One inspection task per data thread, for every connection of the thread.
//!
//! A connection's relay offers its frames on the connection's tap channel; an offer that
//! wakes lists the connection on the thread's [`ReadyList`] (once until its items are taken)
//! and wakes this task. One poll drains every listed connection, so with many connections
//! on a thread the wake-ups of a scheduler tick are taken in one poll rather than one task
//! poll each, and their observations go to the analyzer as one batch. An idle connection
//! costs an entry in the table (its inspector and its tallies), not a task.
//!
//! The work of one poll is bounded ([`INSPECTION_SLICE`] items): past it, the rest waits
//! for the next poll (the connection that was being drained keeps its place at the front),
//! and the task wakes itself, so the relays of the thread run in between.
//!
//! ## Layout
//! - [`Inspections`]: the thread's table of connections and its task; [`Inspections::start`]
//!   adds a connection and gives its tap.
//! - `Connection`: one connection's receiver, inspector, tallies and backlog.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use indextap_analyzer::command::Observation;
use slab::Slab;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

use super::{tally, Analysis, Tallies};
use crate::admin::metrics::ListenerMetrics;
use crate::budget::{Charge, InspectBudget, Reservation};
use crate::tap::{Events, Inspector, ReadyList, Tap, TapBatch, TapItem, TapReceiver};

/// Items inspected per poll at most, before the other tasks of the thread get their turn.
const INSPECTION_SLICE: usize = 256;

/// A data thread's inspected connections, and the one task that inspects them.
pub struct Inspections {
    ready: Arc<ReadyList>,
    connections: Mutex<Slab<Connection>>,
    /// Cleared when the task is dropped with its runtime: the next connection starts another.
    running: AtomicBool,
    /// Connections not yet finished, waited for at shutdown before the last flush.
    tracker: TaskTracker,
}

impl std::fmt::Debug for Inspections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspections").finish_non_exhaustive()
    }
}

thread_local! {
    /// This thread's inspections, started with its first inspected connection.
    static THREAD: RefCell<Option<Arc<Inspections>>> = const { RefCell::new(None) };
}

impl Inspections {
    /// Start inspecting a connection with `inspector` on this thread's inspection task
    /// (started on the current runtime if the thread has none running); the returned tap
    /// feeds it. `tracker` tracks the connection's inspection until it ends.
    pub fn start(
        inspector: Box<dyn Inspector>,
        capacity: usize,
        analysis: &Analysis,
        metrics: &ListenerMetrics,
        tracker: &TaskTracker,
    ) -> Tap {
        let inspections = THREAD.with(|thread| {
            let mut thread = thread.borrow_mut();
            match &*thread {
                Some(running) if running.running.load(Ordering::Acquire) => running.clone(),
                _ => {
                    let started = Arc::new(Inspections {
                        ready: Arc::default(),
                        connections: Mutex::new(Slab::new()),
                        running: AtomicBool::new(true),
                        tracker: tracker.clone(),
                    });
                    tokio::spawn(run(started.clone(), analysis.clone()));
                    *thread = Some(started.clone());
                    started
                }
            }
        });
        inspections.add(inspector, capacity, metrics)
    }

    fn add(
        &self,
        inspector: Box<dyn Inspector>,
        capacity: usize,
        metrics: &ListenerMetrics,
    ) -> Tap {
        let mut connections = super::lock(&self.connections);
        let entry = connections.vacant_entry();
        let (tap, receiver) = Tap::listed(
            capacity,
            metrics.tap_dropped.clone(),
            inspector.messages_in(),
            self.ready.clone(),
            entry.key(),
        );
        entry.insert(Connection {
            receiver,
            inspector,
            metrics: metrics.clone(),
            messages: Tallies::default(),
            counts: Tallies::default(),
            backlog: TapBatch::default(),
            _tracked: self.tracker.token(),
        });
        tap
    }
}

/// One inspected connection.
struct Connection {
    receiver: TapReceiver,
    inspector: Box<dyn Inspector>,
    metrics: ListenerMetrics,
    /// Message kinds and counted events since the last hand-over: a handful of distinct
    /// labels per connection, each resolved to its counter once.
    messages: Tallies,
    counts: Tallies,
    /// Items taken from the channel and not yet inspected (a poll's slice ran out).
    backlog: TapBatch,
    /// Holds the shutdown's wait until the connection's inspection ends.
    _tracked: TaskTrackerToken,
}

/// How draining a connection ended.
enum Drained {
    /// Nothing left for now.
    Idle,
    /// The slice ran out with items left.
    More,
    /// The connection is over, or its inspection stopped (a decode error).
    Ended,
}

impl Connection {
    /// Inspect what the connection has, within `budget` items.
    fn drain(&mut self, budget: &mut usize, batch: Batch<'_>) -> Drained {
        let mut events = ConnectionEvents {
            observations: batch.observations,
            rooms: batch.rooms,
            inspect_budget: batch.inspect_budget,
            frame: 0,
            metrics: &self.metrics,
            messages: &mut self.messages,
            counts: &mut self.counts,
        };
        while *budget > 0 {
            let item = match self.backlog.pop_front() {
                Some(item) => item,
                None => {
                    // Taking unlists the channel: what is offered after this lists it again.
                    let taken = self.receiver.take();
                    if taken.behind {
                        self.inspector.resync();
                    }
                    self.backlog = taken.batch;
                    match self.backlog.pop_front() {
                        Some(item) => item,
                        None if taken.finished => return Drained::Ended,
                        None => return Drained::Idle,
                    }
                }
            };
            *budget -= 1;
            let outcome = match item {
                TapItem::Frame(frame) => {
                    events.frame = frame.bytes.len();
                    self.inspector.inspect(frame, &mut events)
                }
                TapItem::Frames(mut frames) => {
                    let outcome = frames.drain(..).try_for_each(|frame| {
                        events.frame = frame.bytes.len();
                        self.inspector.inspect(frame, &mut events)
                    });
                    crate::tap::recycle_frames(frames);
                    outcome
                }
                TapItem::Oversize(header) => {
                    events.frame = 0;
                    self.inspector.oversize(header, &mut events);
                    Ok(())
                }
            };
            if let Err(error) = outcome {
                self.metrics.decode_error(error.reason);
                tracing::info!(listener = %self.metrics.listener, reason = error.reason, detail = %error.detail,
                    "stopped inspecting a connection; it keeps forwarding");
                return Drained::Ended;
            }
        }
        // The slice ran out: the backlog, or the channel (still listed), may hold more.
        Drained::More
    }

    /// Hand the tallies to the metrics.
    fn flush_tallies(&mut self) {
        self.messages.flush();
        self.counts.flush();
    }
}

/// Where a poll's observations gather, with the charges of their large copies.
struct Batch<'a> {
    observations: &'a mut Vec<Observation>,
    rooms: &'a mut Vec<Charge>,
    inspect_budget: &'a InspectBudget,
}

/// What an inspector reports, gathered for the end of the poll.
struct ConnectionEvents<'a> {
    observations: &'a mut Vec<Observation>,
    rooms: &'a mut Vec<Charge>,
    inspect_budget: &'a InspectBudget,
    /// The length of the frame being inspected.
    frame: usize,
    metrics: &'a ListenerMetrics,
    messages: &'a mut Tallies,
    counts: &'a mut Tallies,
}

impl Events for ConnectionEvents<'_> {
    fn observation(&mut self, observation: Observation) {
        self.observations.push(observation);
    }
    fn message(&mut self, kind: &'static str) {
        let metrics = self.metrics;
        tally(self.messages, kind, |kind| metrics.message_counter(kind));
    }
    fn count(&mut self, what: &'static str) {
        let metrics = self.metrics;
        tally(self.counts, what, |what| metrics.event_counter(what));
    }
    fn reserve(&mut self, bytes: usize) -> Option<Reservation> {
        // A large copy comes from a large frame, which holds room of its own (gathered, or
        // part of a long read) until it is dropped once inspected.
        self.inspect_budget.reserve_over(bytes, self.frame)
    }
    fn hold(&mut self, charge: Charge) {
        self.rooms.push(charge);
    }
}

/// Clears `running` when the task goes, whether it ends or its runtime drops it.
struct Running(Arc<Inspections>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// The thread's inspection task: drain the listed connections, a slice per poll.
async fn run(inspections: Arc<Inspections>, analysis: Analysis) {
    let running = Running(inspections);
    let inspections = &running.0;
    let mut listed = Vec::new();
    let mut todo = VecDeque::new();
    let mut observations = Vec::new();
    let mut rooms = Vec::new();
    // Whose observations are in the batch, in runs: the drops of a batch the analyzer could
    // not take are counted on their listeners.
    let mut owners: Vec<(usize, usize)> = Vec::new();
    let mut ended = Vec::new();
    std::future::poll_fn(|cx: &mut Context<'_>| {
        if inspections.ready.poll_take(cx, &mut listed).is_ready() {
            todo.extend(listed.drain(..));
        }
        if todo.is_empty() {
            return Poll::Pending;
        }
        let mut connections = super::lock(&inspections.connections);
        let mut budget = INSPECTION_SLICE;
        while budget > 0 {
            let Some(key) = todo.pop_front() else {
                break;
            };
            // A connection whose inspection stopped may still be listed once more.
            let Some(connection) = connections.get_mut(key) else {
                continue;
            };
            let before = observations.len();
            let batch = Batch {
                observations: &mut observations,
                rooms: &mut rooms,
                inspect_budget: analysis.budget(),
            };
            let drained = connection.drain(&mut budget, batch);
            connection.flush_tallies();
            if observations.len() > before {
                owners.push((key, observations.len() - before));
            }
            match drained {
                Drained::Idle => {}
                Drained::More => todo.push_front(key),
                Drained::Ended => ended.push(key),
            }
        }
        let dropped = analysis.offer(&mut observations, &mut rooms);
        if dropped > 0 {
            for (key, count) in &owners {
                if let Some(connection) = connections.get(*key) {
                    connection.metrics.drop_observations(*count as u64);
                }
            }
        }
        owners.clear();
        // Dropping the receiver tells the relay to stop tapping.
        if !ended.is_empty() {
            for key in ended.drain(..) {
                connections.try_remove(key);
            }
            // After a burst of connections the table gives its room back (as far as the
            // highest key still open allows).
            if connections.len() * 4 < connections.capacity() {
                connections.shrink_to_fit();
            }
        }
        drop(connections);
        if !todo.is_empty() {
            // A long backlog: let the other tasks of this thread run meanwhile.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_count_every_label_whatever_the_order() {
        let registry = crate::admin::metrics::Metrics::new();
        let metrics = registry.listener("t", "postgresql");
        let (mut observations, mut messages, mut counts) =
            (Vec::new(), Tallies::default(), Tallies::default());
        let mut rooms = Vec::new();
        let mut events = ConnectionEvents {
            observations: &mut observations,
            rooms: &mut rooms,
            inspect_budget: &InspectBudget::unlimited(),
            frame: 0,
            metrics: &metrics,
            messages: &mut messages,
            counts: &mut counts,
        };
        let round = [
            "Bind",
            "Execute",
            "Sync",
            "BindComplete",
            "DataRow",
            "ReadyForQuery",
        ];
        for _ in 0..3 {
            round.iter().for_each(|kind| events.message(kind));
        }
        // Out of the usual order, and one label never seen before.
        for kind in ["DataRow", "Bind", "Parse", "DataRow"] {
            events.message(kind);
        }
        events.count("unpaired_reply");
        messages.flush();
        counts.flush();
        let text = registry.encode();
        for (kind, count) in [("Bind", 4), ("DataRow", 5), ("Sync", 3), ("Parse", 1)] {
            let line = format!(r#"indextap_messages_total{{listener="t",kind="{kind}"}} {count}"#);
            assert!(text.contains(&line), "{line}\n{text}");
        }
        assert!(text.contains(
            r#"indextap_inspection_events_total{listener="t",reason="unpaired_reply"} 1"#
        ));
    }
}

#[cfg(test)]
mod thread_tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use indextap_analyzer::aggregate::Aggregator;

    use super::*;
    use crate::tap::{DecodeError, Direction, TapFrame};

    /// Records the first byte of every frame it sees; fails on a frame starting with 0xff.
    struct Recorder(Arc<Mutex<Vec<u8>>>);

    impl Inspector for Recorder {
        fn inspect(&mut self, frame: TapFrame, events: &mut dyn Events) -> Result<(), DecodeError> {
            if frame.bytes[0] == 0xff {
                return Err(DecodeError::new("bad_length", "test"));
            }
            events.message("Query");
            super::super::lock(&self.0).push(frame.bytes[0]);
            Ok(())
        }
    }

    fn frame(n: u8) -> TapItem {
        TapItem::Frame(TapFrame {
            direction: Direction::Request,
            bytes: Bytes::from(vec![n]),
            at: Instant::now(),
        })
    }

    /// Three connections on one thread: each sees its frames in order, a backlog longer
    /// than a slice is inspected whole, and a decode failure stops only its connection.
    #[tokio::test]
    async fn one_task_inspects_every_connection_of_the_thread_in_order() {
        let analysis = Analysis::start(
            Arc::new(Aggregator::new(10)),
            8,
            16,
            1,
            crate::budget::InspectBudget::unlimited(),
        );
        let registry = crate::admin::metrics::Metrics::new();
        let metrics = registry.listener("t", "postgresql");
        let tracker = TaskTracker::new();
        let seen: Vec<_> = (0..3).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
        let taps: Vec<Tap> = seen
            .iter()
            .map(|seen| {
                let inspector = Box::new(Recorder(seen.clone()));
                Inspections::start(inspector, 10_000, &analysis, &metrics, &tracker)
            })
            .collect();
        for n in 0..200u8 {
            for tap in &taps {
                assert!(tap.offer(frame(n)));
            }
            // The second connection fails half-way; the others go on.
            if n == 100 {
                assert!(taps[1].offer(frame(0xff)));
            }
        }
        tokio::time::timeout(Duration::from_secs(10), async {
            while super::super::lock(&seen[2]).len() < 200 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("inspected in time");
        let expected: Vec<u8> = (0..200).collect();
        assert_eq!(*super::super::lock(&seen[0]), expected);
        assert_eq!(*super::super::lock(&seen[1]), expected[..101].to_vec());
        assert!(
            !taps[1].offer(frame(1)),
            "a stopped inspection refuses frames"
        );
        // Offers after the task has gone back to waiting wake it again.
        for round in 0..3u8 {
            assert!(taps[0].offer(frame(round)));
            tokio::time::timeout(Duration::from_secs(10), async {
                while super::super::lock(&seen[0]).len() < 201 + usize::from(round) {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("woken again");
        }
        tracker.close();
        assert!(!tracker.is_empty(), "connections still open are tracked");
        drop(taps);
        tokio::time::timeout(Duration::from_secs(10), tracker.wait())
            .await
            .expect("every connection's inspection ended");
        let text = registry.encode();
        assert!(
            text.contains(r#"indextap_messages_total{listener="t",kind="Query"} 504"#),
            "{text}"
        );
        assert!(text.contains(r#"reason="bad_length"} 1"#), "{text}");
    }
}
