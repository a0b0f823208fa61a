//! PostgreSQL typed-message framing.
//!
//! After the startup phase every message is a type byte followed by a big-endian `i32` length
//! that counts itself and the body but not the type byte. [`PgFramer`] gives the splitter that
//! rule, and joins the whole messages of one read into a run handed over as one frame;
//! [`walk`] (the session's) and [`messages`] (an iterator) walk a run again, re-checking
//! each message, as a [`TypedFrame`] whose body is a borrowed slice.
//!
//! A message may arrive shorter than its length field says when the relay streamed an
//! over-cap message past inspection and handed over only its head. Such a message is marked
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

    /// A round trip's messages arrive together (Bind, Describe, Execute, Sync; BindComplete,
    /// RowDescription, DataRow, CommandComplete, ReadyForQuery): one hand-over for all of them.
    fn joins_frames(&self) -> bool {
        true
    }

    /// CopyData, both ways: a bulk load sends one per row, and the session needs none of
    /// them (COPY's CommandComplete tag counts the rows).
    fn is_bulk(&self, header: &[u8]) -> bool {
        header.first() == Some(&COPY_DATA)
    }

    /// A run ending in Sync or Query: the server answers each with ReadyForQuery.
    fn reply_follows(&self, run: &[u8]) -> bool {
        let mut start = 0;
        // Header by header to the last message; the splitter checked every length.
        while let Some(header) = run.get(start..) {
            let Ok(length) = length_field(header) else {
                return false;
            };
            let next = start + 1 + length;
            if next >= run.len() {
                return matches!(header.first(), Some(b'S' | b'Q'));
            }
            start = next;
        }
        false
    }
}

/// The CopyData message type, the same both ways.
const COPY_DATA: u8 = b'd';

/// Reads and checks the length field of a typed header (`header[1..5]`).
#[inline]
fn length_field(header: &[u8]) -> Result<usize, DecodeError> {
    let Some(&[_, a, b, c, d]) = header.first_chunk::<HEADER_LEN>() else {
        return Err(short_header(header.len()));
    };
    checked_length(i32::from_be_bytes([a, b, c, d]))
}

/// A length field's value, if within what PostgreSQL accepts.
#[inline]
fn checked_length(length: i32) -> Result<usize, DecodeError> {
    accepted_length(length).ok_or_else(|| bad_length(length))
}

/// A length field's value if within what PostgreSQL accepts, without building the error
/// (the session's walk builds it out of line).
#[inline]
fn accepted_length(length: i32) -> Option<usize> {
    // Read unsigned, a negative length is past MAX_LENGTH: one comparison checks both ends
    // (this runs for every message, in the splitter and again in the session).
    let unsigned = length.cast_unsigned() as usize;
    (unsigned.wrapping_sub(MIN_LENGTH) <= MAX_LENGTH - MIN_LENGTH).then_some(unsigned)
}

#[cold]
fn short_header(len: usize) -> DecodeError {
    DecodeError::new(
        "truncated",
        format!("header has {len} of {HEADER_LEN} bytes"),
    )
}

#[cold]
fn bad_length(length: i32) -> DecodeError {
    DecodeError::new(
        "bad_length",
        format!("message length {length} outside {MIN_LENGTH}..={MAX_LENGTH}"),
    )
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
    /// Checks a frame that holds exactly one message (or the head of one). A frame longer
    /// than its length field says is an error here; a run of messages is walked with
    /// [`messages`].
    pub fn parse(whole: &'a [u8]) -> Result<Self, DecodeError> {
        let (message, rest) = Self::first(whole)?;
        if !rest.is_empty() {
            return Err(DecodeError::new(
                "bad_length",
                format!(
                    "length field says {} bytes, frame has {}",
                    message.whole.len(),
                    whole.len()
                ),
            ));
        }
        Ok(message)
    }

    /// The first message of `bytes`, and the bytes after it. A message longer than `bytes`
    /// is the head the relay handed over of one over the cap: all of `bytes`, incomplete.
    /// The header is read once: its type byte and length come from one 5-byte read.
    #[inline]
    fn first(bytes: &'a [u8]) -> Result<(Self, &'a [u8]), DecodeError> {
        let Some(&[kind, a, b, c, d]) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(short_header(bytes.len()));
        };
        let length = checked_length(i32::from_be_bytes([a, b, c, d]))?;
        let end = bytes.len().min(1 + length);
        let (whole, rest) = bytes.split_at(end);
        let message = Self {
            kind,
            body: whole.get(HEADER_LEN..).unwrap_or_default(),
            whole,
            complete: end == 1 + length,
        };
        Ok((message, rest))
    }
}

/// Hands the messages of a run to `each`, in order; a message that cannot be framed ends
/// the walk with its error. The session's walk: each header is read once, and no message
/// is wrapped in a `Result` or an `Option` to be matched again (a round trip is nine
/// messages); the errors are built out of line. It reads the header as
/// `TypedFrame::first` does, written out rather than called: a loop over `first` (or over
/// an `Option`-returning split shared with it) measured 80–100 more instructions per
/// prepared transaction under callgrind.
#[inline]
pub fn walk<'a>(run: &'a [u8], mut each: impl FnMut(TypedFrame<'a>)) -> Result<(), DecodeError> {
    let mut rest = run;
    while let Some(&[kind, a, b, c, d]) = rest.first_chunk::<HEADER_LEN>() {
        let field = i32::from_be_bytes([a, b, c, d]);
        let Some(length) = accepted_length(field) else {
            return Err(bad_length(field));
        };
        let end = rest.len().min(1 + length);
        let (whole, next) = rest.split_at(end);
        each(TypedFrame {
            kind,
            body: whole.get(HEADER_LEN..).unwrap_or_default(),
            whole,
            complete: end == 1 + length,
        });
        rest = next;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(short_header(rest.len()))
    }
}

/// The messages of a run the relay handed over, in order. A message that cannot be framed
/// ends the walk with its error: the framing of the run is not to be trusted past it.
pub fn messages(run: &[u8]) -> Messages<'_> {
    Messages { rest: run }
}

/// The iterator of [`messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<TypedFrame<'a>, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match TypedFrame::first(self.rest) {
            Ok((message, rest)) => {
                self.rest = rest;
                Some(Ok(message))
            }
            Err(error) => {
                self.rest = &[];
                Some(Err(error))
            }
        }
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
            let mut splitter =
                Splitter::new(PgFramer, 1024, crate::budget::InspectBudget::unlimited());
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

    /// A prepared statement's round trip as a client sends it: Bind, Execute, Sync.
    fn round_trip() -> Vec<u8> {
        [
            encode(b'B', b"\0s\0\0\0\0\0\0\0"),
            encode(b'E', b"\0\0\0\0\0"),
            encode(b'S', b""),
        ]
        .concat()
    }

    /// A read's whole messages are handed over as one run, which `messages` walks again;
    /// a message cut by the read's end, CopyData and over-cap messages end a run.
    #[test]
    fn whole_messages_of_a_read_are_one_run() {
        use crate::framing::{Piece, Splitter};
        let run = round_trip();
        let big = encode(b'Q', &[b'x'; 100]);
        let copy = encode(b'd', b"1\tsecret\n");
        let stream = [&run[..], &copy, &run, &big, &run].concat();
        let mut splitter = Splitter::new(PgFramer, 64, crate::budget::InspectBudget::unlimited());
        let mut pieces = Vec::new();
        // The last run is cut after its first byte.
        let cut = stream.len() - run.len() + 1;
        splitter.push(bytes::Bytes::copy_from_slice(&stream[..cut]), &mut pieces);
        splitter.push(bytes::Bytes::copy_from_slice(&stream[cut..]), &mut pieces);
        let kinds: Vec<String> = pieces
            .iter()
            .map(|piece| match piece {
                Piece::Frame(frame) => {
                    let kinds: Vec<u8> = messages(frame).map(|m| m.unwrap().kind).collect();
                    String::from_utf8(kinds).unwrap()
                }
                Piece::Raw(bytes) => format!("raw {}", bytes.len()),
                Piece::Oversize { len, .. } => format!("oversize {len}"),
                Piece::Broken(error) => error.reason.to_string(),
            })
            .collect();
        assert_eq!(
            kinds,
            ["BES", "raw 14", "BES", "oversize 105", "raw 105", "B", "ES"]
        );
        for piece in &pieces {
            if let Piece::Frame(frame) = piece {
                assert_eq!(PgFramer.reply_follows(frame), frame.last() == Some(&4));
            }
        }
        assert!(PgFramer.reply_follows(&encode(b'Q', b"SELECT 1\0")));
        assert!(!PgFramer.reply_follows(&encode(b'H', b"")));
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

    /// `walk` reads headers as `messages` does (it is written out, not built on it): the
    /// same messages, and the same error where a run cannot be framed.
    #[test]
    fn walk_and_messages_agree() {
        let whole = round_trip();
        let mut runs = vec![whole.clone(), whole[..whole.len() - 3].to_vec()];
        for length in [i32::MIN, -1, 0, 3, (1 << 30) + 1] {
            runs.push([&whole[..], &header(b'Q', length)[..], b"tail"].concat());
        }
        runs.push(whole[..7].to_vec());
        for run in runs {
            let mut walked = Vec::new();
            let ended = walk(&run, |message| {
                walked.push((message.kind, message.body.to_vec(), message.complete));
            });
            let mut listed = Vec::new();
            let mut failed = Ok(());
            for message in messages(&run) {
                match message {
                    Ok(message) => {
                        listed.push((message.kind, message.body.to_vec(), message.complete));
                    }
                    Err(error) => failed = Err(error),
                }
            }
            assert_eq!(walked, listed, "{run:?}");
            assert_eq!(ended, failed, "{run:?}");
        }
    }
}
