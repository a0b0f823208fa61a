//! Requests waiting for their replies, in the order the server answers them.
//!
//! PostgreSQL answers strictly in order, so one FIFO pairs requests with replies even when a
//! client pipelines many Parse/Bind/Execute before one Sync. The queue holds executions and
//! the points where the server sends ReadyForQuery (Sync, FunctionCall, and a simple Query,
//! which is both an execution and such a point). Sync points matter for errors: after an
//! ErrorResponse the server skips everything up to the next Sync.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use indextap_analyzer::command::{Observation, Outcome, Request, SqlCommand, SqlProtocol};

use crate::budget::Charge;
use crate::postgres::backend::SqlState;
use crate::postgres::tag::CommandRows;

/// Which way a COPY runs, once the server said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyDirection {
    /// Not a COPY (yet).
    None,
    /// COPY FROM STDIN: the client sends rows.
    In,
    /// COPY TO STDOUT: the server sends rows.
    Out,
}

/// What a portal run suspended at its row limit carries from its earlier Execute calls.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// When the first Execute of the run was sent.
    pub first_sent: Instant,
    /// Time spent in the earlier Execute calls.
    pub latency: Duration,
}

/// One statement run, measured as its replies arrive. Moved into the reply queue and out
/// again for every Execute, so what few runs need is boxed.
#[derive(Debug, Clone)]
pub struct Execution {
    /// The SQL text; `None` when the statement was not seen (it is then not reported).
    pub text: Option<Arc<str>>,
    /// Parameters bound.
    pub parameters: usize,
    /// How it reached the server.
    pub protocol: SqlProtocol,
    /// When the request that made it runnable was sent (this Execute, or the Query).
    pub sent: Instant,
    /// A portal run that was suspended at its row limit: its earlier Execute calls.
    pub resumed: Option<Box<Resumed>>,
    /// The portal, for an extended-protocol execution: which Bind created it (a name can be
    /// bound again).
    pub portal: Option<NonZeroU64>,
    /// DataRows since the last CommandComplete.
    pub rows_seen: u64,
    /// Rows returned so far.
    pub returned: u64,
    /// Rows written so far.
    pub affected: u64,
    /// The first SQLSTATE, if it failed.
    pub error: Option<SqlState>,
    /// COPY direction, once known.
    pub copy: CopyDirection,
    /// Which statement of a simple Query this is; `None` for an Execute.
    pub statement_index: Option<u32>,
    /// The budget's charge for `text`, when it is large: shared with the prepared statement
    /// and the other statements of its Query, which hold the same text.
    pub room: Option<Charge>,
}

impl Execution {
    /// A statement sent at `sent`.
    pub fn new(
        text: Option<Arc<str>>,
        parameters: usize,
        protocol: SqlProtocol,
        sent: Instant,
    ) -> Self {
        Self {
            text,
            parameters,
            protocol,
            sent,
            resumed: None,
            portal: None,
            rows_seen: 0,
            returned: 0,
            affected: 0,
            error: None,
            copy: CopyDirection::None,
            statement_index: None,
            room: None,
        }
    }

    /// The same, holding `room` for its text.
    pub fn charged(self, room: Option<Charge>) -> Self {
        Self { room, ..self }
    }

    /// The first statement of a simple Query sent at `sent`.
    pub fn simple(text: Option<Arc<str>>, sent: Instant) -> Self {
        Self {
            statement_index: Some(0),
            ..Self::new(text, 0, SqlProtocol::Simple, sent)
        }
    }

    /// Becomes the statement of the same simple Query that runs after this one, which
    /// completed at `at` (and was reported). After a failed statement the server runs none
    /// of the rest: the successor is never reported. In place: the queue's entry is not
    /// moved out and back for each statement.
    pub fn next_statement(&mut self, at: Instant) {
        let (text, room) = match self.error {
            Some(_) => (None, None),
            None => (self.text.take(), self.room.take()),
        };
        *self = Self {
            statement_index: self.statement_index.map(|index| index.saturating_add(1)),
            ..Self::new(text, 0, SqlProtocol::Simple, at).charged(room)
        };
    }

    /// Applies a CommandComplete. A tag's count wins over counted DataRows; tags without a
    /// count (`SHOW`, `EXPLAIN`) fall back on the rows seen.
    pub fn complete(&mut self, rows: Option<CommandRows>) {
        match rows {
            Some(CommandRows::Returned(n)) => self.returned += n,
            Some(CommandRows::Affected(n)) => self.affected += n,
            Some(CommandRows::Copied(n)) => match self.copy {
                CopyDirection::Out => self.returned += n,
                CopyDirection::In | CopyDirection::None => self.affected += n,
            },
            None => self.returned += self.rows_seen,
        }
        self.rows_seen = 0;
    }

    /// Records a failure, keeping the first.
    pub fn fail(&mut self, sqlstate: SqlState) {
        if self.error.is_none() {
            self.error = Some(sqlstate);
        }
    }

    /// The server said COPY started.
    pub fn start_copy(&mut self, direction: CopyDirection) {
        self.copy = direction;
        if direction == CopyDirection::In {
            self.protocol = SqlProtocol::Copy;
        }
    }

    /// The portal stopped at its row limit at `at`: fold this call into the run.
    pub fn suspend(&mut self, at: Instant) {
        let sent = self.sent;
        let resumed = self.resumed.get_or_insert_with(|| {
            Box::new(Resumed {
                first_sent: sent,
                latency: Duration::ZERO,
            })
        });
        resumed.latency += at.saturating_duration_since(sent);
        self.returned += std::mem::take(&mut self.rows_seen);
    }

    /// The observation of this run with `text` (the run's, taken or shared by the caller),
    /// finished at `done` (`None`: the run ended without a reply, as a suspended portal that
    /// is closed). Statements never seen or empty are not reported. Read in place, and
    /// inlined where it is reported: the run is not moved to be reported, and the
    /// observation is built where it is handed over.
    #[inline]
    pub fn observation(
        &self,
        text: Option<Arc<str>>,
        database: &Arc<str>,
        done: Option<Instant>,
    ) -> Option<Observation> {
        let text = text.filter(|text| !blank(text))?;
        let last_call = done.map(|done| done.saturating_duration_since(self.sent));
        // Most runs are one call: their age is that call's time, with no second subtraction.
        let (latency, age) = match self.resumed.as_deref() {
            None => (last_call.unwrap_or_default(), last_call),
            Some(resumed) => (
                resumed.latency + last_call.unwrap_or_default(),
                done.map(|done| done.saturating_duration_since(resumed.first_sent)),
            ),
        };
        let first_sent = self
            .resumed
            .as_deref()
            .map_or(self.sent, |resumed| resumed.first_sent);
        let age = age.unwrap_or_else(|| first_sent.elapsed());
        Some(Observation {
            request: Request::Sql(SqlCommand {
                database: database.clone(),
                text,
                parameters: self.parameters,
                protocol: self.protocol,
                statement_index: self.statement_index.map(|index| index as usize),
            }),
            outcome: Outcome {
                latency,
                error: self.error.map(|code| code.as_str().to_owned()),
                returned: self.returned + self.rows_seen,
                affected: self.affected,
                cursor_id: None,
            },
            at: wall_clock(age),
        })
    }
}

/// Whether a statement's text is empty or whitespace. A text starting with a printable ASCII
/// character, as nearly all do, is not: the Unicode-aware trim runs only for the others.
fn blank(text: &str) -> bool {
    match text.as_bytes().first() {
        Some(first) if first.is_ascii_graphic() => false,
        _ => text.trim().is_empty(),
    }
}

/// The wall-clock time `age` ago, aged from the reply just read (when there is one): one
/// clock read per observation instead of two, at the cost of placing it later by the
/// inspection's lag, microseconds, for a time kept in milliseconds.
fn wall_clock(age: Duration) -> SystemTime {
    SystemTime::now()
        .checked_sub(age)
        .unwrap_or_else(SystemTime::now)
}

/// An entry of the reply queue.
#[derive(Debug, Clone)]
pub enum Pending {
    /// An Execute: completed by CommandComplete, EmptyQueryResponse, ErrorResponse or
    /// PortalSuspended.
    Execute(Execution),
    /// A simple Query: each statement is reported as it completes; the entry stays until
    /// ReadyForQuery.
    Simple {
        /// The Query's text, and the results of the statement running now.
        execution: Execution,
        /// The frontend cycle it ended.
        cycle: u64,
    },
    /// A Sync or FunctionCall: answered by ReadyForQuery.
    Sync {
        /// The frontend cycle it ended.
        cycle: u64,
    },
}

impl Pending {
    /// Whether ReadyForQuery answers this entry.
    pub fn is_sync_point(&self) -> bool {
        !matches!(self, Pending::Execute(_))
    }
}

/// The bounded reply queue.
#[derive(Debug)]
pub struct PendingQueue {
    entries: VecDeque<Pending>,
    cap: usize,
}

impl PendingQueue {
    /// An empty queue holding at most `cap` entries.
    pub fn new(cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Whether another entry would exceed the cap.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.cap
    }

    /// Appends an entry. The caller checks [`PendingQueue::is_full`] first: past the cap
    /// the entry is dropped rather than the queue grown.
    #[inline]
    pub fn push(&mut self, entry: Pending) {
        if !self.is_full() {
            self.entries.push_back(entry);
        }
    }

    /// The oldest entry.
    pub fn front(&self) -> Option<&Pending> {
        self.entries.front()
    }

    /// The oldest entry, to change in place.
    pub fn front_mut(&mut self) -> Option<&mut Pending> {
        self.entries.front_mut()
    }

    /// The oldest entry's execution, if it is one.
    pub fn front_execution_mut(&mut self) -> Option<&mut Execution> {
        match self.entries.front_mut()? {
            Pending::Execute(execution) | Pending::Simple { execution, .. } => Some(execution),
            Pending::Sync { .. } => None,
        }
    }

    /// Removes the Sync entries right behind the oldest entry; returns how many.
    pub fn remove_syncs_behind_front(&mut self) -> usize {
        let mut removed = 0;
        while let Some(Pending::Sync { .. }) = self.entries.get(1) {
            self.entries.remove(1);
            removed += 1;
        }
        removed
    }

    /// Removes the oldest entry.
    pub fn pop(&mut self) -> Option<Pending> {
        self.entries.pop_front()
    }

    /// Removes everything; returns how many entries there were and how many were
    /// sync points (each still owed a ReadyForQuery).
    pub fn clear(&mut self) -> (usize, usize) {
        let syncs = self.entries.iter().filter(|e| e.is_sync_point()).count();
        let all = self.entries.len();
        self.entries.clear();
        (all, syncs)
    }

    /// How many entries wait.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
