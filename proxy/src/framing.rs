//! Framing: split a byte stream into frames on the data path, without copying.
//!
//! The relay reads into a buffer, forwards, then hands the same `Bytes` here. A frame's
//! length comes from its header; an absurd length stops framing (the connection goes on
//! forwarding, uninspected). A frame longer than the inspection cap is streamed past without
//! being buffered, so no length field ever makes the proxy allocate it.
//!
//! ## Layout
//! - [`Framer`]: an engine's header rule (MongoDB MsgHeader, PostgreSQL type byte + length).
//! - [`Splitter`]: the state machine over chunks, yielding [`Piece`]s.

use crate::tap::DecodeError;

/// An engine's framing rule.
pub trait Framer: Send + 'static {
    /// Bytes needed to know a frame's length (MongoDB: 4; PostgreSQL: 5).
    fn header_len(&self) -> usize;

    /// The whole frame's length, header included, from the first `header_len()` bytes.
    /// An error means the stream cannot be framed any more (an absurd or negative length).
    fn frame_len(&self, header: &[u8]) -> Result<usize, DecodeError>;
}
