//! The data path: forward bytes both ways, tap a copy.
//!
//! Each direction is a pump: read a chunk, split it into frames (a header read, no copy),
//! offer the chunk's frames to the connection's inspector with one `try_send`, forward the
//! chunk. One offer per chunk, not per frame, because a PostgreSQL round trip is a chunk of
//! three to seven messages each way, and every offer touches memory the inspector shares. The
//! tap comes before the write only so that a request is always queued for inspection before
//! its reply can be; it never waits. When the inspector falls behind the frame is dropped and
//! counted; when the inspector has stopped (a decode error) the pump stops splitting.
//!
//! Both pumps are state machines polled by one task, which owns both sockets whole: no
//! split halves, no lock per poll, one wake-up per readiness event. Each pump waits with a
//! waker of its own (`PumpWake`), so a wake-up polls only the pump whose socket is ready.
//!
//! Reads go into the thread's read arena, not into a buffer of the connection's own: a chunk
//! is a reference-counted slice of the arena, shared by the write and by the inspector's
//! copy, and dropped once both are done. An idle connection holds no read buffer at all.
//! A write the peer cannot take at once copies what is left out of the arena, so a stalled
//! peer never pins the arena.
//!
//! MongoDB replies the topology rewrite awaits (a `hello`'s, see `mongo::hello`) take the one
//! other path, store-and-forward: from a frame boundary on, while a reply is awaited, a reply
//! frame is forwarded once complete, after the rewrite had its look at it. Every other reply
//! streams like a request, so a large `find` batch is not held until its last read. A reply
//! over the inspection cap streams through untouched.
//!
//! ## Layout
//! - [`ByteStream`], [`BoxStream`]: what can be relayed (`stream`, with plain TCP's direct
//!   write).
//! - this file: [`Relay`], one connection's settings; [`Relay::run`] drives both pumps to
//!   the end.
//! - `pump`: one direction's state machine, the read arena (`read_chunk`) and the
//!   hand-over to the tap.
//! - `wake`: `PumpWake`, each pump's waker, over `TaskWaker`, the task's.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::admin::metrics::ListenerMetrics;
use crate::budget::InspectBudget;
use crate::error::ProxyError;
use crate::framing::{Framer, Splitter};
use crate::tap::{Direction, Tap};

mod pump;
mod stream;
mod wake;

use self::pump::{Pump, Shared};
use self::wake::{PumpWake, TaskWaker};
pub use stream::{BoxStream, ByteStream};

/// A connection's rewrite of whole reply frames (MongoDB's topology rewrite,
/// `mongo::HelloReplies`). It is told about each whole request frame first, so that it can
/// pick the few replies worth looking at, and it decides which requests leave the
/// connection at rest ([`Activity`]).
pub trait ReplyRewrite: Send {
    /// A whole request frame is being forwarded. Returns whether it leaves the connection
    /// at rest although no reply has come (MongoDB's awaitable `hello`).
    fn request(&mut self, frame: &[u8]) -> bool;
    /// Request frames can no longer be told apart (their framing failed): from now on
    /// every reply must be looked at.
    fn requests_unframed(&mut self);
    /// A whole reply frame: its replacement, or `None` to forward it as it came.
    fn reply(&mut self, frame: &[u8]) -> Option<Vec<u8>>;
    /// Whether a reply it wants to look at may come next. Only then are replies held until
    /// whole; the others stream through like requests.
    fn awaiting(&self) -> bool;
}
/// One connection's relay settings.
pub struct Relay<Q, R> {
    /// Frames client → server.
    pub request_framer: Q,
    /// Frames server → client.
    pub reply_framer: R,
    /// Frames larger than this are forwarded but not inspected.
    pub max_inspect: usize,
    /// The process-wide room for frames gathered across reads; a frame without room is
    /// forwarded but not inspected, like one over `max_inspect`.
    pub budget: InspectBudget,
    /// MongoDB's topology rewrite; `None` forwards replies as they stream.
    pub reply_rewrite: Option<Box<dyn ReplyRewrite>>,
    /// Where frames go for inspection; `None` forwards blind.
    pub tap: Option<Tap>,
    /// The listener's counters.
    pub metrics: ListenerMetrics,
}

/// Which side of a connection spoke last. Database protocols are request/response: after a
/// reply the connection is at rest (an idle pooled connection), after a request a reply is
/// owed. Shutdown closes the connections at rest at once and waits only for the others.
/// Requests that the [`ReplyRewrite`] calls idle (MongoDB's awaitable `hello`, which a
/// driver's monitor keeps open for seconds at a time) leave the connection at rest.
#[derive(Debug, Default)]
pub struct Activity {
    state: std::sync::atomic::AtomicU8,
}

impl Activity {
    const REQUEST_LAST: u8 = 1;
    const REPLY_LAST: u8 = 2;

    fn spoke(&self, direction: Direction, idle_request: bool) {
        let state = match direction {
            Direction::Request if !idle_request => Self::REQUEST_LAST,
            Direction::Request | Direction::Reply => Self::REPLY_LAST,
        };
        self.state.store(state, Ordering::Relaxed);
    }

    /// Whether a request has been forwarded and its reply has not begun.
    pub fn request_in_flight(&self) -> bool {
        self.state.load(Ordering::Relaxed) == Self::REQUEST_LAST
    }
}

/// How a relayed connection ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayTotals {
    /// Bytes client → upstream.
    pub to_upstream: u64,
    /// Bytes upstream → client.
    pub to_client: u64,
}

impl<Q: Framer, R: Framer> Relay<Q, R> {
    /// Relay until both directions are done, or either fails.
    pub async fn run<C, U>(self, client: C, upstream: U) -> Result<RelayTotals, ProxyError>
    where
        C: ByteStream,
        U: ByteStream,
    {
        self.run_tracked(client, upstream, Arc::new(Activity::default()))
            .await
    }

    /// [`Relay::run`], reporting through `activity` which side spoke last, so that a
    /// shutdown can close the connections that are at rest at once.
    pub async fn run_tracked<C, U>(
        self,
        mut client: C,
        mut upstream: U,
        activity: Arc<Activity>,
    ) -> Result<RelayTotals, ProxyError>
    where
        C: ByteStream,
        U: ByteStream,
    {
        let inspect = self.tap.is_some();
        let mut rewrite = self.reply_rewrite;
        let rewriting = rewrite.is_some();
        let mut requests = Pump::new(
            Direction::Request,
            (inspect || rewriting)
                .then(|| Splitter::new(self.request_framer, self.max_inspect, self.budget.clone())),
            false,
            self.tap.clone(),
            &self.metrics,
            activity.clone(),
        );
        let mut replies = Pump::new(
            Direction::Reply,
            (inspect || rewriting)
                .then(|| Splitter::new(self.reply_framer, self.max_inspect, self.budget)),
            rewriting,
            self.tap,
            &self.metrics,
            activity,
        );
        let metrics = &self.metrics;
        let (mut to_upstream, mut to_client) = (None, None);
        let task = Arc::new(TaskWaker::default());
        let (request_wake, reply_wake) = (PumpWake::new(&task), PumpWake::new(&task));
        let (request_waker, reply_waker) = (
            std::task::Waker::from(request_wake.clone()),
            std::task::Waker::from(reply_wake.clone()),
        );
        // A clean end of one direction (a half-close) lets the other finish; an error ends
        // both, dropping the sockets.
        std::future::poll_fn(|cx| {
            task.register(cx.waker());
            if to_upstream.is_none() && request_wake.take() {
                let mut shared = Shared {
                    metrics,
                    rewrite: rewrite.as_deref_mut(),
                };
                let mut cx = Context::from_waker(&request_waker);
                if let Poll::Ready(result) =
                    requests.poll(&mut cx, &mut client, &mut upstream, &mut shared)
                {
                    to_upstream = Some(result?);
                }
            }
            if to_client.is_none() && reply_wake.take() {
                let mut shared = Shared {
                    metrics,
                    rewrite: rewrite.as_deref_mut(),
                };
                let mut cx = Context::from_waker(&reply_waker);
                if let Poll::Ready(result) =
                    replies.poll(&mut cx, &mut upstream, &mut client, &mut shared)
                {
                    to_client = Some(result?);
                }
            }
            match (to_upstream, to_client) {
                (Some(to_upstream), Some(to_client)) => Poll::Ready(Ok(RelayTotals {
                    to_upstream,
                    to_client,
                })),
                _ => Poll::Pending,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests;
