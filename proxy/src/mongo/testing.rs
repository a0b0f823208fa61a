//! Hand-built wire messages for the decoder tests, and for the end-to-end tests' raw clients
//! (the `testing` feature).
//!
//! Everything here writes the wire format directly from the specification, independently of
//! the decoders it tests, so a decoder bug cannot cancel out a builder bug.

use std::io::Write;

use bson::RawDocumentBuf;

/// An OP_MSG section.
#[derive(Debug, Clone)]
pub enum Section {
    /// Kind 0.
    Body(RawDocumentBuf),
    /// Kind 1: identifier and documents.
    Sequence(&'static str, Vec<RawDocumentBuf>),
}

/// An OP_MSG body (after the header). With `checksum`, four checksum bytes are appended;
/// their value is arbitrary because the decoder skips them.
pub fn msg_body(flags: u32, sections: &[Section], checksum: bool) -> Vec<u8> {
    let mut out = flags.to_le_bytes().to_vec();
    for section in sections {
        match section {
            Section::Body(doc) => {
                out.push(0);
                out.extend_from_slice(doc.as_bytes());
            }
            Section::Sequence(identifier, docs) => {
                out.push(1);
                let mut content = identifier.as_bytes().to_vec();
                content.push(0);
                for doc in docs {
                    content.extend_from_slice(doc.as_bytes());
                }
                let size = i32::try_from(content.len() + 4).unwrap();
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&content);
            }
        }
    }
    if checksum {
        out.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    }
    out
}

/// A whole frame: header and body.
pub fn frame(request_id: i32, response_to: i32, op_code: i32, body: &[u8]) -> Vec<u8> {
    let len = i32::try_from(body.len() + 16).unwrap();
    let mut out = Vec::with_capacity(body.len() + 16);
    for field in [len, request_id, response_to, op_code] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// An OP_MSG frame with one body section.
pub fn op_msg(request_id: i32, response_to: i32, flags: u32, body: RawDocumentBuf) -> Vec<u8> {
    frame(
        request_id,
        response_to,
        2013,
        &msg_body(flags, &[Section::Body(body)], false),
    )
}

/// An OP_QUERY body.
pub fn query_body(
    ns: &str,
    skip: i32,
    number_to_return: i32,
    query: &RawDocumentBuf,
    selector: Option<&RawDocumentBuf>,
) -> Vec<u8> {
    let mut out = 0i32.to_le_bytes().to_vec();
    out.extend_from_slice(ns.as_bytes());
    out.push(0);
    out.extend_from_slice(&skip.to_le_bytes());
    out.extend_from_slice(&number_to_return.to_le_bytes());
    out.extend_from_slice(query.as_bytes());
    if let Some(selector) = selector {
        out.extend_from_slice(selector.as_bytes());
    }
    out
}

/// An OP_REPLY body.
pub fn reply_body(flags: i32, cursor_id: i64, docs: &[RawDocumentBuf]) -> Vec<u8> {
    let mut out = flags.to_le_bytes().to_vec();
    out.extend_from_slice(&cursor_id.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&i32::try_from(docs.len()).unwrap().to_le_bytes());
    for doc in docs {
        out.extend_from_slice(doc.as_bytes());
    }
    out
}

/// An OP_COMPRESSED frame wrapping `inner` (a whole frame), with its own header taken from
/// `inner`'s requestID and responseTo, compressed with `compressor_id`.
pub fn compress(inner: &[u8], compressor_id: u8) -> Vec<u8> {
    let request_id = i32::from_le_bytes(inner[4..8].try_into().unwrap());
    let response_to = i32::from_le_bytes(inner[8..12].try_into().unwrap());
    let op_code = i32::from_le_bytes(inner[12..16].try_into().unwrap());
    let original = &inner[16..];
    let compressed = match compressor_id {
        0 => original.to_vec(),
        1 => snap::raw::Encoder::new().compress_vec(original).unwrap(),
        2 => {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(original).unwrap();
            encoder.finish().unwrap()
        }
        3 => zstd::bulk::compress(original, 3).unwrap(),
        other => panic!("no compressor {other}"),
    };
    compressed_frame(
        request_id,
        response_to,
        op_code,
        i32::try_from(original.len()).unwrap(),
        compressor_id,
        &compressed,
    )
}

/// An OP_COMPRESSED frame from its parts, for lying about them.
pub fn compressed_frame(
    request_id: i32,
    response_to: i32,
    original_op_code: i32,
    uncompressed_size: i32,
    compressor_id: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = original_op_code.to_le_bytes().to_vec();
    body.extend_from_slice(&uncompressed_size.to_le_bytes());
    body.push(compressor_id);
    body.extend_from_slice(payload);
    frame(request_id, response_to, 2012, &body)
}
