//! Which replies the topology rewrite looks at: the replies to `hello` / `isMaster`
//! requests, and the `moreToCome` replies a server streams after them (an awaitable hello
//! with `exhaustAllowed`). They are told apart by their `responseTo`, a header read, so
//! every other reply is forwarded without being parsed. Until the requests can be framed no
//! more (then every reply is looked at, as before there was this watch).
//!
//! ## Layout
//! - [`HelloReplies`]: the relay's [`ReplyRewrite`] for MongoDB.

use std::collections::VecDeque;

use super::hello::{is_hello_request, rewrite_topology};
use super::op_msg::MsgFlags;
use crate::relay::ReplyRewrite;

/// Hello requests a connection may have waiting at once; past that the oldest is forgotten
/// (a driver has one hello in flight per connection).
const MAX_AWAITED: usize = 16;

/// `OP_MSG`.
const OP_MSG: i32 = 2013;

/// One connection's view of its hellos.
#[derive(Debug)]
pub struct HelloReplies {
    advertise: String,
    /// `responseTo` values of the replies to look at.
    awaited: VecDeque<i32>,
    /// The requests could not be framed: look at every reply.
    every_reply: bool,
}

impl HelloReplies {
    /// A watch that rewrites member addresses to `advertise`.
    pub fn new(advertise: impl Into<String>) -> Self {
        Self {
            advertise: advertise.into(),
            awaited: VecDeque::new(),
            every_reply: false,
        }
    }

    fn await_reply_to(&mut self, request_id: i32) {
        if self.awaited.len() == MAX_AWAITED {
            self.awaited.pop_front();
        }
        self.awaited.push_back(request_id);
    }
}

/// A little-endian `i32` of the MsgHeader (or the OP_MSG flags) at `at`.
fn field(frame: &[u8], at: usize) -> Option<i32> {
    let bytes = frame.get(at..at + 4)?;
    Some(i32::from_le_bytes(bytes.try_into().ok()?))
}

impl ReplyRewrite for HelloReplies {
    fn request(&mut self, frame: &[u8]) -> bool {
        let hello = is_hello_request(frame);
        if hello {
            if let Some(request_id) = field(frame, 4) {
                self.await_reply_to(request_id);
            }
        }
        hello
    }

    fn requests_unframed(&mut self) {
        self.every_reply = true;
    }

    fn awaiting(&self) -> bool {
        self.every_reply || !self.awaited.is_empty()
    }

    fn reply(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        if !self.every_reply {
            let response_to = field(frame, 8)?;
            let at = self.awaited.iter().position(|id| *id == response_to)?;
            self.awaited.remove(at);
            // A streamed hello: the next reply answers this one.
            let more_to_come = field(frame, 12) == Some(OP_MSG)
                && field(frame, 16).is_some_and(|flags| flags as u32 & MsgFlags::MORE_TO_COME != 0);
            if more_to_come {
                if let Some(request_id) = field(frame, 4) {
                    self.await_reply_to(request_id);
                }
            }
        }
        rewrite_topology(frame, &self.advertise)
    }
}

#[cfg(test)]
mod tests {
    use bson::{rawdoc, RawDocumentBuf};

    use super::*;

    fn op_msg(request_id: i32, response_to: i32, flags: u32, body: &RawDocumentBuf) -> Vec<u8> {
        let document = body.as_bytes();
        let length = 16 + 4 + 1 + document.len();
        let mut frame = Vec::new();
        frame.extend_from_slice(&(length as i32).to_le_bytes());
        frame.extend_from_slice(&request_id.to_le_bytes());
        frame.extend_from_slice(&response_to.to_le_bytes());
        frame.extend_from_slice(&OP_MSG.to_le_bytes());
        frame.extend_from_slice(&flags.to_le_bytes());
        frame.push(0);
        frame.extend_from_slice(document);
        frame
    }

    fn member_reply(request_id: i32, response_to: i32, flags: u32) -> Vec<u8> {
        op_msg(
            request_id,
            response_to,
            flags,
            &rawdoc! {
                "isWritablePrimary": true,
                "setName": "rs0",
                "hosts": ["db1:27017", "db2:27017"],
                "me": "db1:27017",
                "ok": 1.0,
            },
        )
    }

    #[test]
    fn only_replies_to_hellos_are_rewritten_streamed_ones_included() {
        let mut watch = HelloReplies::new("proxy:27018");
        let find = op_msg(7, 0, 0, &rawdoc! { "find": "t", "$db": "app" });
        assert!(!watch.request(&find));
        // A reply naming members, but to the find: not looked at.
        assert_eq!(watch.reply(&member_reply(100, 7, 0)), None);

        let hello = op_msg(
            8,
            0,
            MsgFlags::EXHAUST_ALLOWED,
            &rawdoc! { "hello": 1, "$db": "admin" },
        );
        assert!(watch.request(&hello));
        // The reply to the hello, streamed: the next one answers it.
        let first = watch.reply(&member_reply(101, 8, MsgFlags::MORE_TO_COME));
        assert!(first.is_some_and(|frame| !frame.windows(3).any(|w| w == b"db2")));
        assert!(watch.reply(&member_reply(102, 101, 0)).is_some());
        // The stream ended: a later reply to 102 is not a hello's.
        assert_eq!(watch.reply(&member_reply(103, 102, 0)), None);
    }

    #[test]
    fn without_request_framing_every_reply_is_looked_at() {
        let mut watch = HelloReplies::new("proxy:27018");
        watch.requests_unframed();
        assert!(watch.reply(&member_reply(100, 12345, 0)).is_some());
        assert_eq!(watch.reply(&[1, 2, 3]), None);
    }

    #[test]
    fn the_watch_keeps_a_bounded_number_of_hellos() {
        let mut watch = HelloReplies::new("proxy:27018");
        for id in 0..100 {
            let hello = op_msg(id, 0, 0, &rawdoc! { "isMaster": 1, "$db": "admin" });
            assert!(watch.request(&hello));
        }
        assert_eq!(watch.awaited.len(), MAX_AWAITED);
        assert!(watch.reply(&member_reply(500, 99, 0)).is_some());
        assert_eq!(watch.reply(&member_reply(501, 0, 0)), None);
    }
}
