//! One direction of a relayed connection: read a chunk, split it into frames, offer them to
//! the inspector, forward the chunk (see the parent module's docs for why in that order).
//!
//! ## Layout
//! - `Pump`: the direction's state machine, polled by the relay task.
//! - the read arena (`ARENA`, `read_chunk`) and the thread's reused piece list.
//! - `offer*`: the hand-over to the connection's [`Tap`], which never waits.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::io::AsyncRead;

use super::{Activity, ByteStream, ReplyRewrite};
use crate::admin::metrics::ListenerMetrics;
use crate::budget::InspectBudget;
use crate::error::{ProxyError, Side};
use crate::framing::{Framer, Piece, Run, Splitter};
use crate::tap::{Direction, Tap, TapFrame, TapItem};

/// The read arena's size: one allocation serves the reads of every connection on a thread
/// until its chunks are dropped.
const ARENA_SIZE: usize = 64 * 1024;
/// A read is offered at least this much room; with less left, the arena is renewed (or
/// reclaimed in place, when no chunk of it is alive any more).
const MIN_READ: usize = 16 * 1024;
/// Reads at least this long are charged to the inspection budget while their frames wait
/// for inspection ([`charge`]).
const CHARGED_READ: usize = 16 * 1024;

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

pub(super) struct Pump<F> {
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
pub(super) struct Shared<'a> {
    pub(super) metrics: &'a ListenerMetrics,
    pub(super) rewrite: Option<&'a mut (dyn ReplyRewrite + 'static)>,
}

impl<F: Framer> Pump<F> {
    pub(super) fn new(
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
    pub(super) fn poll<I, O>(
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
