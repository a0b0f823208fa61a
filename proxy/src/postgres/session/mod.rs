//! One PostgreSQL session's inspector: typed messages in, observations out.
//!
//! The session mirrors the server's state as far as pairing needs it: prepared statements
//! (named ones live for the connection, the unnamed one is replaced by each Parse), portals
//! (statement and parameter count, never values), and the queue of requests waiting for
//! replies. Each Execute becomes one observation when its CommandComplete,
//! EmptyQueryResponse, ErrorResponse or final PortalSuspended-then-complete arrives. A
//! simple Query becomes one observation per statement, at each CommandComplete,
//! EmptyQueryResponse or ErrorResponse, numbered by `statement_index` (the analyzer lowers
//! that statement of the text alone); after an error the server runs none of the rest, so
//! nothing more is reported.
//!
//! Latency runs from the frame that made the statement runnable (its Execute, the Query, or
//! the previous statement's completion) to the frame that completed it, both as timed by
//! the relay.
//!
//! ## Layout
//! - [`pending`]: executions and the reply queue.
//! - [`names`]: the capped statement and portal maps.
//! - `replies`: backend messages: completions, errors, suspended portals, ReadyForQuery.
//! - this file: [`PgSession`], frontend messages, and the [`Inspector`] entry point.
//!
//! When pairing is lost (frames dropped, or the queue overflowed) the session stops tracking
//! requests until the ReadyForQuery of the last request it had seen, then starts afresh:
//! a few observations are lost, none is paired with another statement's reply.

pub mod names;
pub mod pending;
mod replies;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests;

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Instant;

use indextap_analyzer::command::SqlProtocol;

use self::names::NameMap;
use self::pending::{Execution, Pending, PendingQueue};
use super::backend;
use super::frame::{messages, walk};
use super::frontend::{self, BindInfo, CloseTarget, Frontend};
use super::Decoded;
use crate::budget::{charge_copy, Charge, NoRoom};
use crate::tap::{DecodeError, Direction, Events, Inspector, TapFrame};

/// Prepared statements kept per connection.
const MAX_STATEMENTS: usize = 4096;
/// Bytes of prepared statement text kept per connection.
const MAX_STATEMENT_BYTES: usize = 4 << 20;
/// Portals kept per connection.
const MAX_PORTALS: usize = 1024;
/// Requests waiting for replies per connection.
const MAX_PENDING: usize = 4096;

/// A bound portal.
#[derive(Debug)]
struct Portal {
    /// The statement's text, if the statement was seen.
    statement: Option<Statement>,
    parameters: usize,
    /// The frontend cycle it was bound in: a transaction ending after it destroys it.
    cycle: u64,
    id: NonZeroU64,
    /// A run suspended at its row limit, waiting for the next Execute. Boxed: a portal is
    /// moved on every Bind, and few are ever suspended.
    suspended: Option<Box<Execution>>,
}

/// A prepared statement's text, and the budget's charge for it when it is large.
#[derive(Debug, Clone)]
struct Statement {
    text: Arc<str>,
    room: Option<Charge>,
}

/// The inspector of one PostgreSQL session.
#[derive(Debug)]
pub struct PgSession {
    database: Arc<str>,
    statements: NameMap<Statement>,
    portals: NameMap<Portal>,
    pending: PendingQueue,
    /// Sync points (Query, Sync, FunctionCall) the client has sent.
    cycle: u64,
    /// The id of the portal bound last.
    next_portal_id: NonZeroU64,
    /// While pairing is lost: how many ReadyForQuery still answer untracked requests.
    lost: Option<usize>,
    /// The server is in COPY FROM STDIN mode, where it ignores Sync (until CopyDone,
    /// CopyFail, or its own ErrorResponse).
    copy_in: bool,
}

impl PgSession {
    /// A session on `database` (from the StartupMessage).
    pub fn new(database: String) -> Self {
        Self {
            database: Arc::from(database),
            statements: NameMap::new(MAX_STATEMENTS, MAX_STATEMENT_BYTES),
            portals: NameMap::new(MAX_PORTALS, usize::MAX),
            pending: PendingQueue::new(MAX_PENDING),
            cycle: 0,
            next_portal_id: NonZeroU64::MIN,
            lost: None,
            copy_in: false,
        }
    }

    fn on_frontend(&mut self, message: Frontend<'_>, at: Instant, events: &mut dyn Events) {
        match message {
            Frontend::Query(text) => {
                self.cycle += 1;
                // A simple Query destroys the unnamed statement and portal.
                self.statements.remove("");
                self.drop_portal("", events);
                // The decoder copied the text out of the frame; without room it is forgotten
                // (the Query is still paired with its replies, just not reported).
                let room = text.as_ref().map(|text| charge_copy(text.len(), events));
                let execution = match room.transpose() {
                    Err(NoRoom) => Execution::simple(None, at),
                    Ok(room) => Execution::simple(text, at).charged(room.flatten()),
                };
                self.track(
                    Pending::Simple {
                        execution,
                        cycle: self.cycle,
                    },
                    events,
                );
            }
            Frontend::Parse(Some(parse)) => {
                let weight = parse.text.len();
                let Ok(room) = charge_copy(weight, events) else {
                    // Without room the statement is not kept: its Bind counts as unknown.
                    self.statements.remove(&parse.name);
                    return;
                };
                let statement = Statement {
                    text: Arc::from(parse.text),
                    room,
                };
                let displaced = self.statements.insert(parse.name, statement, weight);
                for _ in displaced.evicted.iter().chain(&displaced.refused) {
                    events.count("statement_evicted");
                }
            }
            Frontend::Bind(Some(bind)) => self.bind(bind, events),
            // An unreadable Parse or Bind (over the inspection cap) redefined a statement or
            // portal we cannot name. Drivers use the unnamed ones for one-off statements, so
            // forget those rather than pair the next Execute with a stale statement.
            Frontend::Parse(None) => {
                self.statements.remove("");
            }
            Frontend::Bind(None) => self.drop_portal("", events),
            Frontend::Execute(portal) => {
                let execution = self.execution(portal, at, events);
                self.track(Pending::Execute(execution), events);
            }
            Frontend::Close(Some(CloseTarget::Statement(name))) => {
                self.statements.remove(&name);
            }
            Frontend::Close(Some(CloseTarget::Portal(name))) => self.drop_portal(&name, events),
            // No ReadyForQuery will answer a Sync sent during COPY FROM STDIN.
            Frontend::Sync if self.copy_in => events.count("sync_in_copy"),
            Frontend::Sync | Frontend::FunctionCall => {
                self.cycle += 1;
                self.track(Pending::Sync { cycle: self.cycle }, events);
            }
            Frontend::CopyDone | Frontend::CopyFail => self.copy_in = false,
            Frontend::Close(None)
            | Frontend::Describe
            | Frontend::Flush
            | Frontend::Terminate
            | Frontend::CopyData
            | Frontend::Password
            | Frontend::Unknown => {}
        }
    }

    fn bind(&mut self, bind: BindInfo<'_>, events: &mut dyn Events) {
        let statement = self
            .statements
            .get_cloned_as_sent(bind.statement, frontend::lossy);
        if statement.is_none() {
            events.count("unknown_statement");
        }
        self.next_portal_id = self.next_portal_id.saturating_add(1);
        let portal = Portal {
            statement,
            parameters: bind.parameters,
            cycle: self.cycle,
            id: self.next_portal_id,
            suspended: None,
        };
        // Drivers bind the unnamed portal on every round trip: it takes the direct path.
        let portal = if bind.portal.is_empty() {
            match self.portals.set_unnamed(portal, 0) {
                Ok(replaced) => {
                    if let Some(old) = replaced {
                        self.end_portal(old, events);
                    }
                    return;
                }
                Err(portal) => portal,
            }
        } else {
            portal
        };
        let displaced = self.portals.insert(bind.portal.into_owned(), portal, 0);
        for _ in &displaced.evicted {
            events.count("portal_evicted");
        }
        for old in displaced.replaced.into_iter().chain(displaced.evicted) {
            self.end_portal(old, events);
        }
    }

    /// The execution an Execute starts: the portal's statement, or a run that will not be
    /// reported when the portal is unknown (it keeps the reply queue aligned all the same).
    fn execution(
        &mut self,
        portal: Option<Cow<'_, str>>,
        at: Instant,
        events: &mut dyn Events,
    ) -> Execution {
        let unreported = || Execution::new(None, 0, SqlProtocol::Extended, at);
        let Some(name) = portal else {
            return unreported();
        };
        let Some(portal) = self.portals.get_mut(&name) else {
            events.count("unknown_portal");
            return unreported();
        };
        let mut execution = match portal.suspended.take() {
            Some(mut resumed) => {
                resumed.sent = at;
                *resumed
            }
            None => {
                let (text, room) = portal
                    .statement
                    .as_ref()
                    .map(|statement| (statement.text.clone(), statement.room.clone()))
                    .unzip();
                Execution::new(text, portal.parameters, SqlProtocol::Extended, at)
                    .charged(room.flatten())
            }
        };
        execution.portal = Some(portal.id);
        execution
    }

    fn drop_portal(&mut self, name: &str, events: &mut dyn Events) {
        if let Some(portal) = self.portals.remove(name) {
            self.end_portal(portal, events);
        }
    }

    /// A portal is gone: a run suspended in it ended without completing.
    fn end_portal(&mut self, portal: Portal, events: &mut dyn Events) {
        if let Some(mut run) = portal.suspended {
            report(&self.database, &mut run, None, events);
        }
    }

    /// Queues a request for its reply, unless pairing is lost. Inlined: the entry is built in
    /// the caller, and a call would copy it once more.
    #[inline(always)]
    fn track(&mut self, entry: Pending, events: &mut dyn Events) {
        if let Some(untracked) = self.lost.as_mut() {
            if entry.is_sync_point() {
                *untracked += 1;
            }
            events.count("untracked_request");
            return;
        }
        if self.pending.is_full() {
            let (dropped, syncs) = self.pending.clear();
            for _ in 0..dropped {
                events.count("pending_evicted");
            }
            self.lost = Some(syncs + usize::from(entry.is_sync_point()));
            events.count("untracked_request");
            return;
        }
        self.pending.push(entry);
    }
}

/// Reports a finished run on `database` as an observation, with the charge for its text
/// (both taken from the run, which is read where it is: not moved to be reported).
fn report(
    database: &Arc<str>,
    execution: &mut Execution,
    done: Option<Instant>,
    events: &mut dyn Events,
) {
    let text = execution.text.take();
    let room = execution.room.take();
    report_with(database, execution, text, room, done, events);
}

/// Reports `run` (read in place) with `text` and the charge `room` for it: taken from the
/// run when it is over, shared when a simple Query's next statement keeps them.
#[inline]
fn report_with(
    database: &Arc<str>,
    run: &Execution,
    text: Option<Arc<str>>,
    room: Option<Charge>,
    done: Option<Instant>,
    events: &mut dyn Events,
) {
    if let Some(observation) = run.observation(text, database, done) {
        events.observation(observation);
        if let Some(room) = room {
            events.hold(room);
        }
    }
}

/// Counts a decoded message by its kind, and what of its body was skipped. A type the
/// protocol does not have is counted as such, and not followed: returns false.
#[inline]
fn counted(
    kind: Option<(usize, &'static str)>,
    skipped: Option<&'static str>,
    events: &mut dyn Events,
) -> bool {
    let Some((number, name)) = kind else {
        events.count("unknown_message_type");
        return false;
    };
    events.message_kind(number, name);
    if let Some(reason) = skipped {
        events.count(reason);
    }
    true
}

impl Inspector for PgSession {
    fn messages_in(&self) -> fn(&[u8]) -> u64 {
        |run| messages(run).count() as u64
    }

    /// The session keeps its queues aligned from a message's type alone: a head-only frame is
    /// decoded as that type with an unread body.
    fn oversize(&mut self, header: TapFrame, events: &mut dyn Events) {
        if self.inspect(header, events).is_err() {
            self.resync();
        }
    }

    /// A frame is a run of the messages of one read ([`PgFramer`](crate::postgres::PgFramer)
    /// joins them), walked here in order.
    fn inspect(&mut self, frame: TapFrame, events: &mut dyn Events) -> Result<(), DecodeError> {
        if frame.bytes.is_empty() {
            return Err(DecodeError::new("truncated", "empty frame"));
        }
        let at = frame.at;
        match frame.direction {
            Direction::Request => walk(&frame.bytes, |typed| {
                let Decoded { message, skipped } = frontend::decode(&typed);
                if counted(message.kind(), skipped, events) {
                    self.on_frontend(message, at, events);
                }
            }),
            Direction::Reply => walk(&frame.bytes, |typed| {
                let Decoded { message, skipped } = backend::decode(&typed);
                if counted(message.kind(), skipped, events) {
                    self.on_backend(message, at, events);
                }
            }),
        }
    }

    fn resync(&mut self) {
        let (_, syncs) = self.pending.clear();
        let already = self.lost.unwrap_or(0);
        self.lost = Some(already + syncs);
    }
}
