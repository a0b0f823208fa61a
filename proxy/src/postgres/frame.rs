//! PostgreSQL typed-message framing.
//!
//! After the startup phase every message is a type byte followed by a big-endian `i32` length
//! that counts itself and the body but not the type byte. [`PgFramer`] gives the splitter that
//! rule; [`TypedFrame`] re-checks a frame the inspector was handed and exposes its body as a
//! borrowed slice.
//!
//! A frame may arrive shorter than its length field says when the relay streamed an
//! over-cap message past inspection and handed over only its head. Such a frame is marked
//! incomplete: its type still counts (a huge Bind is still a Bind), its body is not read.

use crate::framing::Framer;
use crate::tap::DecodeError;

/// Type byte + length.
pub const HEADER_LEN: usize = 5;

/// The smallest legal length field: the length counts itself.
const MIN_LENGTH: usize = 4;

/// The largest length PostgreSQL itself accepts (`PQ_LARGE_MESSAGE_LIMIT` is 1 GiB - 1).
const MAX_LENGTH: usize = 1 << 30;

/// A whole typed message: the type byte, the length (which counts itself), the body. Tests
/// build their messages with it; the proxy itself never writes one.
pub fn encode(kind: u8, body: &[u8]) -> Vec<u8> {
    let length = i32::try_from(body.len() + MIN_LENGTH).unwrap_or(i32::MAX);
    let mut bytes = Vec::with_capacity(body.len() + HEADER_LEN);
    bytes.push(kind);
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// A StartupMessage of protocol `version` with `parameters` (untyped: a length, then the
/// body). Tests send it, the proxy's and the end-to-end raw clients'.
#[cfg(any(test, feature = "testing"))]
pub fn startup(version: i32, parameters: &[(&str, &str)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (key, value) in parameters {
        for text in [key, value] {
            body.extend_from_slice(text.as_bytes());
            body.push(0);
        }
    }
    body.push(0);
    let length = i32::try_from(body.len() + MIN_LENGTH).unwrap_or(i32::MAX);
    let mut bytes = length.to_be_bytes().to_vec();
    bytes.extend_from_slice(&body);
    bytes
}

/// The framing rule for typed PostgreSQL messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgFramer;

impl Framer for PgFramer {
    fn header_len(&self) -> usize {
        HEADER_LEN
    }

    fn frame_len(&self, header: &[u8]) -> Result<usize, DecodeError> {
        let length = length_field(header)?;
        Ok(1 + length)
    }

    /// CopyData, both ways: a bulk load sends one per row, and the session needs none of
    /// them (COPY's CommandComplete tag counts the rows).
    fn is_bulk(&self, header: &[u8]) -> bool {
        header.first() == Some(&COPY_DATA)
    }

    /// Sync and Query: the server answers each with ReadyForQuery.
    fn reply_follows(&self, frame: &[u8]) -> bool {
        matches!(frame.first(), Some(b'S' | b'Q'))
    }
}

/// The CopyData message type, the same both ways.
const COPY_DATA: u8 = b'd';

/// Reads and checks the length field of a typed header (`header[1..5]`).
fn length_field(header: &[u8]) -> Result<usize, DecodeError> {
    let Some(raw) = header.get(1..HEADER_LEN) else {
        return Err(DecodeError::new(
            "truncated",
            format!("header has {} of {HEADER_LEN} bytes", header.len()),
        ));
    };
    let mut word = [0u8; 4];
    word.copy_from_slice(raw);
    let length = i32::from_be_bytes(word);
    match usize::try_from(length) {
        Ok(length) if (MIN_LENGTH..=MAX_LENGTH).contains(&length) => Ok(length),
        _ => Err(DecodeError::new(
            "bad_length",
            format!("message length {length} outside {MIN_LENGTH}..={MAX_LENGTH}"),
        )),
    }
}

/// A complete typed message, checked: its length field matches its size.
#[derive(Debug, Clone, Copy)]
pub struct TypedFrame<'a> {
    /// The message type byte (`b'Q'`, `b'D'`, ...).
    pub kind: u8,
    /// Everything after the length field.
    pub body: &'a [u8],
    /// The whole frame, type byte included, as pgwire's decoders expect it.
    pub whole: &'a [u8],
    /// False when only the head of the message was handed over.
    pub complete: bool,
}

impl<'a> TypedFrame<'a> {
    /// Checks a frame the relay handed over. A frame longer than its length field says
    /// means the framing upstream of us is broken, so that is an error rather than a skip.
    pub fn parse(whole: &'a [u8]) -> Result<Self, DecodeError> {
        let length = length_field(whole)?;
        let Some(&kind) = whole.first() else {
            return Err(DecodeError::new("truncated", "empty frame"));
        };
        if whole.len() > 1 + length {
            return Err(DecodeError::new(
                "bad_length",
                format!(
                    "length field says {} bytes, frame has {}",
                    1 + length,
                    whole.len()
                ),
            ));
        }
        let body = whole.get(HEADER_LEN..).unwrap_or_default();
        Ok(Self {
            kind,
            body,
            whole,
            complete: whole.len() == 1 + length,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn header(kind: u8, length: i32) -> Vec<u8> {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes
    }

    #[test]
    fn frame_length_counts_the_type_byte() {
        assert_eq!(PgFramer.header_len(), 5);
        assert_eq!(PgFramer.frame_len(&header(b'Q', 4)), Ok(5));
        assert_eq!(PgFramer.frame_len(&header(b'D', 1000)), Ok(1001));
        assert_eq!(
            PgFramer.frame_len(&header(b'd', 1 << 30)),
            Ok((1 << 30) + 1)
        );
    }

    #[test]
    fn copy_data_is_passed_on_raw_and_the_rest_framed() {
        use crate::framing::{Piece, Splitter};
        let mut stream = Vec::new();
        for (kind, body) in [(b'd', &b"1\tsecret\n"[..]), (b'c', b""), (b'd', b"2\n")] {
            stream.extend(header(kind, 4 + body.len() as i32));
            stream.extend_from_slice(body);
        }
        stream.extend(header(b'Q', 5));
        stream.push(0);
        // Whole in one chunk, and split across chunks at every byte.
        for step in [stream.len(), 1] {
            let mut splitter = Splitter::new(PgFramer, 1024);
            let mut pieces = Vec::new();
            for chunk in stream.chunks(step) {
                splitter.push(bytes::Bytes::copy_from_slice(chunk), &mut pieces);
            }
            let framed: Vec<u8> = pieces
                .iter()
                .filter_map(|piece| match piece {
                    Piece::Frame(frame) => frame.first().copied(),
                    _ => None,
                })
                .collect();
            assert_eq!(framed, b"cQ", "step {step}");
            let raw: usize = pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Raw(bytes) => bytes.len(),
                    _ => 0,
                })
                .sum();
            assert_eq!(raw, 2 * 5 + 9 + 2, "step {step}");
        }
    }

    #[test]
    fn absurd_lengths_are_bad_length() {
        for length in [i32::MIN, -1, 0, 3, (1 << 30) + 1, i32::MAX] {
            let err = PgFramer.frame_len(&header(b'Q', length)).unwrap_err();
            assert_eq!(err.reason, "bad_length", "length {length}");
        }
    }

    #[test]
    fn short_header_is_truncated() {
        let err = PgFramer.frame_len(&[b'Q', 0, 0]).unwrap_err();
        assert_eq!(err.reason, "truncated");
    }

    #[test]
    fn typed_frame_checks_size_against_length() {
        let mut frame = header(b'Q', 9);
        frame.extend_from_slice(b"abcd\0");
        let parsed = TypedFrame::parse(&frame).unwrap();
        assert_eq!(parsed.kind, b'Q');
        assert_eq!(parsed.body, b"abcd\0");
        assert!(parsed.complete);

        frame.push(0);
        assert_eq!(TypedFrame::parse(&frame).unwrap_err().reason, "bad_length");
        frame.truncate(7);
        let head = TypedFrame::parse(&frame).unwrap();
        assert!(!head.complete);
        assert_eq!(head.body, b"ab");
        assert_eq!(TypedFrame::parse(&[]).unwrap_err().reason, "truncated");
        assert_eq!(
            TypedFrame::parse(&[b'Q', 0]).unwrap_err().reason,
            "truncated"
        );
    }
}
