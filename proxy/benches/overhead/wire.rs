//! Just enough of the MongoDB wire protocol for the bench: OP_MSG frames with one kind 0
//! section, built once and patched per message, and a frame reader over a growable buffer.
//!
//! The bench never decodes BSON on its hot path: the request bytes are prebuilt (a few
//! variants, differing in one value), the reply bytes are canned, and each message only has
//! its `requestID`/`responseTo` fields rewritten. The fake upstream tells a driver's
//! handshake from a `find` by the first key of the command ([`command_name`]), and answers
//! the legacy OP_QUERY handshake with an OP_REPLY ([`op_reply`]).

use anyhow::{bail, Context};
use bson::{rawdoc, RawDocumentBuf};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// `OP_MSG`.
pub(crate) const OP_MSG: i32 = 2013;
/// `OP_QUERY` (a driver's legacy handshake).
pub(crate) const OP_QUERY: i32 = 2004;
/// `OP_REPLY`.
const OP_REPLY: i32 = 1;
/// MsgHeader: messageLength, requestID, responseTo, opCode.
pub(crate) const HEADER_LEN: usize = 16;
/// The largest frame either side accepts (MongoDB's own limit is 48 MB).
const MAX_FRAME: usize = 48 * 1024 * 1024;

/// The fields of a MsgHeader the bench looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub length: usize,
    pub request_id: i32,
    pub response_to: i32,
    pub op_code: i32,
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    let mut field = [0u8; 4];
    field.copy_from_slice(&bytes[at..at + 4]);
    i32::from_le_bytes(field)
}

impl Header {
    /// The header at the front of `bytes`, which holds at least [`HEADER_LEN`] bytes.
    fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        let length = i32_at(bytes, 0);
        let length = usize::try_from(length)
            .ok()
            .filter(|length| (HEADER_LEN..=MAX_FRAME).contains(length))
            .with_context(|| format!("bad messageLength {length}"))?;
        Ok(Self {
            length,
            request_id: i32_at(bytes, 4),
            response_to: i32_at(bytes, 8),
            op_code: i32_at(bytes, 12),
        })
    }
}

/// An OP_MSG with flags 0 and `body` as its one kind 0 section.
pub(crate) fn op_msg(request_id: i32, response_to: i32, body: &RawDocumentBuf) -> Vec<u8> {
    let document = body.as_bytes();
    let length = HEADER_LEN + 4 + 1 + document.len();
    let mut frame = Vec::with_capacity(length);
    frame.extend_from_slice(&(length as i32).to_le_bytes());
    frame.extend_from_slice(&request_id.to_le_bytes());
    frame.extend_from_slice(&response_to.to_le_bytes());
    frame.extend_from_slice(&OP_MSG.to_le_bytes());
    frame.extend_from_slice(&0u32.to_le_bytes());
    frame.push(0);
    frame.extend_from_slice(document);
    frame
}

/// Rewrite a prebuilt frame's `requestID` and `responseTo`.
pub(crate) fn stamp(frame: &mut [u8], request_id: i32, response_to: i32) {
    frame[4..8].copy_from_slice(&request_id.to_le_bytes());
    frame[8..12].copy_from_slice(&response_to.to_le_bytes());
}

/// A `find` as a driver sends it: filter, sort, projection, limit, session, `$db`.
/// `customer` is the one value that differs between variants.
pub(crate) fn find_request(customer: i64) -> Vec<u8> {
    let body = rawdoc! {
        "find": "orders",
        "filter": { "status": "A", "customerId": customer },
        "sort": { "createdAt": -1 },
        "projection": { "_id": 1, "status": 1, "total": 1 },
        "limit": 20,
        "lsid": { "id": bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: vec![0x5a; 16],
        } },
        "$db": "app",
    };
    op_msg(0, 0, &body)
}

/// An OP_REPLY holding `body`, the answer to an OP_QUERY.
pub(crate) fn op_reply(request_id: i32, response_to: i32, body: &RawDocumentBuf) -> Vec<u8> {
    let document = body.as_bytes();
    let length = HEADER_LEN + 4 + 8 + 4 + 4 + document.len();
    let mut frame = Vec::with_capacity(length);
    frame.extend_from_slice(&(length as i32).to_le_bytes());
    frame.extend_from_slice(&request_id.to_le_bytes());
    frame.extend_from_slice(&response_to.to_le_bytes());
    frame.extend_from_slice(&OP_REPLY.to_le_bytes());
    frame.extend_from_slice(&0i32.to_le_bytes()); // responseFlags
    frame.extend_from_slice(&0i64.to_le_bytes()); // cursorID
    frame.extend_from_slice(&0i32.to_le_bytes()); // startingFrom
    frame.extend_from_slice(&1i32.to_le_bytes()); // numberReturned
    frame.extend_from_slice(document);
    frame
}

/// What a driver's handshake and monitors need to hear: a standalone server that speaks
/// wire version 17 (MongoDB 6.0), with no `topologyVersion`, so monitors poll rather than
/// wait.
pub(crate) fn hello_reply_body() -> RawDocumentBuf {
    rawdoc! {
        "helloOk": true,
        "isWritablePrimary": true,
        "ismaster": true,
        "maxBsonObjectSize": 16_777_216,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "localTime": bson::DateTime::now(),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": 1,
        "minWireVersion": 0,
        "maxWireVersion": 17,
        "readOnly": false,
        "ok": 1.0,
    }
}

/// `{ok: 1}`: the answer to every other command (`endSessions`, ...).
pub(crate) fn ok_reply() -> Vec<u8> {
    op_msg(0, 0, &rawdoc! { "ok": 1.0 })
}

/// The command an OP_MSG frame carries: the first key of its body section (a kind 0
/// section right after the flags). `None` for anything else.
pub(crate) fn command_name(frame: &[u8]) -> Option<&[u8]> {
    // Header, flags, section kind 0, document length, element type: the key follows.
    let key = frame.get(HEADER_LEN + 4 + 1 + 4 + 1..)?;
    (frame.get(HEADER_LEN + 4) == Some(&0)).then_some(())?;
    let end = key.iter().position(|&b| b == 0)?;
    key.get(..end)
}

/// The canned reply the fake upstream answers every request with.
pub(crate) fn canned_reply() -> Vec<u8> {
    let body = rawdoc! {
        "cursor": {
            "firstBatch": [ { "_id": 1, "status": "A" } ],
            "id": 0_i64,
            "ns": "app.orders",
        },
        "ok": 1.0,
    };
    op_msg(0, 0, &body)
}

/// Reads whole frames from a stream into a buffer, one at a time.
pub(crate) struct FrameReader {
    buffer: BytesMut,
}

impl FrameReader {
    pub(crate) fn new() -> Self {
        Self {
            buffer: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// The next complete frame's header, consuming the frame from the buffer. `None` at a
    /// clean end of stream between frames.
    pub(crate) async fn next<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
    ) -> anyhow::Result<Option<Header>> {
        loop {
            if let Some(header) = self.take()? {
                return Ok(Some(header));
            }
            if !self.fill(stream).await? {
                return Ok(None);
            }
        }
    }

    /// Reads more into the buffer; false at a clean end of the stream (between frames).
    async fn fill<R: AsyncRead + Unpin>(&mut self, stream: &mut R) -> anyhow::Result<bool> {
        if self.buffer.capacity() - self.buffer.len() < 4096 {
            self.buffer.reserve(64 * 1024);
        }
        if stream.read_buf(&mut self.buffer).await? == 0 {
            if self.buffer.is_empty() {
                return Ok(false);
            }
            bail!("stream ended inside a frame");
        }
        Ok(true)
    }

    /// A complete frame from the buffer, if one is there.
    fn take(&mut self) -> anyhow::Result<Option<Header>> {
        if self.buffer.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = Header::parse(&self.buffer)?;
        if self.buffer.len() < header.length {
            return Ok(None);
        }
        self.buffer.advance(header.length);
        Ok(Some(header))
    }

    /// Like [`FrameReader::next`], with the frame's bytes.
    pub(crate) async fn next_frame<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
    ) -> anyhow::Result<Option<(Header, BytesMut)>> {
        loop {
            if self.buffer.len() >= HEADER_LEN {
                let header = Header::parse(&self.buffer)?;
                if self.buffer.len() >= header.length {
                    return Ok(Some((header, self.buffer.split_to(header.length))));
                }
            }
            if !self.fill(stream).await? {
                return Ok(None);
            }
        }
    }

    /// Whether a complete frame is already buffered (pipelined requests).
    pub(crate) fn has_frame(&self) -> bool {
        self.buffer.len() >= HEADER_LEN
            && Header::parse(&self.buffer).is_ok_and(|header| self.buffer.len() >= header.length)
    }
}
