//! Commands: what the proxy hands to the analyzer.
//!
//! A command is one request as it went over the wire, paired with its measured outcome. It may
//! still carry literal values (a MongoDB filter, SQL text); [`crate::shape`] is the only stage
//! that reads them, and nothing past it ever sees one.
//!
//! ## Layout
//! - [`Observation`]: request + outcome, the unit that crosses the bounded channel.
//! - [`Request`]: a MongoDB command document or a SQL statement.
//! - [`Outcome`]: latency, success or error code, documents/rows returned, cursor.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bson::RawDocumentBuf;

/// One request with what came of it.
#[derive(Debug, Clone)]
pub struct Observation {
    /// What the client asked.
    pub request: Request,
    /// What came back, measured at the proxy.
    pub outcome: Outcome,
    /// Wall-clock time the request was seen, for first/last-seen bookkeeping.
    pub at: SystemTime,
}

/// A decoded request, per engine.
#[derive(Debug, Clone)]
pub enum Request {
    /// A MongoDB command (OP_MSG, or OP_QUERY lowered into command form).
    Mongo(MongoCommand),
    /// One PostgreSQL statement.
    Sql(SqlCommand),
}

/// A MongoDB command: the kind 0 body, plus kind 1 document sequences.
#[derive(Debug, Clone)]
pub struct MongoCommand {
    /// The database (`$db`, or the OP_QUERY namespace's database). Shared: a connection's
    /// commands mostly name one.
    pub database: Arc<str>,
    /// The command document (kind 0 section).
    pub body: RawDocumentBuf,
    /// Kind 1 sections. Drivers send `documents`, `updates` and `deletes` this way.
    pub sequences: Vec<DocumentSequence>,
    /// The lowering cache's key for this body, when whoever decoded it gathered it on the
    /// walk it made anyway (the proxy does, with
    /// [`KeyGatherer`](crate::shape::mongo::cache::KeyGatherer)); `None` has the analyzer
    /// walk the body for it. It belongs to `database` and `body`: whoever changes either
    /// sets it back to `None`.
    pub lowering_key: Option<LoweringKey>,
}

impl MongoCommand {
    /// A command whose lowering key, if it needs one, the analyzer computes itself.
    pub fn new(
        database: impl Into<Arc<str>>,
        body: RawDocumentBuf,
        sequences: Vec<DocumentSequence>,
    ) -> Self {
        Self {
            database: database.into(),
            body,
            sequences,
            lowering_key: None,
        }
    }
}

/// The structural key of a command's lowering (`None` inside: a command the key cannot
/// stand for, lowered uncached). Made only by the analyzer's key code, so a carried key is
/// always the one the analyzer would compute from the same database and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoweringKey(pub(crate) Option<u128>);

impl LoweringKey {
    /// The key's hash; `None` when the command is lowered uncached.
    pub fn get(self) -> Option<u128> {
        self.0
    }
}

/// A kind 1 OP_MSG section.
#[derive(Debug, Clone)]
pub struct DocumentSequence {
    /// `documents`, `updates`, `deletes`, ...
    pub identifier: String,
    /// How many documents the section held.
    pub count: usize,
    /// The documents themselves. The decoder keeps them only where a shape needs them
    /// (`updates`, `deletes`); inserted documents are counted, never copied.
    pub documents: Vec<RawDocumentBuf>,
}

/// One SQL statement as the client sent it.
#[derive(Debug, Clone)]
pub struct SqlCommand {
    /// The database named in the StartupMessage. Shared: every statement of a session
    /// carries it.
    pub database: Arc<str>,
    /// The statement text. Shared, because prepared statements are executed many times.
    pub text: Arc<str>,
    /// How many parameters were bound (extended protocol). Their values are never kept.
    pub parameters: usize,
    /// How the statement reached the server.
    pub protocol: SqlProtocol,
    /// Which statement of a multi-statement text this is (0-based); `None` for the whole text.
    /// A simple Query reports each of its statements on its own, with the same text.
    pub statement_index: Option<usize>,
}

/// How a SQL statement reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlProtocol {
    /// A Query message (possibly one of several statements in it).
    Simple,
    /// Parse/Bind/Execute.
    Extended,
    /// COPY ... FROM STDIN: a write.
    Copy,
}

/// What came of a request, measured at the proxy.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// From the last byte of the request to the last byte of its reply.
    pub latency: Duration,
    /// `None` on success; otherwise the MongoDB error code or the PostgreSQL SQLSTATE.
    pub error: Option<String>,
    /// Documents or rows returned (firstBatch/nextBatch length, DataRow count).
    pub returned: u64,
    /// Rows written, where the engine reports it (CommandComplete tag, `n`).
    pub affected: u64,
    /// The cursor the reply left open, if any (MongoDB `cursor.id`, non-zero).
    pub cursor_id: Option<i64>,
}

impl Outcome {
    /// Whether the request succeeded.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}
