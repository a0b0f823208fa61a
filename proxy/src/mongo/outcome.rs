//! Reply documents → [`Outcome`]: success or error code, documents returned, rows written,
//! the cursor left open.
//!
//! Only counts, codes and cursor ids are read; no value from a reply is kept. Latency is the
//! session's business and is left at zero here. What else a reply is read for ([`Reading`])
//! is told once per request, from its name, so the request is not walked again at its reply.

use bson::{RawArray, RawBsonRef, RawDocument};
use indextap_analyzer::command::Outcome;

use super::op_reply::OpReply;

/// MongoDB's CursorNotFound error code, for a legacy reply's CursorNotFound flag.
const CURSOR_NOT_FOUND: &str = "43";

/// What a reply is read for beyond its error and cursor, told by the request's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Reading {
    /// Nothing more (`find`, `aggregate`, `getMore`, any other command).
    #[default]
    Cursor,
    /// `n`, as documents returned.
    Count,
    /// The length of `values`, as documents returned.
    Distinct,
    /// `n`, as documents written.
    Write,
    /// `lastErrorObject.n` written and whether `value` came back.
    FindAndModify,
}

impl Reading {
    /// The reading for a command named `name` (its first key).
    pub(crate) fn of(name: Option<&str>) -> Self {
        match name {
            Some("count") => Reading::Count,
            Some("distinct") => Reading::Distinct,
            Some("insert" | "update" | "delete") => Reading::Write,
            Some("findAndModify" | "findandmodify") => Reading::FindAndModify,
            _ => Reading::Cursor,
        }
    }

    /// The reading for a command document, from its first key.
    pub(crate) fn of_command(request: &RawDocument) -> Self {
        let first = request.iter_elements().next().and_then(Result::ok);
        Self::of(first.as_ref().map(|first| first.key().as_str()))
    }
}

/// The outcome of a command, from the fields of its reply document.
pub(crate) fn command_outcome(reading: Reading, fields: &ReplyFields<'_>) -> Outcome {
    let mut outcome = Outcome {
        error: fields.error(),
        ..Outcome::default()
    };
    if let Some(cursor) = fields.cursor.and_then(RawBsonRef::as_document) {
        let cursor = CursorFields::read(cursor);
        outcome.cursor_id = integer(cursor.id).filter(|id| *id != 0);
        let batch = as_array(cursor.first_batch).or_else(|| as_array(cursor.next_batch));
        let batch = batch.map(array_len);
        outcome.returned = batch.unwrap_or(0);
    }
    let n = || {
        integer(fields.n)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0)
    };
    match reading {
        Reading::Count => outcome.returned = n(),
        Reading::Distinct => outcome.returned = as_array(fields.values).map_or(0, array_len),
        Reading::Write => outcome.affected = n(),
        Reading::FindAndModify => {
            outcome.affected = fields
                .last_error_object
                .and_then(RawBsonRef::as_document)
                .and_then(|last| integer(last.get("n").ok().flatten()))
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0);
            let value = fields.value.and_then(RawBsonRef::as_document);
            outcome.returned = u64::from(value.is_some());
        }
        Reading::Cursor => {}
    }
    outcome
}

/// Fields of one document found in one walk over its elements (a reply comes with every
/// command; looking each field up on its own walked the document once per field). As with a
/// lookup, the first element of a name counts. Only the wanted values are decoded; the walk
/// stops at an element it cannot frame or a wanted value it cannot decode, and once nothing
/// more is wanted (a cursor's `ns` and the rest are not stepped over). An OP_MSG reply's
/// own fields are gathered while its body is validated (`op_msg`), so only nested documents
/// (the cursor) and OP_REPLY documents are read with [`Fields::read`].
pub(crate) trait Fields<'a>: Default {
    /// Where the value named `key` is kept, if it is wanted.
    fn slot(&mut self, key: &str) -> Option<&mut Option<RawBsonRef<'a>>>;

    /// Keep `value` if `key` is wanted and not found yet.
    fn offer(&mut self, key: &str, value: RawBsonRef<'a>) {
        if let Some(slot @ None) = self.slot(key) {
            *slot = Some(value);
        }
    }

    /// Whether every wanted field is found, so the rest of the document need not be walked.
    /// Only a document whose fields can all be known early says so: a reply's error fields
    /// may come anywhere, but a cursor's id and batch are all a cursor is read for.
    fn complete(&self) -> bool {
        false
    }

    /// The fields of `document`; only the wanted values are decoded.
    fn read(document: &'a RawDocument) -> Self {
        let mut fields = Self::default();
        for element in document.iter_elements().map_while(Result::ok) {
            if let Some(slot @ None) = fields.slot(element.key().as_str()) {
                match element.value() {
                    Ok(value) => *slot = Some(value),
                    Err(_) => break,
                }
                if fields.complete() {
                    break;
                }
            }
        }
        fields
    }
}

/// The fields of a command reply that an outcome is made of.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReplyFields<'a> {
    ok: Option<RawBsonRef<'a>>,
    code: Option<RawBsonRef<'a>>,
    write_errors: Option<RawBsonRef<'a>>,
    write_concern_error: Option<RawBsonRef<'a>>,
    cursor: Option<RawBsonRef<'a>>,
    n: Option<RawBsonRef<'a>>,
    values: Option<RawBsonRef<'a>>,
    last_error_object: Option<RawBsonRef<'a>>,
    value: Option<RawBsonRef<'a>>,
}

impl<'a> Fields<'a> for ReplyFields<'a> {
    fn slot(&mut self, key: &str) -> Option<&mut Option<RawBsonRef<'a>>> {
        Some(match key {
            "ok" => &mut self.ok,
            "code" => &mut self.code,
            "n" => &mut self.n,
            "cursor" => &mut self.cursor,
            "writeErrors" => &mut self.write_errors,
            "writeConcernError" => &mut self.write_concern_error,
            "values" => &mut self.values,
            "lastErrorObject" => &mut self.last_error_object,
            "value" => &mut self.value,
            _ => return None,
        })
    }
}

impl ReplyFields<'static> {
    /// No field found: what a message parsed as a request answers for its reply fields.
    pub(crate) const NONE: Self = Self {
        ok: None,
        code: None,
        write_errors: None,
        write_concern_error: None,
        cursor: None,
        n: None,
        values: None,
        last_error_object: None,
        value: None,
    };
}

impl ReplyFields<'_> {
    /// `None` when `ok` is 1 and no write failed; else the first error code found, or
    /// `unknown`. A write command can answer `ok: 1` while statements failed (`writeErrors`)
    /// or the write concern was not met (`writeConcernError`): both count as errors.
    fn error(&self) -> Option<String> {
        let unknown = || "unknown".to_owned();
        if self.ok.and_then(number) != Some(1.0) {
            return Some(integer(self.code).map_or_else(unknown, |code| code.to_string()));
        }
        if let Some(errors) = as_array(self.write_errors) {
            if let Some(first) = errors.into_iter().next() {
                let first = first.ok().and_then(RawBsonRef::as_document);
                return Some(first.and_then(code).unwrap_or_else(unknown));
            }
        }
        if let Some(concern) = self.write_concern_error.and_then(RawBsonRef::as_document) {
            return Some(code(concern).unwrap_or_else(unknown));
        }
        None
    }
}

/// A cursor's id and batch, found in one walk.
#[derive(Default)]
struct CursorFields<'a> {
    id: Option<RawBsonRef<'a>>,
    first_batch: Option<RawBsonRef<'a>>,
    next_batch: Option<RawBsonRef<'a>>,
}

impl<'a> Fields<'a> for CursorFields<'a> {
    fn slot(&mut self, key: &str) -> Option<&mut Option<RawBsonRef<'a>>> {
        Some(match key {
            "id" => &mut self.id,
            "firstBatch" => &mut self.first_batch,
            "nextBatch" => &mut self.next_batch,
            _ => return None,
        })
    }

    /// An id and a `firstBatch` array: nothing later changes the outcome (a `firstBatch` is
    /// read before a `nextBatch`, so a `nextBatch` alone does not end the walk).
    fn complete(&self) -> bool {
        self.id.is_some() && matches!(self.first_batch, Some(RawBsonRef::Array(_)))
    }
}

fn as_array(value: Option<RawBsonRef<'_>>) -> Option<&RawArray> {
    value.and_then(RawBsonRef::as_array)
}

/// The outcome of a legacy (non-command) OP_QUERY, from its OP_REPLY.
pub(crate) fn legacy_query_outcome(reply: &OpReply<'_>) -> Outcome {
    let error = if reply.query_failure() {
        Some(
            reply
                .first()
                .and_then(code)
                .unwrap_or_else(|| "unknown".to_owned()),
        )
    } else if reply.cursor_not_found() {
        Some(CURSOR_NOT_FOUND.to_owned())
    } else {
        None
    };
    Outcome {
        error,
        returned: u64::try_from(reply.number_returned).unwrap_or(0),
        cursor_id: Some(reply.cursor_id).filter(|id| *id != 0),
        ..Outcome::default()
    }
}

/// A document's `code`, as text.
fn code(doc: &RawDocument) -> Option<String> {
    integer(doc.get("code").ok().flatten()).map(|code| code.to_string())
}

fn array_len(array: &RawArray) -> u64 {
    let len = array.iter_elements().map_while(Result::ok).count();
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// A numeric value as an integer, whichever BSON number type carries it.
fn integer(value: Option<RawBsonRef<'_>>) -> Option<i64> {
    match value? {
        RawBsonRef::Int32(v) => Some(i64::from(v)),
        RawBsonRef::Int64(v) => Some(v),
        // Saturating: a code or count is never near the bounds, and garbage must not panic.
        RawBsonRef::Double(v) if v.is_finite() => Some(v as i64),
        _ => None,
    }
}

/// A numeric or boolean value as a float (`ok` comes as 1.0, 1, 1L or true).
fn number(value: RawBsonRef<'_>) -> Option<f64> {
    match value {
        RawBsonRef::Double(v) => Some(v),
        RawBsonRef::Int32(v) => Some(f64::from(v)),
        RawBsonRef::Int64(v) => Some(v as f64),
        RawBsonRef::Boolean(v) => Some(if v { 1.0 } else { 0.0 }),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use bson::rawdoc;

    use super::*;
    use crate::mongo::testing::reply_body;

    fn outcome(request: bson::RawDocumentBuf, reply: bson::RawDocumentBuf) -> Outcome {
        command_outcome(Reading::of_command(&request), &ReplyFields::read(&reply))
    }

    #[test]
    fn ok_in_every_number_type() {
        let find = rawdoc! {"find": "c"};
        for ok in [
            rawdoc! {"ok": 1.0},
            rawdoc! {"ok": 1},
            rawdoc! {"ok": 1_i64},
            rawdoc! {"ok": true},
        ] {
            assert!(outcome(find.clone(), ok).is_ok());
        }
    }

    #[test]
    fn errors_carry_the_code() {
        let find = rawdoc! {"find": "c"};
        let failed = outcome(
            find.clone(),
            rawdoc! {"ok": 0.0, "errmsg": "secret", "code": 2},
        );
        assert_eq!(failed.error.as_deref(), Some("2"));
        let no_code = outcome(find.clone(), rawdoc! {"ok": 0.0});
        assert_eq!(no_code.error.as_deref(), Some("unknown"));
        let no_ok = outcome(find, rawdoc! {});
        assert_eq!(no_ok.error.as_deref(), Some("unknown"));
    }

    #[test]
    fn the_first_element_of_a_name_counts() {
        // As a lookup reads the reply: a repeated name does not replace the first one.
        let reply = rawdoc! {"ok": 0.0, "code": 11000, "code": 2, "ok": 1};
        let failed = outcome(rawdoc! {"find": "c"}, reply);
        assert_eq!(failed.error.as_deref(), Some("11000"));
    }

    #[test]
    fn write_errors_and_write_concern_errors_count() {
        let insert = rawdoc! {"insert": "c"};
        let dup = outcome(
            insert.clone(),
            rawdoc! {"n": 1, "writeErrors": [{"index": 1, "code": 11000}, {"index": 2, "code": 121}], "ok": 1.0},
        );
        assert_eq!(dup.error.as_deref(), Some("11000"));
        assert_eq!(dup.affected, 1);
        let concern = outcome(
            insert.clone(),
            rawdoc! {"n": 1, "writeConcernError": {"code": 64}, "ok": 1},
        );
        assert_eq!(concern.error.as_deref(), Some("64"));
        let clean = outcome(insert, rawdoc! {"n": 3, "writeErrors": [], "ok": 1});
        assert!(clean.is_ok());
        assert_eq!(clean.affected, 3);
    }

    #[test]
    fn cursors_and_batches() {
        let first = outcome(
            rawdoc! {"find": "c"},
            rawdoc! {"cursor": {"firstBatch": [{"a": 1}, {"a": 2}], "id": 77_i64, "ns": "d.c"}, "ok": 1},
        );
        assert_eq!(first.returned, 2);
        assert_eq!(first.cursor_id, Some(77));
        let next = outcome(
            rawdoc! {"getMore": 77_i64, "collection": "c"},
            rawdoc! {"cursor": {"nextBatch": [{"a": 3}], "id": 0_i64, "ns": "d.c"}, "ok": 1},
        );
        assert_eq!(next.returned, 1);
        assert_eq!(next.cursor_id, None);
    }

    /// The cursor walk ends once its id and `firstBatch` are read; a `firstBatch` still wins
    /// over a `nextBatch` that came before it, and the first of a name counts.
    #[test]
    fn the_cursor_walk_ends_with_what_decides_the_outcome() {
        let read = |cursor: bson::RawDocumentBuf| {
            outcome(rawdoc! {"find": "c"}, rawdoc! {"cursor": cursor, "ok": 1})
        };
        let ended =
            read(rawdoc! {"firstBatch": [1, 2], "id": 5_i64, "firstBatch": [], "id": 6_i64});
        assert_eq!((ended.returned, ended.cursor_id), (2, Some(5)));
        let later_first = read(rawdoc! {"nextBatch": [1], "id": 5_i64, "firstBatch": [1, 2, 3]});
        assert_eq!((later_first.returned, later_first.cursor_id), (3, Some(5)));
        let not_an_array = read(rawdoc! {"firstBatch": 1, "id": 5_i64, "nextBatch": [1, 2]});
        assert_eq!(
            (not_an_array.returned, not_an_array.cursor_id),
            (2, Some(5))
        );
    }

    #[test]
    fn counts_and_distinct() {
        let count = outcome(rawdoc! {"count": "c"}, rawdoc! {"n": 42, "ok": 1});
        assert_eq!(count.returned, 42);
        let distinct = outcome(
            rawdoc! {"distinct": "c", "key": "k"},
            rawdoc! {"values": ["x", "y", "z"], "ok": 1},
        );
        assert_eq!(distinct.returned, 3);
        let fam = outcome(
            rawdoc! {"findAndModify": "c"},
            rawdoc! {"lastErrorObject": {"n": 1, "updatedExisting": true}, "value": {"a": 1}, "ok": 1},
        );
        assert_eq!((fam.returned, fam.affected), (1, 1));
    }

    #[test]
    fn legacy_replies() {
        let body = reply_body(0, 5, &[rawdoc! {"a": 1}, rawdoc! {"a": 2}]);
        let reply = OpReply::parse(&body).unwrap();
        let outcome = legacy_query_outcome(&reply);
        assert!(outcome.is_ok());
        assert_eq!(outcome.returned, 2);
        assert_eq!(outcome.cursor_id, Some(5));

        let body = reply_body(2, 0, &[rawdoc! {"$err": "secret", "code": 17}]);
        let outcome = legacy_query_outcome(&OpReply::parse(&body).unwrap());
        assert_eq!(outcome.error.as_deref(), Some("17"));

        let body = reply_body(1, 0, &[]);
        let outcome = legacy_query_outcome(&OpReply::parse(&body).unwrap());
        assert_eq!(outcome.error.as_deref(), Some("43"));
    }
}
