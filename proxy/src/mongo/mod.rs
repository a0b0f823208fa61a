//! MongoDB wire decoding: frames → commands paired with their outcomes.
//!
//! The relay splits each direction of a connection with [`MongoFramer`] and hands every
//! frame to a [`MongoSession`], off the data path. The session decodes the message, pairs
//! requests with replies by `responseTo`, and reports [`Observation`]s for the analyzer.
//! Decoding borrows from the frame through `bson`'s raw views; the only copies are the
//! command a shape needs (never inserted documents) and the decompressed body of an
//! OP_COMPRESSED message.
//!
//! Every decoder checks, then parses, then advances. None panics on any input; each failure
//! is a [`DecodeError`](crate::tap::DecodeError) with a fixed reason: `truncated`,
//! `bad_length`, `unknown_opcode`, `bad_bson`, `bad_cstring`, `bad_section`, `bad_flags`,
//! `checksum`, `unknown_compressor`, `decompress`, `bad_compressed_size`,
//! `wrong_direction`.
//!
//! [`rewrite_topology`] is the one exception to byte transparency (see [`hello`]).
//!
//! ## Layout
//! - [`frame`]: `MsgHeader`, opcodes, and [`MongoFramer`].
//! - [`op_msg`], [`op_query`], [`op_reply`], [`op_compressed`]: one file per wire message.
//! - [`message`]: one frame → one message, whatever its opcode; unwraps compression.
//! - [`databases`]: a connection's database names, shared by its commands.
//! - [`session`]: [`MongoSession`], the per-connection [`Inspector`](crate::tap::Inspector).
//! - [`hello`]: [`rewrite_topology`], replica-set addresses in `hello` replies.
//! - [`tls`]: TLS on a listener (refused, terminated or passed through), told by the first
//!   bytes.
//! - [`hello_replies`]: [`HelloReplies`], the relay's rewrite, which looks only at the
//!   replies to `hello` requests.
//! - `outcome`, `pending`, `reader`: reply → outcome, the bounded pending map, a checked
//!   byte cursor.
//! - `testing` (tests, and the `testing` feature): hand-built wire messages.
//!
//! [`Observation`]: indextap_analyzer::command::Observation

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod databases;
pub mod frame;
pub mod hello;
pub mod hello_replies;
pub mod message;
pub mod op_compressed;
pub mod op_msg;
pub mod op_query;
pub mod op_reply;
pub mod session;
pub mod tls;

mod outcome;
mod pending;
mod reader;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod fuzz_tests;
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
pub mod testing;

pub use frame::MongoFramer;
pub use hello::{is_hello_request, rewrite_topology};
pub use hello_replies::HelloReplies;
pub use session::MongoSession;

/// The largest message inspected or framed: 64 MiB, above the server's 48 MB
/// `maxMessageSizeBytes`, so no legitimate message is refused.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024 * 1024;
