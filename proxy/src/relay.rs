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
//! - [`Relay`]: one connection's settings; [`Relay::run`] drives both pumps to the end.
//! - `Pump`: one direction's state machine, `PumpWake` its waker (over `TaskWaker`, the
//!   task's); `read_chunk`: the read arena.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures::task::AtomicWaker;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::io::AsyncRead;

use crate::admin::metrics::ListenerMetrics;
use crate::budget::InspectBudget;
use crate::error::{ProxyError, Side};
use crate::framing::{Framer, Piece, Run, Splitter};
use crate::tap::{Direction, Tap, TapFrame, TapItem};

mod stream;

pub use stream::{BoxStream, ByteStream};

/// The read arena's size: one allocation serves the reads of every connection on a thread
/// until its chunks are dropped.
const ARENA_SIZE: usize = 64 * 1024;
/// A read is offered at least this much room; with less left, the arena is renewed (or
/// reclaimed in place, when no chunk of it is alive any more).
const MIN_READ: usize = 16 * 1024;
/// Reads at least this long are charged to the inspection budget while their frames wait
/// for inspection ([`charge`]).
const CHARGED_READ: usize = 16 * 1024;

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

/// One pump's waker: the sockets wake the pump that waits on them, and only that pump is
/// polled on the task's next poll. A round trip wakes the relay task twice, once per
/// direction; polling both pumps each time polled the idle one's socket for nothing.
struct PumpWake {
    due: AtomicBool,
    task: Arc<TaskWaker>,
}

/// The relay task's waker, as the pumps reach it. A tokio task's waker is the same for the
/// task's whole life, so the first poll's is kept and woken by reference: no registration
/// per poll and no waker taken and cloned again per wake-up, which is what an
/// `AtomicWaker` costs. Polled with another waker (the future moved to another task), it
/// switches to an `AtomicWaker` for good. A wake-up lost in the switch is not lost: the
/// task looks at the pumps' `due` flags after registering.
#[derive(Default)]
struct TaskWaker {
    first: OnceLock<Waker>,
    moved: AtomicBool,
    other: AtomicWaker,
}

impl TaskWaker {
    fn register(&self, waker: &Waker) {
        if !self.moved.load(Ordering::Acquire) {
            if self.first.get_or_init(|| waker.clone()).will_wake(waker) {
                return;
            }
            self.moved.store(true, Ordering::Release);
        }
        self.other.register(waker);
    }

    fn wake(&self) {
        if self.moved.load(Ordering::Acquire) {
            self.other.wake();
        } else if let Some(first) = self.first.get() {
            first.wake_by_ref();
        }
    }
}

impl PumpWake {
    /// Due at first: a pump is polled once before it waits on anything.
    fn new(task: &Arc<TaskWaker>) -> Arc<Self> {
        Arc::new(Self {
            due: AtomicBool::new(true),
            task: task.clone(),
        })
    }

    /// Whether the pump was woken since it was last polled.
    fn take(&self) -> bool {
        self.due.swap(false, Ordering::AcqRel)
    }
}

impl std::task::Wake for PumpWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.due.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// What a pump does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Wait for the next chunk.
    Read,
    /// Forward what the last chunk gave.
    Write,
    /// The source ended: forward what is left, then pass the end of stream on.
    Close,
    /// Finished.
    Done,
}

struct Pump<F> {
    direction: Direction,
    splitter: Option<Splitter<F>>,
    /// Whether replies may be held until whole, for the [`ReplyRewrite`].
    store_and_forward: bool,
    /// Whether the splitter holds the first bytes of a frame that are not forwarded yet
    /// (store-and-forward left off inside it).
    held: bool,
    tap: Option<Tap>,
    bytes: Counter,
    latency: Histogram,
    activity: Arc<Activity>,
    stage: Stage,
    /// What is still to be written, in order: the chunk, or its frames after the rewrite.
    out: VecDeque<Bytes>,
    /// Whether `out` was copied out of the read arena (after a write had to wait).
    out_owned: bool,
    /// When the chunk being written was read.
    read_at: Option<Instant>,
    total: u64,
}

/// What the two pumps of a connection share, lent to each poll.
struct Shared<'a> {
    metrics: &'a ListenerMetrics,
    rewrite: Option<&'a mut (dyn ReplyRewrite + 'static)>,
}

impl<F: Framer> Pump<F> {
    fn new(
        direction: Direction,
        splitter: Option<Splitter<F>>,
        store_and_forward: bool,
        tap: Option<Tap>,
        metrics: &ListenerMetrics,
        activity: Arc<Activity>,
    ) -> Self {
        let (bytes, latency) = match direction {
            Direction::Request => (
                metrics.bytes_to_upstream.clone(),
                metrics.latency_to_upstream.clone(),
            ),
            Direction::Reply => (
                metrics.bytes_to_client.clone(),
                metrics.latency_to_client.clone(),
            ),
        };
        Self {
            direction,
            splitter,
            store_and_forward,
            held: false,
            tap,
            bytes,
            latency,
            activity,
            stage: Stage::Read,
            out: VecDeque::new(),
            out_owned: false,
            read_at: None,
            total: 0,
        }
    }

    fn sides(&self) -> (Side, Side) {
        match self.direction {
            Direction::Request => (Side::Downstream, Side::Upstream),
            Direction::Reply => (Side::Upstream, Side::Downstream),
        }
    }

    /// Move bytes from `from` to `to` until `from` ends (the total) or either side fails.
    fn poll<I, O>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut I,
        to: &mut O,
        shared: &mut Shared<'_>,
    ) -> Poll<Result<u64, ProxyError>>
    where
        I: ByteStream,
        O: ByteStream,
    {
        let (from_side, to_side) = self.sides();
        loop {
            match self.stage {
                Stage::Read => {
                    let chunk = ready!(read_chunk(cx, from))
                        .map_err(|e| ProxyError::new(from_side, "reading", e))?;
                    if chunk.is_empty() {
                        self.end_of_stream(shared.metrics);
                        self.stage = Stage::Close;
                        continue;
                    }
                    self.take(chunk, shared);
                    self.stage = Stage::Write;
                }
                Stage::Write => {
                    ready!(self.poll_write_out(cx, to))
                        .map_err(|e| ProxyError::new(to_side, "writing", e))?;
                    if let Some(read_at) = self.read_at.take() {
                        self.latency.observe(read_at.elapsed().as_secs_f64());
                    }
                    self.stage = Stage::Read;
                }
                Stage::Close => {
                    ready!(self.poll_write_out(cx, to))
                        .map_err(|e| ProxyError::new(to_side, "writing", e))?;
                    // Half-close: pass the end of stream on, let the other direction finish.
                    let _ = ready!(Pin::new(&mut *to).poll_shutdown(cx));
                    self.stage = Stage::Done;
                }
                Stage::Done => return Poll::Ready(Ok(self.total)),
            }
        }
    }

    /// A chunk was read: count it, tap its frames, queue it for writing.
    fn take(&mut self, chunk: Bytes, shared: &mut Shared<'_>) {
        let read_at = Instant::now();
        self.read_at = Some(read_at);
        let n = chunk.len() as u64;
        self.total += n;
        self.bytes.inc_by(n);
        self.out_owned = false;
        if self.store_and_forward && self.holds(shared) {
            self.store_and_forward(chunk, read_at, shared);
            self.held = self.splitter.as_ref().is_some_and(Splitter::is_gathering);
            self.activity.spoke(self.direction, false);
        } else {
            let idle = self.tap_frames(&chunk, read_at, shared);
            self.activity.spoke(self.direction, idle);
            self.out.push_back(chunk);
        }
    }

    /// Whether this chunk takes the store-and-forward path: it continues a frame held back,
    /// or it starts at a frame's boundary while the rewrite awaits a reply. A frame begun on
    /// the streaming path ends on it (its first bytes are gone), and a reply the rewrite
    /// does not await streams: a large `find` batch is not held until its last read.
    fn holds(&self, shared: &Shared<'_>) -> bool {
        if self.held {
            return true;
        }
        let mid_frame = self.splitter.as_ref().is_some_and(Splitter::is_mid_frame);
        !mid_frame
            && shared
                .rewrite
                .as_deref()
                .is_some_and(|rewrite| rewrite.awaiting())
    }

    /// Write `out` in order, then flush (a TLS stream may hold a record back).
    fn poll_write_out<O: ByteStream>(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut O,
    ) -> Poll<std::io::Result<()>> {
        while let Some(front) = self.out.front_mut() {
            match to.poll_write_slice(cx, front) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => {
                    front.advance(n);
                    if front.is_empty() {
                        self.out.pop_front();
                    }
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    self.own_out();
                    return Poll::Pending;
                }
            }
        }
        to.poll_flush_out(cx)
    }

    /// The peer is not taking bytes: keep what is left in allocations of its own, so the
    /// read arena is not held for as long as the peer stalls.
    fn own_out(&mut self) {
        if self.out_owned {
            return;
        }
        for bytes in &mut self.out {
            *bytes = Bytes::copy_from_slice(bytes);
        }
        self.out_owned = true;
    }

    /// Split and offer the chunk's frames, telling the rewrite about each request frame;
    /// forwarding is the caller's. Returns whether the chunk's requests all leave the
    /// connection at rest (false without a rewrite, or without a whole frame).
    fn tap_frames(&mut self, chunk: &Bytes, at: Instant, shared: &mut Shared<'_>) -> bool {
        let Some(splitter) = self.splitter.as_mut() else {
            return false;
        };
        let mut starved = false;
        let tapped = if chunk.len() < CHARGED_READ || self.tap.is_none() {
            chunk.clone()
        } else {
            let charged = charge(chunk, splitter.budget());
            starved = charged.is_none();
            if starved {
                shared.metrics.event("inspect_budget_exhausted");
            }
            charged.unwrap_or_else(|| chunk.clone())
        };
        let mut pieces = match splitter.push_run(tapped, scratch_pieces) {
            Ok(run) => return self.tap_run(run, at, starved, shared),
            Err(pieces) => pieces,
        };
        // A chunk of one frame (every MongoDB round trip) is offered as it is, without a list.
        let several = pieces
            .iter()
            .filter(|piece| matches!(piece, Piece::Frame(_)))
            .nth(1)
            .is_some();
        // Only a chunk of several frames needs a list (the thread's spare, `frame_list`);
        // a chunk of one has none to make or drop.
        let mut frames = several.then(|| crate::tap::frame_list(pieces.len()));
        let mut idle = None;
        // Whether the chunk ends in a request the server must answer: its inspection then
        // waits for the reply's wake-up (`Tap::offer_deferred`).
        let mut deferred = false;
        for piece in pieces.drain(..) {
            let direction = self.direction;
            match piece {
                Piece::Frame(bytes) => {
                    if let Some(at_rest) = self.rewrite_sees(&bytes, shared) {
                        idle = Some(idle.unwrap_or(true) && at_rest);
                    }
                    deferred = direction == Direction::Request
                        && self
                            .splitter
                            .as_ref()
                            .is_some_and(|splitter| splitter.framer().reply_follows(&bytes));
                    let frame = TapFrame {
                        direction,
                        bytes,
                        at,
                    };
                    if let Some(frames) = frames.as_mut() {
                        frames.push(frame);
                    } else {
                        offer_item(&mut self.tap, TapItem::Frame(frame), deferred, starved);
                    }
                }
                Piece::Raw(_) => {}
                Piece::Oversize {
                    header,
                    over_budget,
                    ..
                } => {
                    deferred = false;
                    offer_frames(&mut self.tap, &mut frames, false, starved);
                    self.announce_oversize(header, over_budget, starved, at, shared.metrics);
                }
                Piece::Broken(error) => {
                    deferred = false;
                    offer_frames(&mut self.tap, &mut frames, false, starved);
                    self.lose_framing(&error, shared);
                }
            }
        }
        return_pieces(pieces);
        offer_frames(&mut self.tap, &mut frames, deferred, starved);
        self.stop_splitting_if_done(shared);
        idle.unwrap_or(false)
    }

    /// [`Pump::tap_frames`] for a chunk of whole frames, the most common read: one offer,
    /// no piece list, and whether a reply follows read off the run's last frame, which the
    /// splitter's walk found.
    fn tap_run(&mut self, run: Run, at: Instant, starved: bool, shared: &mut Shared<'_>) -> bool {
        let idle = self.rewrite_sees(&run.frames, shared);
        let deferred = self.direction == Direction::Request
            && self
                .splitter
                .as_ref()
                .is_some_and(|splitter| splitter.framer().reply_follows(run.last_frame()));
        let frame = TapFrame {
            direction: self.direction,
            bytes: run.frames,
            at,
        };
        offer_item(&mut self.tap, TapItem::Frame(frame), deferred, starved);
        self.stop_splitting_if_done(shared);
        idle.unwrap_or(false)
    }

    /// Show the rewrite a whole frame (or run) that streams: a request's, to learn what it
    /// awaits (whether the request leaves the connection at rest is returned); a reply's
    /// while it awaits one, which is only counted (the frame began inside a streaming
    /// frame's last read, so it is forwarded already).
    fn rewrite_sees(&self, bytes: &[u8], shared: &mut Shared<'_>) -> Option<bool> {
        match (self.direction, shared.rewrite.as_deref_mut()) {
            (Direction::Request, Some(rewrite)) => Some(rewrite.request(bytes)),
            (Direction::Reply, Some(rewrite)) if rewrite.awaiting() => {
                if rewrite.reply(bytes).is_some() {
                    shared.metrics.event("topology_rewrite_missed");
                }
                None
            }
            _ => None,
        }
    }

    /// Splitting stops once framing broke, or when neither the inspector nor the rewrite
    /// needs frames any more (the rewrite needs request frames even uninspected).
    fn stop_splitting_if_done(&mut self, shared: &Shared<'_>) {
        let broken = self.splitter.as_ref().is_some_and(|s| s.is_broken());
        if broken || (self.tap.is_none() && shared.rewrite.is_none()) {
            self.splitter = None;
            self.tap = None;
        }
    }

    /// A frame too large to inspect, or one the budget had no room to gather: count it, and
    /// hand its header to the inspector.
    fn announce_oversize(
        &mut self,
        header: Bytes,
        over_budget: bool,
        starved: bool,
        at: Instant,
        metrics: &ListenerMetrics,
    ) {
        metrics.event(if over_budget {
            "inspect_budget_exhausted"
        } else {
            "oversize_skipped"
        });
        let frame = TapFrame {
            direction: self.direction,
            bytes: header,
            at,
        };
        offer_item(&mut self.tap, TapItem::Oversize(frame), false, starved);
    }

    /// The stream can no longer be framed: stop inspecting it; forwarding goes on.
    fn lose_framing(&mut self, error: &crate::tap::DecodeError, shared: &mut Shared<'_>) {
        shared.metrics.decode_error(error.reason);
        tracing::debug!(listener = %shared.metrics.listener, %error, "framing lost; forwarding uninspected");
        self.tap = None;
        if let (Direction::Request, Some(rewrite)) = (self.direction, shared.rewrite.as_deref_mut())
        {
            rewrite.requests_unframed();
        }
    }

    /// The stream ended: a frame cut short is counted (`truncated`), and on the
    /// store-and-forward path the bytes held back for it are forwarded after all.
    fn end_of_stream(&mut self, metrics: &ListenerMetrics) {
        let Some(splitter) = self.splitter.as_mut() else {
            return;
        };
        let mut pieces = scratch_pieces();
        splitter.finish(&mut pieces);
        for piece in pieces.drain(..) {
            match piece {
                Piece::Broken(error) => {
                    metrics.decode_error(error.reason);
                    tracing::debug!(listener = %metrics.listener, %error, "the stream ended inside a frame");
                    self.tap = None;
                }
                Piece::Raw(bytes) if self.held => self.out.push_back(bytes),
                _ => {}
            }
        }
        return_pieces(pieces);
    }

    /// Queue whole frames for writing, each after the rewrite had its look.
    fn store_and_forward(&mut self, chunk: Bytes, at: Instant, shared: &mut Shared<'_>) {
        let Some(splitter) = self.splitter.as_mut() else {
            self.out.push_back(chunk);
            return;
        };
        let mut pieces = scratch_pieces();
        splitter.push_held(chunk, &mut pieces);
        for piece in pieces.drain(..) {
            match piece {
                Piece::Frame(bytes) => {
                    let rewritten = shared
                        .rewrite
                        .as_deref_mut()
                        .and_then(|rewrite| rewrite.reply(&bytes));
                    offer(&mut self.tap, self.direction, bytes.clone(), at);
                    match rewritten {
                        Some(new_frame) => {
                            shared.metrics.event("topology_rewritten");
                            self.out.push_back(Bytes::from(new_frame));
                        }
                        None => self.out.push_back(bytes),
                    }
                }
                Piece::Raw(bytes) => self.out.push_back(bytes),
                Piece::Oversize {
                    header,
                    over_budget,
                    ..
                } => self.announce_oversize(header, over_budget, false, at, shared.metrics),
                Piece::Broken(error) => self.lose_framing(&error, shared),
            }
        }
        return_pieces(pieces);
    }
}

thread_local! {
    /// The read arena of this thread (see the module docs).
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    /// The splitter's output for one chunk, reused by every pump of the thread: a
    /// connection keeps no list of its own between chunks.
    static PIECES: Cell<Vec<Piece>> = const { Cell::new(Vec::new()) };
}

/// The thread's (empty) piece list; [`return_pieces`] gives it back.
#[inline]
fn scratch_pieces() -> Vec<Piece> {
    PIECES.with(Cell::take)
}

/// Gives the piece list back, emptied. What it replaces is the empty list `scratch_pieces`
/// left, which has nothing to free: skipping its drop saves a call per chunk.
#[inline]
fn return_pieces(mut pieces: Vec<Piece>) {
    pieces.clear();
    let left = PIECES.with(|scratch| scratch.replace(pieces));
    if left.capacity() == 0 {
        std::mem::forget(left);
    }
}

/// A long read (at least [`CHARGED_READ`]) as the splitter gets it, carrying its room in the
/// inspection budget; `None` when there is no room (its frames are then dropped and
/// counted, not queued). A long read is charged for as long as any of its frames waits for
/// inspection: the frames are slices of the read arena, and an inspection task that falls
/// behind streaming reads (a large result set, a pipeline) would otherwise hold up to a
/// queue's worth of arenas per connection. Short reads, every round trip of a steady
/// workload, are not charged: they share arenas, and touching the process-wide counter per
/// round trip would cost more than it bounds.
#[cold]
fn charge(chunk: &Bytes, budget: &InspectBudget) -> Option<Bytes> {
    budget
        .reserve(chunk.len())
        .map(|room| room.attach(chunk.clone()))
}

/// Read the next chunk from `from` into the thread's read arena; empty at the end of stream.
fn read_chunk<I: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    from: &mut I,
) -> Poll<std::io::Result<Bytes>> {
    ARENA.with(|arena| {
        let mut arena = arena.borrow_mut();
        if arena.capacity() - arena.len() < MIN_READ {
            // Reclaims the arena in place when no chunk of it is alive, else starts another.
            arena.reserve(ARENA_SIZE);
        }
        ready!(tokio_util::io::poll_read_buf(
            Pin::new(from),
            cx,
            &mut *arena
        ))?;
        Poll::Ready(Ok(arena.split().freeze()))
    })
}

fn offer(tap: &mut Option<Tap>, direction: Direction, bytes: Bytes, at: Instant) {
    offer_item(
        tap,
        TapItem::Frame(TapFrame {
            direction,
            bytes,
            at,
        }),
        false,
        false,
    );
}

/// Offer the frames gathered from a chunk as one item, and empty `frames`.
fn offer_frames(
    tap: &mut Option<Tap>,
    frames: &mut Option<Vec<TapFrame>>,
    deferred: bool,
    starved: bool,
) {
    let Some(frames) = frames else {
        return;
    };
    match frames.len() {
        0 => {}
        1 => {
            if let Some(frame) = frames.pop() {
                offer_item(tap, TapItem::Frame(frame), deferred, starved);
            }
        }
        _ => offer_item(
            tap,
            TapItem::Frames(std::mem::take(frames)),
            deferred,
            starved,
        ),
    }
}

/// Offer an item; `deferred` leaves the inspection task asleep until a reply wakes it.
/// `starved`: its chunk found no room in the inspection budget, so it is dropped and counted
/// as if the queue were full.
fn offer_item(tap: &mut Option<Tap>, item: TapItem, deferred: bool, starved: bool) {
    if let Some(active) = tap {
        let offered = if starved {
            active.drop_item(item)
        } else if deferred {
            active.offer_deferred(item)
        } else {
            active.offer(item)
        };
        if !offered {
            *tap = None;
        }
    }
}

#[cfg(test)]
mod tests;
