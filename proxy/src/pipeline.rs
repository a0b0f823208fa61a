//! The pipeline from a connection's frames to the analyzer.
//!
//! Per data thread, the tap channels of the thread's connections are drained into their
//! engine's [`Inspector`]s ([`Inspections`]) once the relays have forwarded and gone back
//! to waiting: a relay's hand-over lists its connection, and the thread drains every listed
//! connection from its park hook, before it waits for I/O (no task woken); a task of its
//! own is the fallback for a thread that does not park. The observations of one drain go,
//! as one batch, into a bounded queue that a dedicated analysis thread drains into the
//! [`Aggregator`]. Neither step ever makes the data path wait: a full queue drops the batch
//! and counts every observation in it. The queue is bounded in observations, and its large
//! ones (a multi-MiB statement or command, copied out of its frame by the decoder) in bytes:
//! the session charged each such copy to the inspection budget
//! ([`crate::budget::charge_copy`]) when it made it, and the batch carries those charges
//! until analysed.
//!
//! Everything per frame stays local to the data thread: observations and message
//! counts are handed over once per drain (message counters resolved once per connection),
//! because every handover touches memory another core is using, and on a busy proxy that
//! costs more than decoding the frame. The analysis thread sleeps until a batch arrives and
//! then gathers for a tick, so it wakes once per tick when busy and never when idle.
//!
//! ## Layout
//! - [`Analysis`]: the shared queue, the aggregator and the SQL cache; the analysis thread.
//! - `bodies`: spent MongoDB command bodies, handed back by the analysis thread for the data
//!   threads' next copies.
//! - `inspection`: [`Inspections`], a data thread's connections, their drain and its task.
//! - `tally`, `tally_kind`: per-connection message and event counts, handed over per drain.

pub(crate) mod bodies;
mod inspection;

pub use inspection::Inspections;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use indextap_analyzer::aggregate::Aggregator;
use indextap_analyzer::command::Observation;
use indextap_analyzer::shape::sql::{LoweringMemo, SqlCache};
use indextap_analyzer::shape::Lowering;
use prometheus_client::metrics::counter::Counter;

use crate::budget::{Charge, InspectBudget};
use crate::tap::MESSAGE_KINDS;
#[cfg(doc)]
use crate::tap::{Events, Inspector};

/// A batch on its way to the analyzer, with the charges of the large copies in it.
struct Queued {
    batch: Vec<Observation>,
    rooms: Vec<Charge>,
}

/// The analyzer side of the proxy: one queue in, one aggregator.
#[derive(Debug, Clone)]
pub struct Analysis {
    queue: mpsc::Sender<Queued>,
    budget: InspectBudget,
    /// Observations queued and not yet recorded, against `capacity`: batches vary in size,
    /// so the bound counts observations rather than batches. Zero when the analyzer is idle.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    /// Emptied batches the analysis threads hand back, so that a poll's batch is not
    /// allocated on the data thread and freed on the analysis thread each time.
    spares: Arc<Spares>,
    /// What has been learned so far.
    pub aggregator: Arc<Aggregator>,
}

impl Analysis {
    /// Start the analysis threads; they end when every sender is dropped. Large
    /// observations wait with room from `budget`.
    pub fn start(
        aggregator: Arc<Aggregator>,
        queue_len: usize,
        sql_cache_entries: usize,
        workers: usize,
        budget: InspectBudget,
    ) -> Self {
        let (queue, receiver) = mpsc::channel::<Queued>();
        let receiver = Arc::new(Mutex::new(receiver));
        let cache = Arc::new(SqlCache::bounded(
            sql_cache_entries.max(1),
            aggregator.limits().sql_cache_bytes(),
        ));
        let queued = Arc::new(AtomicUsize::new(0));
        let spares = Arc::new(Spares::default());
        for worker in 0..workers.max(1) {
            let shared = AnalysisThread {
                receiver: receiver.clone(),
                aggregator: aggregator.clone(),
                cache: cache.clone(),
                queued: queued.clone(),
                spares: spares.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("indextap-analysis-{worker}"))
                .spawn(move || shared.run());
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start an analysis thread");
            }
        }
        Self {
            queue,
            budget,
            queued,
            capacity: queue_len.max(1),
            spares,
            aggregator,
        }
    }

    /// Offer a batch of observations, emptying `batch` and `rooms` (the charges of its large
    /// copies, released once analysed); returns how many had to be dropped (all of them or
    /// none): the queue was full.
    pub fn offer(&self, batch: &mut Vec<Observation>, rooms: &mut Vec<Charge>) -> usize {
        let count = batch.len();
        if count == 0 {
            rooms.clear();
            return 0;
        }
        let before = self.queued.fetch_add(count, Ordering::AcqRel);
        if before + count > self.capacity {
            self.queued.fetch_sub(count, Ordering::AcqRel);
            batch.clear();
            rooms.clear();
            return count;
        }
        // The next poll's batch is a spare the analyzer emptied, when there is one.
        let taken = Queued {
            batch: std::mem::replace(batch, self.spares.take()),
            rooms: std::mem::take(rooms),
        };
        if self.queue.send(taken).is_err() {
            // The analysis threads are gone (shutdown, or they could not start).
            self.queued.fetch_sub(count, Ordering::AcqRel);
            return count;
        }
        0
    }

    /// The budget the sessions charge their large copies to.
    pub fn budget(&self) -> &InspectBudget {
        &self.budget
    }

    /// Wait, up to `limit`, until every queued observation has been recorded: the last
    /// state flush at shutdown should hold the last queries.
    pub async fn settle(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.queued.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What one analysis thread shares with the others.
struct AnalysisThread {
    receiver: Arc<Mutex<mpsc::Receiver<Queued>>>,
    aggregator: Arc<Aggregator>,
    cache: Arc<SqlCache>,
    queued: Arc<AtomicUsize>,
    spares: Arc<Spares>,
}

impl AnalysisThread {
    fn run(self) {
        let mut batches = Vec::new();
        // This thread's prepared statements, found by their shared text before the cache.
        let mut memo = LoweringMemo::default();
        // The list of a run's observations, its room kept from one gathering to the next.
        let mut run = Vec::new();
        let mut pause = ANALYSIS_TICK;
        while self.gather(&mut batches, pause) {
            pause = pause_after(batches.len());
            run = self.record(&batches, &mut memo, run);
            for Queued { mut batch, rooms } in batches.drain(..) {
                let count = batch.len();
                // Emptied through `give_back`: MongoDB bodies go back for the next copies.
                bodies::give_back(&mut batch);
                // The copies are gone (a prepared statement may still hold its own), before
                // the batch counts as recorded.
                drop(rooms);
                self.queued.fetch_sub(count, Ordering::AcqRel);
                self.spares.give(batch);
            }
        }
    }

    /// Lower and record the gathered observations, in order. Consecutive ones of the same
    /// lowering (one statement, from any connection: the cache shares its lowering) are
    /// recorded as a run ([`Aggregator::record_run`]), their shape's entry looked up once.
    /// `room` is an empty list to list the runs in, handed back emptied for the next
    /// gathering.
    fn record(
        &self,
        batches: &[Queued],
        memo: &mut LoweringMemo,
        room: Vec<&'static Observation>,
    ) -> Vec<&'static Observation> {
        let mut run = relist(room);
        let mut current: Option<Arc<Lowering>> = None;
        for observation in batches.iter().flat_map(|queued| &queued.batch) {
            let lowering = memo.lower_shared(&observation.request, &self.cache);
            match current.as_ref() {
                Some(same) if Arc::ptr_eq(same, &lowering) => {}
                _ => {
                    if let Some(previous) = current.replace(lowering) {
                        self.aggregator.record_run(&run, &previous);
                        run.clear();
                    }
                }
            }
            run.push(observation);
        }
        if let Some(previous) = current {
            self.aggregator.record_run(&run, &previous);
        }
        relist(run)
    }

    /// Wait for a batch, then let `pause`'s worth gather behind it and take them all (up to
    /// [`ANALYSIS_BATCHES`]). The thread sleeps while the queue is empty, so an idle proxy
    /// costs nothing here; a busy one wakes it once per tick, not once per batch (a sender
    /// only wakes a thread blocked on the empty queue). Returns false once every sender is
    /// gone and the queue is empty.
    fn gather(&self, batches: &mut Vec<Queued>, pause: Duration) -> bool {
        match lock(&self.receiver).recv() {
            Ok(batch) => batches.push(batch),
            Err(mpsc::RecvError) => return false,
        }
        // Another worker, if any, may take the queue meanwhile.
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let receiver = lock(&self.receiver);
        while batches.len() < ANALYSIS_BATCHES {
            match receiver.try_recv() {
                Ok(batch) => batches.push(batch),
                Err(_) => break,
            }
        }
        true
    }
}

/// An empty list of observations of another lifetime, in the same allocation: an empty list
/// holds no reference, so its room can serve the next gathering's observations. (Collecting
/// into a vector of the same layout reuses the source's allocation; a test holds that.)
#[expect(
    clippy::unnecessary_filter_map,
    reason = "the filter keeps nothing: it is there to change the item's lifetime"
)]
fn relist<'b>(mut list: Vec<&Observation>) -> Vec<&'b Observation> {
    list.clear();
    list.into_iter().filter_map(|_| None).collect()
}

/// Emptied observation batches, from the analysis threads back to the data threads. Bounded
/// in count and in the size of each, so what it keeps is at most
/// `SPARE_BATCHES × SPARE_BATCH_CAPACITY` observations' room (a few hundred KiB).
#[derive(Debug, Default)]
struct Spares(Mutex<Vec<Vec<Observation>>>);

/// Spare batches kept at most.
const SPARE_BATCHES: usize = 64;
/// The largest batch (in observations' room) kept as a spare; a larger one is freed.
const SPARE_BATCH_CAPACITY: usize = 16;

impl Spares {
    /// A spare batch, or a new empty one (which allocates only when first pushed to).
    fn take(&self) -> Vec<Observation> {
        lock(&self.0).pop().unwrap_or_default()
    }

    /// Keep an emptied batch for reuse, within the bounds.
    fn give(&self, batch: Vec<Observation>) {
        if batch.capacity() == 0 || batch.capacity() > SPARE_BATCH_CAPACITY {
            return;
        }
        let mut spares = lock(&self.0);
        if spares.len() < SPARE_BATCHES {
            spares.push(batch);
        }
    }
}

/// A poisoned receiver only means another analysis thread panicked between two calls on it;
/// the channel itself is sound.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long an analysis thread lets batches gather after the first one woke it. Waking it
/// and putting it back to sleep costs more than lowering and recording what arrives
/// meanwhile: on a 2-core VM, pgbench -S at 8 clients, a 2 ms tick cost the thread 1.1 µs
/// per transaction (prepared) and 1.7 µs (simple), a 10 ms tick 0.35 and 0.7. Nobody needs
/// advice fresher than that, and the queue holds far more than a tick of traffic.
const ANALYSIS_TICK: Duration = Duration::from_millis(10);
/// Batches taken per gathering at most (each is one inspection wake-up's observations).
const ANALYSIS_BATCHES: usize = 1024;

/// The pause before the next gathering: none when this one took all it may
/// ([`ANALYSIS_BATCHES`]), as the queue is then behind and sleeping would leave it so.
fn pause_after(gathered: usize) -> Duration {
    if gathered >= ANALYSIS_BATCHES {
        Duration::ZERO
    } else {
        ANALYSIS_TICK
    }
}

/// One label's counter, and what was tallied since the last hand-over.
struct Tally {
    label: &'static str,
    counter: Counter,
    pending: u64,
    /// The entry counted right after this one last time.
    follower: usize,
}

/// Counts one `label`. A connection's messages come in the same order round trip after round
/// trip (Bind, Describe, Execute, Sync, BindComplete, ...), so each entry remembers the entry
/// counted after it last time, and that one is tried first: one comparison instead of a
/// scan, whatever order the labels were first seen in.
fn tally(tallies: &mut Tallies, label: &'static str, resolve: impl FnOnce(&str) -> Counter) {
    // Labels are static strings, told apart by address alone: a label that the compiler
    // placed twice gets two entries resolving to the same counter, which adds up the same.
    let same = |tally: &Tally| std::ptr::eq(tally.label, label);
    let last = tallies.last;
    let guess = tallies.entries.get(last).map(|tally| tally.follower);
    let at = match guess.and_then(|at| Some(at).zip(tallies.entries.get(at))) {
        Some((at, tally)) if same(tally) => at,
        _ => {
            let at = tallies.entries.iter().position(same).unwrap_or_else(|| {
                tallies.entries.push(Tally {
                    label,
                    counter: resolve(label),
                    pending: 0,
                    follower: 0,
                });
                tallies.entries.len() - 1
            });
            if let Some(previous) = tallies.entries.get_mut(last) {
                previous.follower = at;
            }
            at
        }
    };
    if let Some(tally) = tallies.entries.get_mut(at) {
        tally.pending += 1;
    }
    tallies.last = at;
}

/// Counts one message of kind number `kind` (an [`Events::message_kind`]) named `label`: an
/// increment in a table indexed by the number, its counter resolved the first time.
#[inline]
fn tally_kind(
    tallies: &mut Tallies,
    kind: usize,
    label: &'static str,
    resolve: impl FnOnce(&str) -> Counter,
) {
    match tallies.kinds.get_mut(kind) {
        Some(Some(entry)) => {
            entry.pending += 1;
            tallies.dirty |= 1 << kind;
        }
        _ => first_of_kind(tallies, kind, label, resolve),
    }
}

/// The first message of its kind number on the connection: its counter is resolved. A number
/// past the table is tallied by its label.
#[cold]
#[inline(never)]
fn first_of_kind(
    tallies: &mut Tallies,
    kind: usize,
    label: &'static str,
    resolve: impl FnOnce(&str) -> Counter,
) {
    if kind >= MESSAGE_KINDS {
        return tally(tallies, label, resolve);
    }
    if tallies.kinds.len() <= kind {
        tallies.kinds.resize_with(kind + 1, || None);
    }
    if let Some(slot) = tallies.kinds.get_mut(kind) {
        *slot = Some(KindTally {
            counter: resolve(label),
            pending: 1,
        });
        tallies.dirty |= 1 << kind;
    }
}

/// One kind number's counter, and what was tallied since the last hand-over.
struct KindTally {
    counter: Counter,
    pending: u64,
}

/// A connection's tallies, and the entry counted last.
#[derive(Default)]
struct Tallies {
    entries: Vec<Tally>,
    last: usize,
    /// By kind number ([`tally_kind`]), up to the highest seen.
    kinds: Vec<Option<KindTally>>,
    /// Which of `kinds` have counts pending, a bit each: a flush visits only those.
    dirty: u64,
}

impl Tallies {
    /// Hand what was tallied to the counters.
    fn flush(&mut self) {
        for tally in &mut self.entries {
            if tally.pending > 0 {
                tally.counter.inc_by(tally.pending);
                tally.pending = 0;
            }
        }
        while self.dirty != 0 {
            let kind = self.dirty.trailing_zeros() as usize;
            self.dirty &= self.dirty - 1;
            if let Some(Some(entry)) = self.kinds.get_mut(kind) {
                entry.counter.inc_by(entry.pending);
                entry.pending = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use bson::rawdoc;
    use indextap_analyzer::command::{MongoCommand, Outcome, Request};

    use super::*;

    /// Counting by kind number adds up exactly as counting by label, whatever the order,
    /// through several hand-overs; a number past the table is counted by its label.
    #[test]
    fn tallies_by_kind_number_count_exactly() {
        let registry = crate::admin::metrics::Metrics::new();
        let metrics = registry.listener("t", "postgresql");
        let mut tallies = Tallies::default();
        let resolve = |name: &str| metrics.message_counter(name);
        for round in 0..3 {
            for (kind, name) in [
                (2, "Bind"),
                (4, "Execute"),
                (30, "DataRow"),
                (30, "DataRow"),
            ] {
                tally_kind(&mut tallies, kind, name, resolve);
            }
            if round == 1 {
                tally_kind(&mut tallies, MESSAGE_KINDS + 3, "Odd", resolve);
                tally_kind(&mut tallies, 0, "Query", resolve);
            }
            tallies.flush();
        }
        tallies.flush();
        let text = registry.encode();
        for (kind, count) in [
            ("Bind", 3),
            ("Execute", 3),
            ("DataRow", 6),
            ("Odd", 1),
            ("Query", 1),
        ] {
            let line = format!(r#"indextap_messages_total{{listener="t",kind="{kind}"}} {count}"#);
            assert!(text.contains(&line), "{line}\n{text}");
        }
    }

    /// A gathering that took all it may leaves the queue behind: the next one does not wait.
    #[test]
    fn a_full_gathering_is_followed_without_a_pause() {
        assert_eq!(pause_after(1), ANALYSIS_TICK);
        assert_eq!(pause_after(ANALYSIS_BATCHES - 1), ANALYSIS_TICK);
        assert_eq!(pause_after(ANALYSIS_BATCHES), Duration::ZERO);
    }

    /// The analysis thread's run list keeps its room from one gathering to the next.
    #[test]
    fn a_relisted_run_keeps_its_room() {
        let observations = [find(), find(), find()];
        let mut list: Vec<&Observation> = Vec::with_capacity(40);
        list.extend(observations.iter());
        let (room, at) = (list.capacity(), list.as_ptr().addr());
        let relisted: Vec<&'static Observation> = relist(list);
        assert!(relisted.is_empty());
        assert_eq!((relisted.capacity(), relisted.as_ptr().addr()), (room, at));
    }

    fn find() -> Observation {
        Observation {
            request: Request::Mongo(MongoCommand::new(
                "app",
                rawdoc! {"find": "orders", "filter": {"status": "x"}, "$db": "app"},
                Vec::new(),
            )),
            outcome: Outcome::default(),
            at: SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn a_batch_that_does_not_fit_is_dropped_whole_and_the_rest_is_recorded() {
        let aggregator = Arc::new(Aggregator::new(10));
        let analysis = Analysis::start(aggregator.clone(), 3, 16, 1, InspectBudget::unlimited());

        let mut too_big = vec![find(), find(), find(), find()];
        assert_eq!(analysis.offer(&mut too_big, &mut Vec::new()), 4);
        assert!(too_big.is_empty(), "a dropped batch is cleared");

        let mut fits = vec![find(), find()];
        assert_eq!(analysis.offer(&mut fits, &mut Vec::new()), 0);
        assert!(fits.is_empty(), "an accepted batch is taken");

        analysis.settle(Duration::from_secs(5)).await;
        let snapshot = aggregator.snapshot();
        let counts: Vec<u64> = snapshot.shapes.values().map(|s| s.count).collect();
        assert_eq!(counts, vec![2]);
    }

    fn large_find(bytes: usize) -> Observation {
        let mut observation = find();
        if let Request::Mongo(command) = &mut observation.request {
            command.body =
                rawdoc! {"find": "orders", "filter": {"note": "x".repeat(bytes)}, "$db": "app"};
        }
        observation
    }

    #[tokio::test]
    async fn the_charges_of_large_copies_go_with_their_batch() {
        let aggregator = Arc::new(Aggregator::new(10));
        let budget = InspectBudget::new(100_000, Default::default());
        let analysis = Analysis::start(aggregator.clone(), 2, 16, 1, budget.clone());
        let room = || Arc::new(budget.reserve(50_000).expect("room"));
        // Past the queue's count: dropped, and its charges given back at once.
        let (mut batch, mut rooms) = (vec![find(), large_find(50_000), find()], vec![room()]);
        assert_eq!(analysis.offer(&mut batch, &mut rooms), 3);
        assert!(batch.is_empty() && rooms.is_empty());
        assert_eq!(budget.held(), 0);
        let (mut batch, mut rooms) = (vec![find(), large_find(50_000)], vec![room()]);
        assert_eq!(analysis.offer(&mut batch, &mut rooms), 0);
        assert!(rooms.is_empty(), "taken with the batch");
        analysis.settle(Duration::from_secs(5)).await;
        assert_eq!(budget.held(), 0, "given back once analysed");
        let recorded: u64 = aggregator.snapshot().shapes.values().map(|s| s.count).sum();
        assert_eq!(recorded, 2);
    }

    #[tokio::test]
    async fn recorded_batches_come_back_as_spares_within_bounds() {
        let analysis = Analysis::start(
            Arc::new(Aggregator::new(10)),
            1000,
            16,
            1,
            InspectBudget::new(100_000, Default::default()),
        );
        let mut batch = vec![find(), find()];
        assert_eq!(analysis.offer(&mut batch, &mut Vec::new()), 0);
        assert_eq!(batch.capacity(), 0, "no spare yet: a new empty batch");
        analysis.settle(Duration::from_secs(5)).await;
        // The analysis thread gives the batch back after counting it recorded.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lock(&analysis.spares.0).is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut next = vec![find()];
        assert_eq!(analysis.offer(&mut next, &mut Vec::new()), 0);
        assert!(
            next.is_empty() && next.capacity() >= 2,
            "the spare is reused"
        );

        // Too large, or past the count: freed, not kept.
        analysis
            .spares
            .give(Vec::with_capacity(SPARE_BATCH_CAPACITY + 1));
        for _ in 0..SPARE_BATCHES * 2 {
            analysis.spares.give(Vec::with_capacity(1));
        }
        let spares = lock(&analysis.spares.0);
        assert_eq!(spares.len(), SPARE_BATCHES);
        assert!(spares
            .iter()
            .all(|spare| spare.capacity() <= SPARE_BATCH_CAPACITY));
    }
}
