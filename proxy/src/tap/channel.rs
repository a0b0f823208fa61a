//! The tap channel: a connection's bounded queue from the relay to inspection.
//!
//! Both ends run on the connection's data thread, so the queue is a `VecDeque` behind an
//! uncontended lock: an offer is a push and, at most once until the items are taken, a
//! listing of the connection on the thread's [`ReadyList`], shared by every connection of
//! the thread. Listing wakes nobody: the data thread drains the list when it runs out of
//! work, before it waits for I/O (its park hook, `pipeline::Inspections::drain_parked`), so
//! a round trip costs no task wake-up. The thread's inspection task is woken only for a
//! thread that does not park: once [`WAKE_AFTER`] items were offered on the thread since the
//! list was last taken, when a connection's queue passes half its capacity, and at the end of
//! a connection. (Unit tests consume a channel with a waiting task of their own,
//! `Tap::channel` and `TapReceiver::recv_all`.)
//! The receiver takes the whole queue, storage and all, so an idle connection holds no slots
//! (a general-purpose channel keeps a block of them per connection, 2 KiB here). The first
//! two items offered to an empty queue go into slots of their own instead: a
//! request/response protocol offers one chunk per direction, and a drain takes the request and its reply (see
//! [`Tap::offer_deferred`]), so no queue storage is allocated and freed per round trip, for at
//! most 128 bytes per connection. When it is full the item is dropped and counted, never
//! waited for.
//!
//! ## Layout
//! - [`Tap`]: the sending half (the relay's pumps hold one each).
//! - [`TapReceiver`]: the receiving half, [`TapBatch`]: what it takes.
//! - [`ReadyList`]: the keys of a thread's connections with items, the count of items offered
//!   since they were taken, and the inspection task's waker.
//! - [`TapItem`]: what crosses.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(test)]
use std::task::Poll;

use futures::task::AtomicWaker;
use prometheus_client::metrics::counter::Counter;

use super::TapFrame;

/// What crosses the tap channel.
#[derive(Debug)]
pub enum TapItem {
    /// A whole frame.
    Frame(TapFrame),
    /// Several whole frames of one chunk, in order.
    Frames(Vec<TapFrame>),
    /// Only the header of a frame too large to inspect.
    Oversize(TapFrame),
}

impl TapItem {
    /// How many wire messages the item stands for, as dropped samples are counted.
    fn message_count(&self, messages_in: fn(&[u8]) -> u64) -> u64 {
        match self {
            TapItem::Frames(frames) => frames.iter().map(|frame| messages_in(&frame.bytes)).sum(),
            TapItem::Frame(frame) => messages_in(&frame.bytes),
            TapItem::Oversize(_) => 1,
        }
    }
}

struct Channel {
    queue: Mutex<Queue>,
    consumer: Consumer,
    capacity: usize,
    /// The engine's count of the messages in a frame ([`Inspector::messages_in`]).
    ///
    /// [`Inspector::messages_in`]: crate::tap::Inspector::messages_in
    messages_in: fn(&[u8]) -> u64,
}

/// Who takes a channel's items, and how it is woken.
enum Consumer {
    /// A task of its own, when it waits on an empty queue (unit tests).
    #[cfg(test)]
    Task(AtomicWaker),
    /// The thread's inspection task: the channel lists `key` on `ready`.
    Shared { ready: Arc<ReadyList>, key: usize },
}

impl Consumer {
    /// Whether the channel is to be listed now; `listed` (held under the queue's lock) says
    /// whether it is already.
    fn claim(&self, listed: &mut bool) -> bool {
        match self {
            #[cfg(test)]
            Consumer::Task(_) => true,
            Consumer::Shared { .. } => !std::mem::replace(listed, true),
        }
    }

    /// An item was queued, outside the queue's lock: list the channel if it was claimed, and
    /// wake the consumer if it must not wait for the thread to park (`urgent`: the queue is
    /// past half full).
    fn offered(&self, claimed: bool, urgent: bool) {
        match self {
            #[cfg(test)]
            Consumer::Task(waker) => {
                if claimed {
                    waker.wake();
                }
            }
            Consumer::Shared { ready, key } => {
                if claimed {
                    ready.list(*key);
                }
                ready.offered(urgent);
            }
        }
    }

    /// The last [`Tap`] went: list the channel if it was claimed and wake the consumer, so
    /// the end is seen even on a thread that does not park.
    fn ended(&self, claimed: bool) {
        match self {
            #[cfg(test)]
            Consumer::Task(waker) => waker.wake(),
            Consumer::Shared { ready, key } => {
                if claimed {
                    ready.list(*key);
                }
                ready.wake();
            }
        }
    }
}

/// Items offered on a data thread since its [`ReadyList`] was last taken, past which the
/// inspection task is woken rather than left to the park hook: the thread has not parked for
/// that long.
pub const WAKE_AFTER: usize = 256;

/// The keys of a data thread's connections that have items for inspection, and the waker of
/// the task that takes them when the thread's park hook does not. A connection is listed at
/// most once until its items are taken.
#[derive(Default)]
pub struct ReadyList {
    keys: Mutex<Vec<usize>>,
    consumer: AtomicWaker,
    /// Items offered since the keys were last taken (or the task last woken for them).
    pending: AtomicUsize,
    /// Items offered and not yet inspected, which sizes the inspection's slices. An
    /// estimate, started afresh whenever a drain leaves nothing listed: until then, what a
    /// stopped connection left unread still counts, and from then, a deferred request
    /// (offered unlisted, [`Tap::offer_deferred`]) that is still queued no longer does. Either
    /// way a slice only comes out a little larger or smaller.
    queued: AtomicUsize,
}

impl std::fmt::Debug for ReadyList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyList").finish_non_exhaustive()
    }
}

impl ReadyList {
    fn list(&self, key: usize) {
        lock(&self.keys).push(key);
    }

    /// Count an offered item; wake the task once [`WAKE_AFTER`] gathered, or when `urgent`.
    fn offered(&self, urgent: bool) {
        // Offers, takes and drains all run on the one data thread, so the counts are this
        // thread's alone: plain loads and stores, not locked read-modify-writes.
        let pending = self.pending.load(Ordering::Relaxed) + 1;
        self.pending.store(pending, Ordering::Relaxed);
        let queued = self.queued.load(Ordering::Relaxed) + 1;
        self.queued.store(queued, Ordering::Relaxed);
        if urgent || pending >= WAKE_AFTER {
            self.pending.store(0, Ordering::Relaxed);
            self.consumer.wake();
        }
    }

    /// Wake the inspection task (the park hook left work, or a connection ended).
    pub fn wake(&self) {
        self.consumer.wake();
    }

    /// Make `waker` the one woken: the task's, each time it is polled (a wake takes it).
    pub fn register(&self, waker: &std::task::Waker) {
        self.consumer.register(waker);
    }

    /// Items offered on the thread and not yet inspected (an estimate: see the field).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// A drain inspected `items` and left some behind.
    pub fn inspected(&self, items: usize) {
        let left = self.queued.load(Ordering::Relaxed).saturating_sub(items);
        self.queued.store(left, Ordering::Relaxed);
    }

    /// A drain left nothing listed: the count starts afresh.
    pub fn emptied(&self) {
        self.queued.store(0, Ordering::Relaxed);
    }

    /// Move the listed keys into `into` (in the order listed); whether there were any.
    pub fn take(&self, into: &mut Vec<usize>) -> bool {
        self.pending.store(0, Ordering::Relaxed);
        let mut keys = lock(&self.keys);
        if keys.is_empty() {
            return false;
        }
        into.append(&mut keys);
        true
    }
}

/// A poisoned lock only means a panic elsewhere between two whole updates: still sound.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct Queue {
    items: Items,
    /// Items were dropped since the receiver last asked.
    behind: bool,
    /// Live [`Tap`]s: at zero the receiver sees the end once the queue is empty.
    senders: usize,
    /// The receiver is gone: offers fail, so the relay stops splitting.
    closed: bool,
    /// The channel's key is on its [`ReadyList`] and the items were not taken since.
    listed: bool,
}

/// Items in order: the two slots first (front to back), then `rest`, which is only used
/// while both slots are taken.
#[derive(Default)]
struct Items {
    slots: [Option<TapItem>; 2],
    rest: VecDeque<TapItem>,
}

impl Items {
    fn len(&self) -> usize {
        self.slots.iter().flatten().count() + self.rest.len()
    }

    fn push(&mut self, item: TapItem) {
        if self.rest.is_empty() {
            match &mut self.slots {
                [front @ None, None] => {
                    *front = Some(item);
                    return;
                }
                [Some(_), back @ None] => {
                    *back = Some(item);
                    return;
                }
                _ => {}
            }
        }
        self.rest.push_back(item);
    }

    fn pop_front(&mut self) -> Option<TapItem> {
        let [front, back] = &mut self.slots;
        front
            .take()
            .or_else(|| back.take())
            .or_else(|| self.rest.pop_front())
    }
}

impl Channel {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves a queue of whole items: still sound.
        lock(&self.queue)
    }
}

/// The sending half of a connection's inspection channel.
pub struct Tap {
    channel: Arc<Channel>,
    dropped: Counter,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").finish_non_exhaustive()
    }
}

impl Clone for Tap {
    fn clone(&self) -> Self {
        self.channel.lock().senders += 1;
        Self {
            channel: self.channel.clone(),
            dropped: self.dropped.clone(),
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let ended = {
            let mut queue = self.channel.lock();
            queue.senders = queue.senders.saturating_sub(1);
            let queue = &mut *queue;
            (queue.senders == 0 && !queue.closed)
                .then(|| self.channel.consumer.claim(&mut queue.listed))
        };
        if let Some(claimed) = ended {
            self.channel.consumer.ended(claimed);
        }
    }
}

impl Tap {
    /// A bounded channel of `capacity` items; each dropped item's frames count in
    /// `dropped`, a frame as one message.
    #[cfg(test)]
    pub fn channel(capacity: usize, dropped: Counter) -> (Tap, TapReceiver) {
        let consumer = Consumer::Task(AtomicWaker::new());
        Self::with_consumer(capacity, dropped, super::one_message, consumer)
    }

    /// A bounded channel of `capacity` items for the thread's inspections: an offer lists
    /// `key` on `ready` (once until the items are taken with [`TapReceiver::take`]), a
    /// deferred one only past half the capacity; each dropped item's messages count in `dropped`, as
    /// `messages_in` says ([`Inspector::messages_in`]).
    ///
    /// [`Inspector::messages_in`]: crate::tap::Inspector::messages_in
    pub fn listed(
        capacity: usize,
        dropped: Counter,
        messages_in: fn(&[u8]) -> u64,
        ready: Arc<ReadyList>,
        key: usize,
    ) -> (Tap, TapReceiver) {
        let consumer = Consumer::Shared { ready, key };
        Self::with_consumer(capacity, dropped, messages_in, consumer)
    }

    fn with_consumer(
        capacity: usize,
        dropped: Counter,
        messages_in: fn(&[u8]) -> u64,
        consumer: Consumer,
    ) -> (Tap, TapReceiver) {
        let channel = Arc::new(Channel {
            queue: Mutex::new(Queue {
                senders: 1,
                ..Queue::default()
            }),
            consumer,
            capacity: capacity.max(1),
            messages_in,
        });
        (
            Tap {
                channel: channel.clone(),
                dropped,
            },
            TapReceiver { channel },
        )
    }

    /// Offer an item without waiting: the connection is listed for the thread's next drain.
    /// Returns false once the inspector has gone away.
    pub fn offer(&self, item: TapItem) -> bool {
        self.push(item, true)
    }

    /// [`Tap::offer`], leaving the connection unlisted while the queue is under half full:
    /// for a request whose reply will come (and list it), so that one drain inspects both
    /// rather than one at the park between them. The end of the connection lists it too, so
    /// nothing is left behind.
    pub fn offer_deferred(&self, item: TapItem) -> bool {
        self.push(item, false)
    }

    /// Drop an item that could not be queued for want of room in the inspection budget
    /// (`crate::budget`), exactly as one that found the queue full: counted, and the
    /// inspector told to resync. Returns false once the inspector has gone away.
    pub fn drop_item(&self, item: TapItem) -> bool {
        let mut queue = self.channel.lock();
        if queue.closed {
            return false;
        }
        queue.behind = true;
        drop(queue);
        self.count_dropped(&item);
        true
    }

    fn count_dropped(&self, item: &TapItem) {
        self.dropped
            .inc_by(item.message_count(self.channel.messages_in));
    }

    fn push(&self, item: TapItem, wake: bool) -> bool {
        let (claimed, urgent) = {
            let mut queue = self.channel.lock();
            if queue.closed {
                return false;
            }
            // Counted once: the slots and the rest are looked at again only by the drain.
            let len = queue.items.len();
            if len >= self.channel.capacity {
                queue.behind = true;
                drop(queue);
                self.count_dropped(&item);
                return true;
            }
            queue.items.push(item);
            let queue = &mut *queue;
            let urgent = (len + 1) * 2 > self.channel.capacity;
            let claimed = (wake || urgent) && self.channel.consumer.claim(&mut queue.listed);
            (claimed, urgent)
        };
        self.channel.consumer.offered(claimed, urgent);
        true
    }
}

/// The receiving half: items in order, and whether any were dropped since last asked.
pub struct TapReceiver {
    channel: Arc<Channel>,
}

impl std::fmt::Debug for TapReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapReceiver").finish_non_exhaustive()
    }
}

impl TapReceiver {
    /// Wait for items and take every queued one; an empty queue once every [`Tap`] is gone.
    /// The queue's storage goes with them, so an idle connection holds none.
    #[cfg(test)]
    pub async fn recv_all(&mut self) -> TapBatch {
        std::future::poll_fn(|cx| {
            let mut queue = self.channel.lock();
            if queue.items.len() == 0 {
                if queue.senders == 0 {
                    return Poll::Ready(TapBatch::default());
                }
                // Registered under the lock: an offer after it pushes, unlocks, then wakes.
                if let Consumer::Task(waker) = &self.channel.consumer {
                    waker.register(cx.waker());
                }
                return Poll::Pending;
            }
            Poll::Ready(TapBatch(std::mem::take(&mut queue.items)))
        })
        .await
    }

    /// Take every queued item without waiting (the thread's drain, once the channel was
    /// listed). The next offer that is not deferred lists the channel again.
    pub fn take(&mut self) -> Taken {
        let mut queue = self.channel.lock();
        queue.listed = false;
        Taken {
            finished: queue.senders == 0,
            behind: std::mem::take(&mut queue.behind),
            batch: TapBatch(std::mem::take(&mut queue.items)),
        }
    }

    /// The next item, if one is queued.
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<TapItem> {
        self.channel.lock().items.pop_front()
    }

    /// Whether items were dropped since the last call (the inspector should resync).
    #[cfg(test)]
    pub fn take_dropped(&self) -> bool {
        std::mem::take(&mut self.channel.lock().behind)
    }
}

impl Drop for TapReceiver {
    fn drop(&mut self) {
        let mut queue = self.channel.lock();
        queue.closed = true;
        queue.items = Items::default();
    }
}

/// What [`TapReceiver::take`] took.
pub struct Taken {
    /// The items, in order.
    pub batch: TapBatch,
    /// Items were dropped since the last take (the inspector should resync first).
    pub behind: bool,
    /// Every [`Tap`] is gone: nothing will follow `batch`.
    pub finished: bool,
}

/// The items [`TapReceiver::take`] took, in order.
#[derive(Default)]
pub struct TapBatch(Items);

impl TapBatch {
    /// How many items were taken.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none was: every [`Tap`] is gone.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items, by reference.
    pub fn iter(&self) -> impl Iterator<Item = &TapItem> {
        self.0.slots.iter().flatten().chain(&self.0.rest)
    }

    /// The first item left, taken out.
    pub fn pop_front(&mut self) -> Option<TapItem> {
        self.0.pop_front()
    }
}

impl IntoIterator for TapBatch {
    type Item = TapItem;
    type IntoIter = std::iter::Chain<
        std::iter::Flatten<std::array::IntoIter<Option<TapItem>, 2>>,
        std::collections::vec_deque::IntoIter<TapItem>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        let Items { slots, rest } = self.0;
        slots.into_iter().flatten().chain(rest)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;
    use crate::tap::Direction;

    fn item(n: u8) -> TapItem {
        TapItem::Frame(TapFrame {
            direction: Direction::Request,
            bytes: Bytes::from(vec![n]),
            at: Instant::now(),
        })
    }

    fn first_byte(item: &TapItem) -> u8 {
        match item {
            TapItem::Frame(frame) => frame.bytes[0],
            _ => 0,
        }
    }

    #[tokio::test]
    async fn items_arrive_in_order_and_a_full_queue_drops_and_counts() {
        let dropped = Counter::default();
        let (tap, mut receiver) = Tap::channel(3, dropped.clone());
        for n in 0..5 {
            assert!(tap.offer(item(n)));
        }
        assert_eq!(dropped.get(), 2);
        assert!(receiver.take_dropped());
        assert!(!receiver.take_dropped());
        let batch = receiver.recv_all().await;
        assert_eq!(batch.iter().map(first_byte).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn a_dropped_run_counts_every_message_in_it() {
        let dropped = Counter::default();
        // One byte per message: a stand-in for an engine whose frames are runs.
        let (tap, _receiver) = Tap::listed(
            1,
            dropped.clone(),
            |run| run.len() as u64,
            Arc::default(),
            0,
        );
        let run = |len: usize| TapFrame {
            direction: Direction::Reply,
            bytes: Bytes::from(vec![0; len]),
            at: Instant::now(),
        };
        assert!(tap.offer(TapItem::Frame(run(1))));
        assert!(tap.offer(TapItem::Frame(run(5))));
        assert!(tap.offer(TapItem::Frames(vec![run(2), run(3)])));
        assert!(tap.offer(TapItem::Oversize(run(5))));
        assert_eq!(dropped.get(), 5 + 2 + 3 + 1);
    }

    #[tokio::test]
    async fn the_slots_keep_the_order_whatever_is_taken_between_offers() {
        let (tap, mut receiver) = Tap::channel(1024, Counter::default());
        let mut next = 0u8..;
        let mut expected = std::collections::VecDeque::new();
        // Every mix of offers and takes, up to four deep: slots, then the rest.
        for round in 0..64u32 {
            let offers = round % 5;
            for _ in 0..offers {
                let n = next.next().unwrap();
                assert!(tap.offer(item(n)));
                expected.push_back(n);
            }
            if round % 3 == 0 && !expected.is_empty() {
                let batch = receiver.recv_all().await;
                let taken: Vec<u8> = batch.into_iter().map(|i| first_byte(&i)).collect();
                assert_eq!(taken, expected.drain(..).collect::<Vec<_>>());
            } else {
                for _ in 0..round % 4 {
                    let taken = receiver.try_recv().as_ref().map(first_byte);
                    assert_eq!(taken, expected.pop_front());
                }
            }
        }
    }

    #[tokio::test]
    async fn a_deferred_offer_waits_for_the_next_wake_or_a_half_full_queue() {
        let (tap, mut receiver) = Tap::channel(4, Counter::default());
        let waiting = tokio::spawn(async move {
            let batch = receiver.recv_all().await;
            (batch.iter().map(first_byte).collect::<Vec<_>>(), receiver)
        });
        tokio::task::yield_now().await;
        assert!(tap.offer_deferred(item(1)));
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "a deferred offer alone does not wake"
        );
        assert!(tap.offer(item(2)));
        let (taken, mut receiver) = waiting.await.expect("join");
        assert_eq!(taken, [1, 2], "one wake-up takes both");

        // Past half the capacity a deferred offer wakes, so the queue never fills unseen.
        let waiting = tokio::spawn(async move { receiver.recv_all().await.len() });
        tokio::task::yield_now().await;
        for n in 0..3 {
            assert!(tap.offer_deferred(item(n)));
        }
        let taken = tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await;
        assert_eq!(taken.expect("woken").expect("join"), 3);
    }

    #[tokio::test]
    async fn the_receiver_sees_the_end_after_the_last_tap_and_the_taps_see_it_go() {
        let (tap, mut receiver) = Tap::channel(8, Counter::default());
        let second = tap.clone();
        assert!(tap.offer(item(1)));
        drop(tap);
        assert_eq!(receiver.recv_all().await.len(), 1);
        let waiting = tokio::spawn(async move {
            let first = receiver.recv_all().await.len();
            let end = receiver.recv_all().await.len();
            (first, end, receiver)
        });
        tokio::task::yield_now().await;
        assert!(second.offer(item(2)));
        drop(second);
        let (first, end, receiver) = waiting.await.expect("join");
        assert_eq!((first, end), (1, 0));

        let (tap, receiver_gone) = Tap::channel(8, Counter::default());
        drop(receiver_gone);
        assert!(!tap.offer(item(3)));
        drop(receiver);
    }
}
