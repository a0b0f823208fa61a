//! What the frontend and backend decoders share: the decoded-message wrapper, the cursor
//! over a body read in place, and the one place pgwire's decoders are called.

use std::cell::RefCell;

use bytes::BytesMut;
use pgwire::error::PgWireError;
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};

use super::frame::TypedFrame;
use super::reader::Reader;

/// A decoded message and, when part of it could not be read, the reason to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<T> {
    /// The message.
    pub message: T,
    /// `oversize_skipped` or `malformed_message` when a body was not read.
    pub skipped: Option<&'static str>,
}

/// Keeps a readable part, or notes why it could not be read.
pub(super) fn keep<T>(
    result: Result<T, &'static str>,
    skipped: &mut Option<&'static str>,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(reason) => {
            *skipped = Some(reason);
            None
        }
    }
}

/// A cursor over a body to read in place. A body the framer cut at its inspection limit
/// is skipped, like one pgwire refuses as too large.
#[inline]
pub(super) fn in_place<'a>(frame: &TypedFrame<'a>) -> Result<Reader<'a>, &'static str> {
    if !frame.complete {
        return Err("oversize_skipped");
    }
    Ok(Reader::new(frame.body))
}

/// Frames `body` as a `kind` message and decodes it with `decode`, as a session would. The
/// frame is leaked, so that what is decoded may borrow from it (tests only).
#[cfg(test)]
#[allow(clippy::expect_used)]
pub(super) fn decode_framed<T>(
    decode: fn(&TypedFrame<'static>) -> Decoded<T>,
    kind: u8,
    body: &[u8],
) -> Decoded<T> {
    let bytes = super::frame::encode(kind, body).leak();
    decode(&TypedFrame::parse(bytes).expect("an encoded frame parses"))
}

/// The decode context of an established session: typed messages only.
fn session_context() -> DecodeContext {
    let mut context = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    context.awaiting_frontend_ssl = false;
    context.awaiting_frontend_startup = false;
    context
}

/// Runs pgwire's decoder on a frame whose body `shape_ok` says was walked safely (pgwire's
/// decoders index without bounds checks). pgwire refuses messages past its per-type size
/// limit; those are skipped, which costs inspection of that message and nothing else.
pub(super) fn with_pgwire<M: Message>(
    frame: &TypedFrame<'_>,
    shape_ok: bool,
) -> Result<M, &'static str> {
    if !frame.complete {
        return Err("oversize_skipped");
    }
    if !shape_ok {
        return Err("malformed_message");
    }
    let decoded = if frame.whole.len() > SCRATCH_KEEP {
        M::decode(&mut BytesMut::from(frame.whole), &session_context())
    } else {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                buf.extend_from_slice(frame.whole);
                M::decode(&mut buf, &session_context())
            }
            Err(_) => M::decode(&mut BytesMut::from(frame.whole), &session_context()),
        })
    };
    match decoded {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err("malformed_message"),
        Err(PgWireError::MessageTooLarge(..)) => Err("oversize_skipped"),
        Err(_) => Err("malformed_message"),
    }
}

/// Frames up to this size are decoded from the thread's scratch buffer; larger ones (rare:
/// a long statement text) from a buffer of their own, so the scratch stays small.
const SCRATCH_KEEP: usize = 16 * 1024;

thread_local! {
    /// pgwire decodes from a `BytesMut`. A data thread decodes several messages per round
    /// trip, and reusing one buffer spares an allocation and a free for each: the buffer
    /// is back to one owner once the message is decoded (what pgwire returns owns its
    /// strings), so refilling it reuses its memory.
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::with_capacity(1024));
}
