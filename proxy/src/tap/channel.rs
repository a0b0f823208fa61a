//! The tap channel: a connection's bounded queue from the relay to its inspection task.
//!
//! Both ends run on the connection's data thread, so the queue is a `VecDeque` behind an
//! uncontended lock, with the inspection task's waker beside it: an offer is a push and a
//! wake-up of a task on the same thread. The receiver takes the whole queue, storage and
//! all, so an idle connection holds no slots (a general-purpose channel keeps a block of
//! them per connection, 2 KiB here). When it is full the item is dropped and counted, never
//! waited for.
//!
//! ## Layout
//! - [`Tap`]: the sending half (the relay's pumps hold one each).
//! - [`TapReceiver`]: the receiving half (the inspection task).
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
    items: VecDeque<TapItem>,
    /// Items were dropped since the receiver last asked.
    behind: bool,
    /// Live [`Tap`]s: at zero the receiver sees the end once the queue is empty.
    senders: usize,
    /// The receiver is gone: offers fail, so the relay stops splitting.
    closed: bool,
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
        {
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
            queue.items.push_back(item);
        }
        self.channel.receiver.wake();
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
    pub async fn recv_all(&mut self) -> VecDeque<TapItem> {
        poll_fn(|cx| {
            let mut queue = self.channel.lock();
            if queue.items.is_empty() {
                if queue.senders == 0 {
                    return Poll::Ready(VecDeque::new());
                }
                // Registered under the lock: an offer after it pushes, unlocks, then wakes.
                self.channel.receiver.register(cx.waker());
                return Poll::Pending;
            }
            Poll::Ready(std::mem::take(&mut queue.items))
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
        queue.items = VecDeque::new();
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
