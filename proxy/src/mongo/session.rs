//! One MongoDB connection's inspector: requests paired with replies into observations.
//!
//! A reply names its request by `responseTo`. Requests wait in a bounded map until then;
//! each paired request becomes one [`Observation`] whose latency is measured between the two
//! frames as the relay saw them.
//!
//! Three cases do not follow the one-request-one-reply rule:
//! - **Fire and forget.** A request with `moreToCome` (an unacknowledged `w:0` write) gets no
//!   reply. It is emitted at once with zero latency and nothing is kept.
//! - **Exhaust.** A reply with `moreToCome` is followed by another reply, unasked, whose
//!   `responseTo` is this reply's `requestID`. The request stays pending under that id. For a
//!   cursor, each later batch is emitted as the `getMore` the client would otherwise have
//!   sent (`{getMore: <cursor id>, collection}`), so the analyzer counts its time and
//!   documents toward the cursor's shape. Without a cursor (the streaming `hello` of server
//!   monitoring) the original command is emitted again.
//! - **Legacy queries.** An OP_QUERY on `db.coll` is lowered into `find`, and its OP_REPLY
//!   read by `numberReturned` and `cursorID` rather than as a command reply.
//!
//! Legacy write and cursor opcodes are counted and skipped; a reply to one is an
//! `unpaired_reply`.

use std::time::{Instant, SystemTime};

use bson::raw::cstr;
use bson::{RawBsonRef, RawDocument, RawDocumentBuf};
use indextap_analyzer::command::{MongoCommand, Observation, Outcome, Request};

use crate::budget::{charge_copy, Charge, NoRoom, CHARGED_COPY};
use crate::tap::{DecodeError, Direction, Events, Inspector, TapFrame};

use super::databases::Databases;
use super::frame::MsgHeader;
use super::message::{decode, Message};
use super::op_msg::OpMsg;
use super::op_reply::OpReply;
use super::outcome::{command_outcome, legacy_query_outcome, Fields, Reading, ReplyFields};
use super::pending::Pending;

/// How many requests may wait for replies before the oldest is forgotten.
pub const DEFAULT_PENDING_CAP: usize = 10_000;

/// A request waiting for its reply.
#[derive(Debug)]
struct Waiting {
    command: MongoCommand,
    /// What its reply is read for, told by the command's name.
    reading: Reading,
    /// A legacy OP_QUERY on a collection, whose reply holds documents, not a command reply.
    legacy_query: bool,
    /// When the relay saw the request (or the previous exhaust batch).
    at: Instant,
    /// Wall-clock time of the same moment, for the observation.
    seen: SystemTime,
    /// The budget's charge for `command`, when it is large.
    room: Option<Charge>,
}

/// The MongoDB [`Inspector`].
#[derive(Debug)]
pub struct MongoSession {
    pending: Pending<Waiting>,
    /// The database names its commands share.
    databases: Databases,
}

impl Default for MongoSession {
    fn default() -> Self {
        Self::new()
    }
}

impl MongoSession {
    /// A session with the default pending-request cap.
    pub fn new() -> Self {
        Self::with_pending_cap(DEFAULT_PENDING_CAP)
    }

    /// A session that keeps at most `cap` requests waiting for replies.
    pub fn with_pending_cap(cap: usize) -> Self {
        Self {
            pending: Pending::new(cap),
            databases: Databases::default(),
        }
    }

    /// How many requests wait for replies.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn on_request(
        &mut self,
        header: MsgHeader,
        waiting: Waiting,
        fire_and_forget: bool,
        events: &mut dyn Events,
    ) {
        if fire_and_forget {
            emit(waiting, Outcome::default(), events);
        } else {
            self.wait(header.request_id, waiting, events);
        }
    }

    /// Pairs a reply with its request and emits the observation. `read` gives the outcome
    /// and, for an exhaust reply, the command its next batch continues.
    fn on_reply(
        &mut self,
        header: MsgHeader,
        at: Instant,
        events: &mut dyn Events,
        read: impl FnOnce(&Waiting) -> (Outcome, Option<MongoCommand>),
    ) {
        let Some(request) = self.take(header, events) else {
            return;
        };
        let (mut outcome, next) = read(&request);
        outcome.latency = at.saturating_duration_since(request.at);
        // The next batch's command is a copy of its own (a getMore, or the command again).
        let next = next.and_then(|command| {
            let room = charge(usize::MAX, &command, events).ok()?;
            Some((command, room))
        });
        if let Some((command, room)) = next {
            let next = Waiting {
                reading: Reading::of_command(&command.body),
                command,
                legacy_query: false,
                at,
                seen: SystemTime::now(),
                room,
            };
            self.wait(header.request_id, next, events);
        }
        emit(request, outcome, events);
    }

    fn wait(&mut self, request_id: i32, waiting: Waiting, events: &mut dyn Events) {
        for _ in 0..self.pending.insert(request_id, waiting) {
            events.count("pending_evicted");
        }
    }

    fn take(&mut self, header: MsgHeader, events: &mut dyn Events) -> Option<Waiting> {
        let request = self.pending.remove(header.response_to);
        if request.is_none() {
            events.count("unpaired_reply");
        }
        request
    }
}

impl Inspector for MongoSession {
    fn inspect(&mut self, frame: TapFrame, events: &mut dyn Events) -> Result<(), DecodeError> {
        let TapFrame {
            direction,
            bytes,
            at,
        } = frame;
        decode(&bytes, direction, events, |header, message, events| {
            match (direction, message) {
                (_, Message::Legacy(_)) => {}
                (Direction::Request, Message::Msg(msg)) => {
                    let command = msg.to_command_in(&mut self.databases)?;
                    let Ok(room) = charge(bytes.len(), &command, events) else {
                        return Ok(());
                    };
                    let waiting = Waiting {
                        command,
                        reading: Reading::of(msg.name()),
                        legacy_query: false,
                        at,
                        seen: SystemTime::now(),
                        room,
                    };
                    self.on_request(header, waiting, msg.flags.more_to_come(), events);
                }
                (Direction::Request, Message::Query(query)) => {
                    let command = query.to_command_in(&mut self.databases);
                    let Ok(room) = charge(bytes.len(), &command, events) else {
                        return Ok(());
                    };
                    let waiting = Waiting {
                        reading: Reading::of_command(&command.body),
                        command,
                        legacy_query: !query.is_command(),
                        at,
                        seen: SystemTime::now(),
                        room,
                    };
                    self.on_request(header, waiting, false, events);
                }
                (Direction::Reply, Message::Msg(reply)) => {
                    self.on_reply(header, at, events, |request| msg_reply(request, &reply));
                }
                (Direction::Reply, Message::Reply(reply)) => {
                    self.on_reply(header, at, events, |request| {
                        (legacy_reply(request, &reply), None)
                    });
                }
                (Direction::Request, Message::Reply(_)) | (Direction::Reply, Message::Query(_)) => {
                    return Err(DecodeError::new(
                        "wrong_direction",
                        format!("opCode {} in the {direction:?} direction", header.op_code),
                    ));
                }
            }
            Ok(())
        })
    }

    fn resync(&mut self) {
        self.pending.clear();
    }
}

/// An OP_MSG reply's outcome and, when more batches follow unasked, what they continue.
fn msg_reply(request: &Waiting, reply: &OpMsg<'_>) -> (Outcome, Option<MongoCommand>) {
    let outcome = command_outcome(request.reading, reply.reply_fields());
    let next = reply
        .flags
        .more_to_come()
        .then(|| continuation(&request.command, reply.body));
    (outcome, next)
}

/// An OP_REPLY's outcome: a legacy query's documents, or a command reply's first document.
fn legacy_reply(request: &Waiting, reply: &OpReply<'_>) -> Outcome {
    if request.legacy_query {
        legacy_query_outcome(reply)
    } else {
        match reply.first() {
            Some(doc) => command_outcome(request.reading, &ReplyFields::read(doc)),
            None => Outcome {
                error: Some("unknown".to_owned()),
                ..Outcome::default()
            },
        }
    }
}

fn emit(request: Waiting, outcome: Outcome, events: &mut dyn Events) {
    events.observation(Observation {
        request: Request::Mongo(request.command),
        outcome,
        at: request.seen,
    });
    if let Some(room) = request.room {
        events.hold(room);
    }
}

/// The budget's charge for `command`, copied out of a frame of `frame` bytes, or made anew
/// (`usize::MAX`: an exhaust cursor's next command). `Err`: no room, counted, and the request
/// is not captured. A copy is never longer than its frame, so a small frame costs one
/// comparison; a large one is measured once copied.
fn charge(
    frame: usize,
    command: &MongoCommand,
    events: &mut dyn Events,
) -> Result<Option<Charge>, NoRoom> {
    if frame < CHARGED_COPY {
        return Ok(None);
    }
    charge_copy(copied_bytes(command), events)
}

/// A MongoDB command's bytes with the documents its sequences kept.
fn copied_bytes(command: &MongoCommand) -> usize {
    command.body.as_bytes().len()
        + command
            .sequences
            .iter()
            .flat_map(|sequence| &sequence.documents)
            .map(|document| document.as_bytes().len())
            .sum::<usize>()
}

/// What the next exhaust batch continues: the cursor's `getMore`, or, when the reply holds no
/// open cursor, the same command again.
fn continuation(original: &MongoCommand, reply: &RawDocument) -> MongoCommand {
    let cursor = reply
        .get("cursor")
        .ok()
        .flatten()
        .and_then(RawBsonRef::as_document);
    let id = cursor
        .and_then(|cursor| cursor.get("id").ok().flatten())
        .and_then(|id| match id {
            RawBsonRef::Int64(id) => Some(id),
            RawBsonRef::Int32(id) => Some(i64::from(id)),
            _ => None,
        })
        .filter(|id| *id != 0);
    let Some(id) = id else {
        return original.clone();
    };
    let from_ns = cursor
        .and_then(|cursor| cursor.get_str("ns").ok())
        .and_then(|ns| ns.split_once('.'))
        .map(|(_, collection)| collection);
    let collection = from_ns
        .or_else(|| collection_of(&original.body))
        .unwrap_or_default();

    let mut body = RawDocumentBuf::new();
    body.append(cstr!("getMore"), id);
    body.append(cstr!("collection"), collection);
    body.append(cstr!("$db"), &*original.database);
    MongoCommand::new(original.database.clone(), body, Vec::new())
}

/// The collection a cursor-opening command names: `getMore`'s `collection`, else the string
/// value of its first key (`find: "orders"`, `aggregate: "orders"`).
fn collection_of(body: &RawDocument) -> Option<&str> {
    if let Ok(collection) = body.get_str("collection") {
        return Some(collection);
    }
    let first = body.iter_elements().next()?.ok()?;
    first.value().ok()?.as_str()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests;
