//! OP_QUERY (opcode 2004): legacy queries, and commands sent to `db.$cmd`.
//!
//! ```text
//! flags                 int32
//! fullCollectionName    cstring   "db.collection"
//! numberToSkip          int32
//! numberToReturn        int32     negative: a limit, and close the cursor after one batch
//! query                 document
//! returnFieldsSelector  optional document
//! ```
//!
//! Since MongoDB 3.6 drivers send OP_QUERY only for the first `hello`/`isMaster` of a
//! connection; older drivers send everything this way. Both reach the analyzer in command
//! form, so it has one input format:
//! - on `db.$cmd` the query document *is* the command, possibly wrapped as
//!   `{$query: <command>, $readPreference: ...}` (or `query`) by a mongos-era driver;
//! - on `db.coll` the query is lowered into the `find` command it stands for.

use bson::raw::cstr;
use bson::{RawBsonRef, RawDocument, RawDocumentBuf};
use indextap_analyzer::command::MongoCommand;

use crate::tap::DecodeError;

use super::databases::Databases;
use super::reader::{validate_top_level, Reader};

/// A decoded OP_QUERY, borrowing from its frame.
#[derive(Debug, Clone)]
pub struct OpQuery<'a> {
    /// The query flags (tailable, slaveOk, exhaust, ...).
    pub flags: i32,
    /// `db.collection`, or `db.$cmd` for a command.
    pub full_collection_name: &'a str,
    /// Documents to skip.
    pub number_to_skip: i32,
    /// Batch size; negative for a hard limit with a single batch.
    pub number_to_return: i32,
    /// The query, or the command on `db.$cmd`.
    pub query: &'a RawDocument,
    /// The projection, if any.
    pub return_fields_selector: Option<&'a RawDocument>,
}

impl<'a> OpQuery<'a> {
    /// Parse an OP_QUERY body (the frame after its header).
    pub fn parse(body: &'a [u8]) -> Result<OpQuery<'a>, DecodeError> {
        let mut reader = Reader::new(body);
        let flags = reader.i32("flags")?;
        let full_collection_name = reader.cstring("fullCollectionName")?;
        let number_to_skip = reader.i32("numberToSkip")?;
        let number_to_return = reader.i32("numberToReturn")?;
        let query = reader.document("query")?;
        validate_top_level(query, "query")?;
        let return_fields_selector = if reader.is_empty() {
            None
        } else {
            let selector = reader.document("returnFieldsSelector")?;
            validate_top_level(selector, "returnFieldsSelector")?;
            Some(selector)
        };
        if !reader.is_empty() {
            return Err(DecodeError::new(
                "bad_length",
                format!("{} bytes after the OP_QUERY documents", reader.remaining()),
            ));
        }
        Ok(OpQuery {
            flags,
            full_collection_name,
            number_to_skip,
            number_to_return,
            query,
            return_fields_selector,
        })
    }

    /// The database: the namespace before its first `.`.
    pub fn database(&self) -> &'a str {
        split_namespace(self.full_collection_name).0
    }

    /// The collection: the namespace after its first `.` (collections may contain dots).
    pub fn collection(&self) -> &'a str {
        split_namespace(self.full_collection_name).1
    }

    /// Whether this is a command (`db.$cmd`) rather than a query.
    pub fn is_command(&self) -> bool {
        self.collection() == "$cmd"
    }

    /// The command document on `db.$cmd`, unwrapped from `$query` / `query` if wrapped.
    /// (On a collection this is the wrapped query's filter, or the query itself.)
    pub fn command(&self) -> &'a RawDocument {
        unwrap_query(self.query).map_or(self.query, |(inner, _)| inner)
    }

    /// The request in command form.
    pub fn to_command(&self) -> MongoCommand {
        self.to_command_in(&mut Databases::default())
    }

    /// [`to_command`](Self::to_command), its database name shared through `databases`.
    pub fn to_command_in(&self, databases: &mut Databases) -> MongoCommand {
        let body = if self.is_command() {
            self.command().to_owned()
        } else {
            self.to_find()
        };
        MongoCommand::new(databases.name(self.database()), body, Vec::new())
    }

    /// A legacy query as the `find` command it stands for.
    fn to_find(&self) -> RawDocumentBuf {
        let (filter, modifiers) = match unwrap_query(self.query) {
            Some((filter, wrapper)) => (filter, Some(wrapper)),
            None => (self.query, None),
        };
        let modifier = |dollar: &str, bare: &str| {
            let wrapper = modifiers?;
            [dollar, bare]
                .into_iter()
                .find_map(|key| wrapper.get(key).ok().flatten())
        };

        let mut find = RawDocumentBuf::new();
        find.append(cstr!("find"), self.collection());
        find.append(cstr!("filter"), filter);
        if let Some(sort) = modifier("$orderby", "orderby") {
            find.append(cstr!("sort"), sort);
        }
        if let Some(hint) = modifier("$hint", "hint") {
            find.append(cstr!("hint"), hint);
        }
        if let Some(projection) = self.return_fields_selector {
            find.append(cstr!("projection"), projection);
        }
        if self.number_to_skip != 0 {
            find.append(cstr!("skip"), i64::from(self.number_to_skip));
        }
        if self.number_to_return != 0 {
            find.append(
                cstr!("limit"),
                i64::from(self.number_to_return).saturating_abs(),
            );
            if self.number_to_return < 0 {
                find.append(cstr!("singleBatch"), true);
            }
        }
        find
    }
}

/// `("db", "coll.with.dots")` from `"db.coll.with.dots"`.
fn split_namespace(ns: &str) -> (&str, &str) {
    ns.split_once('.').unwrap_or((ns, ""))
}

/// The inner document of a wrapped query (`{$query: {...}, $orderby: ...}`, or the older
/// `{query: {...}, orderby: ...}`), with the wrapper. Only a *first* key counts: a command is
/// named by its first key and none is called `query`, while `count` has a `query` argument.
fn unwrap_query(query: &RawDocument) -> Option<(&RawDocument, &RawDocument)> {
    let first = query.iter_elements().next()?.ok()?;
    if !matches!(first.key().as_str(), "$query" | "query") {
        return None;
    }
    match first.value().ok()? {
        RawBsonRef::Document(inner) => Some((inner, query)),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use bson::{rawdoc, Document};

    use super::*;
    use crate::mongo::testing::query_body;

    fn parse(body: &[u8]) -> OpQuery<'_> {
        OpQuery::parse(body).unwrap()
    }

    #[test]
    fn a_command_on_cmd_is_the_command() {
        let body = query_body("admin.$cmd", 0, -1, &rawdoc! {"isMaster": 1}, None);
        let query = parse(&body);
        assert!(query.is_command());
        assert_eq!(query.database(), "admin");
        let command = query.to_command();
        assert_eq!(&*command.database, "admin");
        assert_eq!(command.body, rawdoc! {"isMaster": 1});
    }

    #[test]
    fn a_wrapped_command_is_unwrapped() {
        let wrapped = rawdoc! {
            "$query": {"count": "orders", "query": {"status": "A"}},
            "$readPreference": {"mode": "secondaryPreferred"},
        };
        let body = query_body("app.$cmd", 0, -1, &wrapped, None);
        let command = parse(&body).to_command();
        assert_eq!(
            command.body,
            rawdoc! {"count": "orders", "query": {"status": "A"}}
        );

        // `query` as an argument (not the first key) is left alone.
        let count = rawdoc! {"count": "orders", "query": {"status": "A"}};
        let body = query_body("app.$cmd", 0, -1, &count, None);
        assert_eq!(parse(&body).to_command().body, count);
    }

    #[test]
    fn a_legacy_query_becomes_find() {
        let query = rawdoc! {"status": "A", "qty": {"$lt": 30}};
        let selector = rawdoc! {"item": 1};
        let body = query_body("app.orders.archive", 5, -10, &query, Some(&selector));
        let parsed = parse(&body);
        assert!(!parsed.is_command());
        assert_eq!(parsed.collection(), "orders.archive");
        let command = parsed.to_command();
        assert_eq!(&*command.database, "app");
        let expected = rawdoc! {
            "find": "orders.archive",
            "filter": {"status": "A", "qty": {"$lt": 30}},
            "projection": {"item": 1},
            "skip": 5_i64,
            "limit": 10_i64,
            "singleBatch": true,
        };
        assert_eq!(
            Document::try_from(command.body).unwrap(),
            Document::try_from(expected).unwrap()
        );
    }

    #[test]
    fn a_wrapped_legacy_query_keeps_its_sort_and_hint() {
        let query = rawdoc! {
            "$query": {"user_id": 7},
            "$orderby": {"created_at": -1},
            "$hint": {"user_id": 1},
        };
        let body = query_body("app.events", 0, 0, &query, None);
        let expected = rawdoc! {
            "find": "events",
            "filter": {"user_id": 7},
            "sort": {"created_at": -1},
            "hint": {"user_id": 1},
        };
        assert_eq!(parse(&body).to_command().body, expected);

        let bare = rawdoc! {"query": {"a": 1}, "orderby": {"b": 1}};
        let body = query_body("app.events", 0, 3, &bare, None);
        let expected = rawdoc! {
            "find": "events",
            "filter": {"a": 1},
            "sort": {"b": 1},
            "limit": 3_i64,
        };
        assert_eq!(parse(&body).to_command().body, expected);
    }

    #[test]
    fn a_namespace_without_a_dot_is_all_database() {
        let body = query_body("nodot", 0, 0, &rawdoc! {}, None);
        let parsed = parse(&body);
        assert_eq!(parsed.database(), "nodot");
        assert_eq!(parsed.collection(), "");
    }

    #[test]
    fn malformed_queries_are_rejected() {
        let good = query_body("a.b", 0, 0, &rawdoc! {"x": 1}, None);
        for cut in 0..good.len() {
            assert!(OpQuery::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(OpQuery::parse(&trailing).is_err());
        let mut extra = good.clone();
        extra.extend_from_slice(&[5, 0, 0, 0, 0, 9]);
        assert_eq!(OpQuery::parse(&extra).unwrap_err().reason, "bad_length");
    }
}
