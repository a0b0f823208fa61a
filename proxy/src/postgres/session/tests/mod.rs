//! Session decoding: simple and extended protocol, statements and portals, pipelining,
//! errors, COPY, malformed input.
//!
//! ## Layout
//! - this file: message builders and a harness with a clock that moves 1 ms per frame.
//! - `simple`: simple Query, COPY, the startup replies.
//! - `extended`: Parse/Bind/Execute, statements and portals, pipelining, errors.
//! - `robustness`: unknown and malformed messages, lost frames, overflow, random bytes.
//! - `budget`: long texts charged to the inspection budget.

mod budget;
mod extended;
mod robustness;
mod simple;

use std::time::{Duration, Instant};

use bytes::Bytes;
use indextap_analyzer::command::{Observation, Request, SqlProtocol};

use super::PgSession;
use crate::postgres::frame::encode as message;
use crate::tap::{CollectedEvents, Direction, Inspector, TapFrame};

/// Builds typed messages and feeds them, with a clock that moves 1 ms per frame.
struct Harness {
    session: PgSession,
    events: CollectedEvents,
    start: Instant,
    ticks: u64,
}

fn cstr(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

fn query(text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, text);
    message(b'Q', &body)
}

fn parse(name: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, name);
    cstr(&mut body, text);
    body.extend_from_slice(&0u16.to_be_bytes());
    message(b'P', &body)
}

fn bind(portal: &str, statement: &str, values: &[Option<&str>]) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    cstr(&mut body, statement);
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&(values.len() as u16).to_be_bytes());
    for value in values {
        match value {
            Some(v) => {
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v.as_bytes());
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    body.extend_from_slice(&0u16.to_be_bytes());
    message(b'B', &body)
}

fn describe_portal(portal: &str) -> Vec<u8> {
    let mut body = vec![b'P'];
    cstr(&mut body, portal);
    message(b'D', &body)
}

fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    body.extend_from_slice(&max_rows.to_be_bytes());
    message(b'E', &body)
}

fn close(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    cstr(&mut body, name);
    message(b'C', &body)
}

fn sync() -> Vec<u8> {
    message(b'S', b"")
}

fn command_complete(tag: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, tag);
    message(b'C', &body)
}

/// A RowDescription of no columns: the session counts rows, never reads their description.
fn row_description() -> Vec<u8> {
    message(b'T', b"\0\0")
}

fn data_row(value: &str) -> Vec<u8> {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend_from_slice(&(value.len() as i32).to_be_bytes());
    body.extend_from_slice(value.as_bytes());
    message(b'D', &body)
}

fn error(sqlstate: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [(b'S', "ERROR"), (b'C', sqlstate), (b'M', text)] {
        body.push(field);
        cstr(&mut body, value);
    }
    body.push(0);
    message(b'E', &body)
}

fn ready(status: u8) -> Vec<u8> {
    message(b'Z', &[status])
}

impl Harness {
    fn new() -> Self {
        Self {
            session: PgSession::new("app".into()),
            events: CollectedEvents::default(),
            start: Instant::now(),
            ticks: 0,
        }
    }

    fn feed(&mut self, direction: Direction, bytes: Vec<u8>) {
        self.ticks += 1;
        let frame = TapFrame {
            direction,
            bytes: Bytes::from(bytes),
            at: self.start + Duration::from_millis(self.ticks),
        };
        self.session
            .inspect(frame, &mut self.events)
            .expect("well-formed frame");
    }

    fn client(&mut self, frames: impl IntoIterator<Item = Vec<u8>>) -> &mut Self {
        for frame in frames {
            self.feed(Direction::Request, frame);
        }
        self
    }

    fn server(&mut self, frames: impl IntoIterator<Item = Vec<u8>>) -> &mut Self {
        for frame in frames {
            self.feed(Direction::Reply, frame);
        }
        self
    }

    fn texts(&self) -> Vec<String> {
        self.events
            .observations
            .iter()
            .map(|o| sql(o).text.to_string())
            .collect()
    }

    fn counted(&self, what: &str) -> usize {
        self.events.counts.iter().filter(|c| **c == what).count()
    }

    /// Nothing was reported, and `what` was counted `times` times.
    fn assert_unreported(&self, what: &str, times: usize) {
        let observations = &self.events.observations;
        assert!(observations.is_empty(), "{observations:?}");
        assert_eq!(self.counted(what), times, "{what}");
    }
}

fn sql(observation: &Observation) -> &indextap_analyzer::command::SqlCommand {
    match &observation.request {
        Request::Sql(command) => command,
        Request::Mongo(_) => panic!("not SQL"),
    }
}

fn flush() -> Vec<u8> {
    message(b'H', b"")
}

/// One unnamed statement through the extended protocol: Parse, Bind to `portal`, Execute
/// `max_rows` (0: all), then `end` (Sync or Flush).
fn extended(text: &str, portal: &str, max_rows: i32, end: Vec<u8>) -> Vec<Vec<u8>> {
    vec![
        parse("", text),
        bind(portal, "", &[]),
        execute(portal, max_rows),
        end,
    ]
}

/// The server's ParseComplete and BindComplete, then `rest`.
fn bound(rest: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    [message(b'1', b""), message(b'2', b"")]
        .into_iter()
        .chain(rest)
        .collect()
}
