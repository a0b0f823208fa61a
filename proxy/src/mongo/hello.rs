//! The one place the proxy changes bytes: replica-set addresses in `hello` replies.
//!
//! ## Why
//! indextap forwards every byte unchanged, with one documented exception. A MongoDB driver
//! given a replica-set address does not keep talking to the address it was given: it reads
//! the members from the `hello` (formerly `isMaster`) reply — `hosts`, `passives`,
//! `arbiters`, `primary`, `me` — and opens connections to those members directly. Left
//! alone, the first reply through the proxy would tell the driver to bypass it, and from
//! then on indextap would see nothing but heartbeats. So in a `hello` reply that names
//! members, every member address becomes the address the proxy advertises, and the driver
//! keeps coming back through the proxy.
//!
//! ## What changes, exactly
//! - `hosts`, `passives`, `arbiters`: every member is the advertised address, so the lists
//!   are deduplicated: the first non-empty one (in that order) becomes `[advertise]`, the
//!   others become empty arrays. Empty lists stay empty.
//! - `primary` and `me` become `advertise` (a driver checks `me` against the address it
//!   dialled, which is the proxy's).
//! - Everything else in the document (`setName`, `topologyVersion`, `tags`, timestamps) keeps
//!   its bytes and its order. The header keeps its `requestID`, `responseTo` and flags
//!   (including `moreToCome`, which streaming `hello` uses); `messageLength` is recomputed.
//!   The OP_MSG checksum, which would no longer match, is dropped and its flag cleared
//!   (the checksum is optional on the wire).
//! - An OP_COMPRESSED reply of at most [`MAX_COMPRESSED_HELLO`] uncompressed bytes is
//!   decompressed, rewritten and returned *uncompressed*: a driver accepts an uncompressed
//!   reply on a connection that negotiated compression. Larger ones are left alone; no
//!   `hello` reply is that large.
//!
//! ## What does not change
//! Any other reply, and a `hello` that names no members (a standalone server, a `mongos`):
//! [`rewrite_topology`] returns `None` and the relay forwards the original bytes. The test
//! is a scan of the top-level keys of the reply's first document, so the common case (a
//! `find` batch, a write result) costs a few element headers, not a parse.
//!
//! The rewrite puts no value from the traffic anywhere but back on the wire; it logs nothing.
//!
//! ## Cost on the data path
//! The relay calls [`rewrite_topology`] on reply frames before forwarding them. For OP_MSG
//! and OP_REPLY the answer is one top-level key scan. An OP_COMPRESSED reply has to be
//! decompressed to be looked at; [`is_hello_request`] lets a relay restrict the call to
//! replies whose `responseTo` names a `hello` request (and the `moreToCome` replies chained
//! after them), so ordinary compressed traffic is never decompressed on the data path.

use bson::raw::RawArrayBuf;
use bson::{RawBsonRef, RawDocument, RawDocumentBuf};

use super::frame::{MsgHeader, OpCode, HEADER_LEN};
use super::op_compressed::OpCompressed;
use super::op_msg::{MsgFlags, OpMsg};
use super::op_query::OpQuery;
use super::op_reply::OpReply;
use super::reader::Reader;

/// The largest compressed reply (uncompressed size) that is inspected for a rewrite.
pub const MAX_COMPRESSED_HELLO: usize = 64 * 1024;

/// Member lists, in the order the advertised address is placed into.
const MEMBER_LISTS: [&str; 3] = ["hosts", "passives", "arbiters"];
/// Single member addresses.
const MEMBER_ADDRESSES: [&str; 2] = ["primary", "me"];
/// Keys only a `hello` / `isMaster` reply has.
const HELLO_MARKERS: [&str; 2] = ["isWritablePrimary", "ismaster"];

/// Given a whole reply frame, a new frame with every replica-set member address replaced by
/// `advertise`, or `None` when the frame is not a `hello` reply naming members (or is
/// malformed, or already says only `advertise`). See the module docs for the exact rules.
pub fn rewrite_topology(frame: &[u8], advertise: &str) -> Option<Vec<u8>> {
    let (header, body) = MsgHeader::split(frame).ok()?;
    match OpCode::from_i32(header.op_code).ok()? {
        OpCode::Msg => rewrite_msg(header, body, advertise),
        OpCode::Reply => rewrite_reply(header, body, advertise),
        OpCode::Compressed => {
            let compressed = OpCompressed::parse(body).ok()?;
            compressed.size_within(MAX_COMPRESSED_HELLO)?;
            let original = OpCode::from_i32(compressed.original_opcode).ok()?;
            if !matches!(original, OpCode::Msg | OpCode::Reply) {
                return None;
            }
            let body = compressed.decompress(MAX_COMPRESSED_HELLO).ok()?;
            let header = MsgHeader {
                op_code: original.as_i32(),
                ..header
            };
            match original {
                OpCode::Msg => rewrite_msg(header, &body, advertise),
                _ => rewrite_reply(header, &body, advertise),
            }
        }
        _ => None,
    }
}

/// Whether a request frame is a `hello` / `isMaster` handshake or heartbeat (OP_MSG, or
/// OP_QUERY on `db.$cmd`). A relay may use it to call [`rewrite_topology`] only on replies
/// to such requests (and on the `moreToCome` replies that follow them), instead of on every
/// reply. Compressed frames answer `false`: the compression spec forbids compressing
/// `hello`.
pub fn is_hello_request(frame: &[u8]) -> bool {
    !surely_not_hello(frame) && names_hello(frame)
}

/// The whole check: the frame parsed as far as its command's first key.
fn names_hello(frame: &[u8]) -> bool {
    let Ok((header, body)) = MsgHeader::split(frame) else {
        return false;
    };
    let command = match OpCode::from_i32(header.op_code) {
        Ok(OpCode::Msg) => msg_body_section(body),
        Ok(OpCode::Query) => OpQuery::parse(body)
            .ok()
            .filter(OpQuery::is_command)
            .map(|query| query.command()),
        _ => None,
    };
    command
        .and_then(first_key)
        .is_some_and(|name| matches!(name, b"hello" | b"isMaster" | b"ismaster"))
}

/// Where an OP_MSG's first key starts when its first section is the body (kind 0): after
/// the header, `flagBits`, the section's kind and the document's length and first type.
const MSG_FIRST_KEY: usize = HEADER_LEN + 4 + 1 + 4 + 1;

/// The common request, answered from three bytes before anything is parsed: an OP_MSG whose
/// body comes first and whose first key starts with neither letter the hello names start
/// with. Only a `false` is answered here, and only where the whole check would answer it:
/// when the body comes first, the whole check reads the name at [`MSG_FIRST_KEY`].
fn surely_not_hello(frame: &[u8]) -> bool {
    frame.get(12..16) == Some(&OpCode::Msg.as_i32().to_le_bytes()[..])
        && frame.get(HEADER_LEN + 4) == Some(&0)
        && frame
            .get(MSG_FIRST_KEY)
            .is_some_and(|first| !matches!(first, b'h' | b'i'))
}

/// An OP_MSG's kind 0 section, found by stepping over kind 1 sections without reading their
/// documents (a request may carry a large insert batch).
fn msg_body_section(body: &[u8]) -> Option<&RawDocument> {
    let mut reader = Reader::new(body);
    reader.u32("flagBits").ok()?;
    loop {
        match reader.u8("section kind").ok()? {
            0 => return reader.document("kind 0 section").ok(),
            1 => {
                let size = usize::try_from(reader.i32("kind 1 size").ok()?).ok()?;
                reader.take(size.checked_sub(4)?, "kind 1 section").ok()?;
            }
            _ => return None,
        }
    }
}

/// The first key's bytes, read straight from the document: every request goes through this
/// check on the data path, and bson's element iterator validates the key's UTF-8 and sizes
/// the value, several times the work of comparing a few bytes.
fn first_key(doc: &RawDocument) -> Option<&[u8]> {
    let bytes = doc.as_bytes();
    // Length (4 bytes), then the first element's type: 0 ends an empty document.
    if *bytes.get(4)? == 0 {
        return None;
    }
    let key = bytes.get(5..)?;
    let end = key.iter().position(|&b| b == 0)?;
    key.get(..end)
}

fn rewrite_msg(header: MsgHeader, body: &[u8], advertise: &str) -> Option<Vec<u8>> {
    let msg = OpMsg::parse(body).ok()?;
    let document = rewrite_document(msg.body, advertise)?;

    let flags = msg.flags.0 & !MsgFlags::CHECKSUM_PRESENT;
    let mut out = flags.to_le_bytes().to_vec();
    out.push(0);
    out.extend_from_slice(document.as_bytes());
    for sequence in &msg.sequences {
        let size = 4 + sequence.identifier.len() + 1 + sequence.bytes.len();
        out.push(1);
        out.extend_from_slice(&i32::try_from(size).ok()?.to_le_bytes());
        out.extend_from_slice(sequence.identifier.as_bytes());
        out.push(0);
        out.extend_from_slice(sequence.bytes);
    }
    with_header(header, out)
}

fn rewrite_reply(header: MsgHeader, body: &[u8], advertise: &str) -> Option<Vec<u8>> {
    let reply = OpReply::parse(body).ok()?;
    let first = reply.first()?;
    let document = rewrite_document(first, advertise)?;
    let rest = reply.documents.get(first.as_bytes().len()..)?;

    let mut out = reply.response_flags.to_le_bytes().to_vec();
    out.extend_from_slice(&reply.cursor_id.to_le_bytes());
    out.extend_from_slice(&reply.starting_from.to_le_bytes());
    out.extend_from_slice(&reply.number_returned.to_le_bytes());
    out.extend_from_slice(document.as_bytes());
    out.extend_from_slice(rest);
    with_header(header, out)
}

fn with_header(header: MsgHeader, body: Vec<u8>) -> Option<Vec<u8>> {
    let mut frame = header.encode(body.len())?.to_vec();
    frame.extend_from_slice(&body);
    Some(frame)
}

/// Whether a reply document is a `hello` that names members: top-level keys only.
fn names_members(doc: &RawDocument) -> bool {
    let mut hello = false;
    let mut members = false;
    for element in doc.iter_elements() {
        let Ok(element) = element else {
            return false;
        };
        let key = element.key().as_str();
        hello |= HELLO_MARKERS.contains(&key);
        members |= MEMBER_LISTS.contains(&key) || MEMBER_ADDRESSES.contains(&key);
    }
    hello && members
}

/// The document with its member addresses replaced, or `None` if it names none or already
/// reads as rewritten.
fn rewrite_document(doc: &RawDocument, advertise: &str) -> Option<RawDocumentBuf> {
    if !names_members(doc) {
        return None;
    }
    let non_empty = |key: &str| {
        doc.get(key)
            .ok()
            .flatten()
            .and_then(RawBsonRef::as_array)
            .is_some_and(|list| !list.is_empty())
    };
    let home = MEMBER_LISTS.into_iter().find(|key| non_empty(key));

    let mut out = RawDocumentBuf::new();
    for element in doc.iter_elements() {
        let element = element.ok()?;
        let key = element.key();
        let value = element.value().ok()?;
        match value {
            RawBsonRef::Array(_) if MEMBER_LISTS.contains(&key.as_str()) => {
                let mut list = RawArrayBuf::new();
                if home == Some(key.as_str()) {
                    list.push(advertise);
                }
                out.append(key, &list);
            }
            RawBsonRef::String(_) if MEMBER_ADDRESSES.contains(&key.as_str()) => {
                out.append(key, advertise);
            }
            _ => out.append(key, value),
        }
    }
    (out.as_bytes() != doc.as_bytes()).then_some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests;
