//! OP_REPLY (opcode 1): the reply to an OP_QUERY.
//!
//! ```text
//! responseFlags   int32   bit 0 CursorNotFound, bit 1 QueryFailure, bit 3 AwaitCapable
//! cursorID        int64
//! startingFrom    int32
//! numberReturned  int32
//! documents       numberReturned BSON documents
//! ```
//!
//! A reply to a command on `db.$cmd` holds one document, the command's reply. A reply to a
//! legacy query holds the documents found; on QueryFailure, one `{$err, code}` document.

use bson::RawDocument;

use crate::tap::DecodeError;

use super::reader::{validate_top_level, Reader};

/// A decoded OP_REPLY, borrowing from its frame.
#[derive(Debug, Clone)]
pub struct OpReply<'a> {
    /// The response flags.
    pub response_flags: i32,
    /// The cursor left open, 0 if none.
    pub cursor_id: i64,
    /// Where in the cursor this batch starts.
    pub starting_from: i32,
    /// How many documents follow.
    pub number_returned: i32,
    /// The documents, back to back, their framing checked.
    pub documents: &'a [u8],
}

impl<'a> OpReply<'a> {
    /// Bit 0: the getMore named a cursor the server does not have.
    pub const CURSOR_NOT_FOUND: i32 = 1;
    /// Bit 1: the query failed; the one document is `{$err, code}`.
    pub const QUERY_FAILURE: i32 = 1 << 1;

    /// Parse an OP_REPLY body (the frame after its header).
    pub fn parse(body: &'a [u8]) -> Result<OpReply<'a>, DecodeError> {
        let mut reader = Reader::new(body);
        let response_flags = reader.i32("responseFlags")?;
        let cursor_id = reader.i64("cursorID")?;
        let starting_from = reader.i32("startingFrom")?;
        let number_returned = reader.i32("numberReturned")?;
        let documents = reader.rest();

        let mut count: u64 = 0;
        while !reader.is_empty() {
            let doc = reader.document("reply document")?;
            // Only the first document is ever read (a command reply, or `$err`).
            if count == 0 {
                validate_top_level(doc, "reply document")?;
            }
            count += 1;
        }
        if u64::try_from(number_returned).ok() != Some(count) {
            return Err(DecodeError::new(
                "bad_length",
                format!("numberReturned {number_returned}, {count} documents"),
            ));
        }
        Ok(OpReply {
            response_flags,
            cursor_id,
            starting_from,
            number_returned,
            documents,
        })
    }

    /// The documents in order.
    pub fn documents(&self) -> impl Iterator<Item = &'a RawDocument> + 'a {
        let mut reader = Reader::new(self.documents);
        std::iter::from_fn(move || reader.document("reply document").ok())
    }

    /// The first document: a command's reply, or a failed query's `$err`.
    pub fn first(&self) -> Option<&'a RawDocument> {
        self.documents().next()
    }

    /// Whether the query failed.
    pub fn query_failure(&self) -> bool {
        self.response_flags & Self::QUERY_FAILURE != 0
    }

    /// Whether a getMore named an unknown cursor.
    pub fn cursor_not_found(&self) -> bool {
        self.response_flags & Self::CURSOR_NOT_FOUND != 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use bson::rawdoc;

    use super::*;
    use crate::mongo::testing::reply_body;

    #[test]
    fn parses_fields_and_documents() {
        let docs = [rawdoc! {"a": 1}, rawdoc! {"a": 2}];
        let body = reply_body(8, 99, &docs);
        let reply = OpReply::parse(&body).unwrap();
        assert_eq!(reply.response_flags, 8);
        assert_eq!(reply.cursor_id, 99);
        assert_eq!(reply.starting_from, 0);
        assert_eq!(reply.number_returned, 2);
        let got: Vec<_> = reply.documents().map(|d| d.to_owned()).collect();
        assert_eq!(got, docs.to_vec());
        assert!(!reply.query_failure());
        assert!(!reply.cursor_not_found());
    }

    #[test]
    fn query_failure_flag() {
        let body = reply_body(2, 0, &[rawdoc! {"$err": "e", "code": 13}]);
        let reply = OpReply::parse(&body).unwrap();
        assert!(reply.query_failure());
        assert_eq!(reply.first().unwrap().get_i32("code").unwrap(), 13);
    }

    #[test]
    fn number_returned_must_match() {
        let mut body = reply_body(0, 0, &[rawdoc! {"a": 1}]);
        body[16] = 2;
        assert_eq!(OpReply::parse(&body).unwrap_err().reason, "bad_length");
        body[16..20].copy_from_slice(&(-1i32).to_le_bytes());
        assert_eq!(OpReply::parse(&body).unwrap_err().reason, "bad_length");
    }

    #[test]
    fn truncations_are_errors() {
        let body = reply_body(0, 5, &[rawdoc! {"a": 1}, rawdoc! {"b": "x"}]);
        for cut in 0..body.len() {
            assert!(OpReply::parse(&body[..cut]).is_err(), "cut at {cut}");
        }
    }
}
