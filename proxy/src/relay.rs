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
mod tests {
    use super::*;
    use crate::admin::metrics::Metrics;
    use crate::framing::tests::LenPrefix;
    use tokio::io::{duplex, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// A rewrite that looks at everything and changes nothing.
    struct LookOnly;

    impl ReplyRewrite for LookOnly {
        fn request(&mut self, _: &[u8]) -> bool {
            false
        }
        fn requests_unframed(&mut self) {}
        fn reply(&mut self, _: &[u8]) -> Option<Vec<u8>> {
            None
        }
        fn awaiting(&self) -> bool {
            true
        }
    }

    /// A rewrite that awaits a reply after every other request, so that the replies switch
    /// between the streaming and the store-and-forward paths wherever the chunks fall.
    #[derive(Default)]
    struct Alternating {
        awaiting: bool,
    }

    impl ReplyRewrite for Alternating {
        fn request(&mut self, _: &[u8]) -> bool {
            self.awaiting = !self.awaiting;
            false
        }
        fn requests_unframed(&mut self) {}
        fn reply(&mut self, _: &[u8]) -> Option<Vec<u8>> {
            None
        }
        fn awaiting(&self) -> bool {
            self.awaiting
        }
    }

    /// How many of `frames(count)` fit under a 1024-byte inspection cap.
    fn inspectable(count: usize) -> usize {
        (0..count).filter(|i| (i * 37) % 3000 + 4 <= 1024).count()
    }

    fn frames(count: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..count {
            let body = vec![(i % 251) as u8; (i * 37) % 3000];
            out.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
            out.extend_from_slice(&body);
        }
        out
    }

    /// Write `data` in uneven chunks, then half-close.
    async fn feed<W: AsyncWrite + Unpin>(mut w: W, data: Vec<u8>) {
        let mut offset = 0;
        let mut step = 1;
        while offset < data.len() {
            let end = (offset + step).min(data.len());
            w.write_all(&data[offset..end]).await.expect("write");
            offset = end;
            step = step * 7 % 5003 + 1;
        }
        w.shutdown().await.expect("shutdown");
    }

    async fn drain<R: AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.expect("read");
        out
    }

    /// Relay `requests` and `replies` through length-prefixed framers with a 1024-byte
    /// inspection cap, fed in uneven chunks, and check every byte arrived unchanged.
    async fn relay_through(
        metrics: &ListenerMetrics,
        tap: Tap,
        rewrite: Option<Box<dyn ReplyRewrite>>,
        budget: InspectBudget,
        requests: Vec<u8>,
        replies: Vec<u8>,
    ) {
        let (client, proxy_client) = duplex(8192);
        let (proxy_upstream, upstream) = duplex(8192);
        let relay = Relay {
            request_framer: LenPrefix,
            reply_framer: LenPrefix,
            max_inspect: 1024,
            budget,
            reply_rewrite: rewrite,
            tap: Some(tap),
            metrics: metrics.clone(),
        };
        let (client_read, client_write) = tokio::io::split(client);
        let (upstream_read, upstream_write) = tokio::io::split(upstream);
        let relayed = tokio::spawn(relay.run(proxy_client, proxy_upstream));
        let (_, _, at_upstream, at_client) = tokio::join!(
            feed(client_write, requests.clone()),
            feed(upstream_write, replies.clone()),
            drain(upstream_read),
            drain(client_read),
        );
        relayed.await.expect("join").expect("relay");
        assert_eq!(at_upstream, requests, "client → upstream bytes changed");
        assert_eq!(at_client, replies, "upstream → client bytes changed");
    }

    /// Relay 400 frames up and 300 down; (frames tapped, oversize headers tapped, dropped).
    async fn relay_once(
        rewrite: Option<Box<dyn ReplyRewrite>>,
        tap_capacity: usize,
    ) -> (usize, usize, u64) {
        let metrics = Metrics::new().listener("test", "test");
        let budget = InspectBudget::unlimited();
        let mut receiver = relay_frames(&metrics, rewrite, tap_capacity, budget).await;
        let (tapped, oversize_headers) = tally(&mut receiver);
        if tap_capacity > 1000 {
            assert!(oversize_headers > 0, "oversize frames must be announced");
        }
        (tapped, oversize_headers, metrics.tap_dropped.get())
    }

    /// Relay 400 frames up and 300 down through a tap of `tap_capacity`; its receiving end.
    async fn relay_frames(
        metrics: &ListenerMetrics,
        rewrite: Option<Box<dyn ReplyRewrite>>,
        tap_capacity: usize,
        budget: InspectBudget,
    ) -> crate::tap::TapReceiver {
        let (tap, receiver) = Tap::channel(tap_capacity, metrics.tap_dropped.clone());
        relay_through(metrics, tap, rewrite, budget, frames(400), frames(300)).await;
        receiver
    }

    /// What the inspector was handed, drained: (frames tapped, oversize headers).
    fn tally(receiver: &mut crate::tap::TapReceiver) -> (usize, usize) {
        let mut tapped = 0;
        let mut oversize_headers = 0;
        while let Some(item) = receiver.try_recv() {
            match item {
                TapItem::Frame(_) => tapped += 1,
                TapItem::Frames(frames) => tapped += frames.len(),
                TapItem::Oversize(header) => {
                    assert_eq!(
                        header.bytes.len(),
                        4,
                        "only the header of an oversize frame"
                    );
                    oversize_headers += 1;
                }
            }
        }
        (tapped, oversize_headers)
    }

    /// Frames spread over reads while other connections hold the whole budget are forwarded
    /// unchanged and announced by header, counted; once room is back they are gathered again.
    #[tokio::test]
    async fn frames_without_budget_room_are_forwarded_counted_and_later_gathered_again() {
        let registry = Metrics::new();
        let metrics = registry.listener("budget", "test");
        // Room for all the frames this relay gathers (they stay held in the tap until it is
        // drained, at the end), but first the other connections hold all of it.
        let budget = registry.inspect_budget(1 << 20);
        let others = budget.reserve(1 << 20).expect("the whole budget");
        let mut receiver = relay_frames(&metrics, None, 10_000, budget.clone()).await;
        let (tapped, headers) = tally(&mut receiver);
        let exhausted = metrics.event_counter("inspect_budget_exhausted").get();
        let oversize = metrics.event_counter("oversize_skipped").get();
        assert!(exhausted > 0, "some frames were spread over reads");
        assert_eq!(tapped + headers, 700, "each frame tapped, or its header");
        assert_eq!(headers as u64, exhausted + oversize);
        assert_eq!(
            tapped + exhausted as usize,
            inspectable(400) + inspectable(300)
        );
        drop(others);
        assert_eq!(budget.held(), 0);
        let mut receiver = relay_frames(&metrics, None, 10_000, budget.clone()).await;
        let (tapped, _) = tally(&mut receiver);
        assert_eq!(tapped, inspectable(400) + inspectable(300));
        assert_eq!(
            metrics.event_counter("inspect_budget_exhausted").get(),
            exhausted
        );
        let text = registry.encode();
        assert!(text.contains("indextap_inspect_held_bytes 0"), "{text}");
        assert!(
            text.contains("indextap_inspect_budget_bytes 1048576"),
            "{text}"
        );
    }

    /// Long reads are charged to the budget while their frames wait for inspection; without
    /// room their frames are dropped and counted like those of a full queue, and forwarded.
    #[tokio::test]
    async fn long_reads_are_charged_while_queued_and_dropped_without_room() {
        async fn relay_burst(budget: &InspectBudget, metrics: &ListenerMetrics) -> usize {
            let stream: Vec<u8> = (0..2000).flat_map(|_| frames(4)).collect();
            let (mut client, proxy_client) = duplex(1 << 20);
            let (proxy_upstream, upstream) = duplex(1 << 20);
            // All of it waits before the relay's first read: reads as long as the arena.
            client.write_all(&stream).await.expect("write");
            client.shutdown().await.expect("shutdown");
            let (tap, mut receiver) = Tap::channel(100_000, metrics.tap_dropped.clone());
            let relay = Relay {
                request_framer: LenPrefix,
                reply_framer: LenPrefix,
                max_inspect: 1024,
                budget: budget.clone(),
                reply_rewrite: None,
                tap: Some(tap),
                metrics: metrics.clone(),
            };
            let (upstream_read, upstream_write) = tokio::io::split(upstream);
            let relayed = tokio::spawn(relay.run(proxy_client, proxy_upstream));
            let (at_upstream, _) = tokio::join!(drain(upstream_read), async move {
                let mut upstream_write = upstream_write;
                upstream_write.shutdown().await.expect("shutdown");
            });
            relayed.await.expect("join").expect("relay");
            assert_eq!(at_upstream, stream, "bytes changed");
            assert!(budget.held() > 0, "queued frames hold their reads' room");
            let (tapped, _) = tally(&mut receiver);
            tapped
        }
        let registry = Metrics::new();
        let metrics = registry.listener("reads", "test");
        let budget = registry.inspect_budget(1 << 20);
        let others = budget.reserve(1 << 20).expect("the whole budget");
        let tapped = relay_burst(&budget, &metrics).await;
        assert_eq!(tapped, 0, "no long read found room");
        assert_eq!(
            metrics.tap_dropped.get(),
            2000 * inspectable(4) as u64,
            "each frame dropped, counted"
        );
        assert!(metrics.event_counter("inspect_budget_exhausted").get() > 0);
        drop(others);
        let tapped = relay_burst(&budget, &metrics).await;
        assert_eq!(
            tapped,
            2000 * inspectable(4),
            "room again: every frame queued"
        );
        assert_eq!(budget.held(), 0, "released once inspected");
    }

    /// Connections at once, sharing a budget smaller than their frames together: bytes
    /// arrive unchanged, every frame is tapped or announced, the budget is never passed and
    /// nothing stays held once the taps are drained.
    #[tokio::test]
    async fn connections_sharing_a_small_budget_stay_within_it() {
        let registry = Metrics::new();
        let budget = registry.inspect_budget(2048);
        let relays = (0..4).map(|n| {
            let metrics = registry.listener(&format!("budget-{n}"), "test");
            let budget = budget.clone();
            async move {
                let receiver = relay_frames(&metrics, None, 10_000, budget.clone()).await;
                assert!(budget.held() <= 2048);
                (metrics, receiver)
            }
        });
        for (metrics, mut receiver) in futures::future::join_all(relays).await {
            let (tapped, headers) = tally(&mut receiver);
            let skipped = metrics.event_counter("inspect_budget_exhausted").get()
                + metrics.event_counter("oversize_skipped").get();
            assert_eq!((tapped + headers, headers as u64), (700, skipped));
        }
        assert_eq!(budget.held(), 0, "released with the last tapped frame");
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct CountWakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The task's first waker is woken by reference; polled with another, the relay's
    /// wake-ups go to the new one from then on.
    #[test]
    fn the_task_waker_follows_the_task_it_is_polled_by() {
        let (first, second) = (
            Arc::new(CountWakes::default()),
            Arc::new(CountWakes::default()),
        );
        let count = |wakes: &Arc<CountWakes>| wakes.0.load(Ordering::Relaxed);
        let task = TaskWaker::default();
        task.wake();
        let first_waker = Waker::from(first.clone());
        task.register(&first_waker);
        task.wake();
        task.register(&first_waker);
        task.wake();
        assert_eq!((count(&first), count(&second)), (2, 0));
        task.register(&Waker::from(second.clone()));
        task.wake();
        task.register(&first_waker);
        task.wake();
        assert_eq!((count(&first), count(&second)), (3, 1));
    }

    /// A connected pair of loopback sockets: (the peer's end, the relay's end).
    async fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (peer, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(address), listener.accept());
        (peer.expect("connect"), accepted.expect("accept").0)
    }

    /// Plain TCP sockets take the direct write path (`stream`), as they are and boxed (a
    /// PostgreSQL connection's): megabytes each way, more than the sockets' buffers hold,
    /// so writes also find them full and wait, and every byte arrives unchanged.
    #[tokio::test]
    async fn bytes_arrive_unchanged_over_tcp_plain_and_boxed() {
        let metrics = Metrics::new().listener("tcp", "test");
        let (tap, _receiver) = Tap::channel(100, metrics.tap_dropped.clone());
        let (client, proxy_client) = tcp_pair().await;
        let (proxy_upstream, upstream) = tcp_pair().await;
        let relay = Relay {
            request_framer: LenPrefix,
            reply_framer: LenPrefix,
            max_inspect: 1024,
            budget: InspectBudget::unlimited(),
            reply_rewrite: None,
            tap: Some(tap),
            metrics,
        };
        let requests: Vec<u8> = (0..40).flat_map(|_| frames(100)).collect();
        let replies: Vec<u8> = (0..30).flat_map(|_| frames(100)).collect();
        let relayed = tokio::spawn(relay.run(proxy_client, Box::new(proxy_upstream) as BoxStream));
        let (client_read, client_write) = client.into_split();
        let (upstream_read, upstream_write) = upstream.into_split();
        let (_, _, at_upstream, at_client) = tokio::join!(
            feed(client_write, requests.clone()),
            feed(upstream_write, replies.clone()),
            async {
                // Not read at first: the relay's writes to it must find it full and wait.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                drain(upstream_read).await
            },
            drain(client_read),
        );
        let totals = relayed.await.expect("join").expect("relay");
        assert_eq!(at_upstream, requests, "client → upstream bytes changed");
        assert_eq!(at_client, replies, "upstream → client bytes changed");
        assert_eq!(
            (totals.to_upstream, totals.to_client),
            (requests.len() as u64, replies.len() as u64)
        );
    }

    #[tokio::test]
    async fn bytes_arrive_unchanged_both_ways() {
        let (tapped, _, dropped) = relay_once(None, 10_000).await;
        // Frames over the 1024-byte cap are forwarded but not tapped.
        assert_eq!(tapped, inspectable(400) + inspectable(300));
        assert_eq!(dropped, 0);
    }

    #[tokio::test]
    async fn store_and_forward_path_is_transparent_when_nothing_is_rewritten() {
        let (tapped, _, dropped) = relay_once(Some(Box::new(LookOnly)), 10_000).await;
        assert_eq!(tapped, inspectable(400) + inspectable(300));
        assert_eq!(dropped, 0);
    }

    #[tokio::test]
    async fn replies_switching_between_streaming_and_held_arrive_unchanged() {
        let rewrite = Box::new(Alternating::default());
        let (tapped, _, dropped) = relay_once(Some(rewrite), 10_000).await;
        assert_eq!(tapped, inspectable(400) + inspectable(300));
        assert_eq!(dropped, 0);
    }

    /// A reply the rewrite does not await is forwarded as it arrives, not once whole.
    #[tokio::test]
    async fn a_reply_not_awaited_streams_before_its_frame_is_whole() {
        let metrics = Metrics::new().listener("test", "test");
        let (tap, _receiver) = Tap::channel(16, metrics.tap_dropped.clone());
        let (mut client, proxy_client) = duplex(8192);
        let (proxy_upstream, mut upstream) = duplex(8192);
        let relay = Relay {
            request_framer: LenPrefix,
            reply_framer: LenPrefix,
            max_inspect: 1024,
            budget: InspectBudget::unlimited(),
            reply_rewrite: Some(Box::new(Alternating::default())),
            tap: Some(tap),
            metrics,
        };
        let relayed = tokio::spawn(relay.run(proxy_client, proxy_upstream));
        let reply = frames(28).split_off(frames(27).len());
        assert_eq!(reply.len(), 1003, "one frame under the inspection cap");
        upstream.write_all(&reply[..500]).await.expect("write");
        let mut first = vec![0; 500];
        let arrived = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            client.read_exact(&mut first),
        )
        .await;
        assert!(arrived.is_ok(), "the first 500 bytes were held back");
        assert_eq!(first, reply[..500]);
        upstream.write_all(&reply[500..]).await.expect("write");
        let mut rest = vec![0; reply.len() - 500];
        client.read_exact(&mut rest).await.expect("read");
        assert_eq!(rest, reply[500..]);
        drop((client, upstream));
        let _ = relayed.await;
    }

    #[tokio::test]
    async fn a_slow_inspector_costs_samples_not_bytes() {
        let (tapped, oversize, dropped) = relay_once(None, 1).await;
        assert!(dropped > 0, "a one-slot tap must drop");
        // Every frame was tapped, announced as oversize, or counted as dropped.
        assert_eq!(tapped + oversize + dropped as usize, 700);
    }

    /// Both directions end inside a frame: every byte still arrives, on the plain path and on
    /// the store-and-forward path, and each cut is counted once.
    #[tokio::test]
    async fn a_stream_cut_inside_a_frame_is_forwarded_whole_and_counted() {
        for rewrite in [None, Some(Box::new(LookOnly) as Box<dyn ReplyRewrite>)] {
            let registry = Metrics::new();
            let metrics = registry.listener("cut", "test");
            let (tap, _receiver) = Tap::channel(10_000, metrics.tap_dropped.clone());
            let mut requests = frames(5);
            requests.extend_from_slice(&100u32.to_le_bytes());
            requests.extend_from_slice(b"only part of it");
            let mut replies = frames(4);
            // The held-back bytes of a cut reply are forwarded too.
            replies.extend_from_slice(&[60, 0]);
            let budget = InspectBudget::unlimited();
            relay_through(&metrics, tap, rewrite, budget, requests, replies).await;
            let text = registry.encode();
            assert!(
                text.contains(
                    r#"indextap_decode_errors_total{listener="cut",reason="truncated"} 2"#
                ),
                "{text}"
            );
        }
    }
}
