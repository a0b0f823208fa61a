//! A data thread's inspections: every connection of the thread, drained in one place.
//!
//! A connection's relay offers its frames on the connection's tap channel; an offer lists
//! the connection on the thread's [`ReadyList`] (once until its items are taken) and wakes
//! nobody. The thread drains the list when it runs out of work, just before it waits for
//! I/O: the runtime's park hook ([`Inspections::drain_parked`], `crate::threads`), so
//! forwarding is never delayed by it and a round trip costs no task wake-up, schedule or
//! poll. One drain takes every listed connection, and its observations go to the analyzer
//! as one batch, and the message and event tallies of each listener (one table for all its
//! connections on the thread) go to their counters once. An idle connection costs an entry
//! in the table (its inspector), not a task.
//!
//! A thread that does not park (its relays always have work) never runs the hook, so the
//! thread also has one inspection task, the fallback: the tap channel wakes it once
//! [`WAKE_AFTER`] items were offered on the thread since the last drain, when a
//! connection's queue passes half its capacity, and when a connection ends. The queues stay
//! bounded either way, and what does not fit is dropped and counted.
//!
//! One drain inspects a slice of the thread's backlog, a quarter of it and at least
//! [`MIN_SLICE`] items: past it, the rest waits for the next (the connection that was being
//! drained keeps its place at the front) and the task is woken. The task yields before each
//! slice, and the runtime polls for I/O before it runs a yielded task, so a request or reply
//! that arrives meanwhile is forwarded after one slice, not after the whole backlog (sixteen
//! MongoDB round trips take 50–100 µs to inspect). A quarter of the backlog per slice keeps
//! the inspection up with any rate of offers: the backlog settles at about four times what
//! arrives between two slices. The hook and the task share the drain's state behind one
//! lock; both run on the thread between task polls, never one inside the other.
//!
//! ## Layout
//! - [`Inspections`]: the thread's table of connections, its drain and its task;
//!   [`Inspections::start`] adds a connection and gives its tap,
//!   [`Inspections::drain_parked`] is the park hook.
//! - `Drain`: the connections and the drain's working state; `Connection`: one connection's
//!   receiver, inspector and backlog; `ListenerTallies`: a listener's tallies on the thread.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::task::{Context, Poll};

use indextap_analyzer::command::Observation;
use slab::Slab;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

use super::{tally, tally_kind, Analysis, Tallies};
use crate::admin::metrics::ListenerMetrics;
use crate::budget::{Charge, InspectBudget, Reservation};
#[cfg(doc)]
use crate::tap::WAKE_AFTER;
use crate::tap::{Events, Inspector, ReadyList, Tap, TapBatch, TapItem, TapReceiver};

/// Items a drain inspects at least, when the thread's backlog has them, before the relays of
/// the thread get their turn. Eight items, four MongoDB `find` round trips, take 15–25 µs to
/// inspect; slices of four measured worse on the overhead bench's driver load (more polls
/// for I/O), and sixteen no better.
const MIN_SLICE: usize = 8;

/// The share of the thread's backlog a drain inspects when that is more than [`MIN_SLICE`].
const BACKLOG_SHARE: usize = 4;

/// How many items the next drain inspects, given the thread's backlog.
fn slice_for(queued: usize) -> usize {
    (queued / BACKLOG_SHARE).max(MIN_SLICE)
}

/// A data thread's inspected connections, their drain, and the fallback task.
pub struct Inspections {
    ready: Arc<ReadyList>,
    /// Locked by whoever drains, the park hook or the task: they run on the one thread, each
    /// between task polls, so the lock is never contended.
    drain: Mutex<Drain>,
    /// Cleared when the task is dropped with its runtime: the next connection starts another.
    running: AtomicBool,
    /// Connections not yet finished, waited for at shutdown before the last flush.
    tracker: TaskTracker,
    /// Polls of the task.
    #[cfg(test)]
    task_polls: std::sync::atomic::AtomicUsize,
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
    /// Start inspecting a connection with `inspector` on this thread's inspections (their
    /// task started on the current runtime if the thread has none running); the returned
    /// tap feeds it. `tracker` tracks the connection's inspection until it ends.
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
                        drain: Mutex::new(Drain::new(analysis.clone())),
                        running: AtomicBool::new(true),
                        tracker: tracker.clone(),
                        #[cfg(test)]
                        task_polls: Default::default(),
                    });
                    tokio::spawn(run(started.clone()));
                    *thread = Some(started.clone());
                    started
                }
            }
        });
        inspections.add(inspector, capacity, metrics)
    }

    /// The data threads' park hook: drain this thread's listed connections (a slice at most)
    /// before the thread waits for I/O, and wake the task if work is left, which makes the
    /// runtime run it instead of parking (tokio's current-thread `park` checks its queue
    /// after the hook). A thread without inspections returns at once.
    pub fn drain_parked() {
        THREAD.with(|thread| {
            // Borrowed mutably only while a connection starts, inside a task: never here.
            let Ok(thread) = thread.try_borrow() else {
                return;
            };
            let Some(inspections) = thread.as_ref() else {
                return;
            };
            if !inspections.running.load(Ordering::Acquire) {
                return;
            }
            // Held only inside a poll of the task, which never runs the hook; should it be
            // held all the same, the task takes the work.
            let Some(mut drain) = try_lock(&inspections.drain) else {
                inspections.ready.wake();
                return;
            };
            // An inspector's bug must not unwind through the runtime's park and take the
            // thread's forwarding with it. As when the task panics, this thread's inspections
            // stop (the task may still take what is queued) and the next connection on the
            // thread starts them anew.
            let drained =
                std::panic::catch_unwind(AssertUnwindSafe(|| drain.run(&inspections.ready)));
            drop(drain);
            match drained {
                Ok(true) => inspections.ready.wake(),
                Ok(false) => {}
                Err(_) => {
                    inspections.running.store(false, Ordering::Release);
                    tracing::error!(
                        "inspection panicked on a data thread; its connections are forwarded \
                         but no longer inspected"
                    );
                }
            }
        });
    }

    fn add(
        &self,
        inspector: Box<dyn Inspector>,
        capacity: usize,
        metrics: &ListenerMetrics,
    ) -> Tap {
        let mut drain = super::lock(&self.drain);
        let tallies = drain.tallies_of(metrics);
        let entry = drain.connections.vacant_entry();
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
            tallies,
            backlog: TapBatch::default(),
            _tracked: self.tracker.token(),
        });
        tap
    }
}

/// A lock that is free, or none (`Mutex::try_lock`, a poisoned lock taken as it is).
fn try_lock<T>(mutex: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// One inspected connection.
struct Connection {
    receiver: TapReceiver,
    inspector: Box<dyn Inspector>,
    metrics: ListenerMetrics,
    /// Its listener's entry in [`Drain::tallies`].
    tallies: usize,
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
    /// Inspect what the connection has, within `budget` items: what the last slice left,
    /// then one take of the channel. Taking unlists the channel, and what is offered after
    /// it lists the connection again (a last tap's drop too), so one take per drain is
    /// enough: no second take only to find the channel empty.
    fn drain(&mut self, budget: &mut usize, batch: Batch<'_>) -> Drained {
        let mut events = ConnectionEvents {
            observations: batch.observations,
            rooms: batch.rooms,
            inspect_budget: batch.inspect_budget,
            frame: 0,
            metrics: &self.metrics,
            messages: &mut batch.tallies.messages,
            counts: &mut batch.tallies.counts,
        };
        let inspector = &mut *self.inspector;
        if !self.backlog.is_empty() {
            let mut backlog = std::mem::take(&mut self.backlog);
            match inspect_items(inspector, &mut backlog, budget, &mut events) {
                Slice::Done => {}
                Slice::Out => {
                    self.backlog = backlog;
                    return Drained::More;
                }
                Slice::Stopped => return Drained::Ended,
            }
        }
        let mut taken = self.receiver.take();
        if taken.behind {
            inspector.resync();
        }
        // Inspected where it was taken (not even moved to a local: a batch is 160 bytes);
        // moved to the backlog only when the slice runs out.
        match inspect_items(inspector, &mut taken.batch, budget, &mut events) {
            Slice::Done if taken.finished => Drained::Ended,
            Slice::Done => Drained::Idle,
            Slice::Out => {
                self.backlog = taken.batch;
                Drained::More
            }
            Slice::Stopped => Drained::Ended,
        }
    }
}

/// How inspecting a batch of items ended.
enum Slice {
    /// Every item was inspected.
    Done,
    /// The slice ran out with items left in the batch.
    Out,
    /// A decode failure stopped the connection's inspection.
    Stopped,
}

/// Inspect `items` in order, within `budget`.
fn inspect_items(
    inspector: &mut dyn Inspector,
    items: &mut TapBatch,
    budget: &mut usize,
    events: &mut ConnectionEvents<'_>,
) -> Slice {
    loop {
        if *budget == 0 {
            return if items.is_empty() {
                Slice::Done
            } else {
                Slice::Out
            };
        }
        let Some(item) = items.pop_front() else {
            return Slice::Done;
        };
        *budget -= 1;
        let outcome = match item {
            TapItem::Frame(frame) => {
                events.frame = frame.bytes.len();
                inspector.inspect(frame, events)
            }
            TapItem::Frames(mut frames) => {
                let outcome = frames.drain(..).try_for_each(|frame| {
                    events.frame = frame.bytes.len();
                    inspector.inspect(frame, events)
                });
                crate::tap::recycle_frames(frames);
                outcome
            }
            TapItem::Oversize(header) => {
                events.frame = 0;
                inspector.oversize(header, events);
                Ok(())
            }
        };
        if let Err(error) = outcome {
            let metrics = events.metrics;
            metrics.decode_error(error.reason);
            tracing::info!(listener = %metrics.listener, reason = error.reason, detail = %error.detail,
                "stopped inspecting a connection; it keeps forwarding");
            return Slice::Stopped;
        }
    }
}

/// Where a poll's observations gather, with the charges of their large copies, and the
/// tallies of the connection's listener.
struct Batch<'a> {
    observations: &'a mut Vec<Observation>,
    rooms: &'a mut Vec<Charge>,
    inspect_budget: &'a InspectBudget,
    tallies: &'a mut ListenerTallies,
}

/// A listener's message kinds and counted events on this thread since the last hand-over,
/// tallied for all its connections together: a handful of distinct labels, each resolved to
/// its counter once, and handed to the counters once per drain rather than once per
/// connection drained (a drain takes several connections' round trips at a time).
struct ListenerTallies {
    metrics: ListenerMetrics,
    messages: Tallies,
    counts: Tallies,
    /// The thread's connections of the listener: the entry goes with the last.
    connections: usize,
}

impl ListenerTallies {
    /// Hand the tallies to the metrics.
    fn flush(&mut self) {
        self.messages.flush();
        self.counts.flush();
    }
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
    fn message_kind(&mut self, kind: usize, name: &'static str) {
        let metrics = self.metrics;
        tally_kind(self.messages, kind, name, |name| {
            metrics.message_counter(name)
        });
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

/// The connections of a thread, and what a drain works with, kept between drains so that
/// their storage is reused.
struct Drain {
    connections: Slab<Connection>,
    /// The tallies of the listeners of `connections`.
    tallies: Slab<ListenerTallies>,
    analysis: Analysis,
    /// Keys taken from the [`ReadyList`], before they join `todo`.
    listed: Vec<usize>,
    /// Connections to drain, in turn; one cut off by the slice is first.
    todo: VecDeque<usize>,
    observations: Vec<Observation>,
    rooms: Vec<Charge>,
    /// Whose observations are in the batch, in runs: the drops of a batch the analyzer could
    /// not take are counted on their listeners.
    owners: Vec<(usize, usize)>,
    ended: Vec<usize>,
}

impl Drain {
    fn new(analysis: Analysis) -> Self {
        Self {
            connections: Slab::new(),
            tallies: Slab::new(),
            analysis,
            listed: Vec::new(),
            todo: VecDeque::new(),
            observations: Vec::new(),
            rooms: Vec::new(),
            owners: Vec::new(),
            ended: Vec::new(),
        }
    }

    /// The key of the tallies of `metrics`' listener, for one more connection of it.
    fn tallies_of(&mut self, metrics: &ListenerMetrics) -> usize {
        let listed = self
            .tallies
            .iter_mut()
            .find(|(_, tallies)| tallies.metrics.same_listener(metrics));
        if let Some((key, tallies)) = listed {
            tallies.connections += 1;
            return key;
        }
        self.tallies.insert(ListenerTallies {
            metrics: metrics.clone(),
            messages: Tallies::default(),
            counts: Tallies::default(),
            connections: 1,
        })
    }

    /// Drain the listed connections, a slice at most, and hand the observations over.
    /// Returns whether work is left for the next drain.
    fn run(&mut self, ready: &ReadyList) -> bool {
        let slice = slice_for(ready.queued());
        if ready.take(&mut self.listed) {
            // A key or two per drain: pushed one by one, without the generic extend's
            // reservation and slice copies.
            for key in self.listed.drain(..) {
                self.todo.push_back(key);
            }
        }
        if self.todo.is_empty() {
            ready.emptied();
            return false;
        }
        let mut budget = slice;
        while budget > 0 {
            let Some(key) = self.todo.pop_front() else {
                break;
            };
            // A connection whose inspection stopped may still be listed once more.
            let Some(connection) = self.connections.get_mut(key) else {
                continue;
            };
            let Some(tallies) = self.tallies.get_mut(connection.tallies) else {
                continue;
            };
            let before = self.observations.len();
            let batch = Batch {
                observations: &mut self.observations,
                rooms: &mut self.rooms,
                inspect_budget: self.analysis.budget(),
                tallies,
            };
            let drained = connection.drain(&mut budget, batch);
            if self.observations.len() > before {
                self.owners.push((key, self.observations.len() - before));
            }
            match drained {
                Drained::Idle => {}
                Drained::More => self.todo.push_front(key),
                Drained::Ended => self.ended.push(key),
            }
        }
        // A listener or two per thread: a flush with nothing tallied is a check.
        for (_, tallies) in &mut self.tallies {
            tallies.flush();
        }
        let dropped = self.analysis.offer(&mut self.observations, &mut self.rooms);
        if dropped > 0 {
            for (key, count) in &self.owners {
                if let Some(connection) = self.connections.get(*key) {
                    connection.metrics.drop_observations(*count as u64);
                }
            }
        }
        self.owners.clear();
        // Dropping the receiver tells the relay to stop tapping.
        if !self.ended.is_empty() {
            for key in self.ended.drain(..) {
                let Some(ended) = self.connections.try_remove(key) else {
                    continue;
                };
                let last = self.tallies.get_mut(ended.tallies).is_some_and(|tallies| {
                    tallies.connections -= 1;
                    tallies.connections == 0
                });
                if last {
                    self.tallies.try_remove(ended.tallies);
                }
            }
            // After a burst of connections the table gives its room back (as far as the
            // highest key still open allows).
            if self.connections.len() * 4 < self.connections.capacity() {
                self.connections.shrink_to_fit();
            }
        }
        let more = !self.todo.is_empty();
        if more {
            ready.inspected(slice - budget);
        } else {
            ready.emptied();
        }
        more
    }
}

/// The thread's inspection task, for what the park hook does not take: woken by the tap
/// channels only when the thread has not parked for a while, or by the hook when its slice
/// ran out. Yields before each slice, so that the runtime polls for I/O first (tokio runs a
/// yielded task only after it has polled its driver), and drains until nothing is left.
async fn run(inspections: Arc<Inspections>) {
    let running = Running(inspections);
    let inspections = &running.0;
    loop {
        woken(inspections).await;
        loop {
            tokio::task::yield_now().await;
            #[cfg(test)]
            inspections.task_polls.fetch_add(1, Ordering::Relaxed);
            if !super::lock(&inspections.drain).run(&inspections.ready) {
                break;
            }
        }
    }
}

/// Ready once the thread's ready list wakes its consumer, this task.
fn woken(inspections: &Inspections) -> impl std::future::Future<Output = ()> + '_ {
    let ready = &inspections.ready;
    let mut registered = false;
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        #[cfg(test)]
        inspections.task_polls.fetch_add(1, Ordering::Relaxed);
        if registered {
            return Poll::Ready(());
        }
        // Registered after the last drain's take, in the same poll: no offer comes between.
        ready.register(cx.waker());
        registered = true;
        Poll::Pending
    })
}

#[cfg(test)]
mod tests;
