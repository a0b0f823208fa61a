//! Taps: what crosses from the data path to inspection.
//!
//! The relay hands every complete frame to a per-connection [`Inspector`] through a bounded
//! channel; when the channel is full the frame is dropped and counted, never waited for.
//! Frames are split on the data path (a header read, no copy), so dropping one never
//! desynchronises the framing of the next.
//!
//! ## Layout
//! - [`TapFrame`]: one frame, its direction and the instant the relay saw it.
//! - `channel`: [`Tap`] / [`TapReceiver`], the per-connection bounded channel of
//!   [`TapItem`]s, and [`ReadyList`], a thread's list of connections with items.
//! - [`Inspector`]: a per-connection, per-engine decoder (`mongo::session`, `postgres::session`).
//! - [`Events`]: what an inspector reports: observations, message kinds, counted reasons.
//! - [`frame_list`], [`recycle_frames`]: the data thread's spare lists of frames.

mod channel;

use std::cell::RefCell;
use std::time::Instant;

use bytes::Bytes;
use indextap_analyzer::command::Observation;

use crate::budget::{Charge, InspectBudget, Reservation};

pub use channel::{ReadyList, Taken, Tap, TapBatch, TapItem, TapReceiver, WAKE_AFTER};

/// Which way a frame travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → server.
    Request,
    /// Server → client.
    Reply,
}

/// One complete frame, as forwarded.
#[derive(Debug, Clone)]
pub struct TapFrame {
    /// Which way it went.
    pub direction: Direction,
    /// The whole frame, header included (PostgreSQL: type byte included).
    pub bytes: Bytes,
    /// When the relay finished reading it.
    pub at: Instant,
}

/// An empty list for `capacity` frames of one chunk, from the thread's spares when it has
/// one. The relay of a connection and its thread's inspection task run on one data thread, so the
/// list the inspector has emptied ([`recycle_frames`]) is the one the relay fills next: no
/// allocation per chunk.
pub fn frame_list(capacity: usize) -> Vec<TapFrame> {
    if capacity == 0 {
        return Vec::new();
    }
    let spare = FRAME_LISTS.with(|spares| spares.try_borrow_mut().ok()?.pop());
    let mut list = spare.unwrap_or_default();
    list.reserve(capacity);
    list
}

/// Gives an inspected list back to the thread's spares (emptied; a large one is freed).
pub fn recycle_frames(mut list: Vec<TapFrame>) {
    list.clear();
    if list.capacity() == 0 || list.capacity() > SPARE_LIST_FRAMES {
        return;
    }
    FRAME_LISTS.with(|spares| {
        if let Ok(mut spares) = spares.try_borrow_mut() {
            if spares.len() < SPARE_LISTS {
                spares.push(list);
            }
        }
    });
}

/// Spare frame lists kept per data thread, and the largest kept: at most 16 × 16 frames of
/// 56 bytes, 14 KiB per thread.
const SPARE_LISTS: usize = 16;
const SPARE_LIST_FRAMES: usize = 16;

thread_local! {
    static FRAME_LISTS: RefCell<Vec<Vec<TapFrame>>> = const { RefCell::new(Vec::new()) };
}

/// A reason inspection of a connection had to stop. `reason` is a metric label, so it is
/// a fixed string; `detail` is for the log and never holds a value from the traffic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct DecodeError {
    /// A fixed, low-cardinality label: `bad_length`, `unknown_opcode`, `bad_bson`, ...
    pub reason: &'static str,
    /// Human-readable detail: sizes, opcodes, offsets. Never a value from the traffic.
    pub detail: String,
}

impl DecodeError {
    /// A decode error with a reason label and a detail.
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// The kind numbers [`Events::message_kind`] takes: below this.
pub const MESSAGE_KINDS: usize = 64;

/// What an inspector reports.
pub trait Events {
    /// A request paired with its outcome.
    fn observation(&mut self, observation: Observation);
    /// A message went by: `kind` is the opcode or message type name (`OP_MSG`, `Parse`, ...).
    fn message(&mut self, kind: &'static str);
    /// A message went by, of the engine's kind number `kind` (below [`MESSAGE_KINDS`]; one
    /// number per name, whatever the direction), named `name`. Counted as
    /// [`Events::message`] counts it, in a table indexed by the number rather than by a label
    /// lookup: a PostgreSQL round trip is nine messages.
    fn message_kind(&mut self, kind: usize, name: &'static str) {
        let _ = kind;
        self.message(name);
    }
    /// A counted, non-fatal event: `oversize_skipped`, `unpaired_reply`, `compressed_zstd`,
    /// a recoverable decode problem. Fixed labels only.
    fn count(&mut self, what: &'static str);
    /// Room in the inspection budget for a copy of `bytes` about to be kept; `None` when
    /// there is none. Through [`charge_copy`](crate::budget::charge_copy), for large copies only.
    fn reserve(&mut self, bytes: usize) -> Option<Reservation>;
    /// Keep `charge` with the observations reported so far until they are analysed (or
    /// dropped): the copy it pays for is in one of them.
    fn hold(&mut self, charge: Charge);
}

/// A per-connection decoder for one engine.
///
/// It is fed frames in the order they crossed the proxy, each direction in order. It must
/// never panic on any input: malformed frames are errors. An `Err` stops inspection of this
/// connection (the reason is counted); forwarding goes on.
pub trait Inspector: Send + 'static {
    /// Decode one frame, reporting through `events`.
    fn inspect(&mut self, frame: TapFrame, events: &mut dyn Events) -> Result<(), DecodeError>;

    /// A frame over the inspection cap went by; `header` holds only its first bytes (the
    /// MongoDB length, the PostgreSQL type and length). The default forgets pairing state,
    /// as for a dropped frame; an engine that can keep its bookkeeping from the header alone
    /// overrides it.
    fn oversize(&mut self, header: TapFrame, events: &mut dyn Events) {
        let _ = (header, events);
        self.resync();
    }

    /// Frames were dropped because inspection fell behind. State that depends on seeing every
    /// frame (pending requests, in-flight statements) should be forgotten.
    fn resync(&mut self) {}

    /// How a handed-over frame's wire messages are counted when it is dropped: one each,
    /// unless the engine's framer joins a read's messages into one run
    /// ([`Framer::joins_frames`](crate::framing::Framer::joins_frames)). Asked once per
    /// connection; the count runs only for a dropped frame.
    fn messages_in(&self) -> fn(&[u8]) -> u64 {
        one_message
    }
}

/// A frame that is one wire message.
pub fn one_message(_: &[u8]) -> u64 {
    1
}

/// An [`Events`] that collects everything, for tests.
#[derive(Debug, Default)]
pub struct CollectedEvents {
    /// Observations, in order.
    pub observations: Vec<Observation>,
    /// Message kinds, in order.
    pub messages: Vec<&'static str>,
    /// Counted events, in order.
    pub counts: Vec<&'static str>,
    /// The budget large copies are charged to (unlimited by default).
    pub budget: InspectBudget,
    /// The charges held with the observations.
    pub held: Vec<Charge>,
}

impl Events for CollectedEvents {
    fn observation(&mut self, observation: Observation) {
        self.observations.push(observation);
    }
    fn message(&mut self, kind: &'static str) {
        self.messages.push(kind);
    }
    fn count(&mut self, what: &'static str) {
        self.counts.push(what);
    }
    fn reserve(&mut self, bytes: usize) -> Option<Reservation> {
        self.budget.reserve(bytes)
    }
    fn hold(&mut self, charge: Charge) {
        self.held.push(charge);
    }
}
