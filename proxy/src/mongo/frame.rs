//! The MongoDB message header, and the framing rule built on it.
//!
//! Every MongoDB wire message starts with a 16-byte `MsgHeader`: `messageLength` (the whole
//! message, header included), `requestID`, `responseTo` and `opCode`, each a little-endian
//! `int32`. The first four bytes alone give the frame's length, which is all the relay's
//! splitter needs; the rest is read here when a frame is inspected.
//!
//! ## Layout
//! - [`MongoFramer`]: the [`Framer`] the relay splits MongoDB streams with.
//! - [`MsgHeader`]: the parsed header, split from the body.
//! - [`OpCode`]: the opcodes indextap knows by name.

use crate::framing::Framer;
use crate::tap::DecodeError;

use super::op_msg::MsgFlags;
use super::reader::Reader;
use super::MAX_MESSAGE_LEN;

/// The size of a `MsgHeader`.
pub const HEADER_LEN: usize = 16;

/// Splits a MongoDB byte stream into messages by their `messageLength`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MongoFramer;

impl Framer for MongoFramer {
    fn header_len(&self) -> usize {
        4
    }

    fn frame_len(&self, header: &[u8]) -> Result<usize, DecodeError> {
        let declared = Reader::new(header).i32("messageLength")?;
        check_message_length(declared)
    }

    /// An OP_MSG without `moreToCome`, or an OP_QUERY: the server replies. Fire-and-forget
    /// writes, legacy write opcodes and compressed messages (their flags are inside) are
    /// inspected at once.
    fn reply_follows(&self, frame: &[u8]) -> bool {
        let mut reader = Reader::new(frame.get(12..).unwrap_or_default());
        match reader.i32("opCode").map(OpCode::from_i32) {
            Ok(Ok(OpCode::Msg)) => reader
                .u32("flagBits")
                .is_ok_and(|flags| !MsgFlags(flags).more_to_come()),
            Ok(Ok(OpCode::Query)) => true,
            _ => false,
        }
    }
}

/// A `messageLength` as a size, if it is one a server could send: at least a header, at most
/// [`MAX_MESSAGE_LEN`] (the server's `maxMessageSizeBytes` is 48 MB).
fn check_message_length(declared: i32) -> Result<usize, DecodeError> {
    usize::try_from(declared)
        .ok()
        .filter(|len| (HEADER_LEN..=MAX_MESSAGE_LEN).contains(len))
        .ok_or_else(|| DecodeError::new("bad_length", format!("messageLength {declared}")))
}

/// A parsed `MsgHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgHeader {
    /// The whole message's length, header included.
    pub message_length: i32,
    /// The sender's id for this message.
    pub request_id: i32,
    /// For a reply, the `requestID` it answers; 0 for requests.
    pub response_to: i32,
    /// The raw opcode (see [`OpCode`]).
    pub op_code: i32,
}

impl MsgHeader {
    /// Split a whole frame into its header and body. The frame must be exactly
    /// `messageLength` bytes: the splitter hands over whole frames, so a short frame is
    /// `truncated` and a long one `bad_length`.
    pub fn split(frame: &[u8]) -> Result<(MsgHeader, &[u8]), DecodeError> {
        let message_length = Reader::new(frame).i32("messageLength")?;
        let len = check_message_length(message_length)?;
        if len != frame.len() {
            let reason = if len > frame.len() {
                "truncated"
            } else {
                "bad_length"
            };
            return Err(DecodeError::new(
                reason,
                format!("messageLength {len}, frame of {} bytes", frame.len()),
            ));
        }
        // The frame holds its whole header now (`len` is at least HEADER_LEN): the other
        // three fields are read without a check each, as this runs on every frame.
        let (header, body) = frame
            .split_first_chunk::<HEADER_LEN>()
            .ok_or_else(|| DecodeError::new("truncated", "MsgHeader"))?;
        let field = |at: usize| {
            let mut bytes = [0u8; 4];
            bytes.copy_from_slice(header.get(at..at + 4).unwrap_or(&[0; 4]));
            i32::from_le_bytes(bytes)
        };
        let header = MsgHeader {
            message_length,
            request_id: field(4),
            response_to: field(8),
            op_code: field(12),
        };
        Ok((header, body))
    }

    /// The header's 16 bytes, with `messageLength` set for a body of `body_len` bytes.
    pub(crate) fn encode(&self, body_len: usize) -> Option<[u8; HEADER_LEN]> {
        let total = i32::try_from(body_len.checked_add(HEADER_LEN)?).ok()?;
        let mut out = [0u8; HEADER_LEN];
        let fields = [total, self.request_id, self.response_to, self.op_code];
        for (chunk, field) in out.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&field.to_le_bytes());
        }
        Some(out)
    }
}

/// The opcodes indextap knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// A reply to OP_QUERY (and to legacy OP_GET_MORE).
    Reply,
    /// Legacy update (removed in 6.0).
    Update,
    /// Legacy insert (removed in 6.0).
    Insert,
    /// A query, or a command on `db.$cmd` (legacy except for the handshake).
    Query,
    /// Legacy getMore (removed in 6.0).
    GetMore,
    /// Legacy delete (removed in 6.0).
    Delete,
    /// Legacy killCursors (removed in 6.0).
    KillCursors,
    /// A compressed message wrapping another opcode.
    Compressed,
    /// The extensible message format, used for every command since 3.6.
    Msg,
}

impl OpCode {
    /// The opcode for a raw value, or `unknown_opcode`.
    pub fn from_i32(op_code: i32) -> Result<OpCode, DecodeError> {
        Ok(match op_code {
            1 => OpCode::Reply,
            2001 => OpCode::Update,
            2002 => OpCode::Insert,
            2004 => OpCode::Query,
            2005 => OpCode::GetMore,
            2006 => OpCode::Delete,
            2007 => OpCode::KillCursors,
            2012 => OpCode::Compressed,
            2013 => OpCode::Msg,
            other => {
                return Err(DecodeError::new(
                    "unknown_opcode",
                    format!("opCode {other}"),
                ))
            }
        })
    }

    /// The raw value.
    pub fn as_i32(self) -> i32 {
        match self {
            OpCode::Reply => 1,
            OpCode::Update => 2001,
            OpCode::Insert => 2002,
            OpCode::Query => 2004,
            OpCode::GetMore => 2005,
            OpCode::Delete => 2006,
            OpCode::KillCursors => 2007,
            OpCode::Compressed => 2012,
            OpCode::Msg => 2013,
        }
    }

    /// The name reported through `Events::message`.
    pub fn name(self) -> &'static str {
        match self {
            OpCode::Reply => "OP_REPLY",
            OpCode::Update => "OP_UPDATE",
            OpCode::Insert => "OP_INSERT",
            OpCode::Query => "OP_QUERY",
            OpCode::GetMore => "OP_GET_MORE",
            OpCode::Delete => "OP_DELETE",
            OpCode::KillCursors => "OP_KILL_CURSORS",
            OpCode::Compressed => "OP_COMPRESSED",
            OpCode::Msg => "OP_MSG",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn framer_reads_the_length_including_the_header() {
        assert_eq!(MongoFramer.header_len(), 4);
        assert_eq!(MongoFramer.frame_len(&[16, 0, 0, 0]).unwrap(), 16);
        assert_eq!(
            MongoFramer.frame_len(&[0x00, 0x01, 0x02, 0x00]).unwrap(),
            0x0002_0100
        );
    }

    #[test]
    fn framer_rejects_absurd_lengths() {
        for header in [
            [15, 0, 0, 0],
            [0, 0, 0, 0],
            [0xff, 0xff, 0xff, 0xff],
            [0, 0, 0, 0x80],
            [1, 0, 0, 4], // 64 MiB + 1
        ] {
            let err = MongoFramer.frame_len(&header).unwrap_err();
            assert_eq!(err.reason, "bad_length", "{header:?}");
        }
        assert_eq!(
            MongoFramer.frame_len(&[0, 0, 0, 4]).unwrap(),
            MAX_MESSAGE_LEN
        );
        assert_eq!(
            MongoFramer.frame_len(&[16, 0]).unwrap_err().reason,
            "truncated"
        );
    }

    #[test]
    fn header_round_trips() {
        let header = MsgHeader {
            message_length: 20,
            request_id: 7,
            response_to: -3,
            op_code: 2013,
        };
        let mut frame = header.encode(4).unwrap().to_vec();
        frame.extend_from_slice(&[1, 2, 3, 4]);
        let (parsed, body) = MsgHeader::split(&frame).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(body, &[1, 2, 3, 4]);
    }

    #[test]
    fn split_wants_exactly_one_frame() {
        let header = MsgHeader {
            message_length: 20,
            request_id: 1,
            response_to: 0,
            op_code: 2013,
        };
        let mut frame = header.encode(4).unwrap().to_vec();
        frame.extend_from_slice(&[0; 3]);
        assert_eq!(MsgHeader::split(&frame).unwrap_err().reason, "truncated");
        frame.extend_from_slice(&[0; 2]);
        assert_eq!(MsgHeader::split(&frame).unwrap_err().reason, "bad_length");
        assert_eq!(
            MsgHeader::split(&frame[..10]).unwrap_err().reason,
            "truncated"
        );
    }

    #[test]
    fn opcodes_round_trip() {
        for raw in [1, 2001, 2002, 2004, 2005, 2006, 2007, 2012, 2013] {
            assert_eq!(OpCode::from_i32(raw).unwrap().as_i32(), raw);
        }
        assert_eq!(OpCode::from_i32(2003).unwrap_err().reason, "unknown_opcode");
    }
}
