//! One frame → one decoded message, whatever its opcode.
//!
//! [`decode`] reads the header, reports the message kind, unwraps OP_COMPRESSED (into an
//! inspection copy), and hands the message to a closure: the decompressed bytes live only
//! for the closure's call, so the message can keep borrowing instead of copying again. So do
//! the fields an OP_MSG reply's validation gathers, kept beside the call rather than in the
//! message, which is moved on its way to the closure.

use crate::tap::{DecodeError, Direction, Events};

use super::frame::{MsgHeader, OpCode, HEADER_LEN};
use super::op_compressed::OpCompressed;
use super::op_msg::OpMsg;
use super::op_query::OpQuery;
use super::op_reply::OpReply;
use super::outcome::ReplyFields;
use super::MAX_MESSAGE_LEN;

/// A decoded message, borrowing from its frame (or from its decompressed copy).
#[derive(Debug, Clone)]
pub enum Message<'a> {
    /// OP_MSG.
    Msg(OpMsg<'a>),
    /// OP_QUERY.
    Query(OpQuery<'a>),
    /// OP_REPLY.
    Reply(OpReply<'a>),
    /// A legacy opcode (OP_INSERT, OP_UPDATE, OP_DELETE, OP_GET_MORE, OP_KILL_CURSORS):
    /// counted and skipped. Servers since 6.0 reject them.
    Legacy(OpCode),
}

/// Decode a whole frame and call `f` with its header and message.
///
/// Every message is reported through [`Events::message`] by opcode name. A compressed
/// message is reported twice, as `OP_COMPRESSED` and as the kind it wraps, and its
/// compressor is counted (`compressed_snappy`, ...). The header given to `f` is the frame's
/// own: its `requestID` and `responseTo` are what pair requests with replies. An OP_MSG is
/// read for what its `direction` needs (see [`OpMsg`]).
pub fn decode<R>(
    frame: &[u8],
    direction: Direction,
    events: &mut dyn Events,
    f: impl FnOnce(MsgHeader, Message<'_>, &mut dyn Events) -> Result<R, DecodeError>,
) -> Result<R, DecodeError> {
    let (header, body) = MsgHeader::split(frame)?;
    let op_code = OpCode::from_i32(header.op_code)?;
    events.message(op_code.name());
    if op_code != OpCode::Compressed {
        return decode_body(op_code, body, direction, |message| {
            f(header, message, events)
        });
    }

    let compressed = OpCompressed::parse(body)?;
    let original = OpCode::from_i32(compressed.original_opcode)?;
    if original == OpCode::Compressed {
        return Err(DecodeError::new(
            "unknown_opcode",
            "OP_COMPRESSED inside OP_COMPRESSED",
        ));
    }
    events.count(compressed.compressor.count_label());
    let bytes = compressed.decompress(MAX_MESSAGE_LEN - HEADER_LEN)?;
    events.message(original.name());
    decode_body(original, &bytes, direction, |message| {
        f(header, message, events)
    })
}

/// Decode a body (the frame after its header) of a known, uncompressed opcode, and call `f`
/// with the message. Called, not returned: the message is not moved out through a `Result`,
/// and an OP_MSG reply's outcome fields are gathered into a slot here, beside the call.
fn decode_body<R>(
    op_code: OpCode,
    body: &[u8],
    direction: Direction,
    f: impl FnOnce(Message<'_>) -> Result<R, DecodeError>,
) -> Result<R, DecodeError> {
    let mut reply = ReplyFields::default();
    let message = match op_code {
        OpCode::Msg => Message::Msg(match direction {
            Direction::Request => OpMsg::parse(body)?,
            Direction::Reply => OpMsg::parse_reply(body, &mut reply)?,
        }),
        OpCode::Query => Message::Query(OpQuery::parse(body)?),
        OpCode::Reply => Message::Reply(OpReply::parse(body)?),
        OpCode::Compressed => {
            return Err(DecodeError::new(
                "unknown_opcode",
                "OP_COMPRESSED where a message body was expected",
            ))
        }
        legacy @ (OpCode::Insert
        | OpCode::Update
        | OpCode::Delete
        | OpCode::GetMore
        | OpCode::KillCursors) => Message::Legacy(legacy),
    };
    f(message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use bson::rawdoc;

    use super::*;
    use crate::mongo::testing::{compress, frame, op_msg, query_body, reply_body};
    use crate::tap::CollectedEvents;

    fn kinds(frame: &[u8]) -> Result<(CollectedEvents, &'static str), DecodeError> {
        kinds_as(frame, Direction::Request)
    }

    fn kinds_as(
        frame: &[u8],
        direction: Direction,
    ) -> Result<(CollectedEvents, &'static str), DecodeError> {
        let mut events = CollectedEvents::default();
        let kind = decode(frame, direction, &mut events, |_, message, _| {
            Ok(match message {
                Message::Msg(_) => "msg",
                Message::Query(_) => "query",
                Message::Reply(_) => "reply",
                Message::Legacy(op) => op.name(),
            })
        })?;
        Ok((events, kind))
    }

    #[test]
    fn every_opcode_is_reported() {
        let msg = op_msg(1, 0, 0, rawdoc! {"ping": 1, "$db": "admin"});
        let (events, kind) = kinds(&msg).unwrap();
        assert_eq!((events.messages.as_slice(), kind), (&["OP_MSG"][..], "msg"));

        let query = frame(
            2,
            0,
            2004,
            &query_body("a.$cmd", 0, -1, &rawdoc! {"ping": 1}, None),
        );
        assert_eq!(kinds(&query).unwrap().1, "query");

        let reply = frame(3, 2, 1, &reply_body(0, 0, &[rawdoc! {"ok": 1}]));
        assert_eq!(kinds_as(&reply, Direction::Reply).unwrap().1, "reply");

        for (op, name) in [
            (2001, "OP_UPDATE"),
            (2002, "OP_INSERT"),
            (2005, "OP_GET_MORE"),
            (2006, "OP_DELETE"),
            (2007, "OP_KILL_CURSORS"),
        ] {
            let legacy = frame(4, 0, op, b"whatever is inside is skipped");
            let (events, kind) = kinds(&legacy).unwrap();
            assert_eq!(kind, name);
            assert_eq!(events.messages, vec![name]);
        }
    }

    #[test]
    fn compressed_messages_are_unwrapped_and_counted() {
        let inner = op_msg(9, 0, 0, rawdoc! {"find": "c", "$db": "d"});
        for (id, label) in [
            (1, "compressed_snappy"),
            (2, "compressed_zlib"),
            (3, "compressed_zstd"),
        ] {
            let (events, kind) = kinds(&compress(&inner, id)).unwrap();
            assert_eq!(kind, "msg");
            assert_eq!(events.messages, vec!["OP_COMPRESSED", "OP_MSG"]);
            assert_eq!(events.counts, vec![label]);
        }
    }

    #[test]
    fn unknown_and_nested_opcodes_are_rejected() {
        let unknown = frame(1, 0, 2003, b"");
        assert_eq!(kinds(&unknown).unwrap_err().reason, "unknown_opcode");
        let inner = frame(1, 0, 2012, b"abc");
        let nested = compress(&inner, 0);
        assert_eq!(kinds(&nested).unwrap_err().reason, "unknown_opcode");
    }
}
