//! The tap channel: a connection's bounded queue from the relay to its inspection task.
//!
//! Both ends run on the connection's data thread, so the queue is a `VecDeque` behind an
//! uncontended lock, with the inspection task's waker beside it: an offer is a push and a
//! wake-up of a task on the same thread. The receiver takes the whole queue, storage and
//! all, so an idle connection holds no slots (a general-purpose channel keeps a block of
//! them per connection, 2 KiB here). The first two items offered to an empty queue go into
//! slots of their own instead: a request/response protocol offers one chunk per direction,
//! and a wake-up takes the request and its reply (see [`Tap::offer_deferred`]), so no queue
//! storage is allocated and freed per round trip, for at most 128 bytes per connection. When it is
//! full the item is dropped and counted, never waited for.
//!
//! ## Layout
//! - [`Tap`]: the sending half (the relay's pumps hold one each).
//! - [`TapReceiver`]: the receiving half (the inspection task), [`TapBatch`]: what it takes.
//! - [`TapItem`]: what crosses.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
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
    /// How many frames the item stands for, as dropped samples are counted.
    fn frame_count(&self) -> u64 {
        match self {
            TapItem::Frames(frames) => frames.len() as u64,
            TapItem::Frame(_) | TapItem::Oversize(_) => 1,
        }
    }
}

struct Channel {
    queue: Mutex<Queue>,
    /// The inspection task, when it waits on an empty queue.
    receiver: AtomicWaker,
    capacity: usize,
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
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let last = {
            let mut queue = self.channel.lock();
            queue.senders = queue.senders.saturating_sub(1);
            queue.senders == 0
        };
        if last {
            self.channel.receiver.wake();
        }
    }
}

impl Tap {
    /// A bounded channel of `capacity` items; each dropped item's frames count in
    /// `dropped`.
    pub fn channel(capacity: usize, dropped: Counter) -> (Tap, TapReceiver) {
        let channel = Arc::new(Channel {
            queue: Mutex::new(Queue {
                senders: 1,
                ..Queue::default()
            }),
            receiver: AtomicWaker::new(),
            capacity: capacity.max(1),
        });
        (
            Tap {
                channel: channel.clone(),
                dropped,
            },
            TapReceiver { channel },
        )
    }

    /// Offer an item without waiting. Returns false once the inspector has gone away.
    pub fn offer(&self, item: TapItem) -> bool {
        self.push(item, true)
    }

    /// [`Tap::offer`], leaving the inspection task asleep while the queue is under half
    /// full: for a request whose reply will come (and wake it), so that one wake-up
    /// inspects both. The end of the connection wakes it too, so nothing is left behind.
    pub fn offer_deferred(&self, item: TapItem) -> bool {
        self.push(item, false)
    }

    fn push(&self, item: TapItem, wake: bool) -> bool {
        let wake = {
            let mut queue = self.channel.lock();
            if queue.closed {
                return false;
            }
            if queue.items.len() >= self.channel.capacity {
                queue.behind = true;
                drop(queue);
                self.dropped.inc_by(item.frame_count());
                return true;
            }
            queue.items.push(item);
            wake || queue.items.len() * 2 > self.channel.capacity
        };
        if wake {
            self.channel.receiver.wake();
        }
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
    pub async fn recv_all(&mut self) -> TapBatch {
        poll_fn(|cx| {
            let mut queue = self.channel.lock();
            if queue.items.len() == 0 {
                if queue.senders == 0 {
                    return Poll::Ready(TapBatch::default());
                }
                // Registered under the lock: an offer after it pushes, unlocks, then wakes.
                self.channel.receiver.register(cx.waker());
                return Poll::Pending;
            }
            Poll::Ready(TapBatch(std::mem::take(&mut queue.items)))
        })
        .await
    }

    /// The next item, if one is queued.
    pub fn try_recv(&mut self) -> Option<TapItem> {
        self.channel.lock().items.pop_front()
    }

    /// Whether items were dropped since the last call (the inspector should resync).
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

/// The items [`TapReceiver::recv_all`] took, in order.
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
