//! Pairing, latency, cursors, exhaust and fire-and-forget, from hand-built frames.

use std::time::{Duration, Instant};

use bson::{rawdoc, RawDocumentBuf};
use bytes::Bytes;
use indextap_analyzer::command::{Observation, Request};

use super::*;
use crate::budget::InspectBudget;
use crate::mongo::op_msg::MsgFlags;
use crate::mongo::testing::{compress, frame, msg_body, op_msg, query_body, reply_body, Section};
use crate::tap::CollectedEvents;

struct Harness {
    session: MongoSession,
    events: CollectedEvents,
    start: Instant,
}

impl Harness {
    fn new() -> Self {
        Self::with_cap(DEFAULT_PENDING_CAP)
    }

    fn with_cap(cap: usize) -> Self {
        Self {
            session: MongoSession::with_pending_cap(cap),
            events: CollectedEvents::default(),
            start: Instant::now(),
        }
    }

    fn feed(
        &mut self,
        direction: Direction,
        bytes: Vec<u8>,
        at_ms: u64,
    ) -> Result<(), DecodeError> {
        let frame = TapFrame {
            direction,
            bytes: Bytes::from(bytes),
            at: self.start + Duration::from_millis(at_ms),
        };
        self.session.inspect(frame, &mut self.events)
    }

    fn request(&mut self, bytes: Vec<u8>, at_ms: u64) {
        self.feed(Direction::Request, bytes, at_ms).unwrap();
    }

    fn reply(&mut self, bytes: Vec<u8>, at_ms: u64) {
        self.feed(Direction::Reply, bytes, at_ms).unwrap();
    }

    fn observations(&self) -> &[Observation] {
        &self.events.observations
    }

    /// The reply found no request: nothing observed, and only `unpaired_reply` counted.
    fn assert_reply_unpaired(&self) {
        assert!(self.observations().is_empty());
        assert_eq!(self.events.counts, vec!["unpaired_reply"]);
    }
}

fn body_of(observation: &Observation) -> &RawDocumentBuf {
    match &observation.request {
        Request::Mongo(command) => &command.body,
        Request::Sql(_) => panic!("a SQL request from the MongoDB session"),
    }
}

fn database_of(observation: &Observation) -> &str {
    match &observation.request {
        Request::Mongo(command) => &command.database,
        Request::Sql(_) => panic!("a SQL request from the MongoDB session"),
    }
}

#[test]
fn a_request_pairs_with_its_reply_and_measures_latency() {
    let mut h = Harness::new();
    h.request(
        op_msg(
            10,
            0,
            0,
            rawdoc! {"find": "orders", "filter": {"a": 1}, "$db": "app"},
        ),
        100,
    );
    h.request(
        op_msg(11, 0, 0, rawdoc! {"count": "orders", "$db": "app"}),
        105,
    );
    assert_eq!(h.session.pending(), 2);
    assert!(h.observations().is_empty());

    // Replies out of order: pairing is by responseTo, not by arrival.
    h.reply(op_msg(500, 11, 0, rawdoc! {"n": 4, "ok": 1.0}), 130);
    h.reply(
        op_msg(
            501,
            10,
            0,
            rawdoc! {"cursor": {"firstBatch": [{"a": 1}, {"a": 1}, {"a": 1}], "id": 99_i64, "ns": "app.orders"}, "ok": 1.0},
        ),
        142,
    );
    assert_eq!(h.session.pending(), 0);

    let [count, find] = h.observations() else {
        panic!("two observations expected: {:?}", h.observations());
    };
    assert_eq!(body_of(count).get_str("count").unwrap(), "orders");
    assert_eq!(count.outcome.latency, Duration::from_millis(25));
    assert_eq!(count.outcome.returned, 4);
    assert!(count.outcome.is_ok());

    assert_eq!(database_of(find), "app");
    assert_eq!(find.outcome.latency, Duration::from_millis(42));
    assert_eq!(find.outcome.returned, 3);
    assert_eq!(find.outcome.cursor_id, Some(99));
    assert_eq!(h.events.messages, vec!["OP_MSG"; 4]);
}

#[test]
fn get_more_counts_its_next_batch() {
    let mut h = Harness::new();
    h.request(
        op_msg(
            20,
            0,
            0,
            rawdoc! {"getMore": 99_i64, "collection": "orders", "$db": "app"},
        ),
        0,
    );
    h.reply(
        op_msg(600, 20, 0, rawdoc! {"cursor": {"nextBatch": [{"a": 1}, {"a": 2}], "id": 0_i64, "ns": "app.orders"}, "ok": 1}),
        7,
    );
    let [get_more] = h.observations() else {
        panic!()
    };
    assert_eq!(get_more.outcome.returned, 2);
    assert_eq!(get_more.outcome.cursor_id, None);
    assert_eq!(get_more.outcome.latency, Duration::from_millis(7));
}

#[test]
fn errors_are_reported_by_code() {
    let mut h = Harness::new();
    h.request(op_msg(1, 0, 0, rawdoc! {"find": "c", "$db": "d"}), 0);
    h.reply(
        op_msg(
            2,
            1,
            0,
            rawdoc! {"ok": 0.0, "errmsg": "bad", "code": 2, "codeName": "BadValue"},
        ),
        1,
    );
    h.request(op_msg(3, 0, 0, rawdoc! {"insert": "c", "$db": "d"}), 2);
    h.reply(
        op_msg(
            4,
            3,
            0,
            rawdoc! {"n": 0, "writeErrors": [{"index": 0, "code": 11000}], "ok": 1},
        ),
        3,
    );
    let errors: Vec<_> = h
        .observations()
        .iter()
        .map(|o| o.outcome.error.clone())
        .collect();
    assert_eq!(errors, vec![Some("2".to_owned()), Some("11000".to_owned())]);
}

#[test]
fn an_unpaired_reply_is_counted() {
    let mut h = Harness::new();
    h.reply(op_msg(1, 12345, 0, rawdoc! {"ok": 1}), 0);
    h.assert_reply_unpaired();
}

#[test]
fn fire_and_forget_is_emitted_at_once() {
    let mut h = Harness::new();
    let body = msg_body(
        MsgFlags::MORE_TO_COME,
        &[
            Section::Body(rawdoc! {"insert": "c", "writeConcern": {"w": 0}, "$db": "d"}),
            Section::Sequence("documents", vec![rawdoc! {"x": 1}, rawdoc! {"x": 2}]),
        ],
        false,
    );
    h.request(frame(7, 0, 2013, &body), 50);
    assert_eq!(h.session.pending(), 0);
    let [insert] = h.observations() else { panic!() };
    assert_eq!(insert.outcome.latency, Duration::ZERO);
    assert!(insert.outcome.is_ok());
    let Request::Mongo(command) = &insert.request else {
        panic!()
    };
    assert_eq!(command.sequences[0].count, 2);
    assert!(command.sequences[0].documents.is_empty());
}

#[test]
fn exhaust_batches_are_emitted_as_get_more() {
    let mut h = Harness::new();
    let find = rawdoc! {"find": "events", "filter": {"k": 1}, "batchSize": 2, "$db": "app"};
    h.request(op_msg(30, 0, MsgFlags::EXHAUST_ALLOWED, find), 0);
    // First batch answers the find; moreToCome: the next reply answers this one (id 700).
    h.reply(
        op_msg(
            700,
            30,
            MsgFlags::MORE_TO_COME,
            rawdoc! {"cursor": {"firstBatch": [{"k": 1}, {"k": 1}], "id": 55_i64, "ns": "app.events"}, "ok": 1},
        ),
        10,
    );
    assert_eq!(h.session.pending(), 1);
    h.reply(
        op_msg(
            701,
            700,
            MsgFlags::MORE_TO_COME,
            rawdoc! {"cursor": {"nextBatch": [{"k": 1}, {"k": 1}], "id": 55_i64, "ns": "app.events"}, "ok": 1},
        ),
        25,
    );
    // The last batch: no moreToCome, cursor closed.
    h.reply(
        op_msg(
            702,
            701,
            0,
            rawdoc! {"cursor": {"nextBatch": [{"k": 1}], "id": 0_i64, "ns": "app.events"}, "ok": 1},
        ),
        31,
    );
    assert_eq!(
        h.session.pending(),
        0,
        "nothing is kept after the chain ends"
    );
    assert!(h.events.counts.is_empty(), "{:?}", h.events.counts);

    let [first, second, third] = h.observations() else {
        panic!("three batches expected: {:?}", h.observations());
    };
    assert_eq!(body_of(first).get_str("find").unwrap(), "events");
    assert_eq!(
        (first.outcome.returned, first.outcome.cursor_id),
        (2, Some(55))
    );
    assert_eq!(first.outcome.latency, Duration::from_millis(10));

    for (batch, returned, latency) in [(second, 2, 15), (third, 1, 6)] {
        let body = body_of(batch);
        assert_eq!(body.get_i64("getMore").unwrap(), 55);
        assert_eq!(body.get_str("collection").unwrap(), "events");
        assert_eq!(database_of(batch), "app");
        assert_eq!(batch.outcome.returned, returned);
        assert_eq!(batch.outcome.latency, Duration::from_millis(latency));
    }
    assert_eq!(third.outcome.cursor_id, None);
}

#[test]
fn streaming_hello_repeats_the_command() {
    let mut h = Harness::new();
    let hello = rawdoc! {"hello": 1, "topologyVersion": {"counter": 0_i64}, "maxAwaitTimeMS": 10000, "$db": "admin"};
    h.request(op_msg(1, 0, MsgFlags::EXHAUST_ALLOWED, hello), 0);
    h.reply(
        op_msg(
            2,
            1,
            MsgFlags::MORE_TO_COME,
            rawdoc! {"isWritablePrimary": true, "ok": 1},
        ),
        5,
    );
    h.reply(
        op_msg(
            3,
            2,
            MsgFlags::MORE_TO_COME,
            rawdoc! {"isWritablePrimary": true, "ok": 1},
        ),
        10_005,
    );
    assert_eq!(h.observations().len(), 2);
    for observation in h.observations() {
        assert_eq!(body_of(observation).get_i32("hello").unwrap(), 1);
    }
    assert_eq!(
        h.session.pending(),
        1,
        "still waiting for the next heartbeat"
    );
    h.session.resync();
    assert_eq!(h.session.pending(), 0);
}

#[test]
fn pending_requests_are_bounded() {
    let mut h = Harness::with_cap(3);
    for id in 1..=5 {
        h.request(op_msg(id, 0, 0, rawdoc! {"ping": 1, "$db": "admin"}), 0);
    }
    assert_eq!(h.session.pending(), 3);
    assert_eq!(h.events.counts, vec!["pending_evicted", "pending_evicted"]);
    // The oldest were evicted: their replies are unpaired, the newest still pair.
    h.reply(op_msg(100, 1, 0, rawdoc! {"ok": 1}), 1);
    h.reply(op_msg(101, 5, 0, rawdoc! {"ok": 1}), 1);
    assert_eq!(h.events.counts.last(), Some(&"unpaired_reply"));
    assert_eq!(h.observations().len(), 1);
}

#[test]
fn resync_forgets_pending_requests() {
    let mut h = Harness::new();
    h.request(op_msg(1, 0, 0, rawdoc! {"ping": 1, "$db": "admin"}), 0);
    h.session.resync();
    h.reply(op_msg(2, 1, 0, rawdoc! {"ok": 1}), 1);
    h.assert_reply_unpaired();
}

#[test]
fn op_query_command_pairs_with_op_reply() {
    let mut h = Harness::new();
    let body = query_body(
        "admin.$cmd",
        0,
        -1,
        &rawdoc! {"isMaster": 1, "client": {"driver": {"name": "x"}}},
        None,
    );
    h.request(frame(1, 0, 2004, &body), 0);
    h.reply(
        frame(
            2,
            1,
            1,
            &reply_body(0, 0, &[rawdoc! {"ismaster": true, "ok": 1.0}]),
        ),
        3,
    );
    let [hello] = h.observations() else { panic!() };
    assert_eq!(database_of(hello), "admin");
    assert_eq!(body_of(hello).get_i32("isMaster").unwrap(), 1);
    assert!(hello.outcome.is_ok());
    assert_eq!(hello.outcome.latency, Duration::from_millis(3));
    assert_eq!(h.events.messages, vec!["OP_QUERY", "OP_REPLY"]);
}

#[test]
fn legacy_query_reads_number_returned_and_cursor() {
    let mut h = Harness::new();
    let body = query_body("shop.items", 0, 2, &rawdoc! {"sku": "x"}, None);
    h.request(frame(1, 0, 2004, &body), 0);
    h.reply(
        frame(
            2,
            1,
            1,
            &reply_body(0, 1234, &[rawdoc! {"sku": "x"}, rawdoc! {"sku": "x"}]),
        ),
        4,
    );
    let [query] = h.observations() else { panic!() };
    assert_eq!(body_of(query).get_str("find").unwrap(), "items");
    assert_eq!(query.outcome.returned, 2);
    assert_eq!(query.outcome.cursor_id, Some(1234));

    h.request(frame(3, 0, 2004, &body), 10);
    h.reply(
        frame(
            4,
            3,
            1,
            &reply_body(2, 0, &[rawdoc! {"$err": "no", "code": 13}]),
        ),
        12,
    );
    assert_eq!(h.observations()[1].outcome.error.as_deref(), Some("13"));
}

#[test]
fn compressed_requests_and_replies_pair() {
    for id in 1..=3 {
        let mut h = Harness::new();
        h.request(
            compress(&op_msg(1, 0, 0, rawdoc! {"find": "c", "$db": "d"}), id),
            0,
        );
        h.reply(
            compress(
                &op_msg(2, 1, 0, rawdoc! {"cursor": {"firstBatch": [{"x": 1}], "id": 0_i64, "ns": "d.c"}, "ok": 1}),
                id,
            ),
            2,
        );
        let [find] = h.observations() else { panic!() };
        assert_eq!(find.outcome.returned, 1);
        assert_eq!(
            h.events.messages,
            vec!["OP_COMPRESSED", "OP_MSG", "OP_COMPRESSED", "OP_MSG"]
        );
    }
}

#[test]
fn legacy_opcodes_are_counted_and_skipped() {
    let mut h = Harness::new();
    for op in [2001, 2002, 2005, 2006, 2007] {
        h.request(frame(1, 0, op, b"\x00\x00\x00\x00legacy"), 0);
    }
    assert_eq!(
        h.events.messages,
        vec![
            "OP_UPDATE",
            "OP_INSERT",
            "OP_GET_MORE",
            "OP_DELETE",
            "OP_KILL_CURSORS"
        ]
    );
    assert_eq!(h.session.pending(), 0);
    assert!(h.observations().is_empty());
}

#[test]
fn malformed_frames_are_errors_with_reasons() {
    let mut h = Harness::new();
    let good = op_msg(1, 0, 0, rawdoc! {"find": "c", "$db": "d"});
    let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
    let mut bad_length = good.clone();
    bad_length[0..4].copy_from_slice(&8i32.to_le_bytes());
    cases.push((bad_length, "bad_length"));
    cases.push((good[..good.len() - 3].to_vec(), "truncated"));
    cases.push((frame(1, 0, 2003, b"\0\0\0\0"), "unknown_opcode"));
    let mut garbage = good.clone();
    garbage[16 + 5 + 4] = 0x42; // the first element's type byte
    cases.push((garbage, "bad_bson"));
    cases.push((
        frame(1, 0, 2013, &[0, 0, 0, 0, 1, 0, 0, 0, 0]),
        "bad_section",
    ));
    let lying = crate::mongo::testing::compressed_frame(1, 0, 2013, 1000, 0, &good[16..]);
    cases.push((lying, "bad_compressed_size"));
    cases.push((frame(1, 0, 1, &reply_body(0, 0, &[])), "wrong_direction"));

    for (bytes, reason) in cases {
        let err = h.feed(Direction::Request, bytes, 0).unwrap_err();
        assert_eq!(err.reason, reason, "{err}");
    }
    assert!(h.observations().is_empty());
}

/// A `find` whose body is about `bytes` long.
fn large_find(request_id: i32, bytes: usize) -> Vec<u8> {
    let filter = rawdoc! {"note": "x".repeat(bytes)};
    op_msg(
        request_id,
        0,
        0,
        rawdoc! {"find": "orders", "filter": filter, "$db": "app"},
    )
}

#[test]
fn a_large_command_is_charged_from_its_copy_to_its_analysis() {
    let mut h = Harness::new();
    let budget = InspectBudget::new(100_000, Default::default());
    h.events.budget = budget.clone();
    h.request(large_find(10, 40_000), 0);
    let charged = budget.held();
    assert!(charged > 40_000, "the pending copy is charged: {charged}");
    // Small commands are not.
    h.request(
        op_msg(11, 0, 0, rawdoc! {"count": "orders", "$db": "app"}),
        1,
    );
    assert_eq!(budget.held(), charged);

    h.reply(op_msg(500, 10, 0, rawdoc! {"n": 0, "ok": 1.0}), 5);
    assert_eq!(h.observations().len(), 1);
    assert_eq!(
        h.events.held.len(),
        1,
        "the charge goes with the observation"
    );
    assert_eq!(budget.held(), charged);
    h.events.observations.clear();
    h.events.held.clear();
    assert_eq!(budget.held(), 0, "given back with the copy");

    // No room: not captured, counted, and the reply is then unpaired; forwarding is the
    // relay's and does not depend on this.
    let others = budget.reserve(70_000).expect("room");
    h.request(large_find(12, 40_000), 10);
    assert_eq!(h.session.pending(), 1, "only the small count waits");
    assert_eq!(h.events.counts, vec!["inspect_budget_exhausted"]);
    assert_eq!(budget.held(), 70_000);
    drop(others);

    // The connection closes (or its inspection stops) with a large request pending.
    h.request(large_find(13, 40_000), 20);
    assert!(budget.held() > 40_000);
    drop(h);
    assert_eq!(budget.held(), 0, "released with the session");
}
