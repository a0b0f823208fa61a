//! A checked cursor over a message body.
//!
//! Every read checks that the bytes are there, parses them, and only then advances, so a
//! failed read leaves the cursor where it was and a short buffer is an error, never a panic.
//! All integers on the MongoDB wire are little-endian.

use bson::{RawBsonRef, RawDocument};

use crate::tap::DecodeError;

/// The smallest BSON document: a length and a terminating zero.
const MIN_DOCUMENT_LEN: usize = 5;

/// A cursor over borrowed bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether everything has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without advancing.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| {
                DecodeError::new(
                    "truncated",
                    format!(
                        "{what}: need {n} bytes at offset {}, have {}",
                        self.pos,
                        self.remaining()
                    ),
                )
            })?;
        let bytes = self.buf.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A little-endian `int32`.
    pub(crate) fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        self.array(what).map(i32::from_le_bytes)
    }

    /// A little-endian `uint32`.
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_le_bytes)
    }

    /// A little-endian `int64`.
    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        self.array(what).map(i64::from_le_bytes)
    }

    /// A BSON cstring: UTF-8 up to a zero byte, which is consumed and not returned.
    pub(crate) fn cstring(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let rest = self.rest();
        let len = rest.iter().position(|b| *b == 0).ok_or_else(|| {
            DecodeError::new(
                "truncated",
                format!("{what}: unterminated cstring at offset {}", self.pos),
            )
        })?;
        let text = std::str::from_utf8(rest.get(..len).unwrap_or_default()).map_err(|_| {
            DecodeError::new(
                "bad_cstring",
                format!("{what}: invalid UTF-8 at offset {}", self.pos),
            )
        })?;
        self.pos += len + 1;
        Ok(text)
    }

    /// One BSON document, its framing checked (length, terminator). Its elements are not
    /// walked: see [`validate_top_level`] for that.
    pub(crate) fn document(&mut self, what: &str) -> Result<&'a RawDocument, DecodeError> {
        let rest = self.rest();
        let declared = rest
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(i32::from_le_bytes)
            .ok_or_else(|| {
                DecodeError::new(
                    "truncated",
                    format!("{what}: document length missing at offset {}", self.pos),
                )
            })?;
        let len = usize::try_from(declared)
            .ok()
            .filter(|len| *len >= MIN_DOCUMENT_LEN)
            .ok_or_else(|| {
                DecodeError::new(
                    "bad_bson",
                    format!("{what}: document length {declared} at offset {}", self.pos),
                )
            })?;
        if len > rest.len() {
            return Err(DecodeError::new(
                "truncated",
                format!(
                    "{what}: document of {len} bytes at offset {}, have {}",
                    self.pos,
                    rest.len()
                ),
            ));
        }
        let bytes = rest.get(..len).unwrap_or_default();
        let doc = RawDocument::from_bytes(bytes).map_err(|_| {
            DecodeError::new(
                "bad_bson",
                format!("{what}: malformed document at offset {}", self.pos),
            )
        })?;
        self.pos += len;
        Ok(doc)
    }
}

/// Walk a document's top-level elements, so that garbage is caught here and not by whoever
/// reads the document later. Nested documents are only checked for framing, which keeps this
/// linear in the number of top-level keys, not in the size of the document.
pub(crate) fn validate_top_level(doc: &RawDocument, what: &str) -> Result<(), DecodeError> {
    validate_top_level_with(doc, what, |_, _| {})
}

/// [`validate_top_level`], showing each element (its name and its value) to `visit` on the
/// way, so that the fields the caller needs cost no second walk.
pub(crate) fn validate_top_level_with<'a>(
    doc: &'a RawDocument,
    what: &str,
    mut visit: impl FnMut(&'a str, RawBsonRef<'a>),
) -> Result<(), DecodeError> {
    for element in doc {
        let (name, value) = element
            .map_err(|_| DecodeError::new("bad_bson", format!("{what}: malformed element")))?;
        visit(name.as_str(), value);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn reads_advance_only_on_success() {
        let mut reader = Reader::new(&[1, 0, 0]);
        let err = reader.i32("x").unwrap_err();
        assert_eq!(err.reason, "truncated");
        assert_eq!(reader.remaining(), 3);
        assert_eq!(reader.u8("x").unwrap(), 1);
        assert_eq!(reader.remaining(), 2);
    }

    #[test]
    fn cstring_needs_a_terminator_and_utf8() {
        assert_eq!(
            Reader::new(b"abc").cstring("x").unwrap_err().reason,
            "truncated"
        );
        assert_eq!(
            Reader::new(b"\xff\0").cstring("x").unwrap_err().reason,
            "bad_cstring"
        );
        let mut reader = Reader::new(b"db.coll\0rest");
        assert_eq!(reader.cstring("x").unwrap(), "db.coll");
        assert_eq!(reader.rest(), b"rest");
    }

    #[test]
    fn document_framing_is_checked() {
        assert_eq!(
            Reader::new(&[4, 0, 0, 0, 0])
                .document("x")
                .unwrap_err()
                .reason,
            "bad_bson"
        );
        assert_eq!(
            Reader::new(&[9, 0, 0, 0, 0])
                .document("x")
                .unwrap_err()
                .reason,
            "truncated"
        );
        assert_eq!(
            Reader::new(&[5, 0, 0, 0, 1])
                .document("x")
                .unwrap_err()
                .reason,
            "bad_bson"
        );
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff])
                .document("x")
                .unwrap_err()
                .reason,
            "bad_bson"
        );
        let mut reader = Reader::new(&[5, 0, 0, 0, 0, 7]);
        assert!(reader.document("x").is_ok());
        assert_eq!(reader.rest(), &[7]);
    }

    #[test]
    fn top_level_garbage_is_caught() {
        // A string element whose length runs past the document.
        let bytes = [
            0x10, 0, 0, 0, 0x02, b'a', 0, 0x40, 0, 0, 0, b'x', 0, 0, 0, 0,
        ];
        let doc = RawDocument::from_bytes(&bytes).unwrap();
        assert_eq!(validate_top_level(doc, "x").unwrap_err().reason, "bad_bson");
    }
}
