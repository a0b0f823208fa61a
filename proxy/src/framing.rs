//! Framing: split a byte stream into frames on the data path, without copying.
//!
//! The relay reads into a buffer, forwards, then hands the same `Bytes` here. A frame's
//! length comes from its header; an absurd length stops framing (the connection goes on
//! forwarding, uninspected). A frame longer than the inspection cap is streamed past without
//! being buffered, so no length field ever makes the proxy allocate it. A frame spread over
//! several reads is gathered only with room from the process-wide [`InspectBudget`]; without
//! room it streams past like an oversize one.
//!
//! ## Layout
//! - [`Framer`]: an engine's header rule (MongoDB MsgHeader, PostgreSQL type byte + length).
//! - [`Splitter`]: the state machine over chunks, yielding [`Piece`]s, or one [`Run`] for a
//!   chunk of whole frames (the relay's fast path).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::budget::{InspectBudget, Reservation};
use crate::tap::DecodeError;

/// An engine's framing rule.
pub trait Framer: Send + 'static {
    /// Bytes needed to know a frame's length (MongoDB: 4; PostgreSQL: 5).
    fn header_len(&self) -> usize;

    /// The whole frame's length, header included, from the first `header_len()` bytes.
    /// An error means the stream cannot be framed any more (an absurd or negative length).
    fn frame_len(&self, header: &[u8]) -> Result<usize, DecodeError>;

    /// Whether a frame with this header is bulk data the inspector needs neither the body
    /// nor the presence of (PostgreSQL CopyData). Such frames are handed out as
    /// [`Piece::Raw`], so a bulk load does not fill the tap channel and make it drop the
    /// frames that matter.
    fn is_bulk(&self, header: &[u8]) -> bool {
        let _ = header;
        false
    }

    /// Whether consecutive whole frames of one chunk are handed out together, as one
    /// [`Piece::Frame`] (a run), rather than one piece each. The inspector then walks the run
    /// itself. A PostgreSQL round trip is four to nine small messages each way, and handing
    /// each over on its own (a piece, a reference count, a slot in the chunk's list, a call
    /// into the inspector) cost more than reading most of them: the session needs the body
    /// of only a few and the type byte of the rest. A run holds whole frames only, never a
    /// bulk one, and stays within the inspection cap.
    fn joins_frames(&self) -> bool {
        false
    }

    /// Whether the server is bound to answer this whole request frame (a PostgreSQL Sync or
    /// Query, a MongoDB command without `moreToCome`); for a run ([`Framer::joins_frames`]),
    /// whether it is bound to answer the run's last frame. Its inspection can then wait for the
    /// reply: both are inspected in one wake-up of the inspection task instead of two. The
    /// default, false, inspects the frame at once.
    fn reply_follows(&self, frame: &[u8]) -> bool {
        let _ = frame;
        false
    }
}

use bytes::{Bytes, BytesMut};

/// A chunk that is one run of whole inspectable frames ([`Splitter::push_run`]).
#[derive(Debug)]
pub struct Run {
    /// The frames, the whole chunk.
    pub frames: Bytes,
    /// Where the last frame starts.
    last: usize,
}

impl Run {
    /// The run's last frame, as the splitter's header walk found it: what
    /// [`Framer::reply_follows`] needs to look at, without walking the run again.
    pub fn last_frame(&self) -> &[u8] {
        self.frames.get(self.last..).unwrap_or_default()
    }
}

/// What the splitter makes of the bytes it is given, in stream order.
#[derive(Debug)]
pub enum Piece {
    /// A whole frame no longer than the inspection cap, or a run of them when the framer
    /// joins frames ([`Framer::joins_frames`]).
    Frame(Bytes),
    /// Bytes that belong to no inspectable frame: an oversize frame streaming past, a bulk
    /// data frame ([`Framer::is_bulk`]), or the rest of a stream whose framing failed. Concatenating every `Frame` and `Raw` in order
    /// gives back exactly the bytes pushed.
    Raw(Bytes),
    /// An oversize frame began; its bytes follow as `Raw`. `header` is its first
    /// `header_len` bytes, so an inspector can still tell what kind of message went by.
    Oversize {
        /// The whole frame's length.
        len: usize,
        /// The frame's header.
        header: Bytes,
        /// Whether it is within the inspection cap, but spread over reads while the
        /// [`InspectBudget`] had no room to gather it.
        over_budget: bool,
    },
    /// The stream cannot be framed any more; everything after this is `Raw`.
    Broken(DecodeError),
}

#[derive(Debug)]
enum State {
    /// Between frames, or collecting one into `partial`.
    Collect,
    /// Streaming past the rest of an oversize frame.
    Skip { remaining: usize },
    /// Framing failed.
    Broken,
}

/// Splits a byte stream into frames. Frames inside one pushed chunk are zero-copy slices of
/// it; only a frame spread over several chunks is gathered (up to the cap, with room from
/// the budget).
#[derive(Debug)]
pub struct Splitter<F> {
    framer: F,
    max_frame: usize,
    state: State,
    partial: BytesMut,
    budget: InspectBudget,
    /// The budget's room for the frame being gathered in `partial`; none while `partial`
    /// holds no more than part of a header.
    room: Option<Reservation>,
    /// Whether frames begun now are gathered whatever the budget says ([`Splitter::push_held`]).
    regardless: bool,
}

impl<F: Framer> Splitter<F> {
    /// A splitter that inspects frames of at most `max_frame` bytes, gathering those spread
    /// over several chunks with room from `budget`.
    pub fn new(framer: F, max_frame: usize, budget: InspectBudget) -> Self {
        Self {
            framer,
            max_frame,
            state: State::Collect,
            partial: BytesMut::new(),
            budget,
            room: None,
            regardless: false,
        }
    }

    /// The budget it gathers frames with.
    pub fn budget(&self) -> &InspectBudget {
        &self.budget
    }

    /// The framing rule.
    pub fn framer(&self) -> &F {
        &self.framer
    }

    /// Whether framing failed for good.
    pub fn is_broken(&self) -> bool {
        matches!(self.state, State::Broken)
    }

    /// Whether the next byte pushed continues a frame begun earlier (gathered or streaming
    /// past), rather than starting one.
    pub fn is_mid_frame(&self) -> bool {
        match self.state {
            State::Collect => !self.partial.is_empty(),
            State::Skip { .. } => true,
            State::Broken => false,
        }
    }

    /// Whether bytes of an unfinished frame are gathered here (not streaming past).
    pub fn is_gathering(&self) -> bool {
        matches!(self.state, State::Collect) && !self.partial.is_empty()
    }

    /// [`Splitter::push`] for a chunk whose frames must be seen whole to be forwarded at all
    /// (the store-and-forward path of MongoDB's topology rewrite): a frame it begins is
    /// gathered even past the budget, because streaming it would skip the rewrite. Such
    /// replies are few and small (`hello`'s).
    pub fn push_held(&mut self, data: Bytes, out: &mut Vec<Piece>) {
        self.regardless = true;
        self.push(data, out);
        self.regardless = false;
    }

    /// Room for a frame of `len` bytes to gather.
    fn room_for(&self, len: usize) -> Option<Reservation> {
        if self.regardless {
            Some(self.budget.reserve_regardless(len))
        } else {
            self.budget.reserve(len)
        }
    }

    /// [`Splitter::push`] for the relay's reads. Most reads are one run of whole frames at a
    /// frame boundary (a round trip's messages): such a chunk comes back as it is, as
    /// [`Run`], without a piece list; `push` would have handed it out as one
    /// [`Piece::Frame`]. Any other chunk is pushed into the list `pieces` gives, which is
    /// returned. The run at its head, if any, is not walked twice: it is its first piece.
    pub fn push_run(
        &mut self,
        mut data: Bytes,
        pieces: impl FnOnce() -> Vec<Piece>,
    ) -> Result<Run, Vec<Piece>> {
        let mut out = match self.head_run(&data) {
            Some((end, last)) if end == data.len() => return Ok(Run { frames: data, last }),
            Some((end, _)) => {
                let mut out = pieces();
                out.push(Piece::Frame(data.split_to(end)));
                out
            }
            None => pieces(),
        };
        self.push(data, &mut out);
        Err(out)
    }

    /// The run of whole inspectable frames at the head of `data`, if framing is at a frame
    /// boundary and the first frame is whole, inspectable and not bulk: its end, and where
    /// its last frame starts.
    fn head_run(&self, data: &[u8]) -> Option<(usize, usize)> {
        if !matches!(self.state, State::Collect) || !self.partial.is_empty() {
            return None;
        }
        let header = data.get(..self.framer.header_len())?;
        let len = self.framer.frame_len(header).ok()?;
        if len > self.max_frame || len > data.len() || self.framer.is_bulk(header) {
            return None;
        }
        Some(self.run_len(data, len, false))
    }

    /// Feed the next chunk of the stream; pieces are appended to `out` in stream order.
    pub fn push(&mut self, mut data: Bytes, out: &mut Vec<Piece>) {
        while !data.is_empty() {
            match self.state {
                State::Broken => {
                    out.push(Piece::Raw(data));
                    return;
                }
                State::Skip { remaining } => {
                    let n = remaining.min(data.len());
                    out.push(Piece::Raw(data.split_to(n)));
                    self.state = if remaining > n {
                        State::Skip {
                            remaining: remaining - n,
                        }
                    } else {
                        State::Collect
                    };
                }
                State::Collect if self.partial.is_empty() => self.frame_in_place(&mut data, out),
                State::Collect => self.frame_across_chunks(&mut data, out),
            }
        }
    }

    /// The fast path: frames that start at the head of `data`, sliced without copying.
    fn frame_in_place(&mut self, data: &mut Bytes, out: &mut Vec<Piece>) {
        let header_len = self.framer.header_len();
        let Some(header) = data.get(..header_len) else {
            self.partial.extend_from_slice(data);
            data.clear();
            return;
        };
        match self.framer.frame_len(header) {
            Err(error) => self.break_with(error, Bytes::new(), data, out),
            Ok(len) if len > self.max_frame => {
                let header = data.slice(..header_len);
                self.start_skip(len, header, data, out, false)
            }
            Ok(len) if data.len() >= len => {
                let bulk = self.framer.is_bulk(header);
                let (len, _) = self.run_len(data, len, bulk);
                // Most often the run is the whole chunk (a round trip's messages, one read).
                let run = if len == data.len() {
                    std::mem::take(data)
                } else {
                    data.split_to(len)
                };
                out.push(if bulk {
                    Piece::Raw(run)
                } else {
                    Piece::Frame(run)
                });
            }
            Ok(len) => match self.room_for(len) {
                Some(room) => {
                    self.room = Some(room);
                    // The whole frame's room at once: no regrowth while it arrives.
                    self.partial.reserve(len);
                    self.partial.extend_from_slice(data);
                    data.clear();
                }
                None => {
                    let header = data.slice(..header_len);
                    self.start_skip(len, header, data, out, true)
                }
            },
        }
    }

    /// The slow path: a frame begun in an earlier chunk.
    fn frame_across_chunks(&mut self, data: &mut Bytes, out: &mut Vec<Piece>) {
        let header_len = self.framer.header_len();
        if self.partial.len() < header_len {
            let take = (header_len - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data.split_to(take));
        }
        // Still short of a header: wait for the next chunk.
        let Some(header) = self.partial.get(..header_len) else {
            return;
        };
        let len = match self.framer.frame_len(header) {
            Ok(len) => len,
            Err(error) => {
                let held = self.take_partial();
                return self.break_with(error, held, data, out);
            }
        };
        if self.room.is_none() {
            // The header came in pieces: the frame's room is taken now that its length is known.
            let room = (len <= self.max_frame)
                .then(|| self.room_for(len))
                .flatten();
            let Some(room) = room else {
                let held = self.take_partial();
                out.push(Piece::Oversize {
                    len,
                    header: held.slice(..header_len),
                    over_budget: len <= self.max_frame,
                });
                let remaining = len.saturating_sub(held.len());
                out.push(Piece::Raw(held));
                self.state = State::Skip { remaining };
                return;
            };
            self.room = Some(room);
            self.partial.reserve(len.saturating_sub(self.partial.len()));
        }
        let take = (len - self.partial.len()).min(data.len());
        self.partial.extend_from_slice(&data.split_to(take));
        if self.partial.len() == len {
            let frame = self.take_partial();
            out.push(self.whole(frame));
        }
    }

    /// How far the frame of `first` bytes at the head of `data` extends over the whole frames
    /// after it: frames of the same kind (`bulk` or inspectable) are handed out as one piece.
    /// Bulk frames always are (their bytes only pass by); inspectable ones when the framer
    /// joins frames, up to the inspection cap. Whatever ends the run (a frame cut by the
    /// chunk's end, an oversize or unframeable one, the other kind) is left to `push`. Each
    /// kind has a loop of its own: this walks every message of every read. Returns the run's
    /// end and where its last frame starts.
    fn run_len(&self, data: &[u8], first: usize, bulk: bool) -> (usize, usize) {
        let header_len = self.framer.header_len();
        let limit = if bulk {
            data.len()
        } else if self.framer.joins_frames() {
            data.len().min(self.max_frame)
        } else {
            return (first, 0);
        };
        let (mut last, mut end) = (0, first);
        while let Some(header) = data.get(end..).and_then(|rest| rest.get(..header_len)) {
            if self.framer.is_bulk(header) != bulk {
                break;
            }
            match self.framer.frame_len(header) {
                Ok(len) if len <= limit - end => {
                    last = end;
                    end += len;
                }
                _ => break,
            }
        }
        (end, last)
    }

    /// What was gathered, and the buffer with it: an idle connection keeps no room for the
    /// frame it last gathered. The budget's room goes with the bytes, given back when they
    /// are dropped.
    fn take_partial(&mut self) -> Bytes {
        let gathered = std::mem::take(&mut self.partial);
        match self.room.take() {
            Some(room) => room.attach(gathered),
            None => gathered.freeze(),
        }
    }

    /// A whole frame: inspectable, or bulk data passed on raw.
    fn whole(&self, frame: Bytes) -> Piece {
        let header_len = self.framer.header_len();
        match frame.get(..header_len) {
            Some(header) if self.framer.is_bulk(header) => Piece::Raw(frame),
            _ => Piece::Frame(frame),
        }
    }

    fn start_skip(
        &mut self,
        len: usize,
        header: Bytes,
        data: &mut Bytes,
        out: &mut Vec<Piece>,
        over_budget: bool,
    ) {
        out.push(Piece::Oversize {
            len,
            header,
            over_budget,
        });
        let n = len.min(data.len());
        out.push(Piece::Raw(data.split_to(n)));
        if len > n {
            self.state = State::Skip { remaining: len - n };
        }
    }

    /// The stream has ended. If it ended inside a frame, that is reported as
    /// `Piece::Broken` (`truncated`), followed by the bytes held for the frame as `Piece::Raw`,
    /// so that every pushed byte is still handed out exactly once. Nothing is framed after.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        let cut_short = match self.state {
            State::Collect => !self.partial.is_empty(),
            State::Skip { .. } => true,
            State::Broken => false,
        };
        if cut_short {
            out.push(Piece::Broken(DecodeError::new(
                "truncated",
                format!(
                    "the stream ended inside a frame ({} bytes held)",
                    self.partial.len()
                ),
            )));
            if !self.partial.is_empty() {
                out.push(Piece::Raw(self.take_partial()));
            }
        }
        self.state = State::Broken;
    }

    fn break_with(
        &mut self,
        error: DecodeError,
        held: Bytes,
        data: &mut Bytes,
        out: &mut Vec<Piece>,
    ) {
        out.push(Piece::Broken(error));
        if !held.is_empty() {
            out.push(Piece::Raw(held));
        }
        out.push(Piece::Raw(std::mem::take(data)));
        self.state = State::Broken;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
pub(crate) mod tests;
