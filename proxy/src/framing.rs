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
pub(crate) mod tests {
    use super::*;

    /// A 4-byte little-endian length that includes itself, like MongoDB's MsgHeader; the relay's
    /// tests frame with it too.
    pub(crate) struct LenPrefix;

    impl Framer for LenPrefix {
        fn header_len(&self) -> usize {
            4
        }
        fn frame_len(&self, header: &[u8]) -> Result<usize, DecodeError> {
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            if !(4..=1 << 20).contains(&len) {
                return Err(DecodeError::new("bad_length", format!("length {len}")));
            }
            Ok(len)
        }
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 4) as u32).to_le_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn split_all(stream: &[u8], chunk: usize, cap: usize) -> Vec<Piece> {
        let mut splitter = Splitter::new(LenPrefix, cap, InspectBudget::unlimited());
        let mut out = Vec::new();
        for part in stream.chunks(chunk) {
            splitter.push(Bytes::copy_from_slice(part), &mut out);
        }
        out
    }

    fn reassemble(pieces: &[Piece]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Frame(b) | Piece::Raw(b) => out.extend_from_slice(b),
                Piece::Oversize { .. } | Piece::Broken(_) => {}
            }
        }
        out
    }

    fn frames(pieces: &[Piece]) -> Vec<Vec<u8>> {
        pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Frame(b) => Some(b.to_vec()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn frames_survive_any_chunking_and_bytes_are_conserved() {
        let mut stream = Vec::new();
        let expected: Vec<Vec<u8>> = (0..20).map(|i| frame(&vec![i as u8; i * 7])).collect();
        for f in &expected {
            stream.extend_from_slice(f);
        }
        for chunk in [1, 2, 3, 5, 8, 64, 4096] {
            let pieces = split_all(&stream, chunk, 1 << 16);
            assert_eq!(frames(&pieces), expected, "chunk size {chunk}");
            assert_eq!(reassemble(&pieces), stream, "chunk size {chunk}");
        }
    }

    /// Joins its frames into runs, as PostgreSQL's framer does.
    struct Joining;

    impl Framer for Joining {
        fn header_len(&self) -> usize {
            LenPrefix.header_len()
        }
        fn frame_len(&self, header: &[u8]) -> Result<usize, DecodeError> {
            LenPrefix.frame_len(header)
        }
        fn joins_frames(&self) -> bool {
            true
        }
    }

    /// A chunk of whole frames comes back as one run with its last frame found; any other
    /// chunk gives exactly the pieces `push` gives, whatever the chunking.
    #[test]
    fn push_run_hands_back_whole_chunks_and_otherwise_pushes() {
        let expected: Vec<Vec<u8>> = (0..12).map(|i| frame(&vec![i as u8; i * 5])).collect();
        let stream = expected.concat();
        let mut splitter = Splitter::new(Joining, 1 << 16, InspectBudget::unlimited());
        let run = splitter
            .push_run(Bytes::from(stream.clone()), Vec::new)
            .expect("a chunk of whole frames is a run");
        assert_eq!(run.frames, stream);
        assert_eq!(run.last_frame(), &expected[11][..]);
        // One frame per run without joining: the last frame is the frame.
        let mut single = Splitter::new(LenPrefix, 1 << 16, InspectBudget::unlimited());
        let run = single
            .push_run(Bytes::from(expected[3].clone()), Vec::new)
            .expect("one whole frame is a run");
        assert_eq!(run.last_frame(), &expected[3][..]);
        for chunk in [1, 3, 7, 50, 100] {
            let (mut by_run, mut by_push) = (
                Splitter::new(Joining, 64, InspectBudget::unlimited()),
                Splitter::new(Joining, 64, InspectBudget::unlimited()),
            );
            let (mut ran, mut pushed) = (Vec::new(), Vec::new());
            for part in stream.chunks(chunk) {
                let part = Bytes::copy_from_slice(part);
                match by_run.push_run(part.clone(), Vec::new) {
                    Ok(run) => ran.push(Piece::Frame(run.frames)),
                    Err(pieces) => ran.extend(pieces),
                }
                by_push.push(part, &mut pushed);
            }
            assert_eq!(
                format!("{ran:?}"),
                format!("{pushed:?}"),
                "chunk size {chunk}"
            );
            assert_eq!(reassemble(&ran), stream, "chunk size {chunk}");
        }
    }

    #[test]
    fn oversize_frames_stream_past_uninspected() {
        let big = frame(&vec![7u8; 1000]);
        let small = frame(b"after");
        let stream = [big.clone(), small.clone()].concat();
        for chunk in [1, 10, 100, 5000] {
            let pieces = split_all(&stream, chunk, 100);
            assert!(pieces.iter().any(|p| matches!(p, Piece::Oversize { len: 1004, header, over_budget: false } if header[..] == 1004u32.to_le_bytes())));
            assert_eq!(frames(&pieces), vec![small.clone()], "chunk size {chunk}");
            assert_eq!(reassemble(&pieces), stream);
        }
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_truncated_and_hands_back_its_bytes() {
        let good = frame(b"whole");
        let cut = frame(b"cut short here");
        let stream = [&good[..], &cut[..9]].concat();
        for chunk in [1, 3, 4096] {
            let mut splitter = Splitter::new(LenPrefix, 1 << 16, InspectBudget::unlimited());
            let mut pieces = Vec::new();
            for part in stream.chunks(chunk) {
                splitter.push(Bytes::copy_from_slice(part), &mut pieces);
            }
            splitter.finish(&mut pieces);
            assert_eq!(frames(&pieces), vec![good.clone()]);
            assert!(pieces
                .iter()
                .any(|p| matches!(p, Piece::Broken(e) if e.reason == "truncated")));
            assert_eq!(reassemble(&pieces), stream, "chunk size {chunk}");
        }
        // Ending between frames, or inside an oversize frame streaming past.
        let mut splitter = Splitter::new(LenPrefix, 1 << 16, InspectBudget::unlimited());
        let mut pieces = Vec::new();
        splitter.push(Bytes::from(good.clone()), &mut pieces);
        splitter.finish(&mut pieces);
        assert!(!pieces.iter().any(|p| matches!(p, Piece::Broken(_))));
        let mut splitter = Splitter::new(LenPrefix, 8, InspectBudget::unlimited());
        let mut pieces = Vec::new();
        splitter.push(Bytes::copy_from_slice(&cut[..12]), &mut pieces);
        splitter.finish(&mut pieces);
        assert!(pieces
            .iter()
            .any(|p| matches!(p, Piece::Broken(e) if e.reason == "truncated")));
        assert_eq!(reassemble(&pieces), &cut[..12]);
    }

    fn push_in_chunks(
        splitter: &mut Splitter<LenPrefix>,
        stream: &[u8],
        chunk: usize,
    ) -> Vec<Piece> {
        let mut out = Vec::new();
        for part in stream.chunks(chunk) {
            splitter.push(Bytes::copy_from_slice(part), &mut out);
        }
        out
    }

    #[test]
    fn a_gathered_frame_holds_budget_room_until_its_last_slice_is_dropped() {
        let budget = InspectBudget::new(4096, Default::default());
        let big = frame(&[9u8; 1000]);
        for chunk in [1, 3, 100] {
            let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
            let mut pieces = push_in_chunks(&mut splitter, &big[..500], chunk);
            assert!(pieces.is_empty());
            assert_eq!(budget.held(), 1004, "the whole frame's room, taken once");
            splitter.push(Bytes::copy_from_slice(&big[500..]), &mut pieces);
            assert_eq!(frames(&pieces), vec![big.clone()]);
            assert_eq!(
                budget.held(),
                1004,
                "held while the frame awaits inspection"
            );
            drop(pieces);
            assert_eq!(budget.held(), 0, "chunk size {chunk}");
        }
        // A frame within one chunk is a slice of it and takes nothing.
        let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
        let pieces = push_in_chunks(&mut splitter, &big, big.len());
        assert_eq!(frames(&pieces), vec![big.clone()]);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn without_budget_room_a_frame_streams_past_and_says_why() {
        let budget = InspectBudget::new(4096, Default::default());
        let others = budget.reserve(4000).expect("room");
        let big = frame(&[9u8; 1000]);
        let small = frame(b"small");
        let stream = [big.clone(), small.clone()].concat();
        for chunk in [1, 3, 100] {
            let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
            let pieces = push_in_chunks(&mut splitter, &stream, chunk);
            assert!(
                pieces.iter().any(|p| matches!(
                    p,
                    Piece::Oversize {
                        len: 1004,
                        over_budget: true,
                        ..
                    }
                )),
                "chunk size {chunk}"
            );
            assert_eq!(reassemble(&pieces), stream, "chunk size {chunk}");
            // The small frame after it fits in the room left, and is gathered again.
            assert_eq!(frames(&pieces), vec![small.clone()], "chunk size {chunk}");
            drop(pieces);
            assert_eq!(budget.held(), 4000);
        }
        // Over the cap is oversize whatever the budget says.
        let mut splitter = Splitter::new(LenPrefix, 512, budget.clone());
        let pieces = push_in_chunks(&mut splitter, &stream, 3);
        assert!(pieces.iter().any(|p| matches!(
            p,
            Piece::Oversize {
                over_budget: false,
                ..
            }
        )));
        drop((pieces, others));
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_frame_that_must_be_held_is_gathered_past_the_budget() {
        let budget = InspectBudget::new(4096, Default::default());
        let others = budget.reserve(4096).expect("room");
        let big = frame(&[9u8; 1000]);
        let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
        let mut pieces = Vec::new();
        for part in big.chunks(100) {
            splitter.push_held(Bytes::copy_from_slice(part), &mut pieces);
        }
        assert_eq!(frames(&pieces), vec![big.clone()]);
        assert_eq!(budget.held(), 4096 + 1004, "counted all the same");
        drop((pieces, others));
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_stream_ending_or_dropped_mid_frame_gives_its_room_back() {
        let budget = InspectBudget::new(4096, Default::default());
        let big = frame(&[9u8; 1000]);
        let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
        let mut pieces = push_in_chunks(&mut splitter, &big[..600], 50);
        assert_eq!(budget.held(), 1004);
        splitter.finish(&mut pieces);
        assert_eq!(reassemble(&pieces), &big[..600]);
        drop(pieces);
        assert_eq!(budget.held(), 0);
        // A connection closed mid-frame drops its splitter.
        let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
        drop(push_in_chunks(&mut splitter, &big[..600], 50));
        assert_eq!(budget.held(), 1004);
        drop(splitter);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn absurd_length_breaks_framing_but_keeps_every_byte() {
        let good = frame(b"ok");
        let mut stream = good.clone();
        stream.extend_from_slice(&u32::MAX.to_le_bytes());
        stream.extend_from_slice(b"garbage that follows");
        for chunk in [1, 3, 4096] {
            let pieces = split_all(&stream, chunk, 1 << 16);
            assert_eq!(frames(&pieces), vec![good.clone()]);
            assert!(pieces
                .iter()
                .any(|p| matches!(p, Piece::Broken(e) if e.reason == "bad_length")));
            assert_eq!(reassemble(&pieces), stream);
        }
    }
}
