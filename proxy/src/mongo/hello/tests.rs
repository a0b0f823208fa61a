//! `rewrite_topology` over hand-built hello replies.

use bson::{rawdoc, Document, RawDocumentBuf};

use super::*;
use crate::mongo::testing::{compress, frame, msg_body, op_msg, reply_body, Section};

const ADVERTISE: &str = "indextap.local:27017";

fn replica_set_hello() -> RawDocumentBuf {
    rawdoc! {
        "topologyVersion": {"processId": "p", "counter": 6_i64},
        "hosts": ["db-0.internal:27017", "db-1.internal:27017", "db-2.internal:27017"],
        "passives": ["db-3.internal:27017"],
        "arbiters": ["arb.internal:27017"],
        "setName": "rs0",
        "setVersion": 3,
        "isWritablePrimary": true,
        "secondary": false,
        "primary": "db-0.internal:27017",
        "me": "db-0.internal:27017",
        "maxWireVersion": 25,
        "ok": 1.0,
    }
}

fn expected_hello() -> Document {
    Document::try_from(rawdoc! {
        "topologyVersion": {"processId": "p", "counter": 6_i64},
        "hosts": [ADVERTISE],
        "passives": [],
        "arbiters": [],
        "setName": "rs0",
        "setVersion": 3,
        "isWritablePrimary": true,
        "secondary": false,
        "primary": ADVERTISE,
        "me": ADVERTISE,
        "maxWireVersion": 25,
        "ok": 1.0,
    })
    .unwrap()
}

fn header_of(frame: &[u8]) -> MsgHeader {
    MsgHeader::split(frame).unwrap().0
}

/// The body document of an uncompressed OP_MSG frame, with its flags.
fn msg_document(frame: &[u8]) -> (u32, Document) {
    let (_, body) = MsgHeader::split(frame).unwrap();
    let msg = OpMsg::parse(body).unwrap();
    (msg.flags.0, Document::try_from(msg.body).unwrap())
}

#[test]
fn a_replica_set_hello_over_op_msg_names_only_the_proxy() {
    let flags = MsgFlags::CHECKSUM_PRESENT | MsgFlags::MORE_TO_COME;
    let original = frame(
        77,
        12,
        2013,
        &msg_body(flags, &[Section::Body(replica_set_hello())], true),
    );
    let rewritten = rewrite_topology(&original, ADVERTISE).expect("a rewrite");

    let header = header_of(&rewritten);
    assert_eq!(header.request_id, 77);
    assert_eq!(header.response_to, 12);
    assert_eq!(header.op_code, 2013);
    assert_eq!(header.message_length as usize, rewritten.len());

    let (flags, doc) = msg_document(&rewritten);
    assert_eq!(
        flags,
        MsgFlags::MORE_TO_COME,
        "checksum dropped, moreToCome kept"
    );
    assert_eq!(doc, expected_hello());
    // Key order is kept, not just the set of keys.
    let keys: Vec<_> = doc.keys().cloned().collect();
    let original_keys: Vec<_> = Document::try_from(replica_set_hello())
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, original_keys);
    assert!(!rewritten.windows(8).any(|w| w == b"internal"));
}

#[test]
fn a_legacy_is_master_over_op_reply_is_rewritten() {
    let is_master = rawdoc! {
        "ismaster": false,
        "secondary": true,
        "hosts": ["a:1", "b:2"],
        "primary": "a:1",
        "me": "b:2",
        "setName": "rs0",
        "ok": 1,
    };
    let original = frame(5, 4, 1, &reply_body(8, 0, &[is_master]));
    let rewritten = rewrite_topology(&original, ADVERTISE).expect("a rewrite");
    let (header, body) = MsgHeader::split(&rewritten).unwrap();
    assert_eq!(
        (header.request_id, header.response_to, header.op_code),
        (5, 4, 1)
    );
    let reply = OpReply::parse(body).unwrap();
    assert_eq!(reply.response_flags, 8);
    assert_eq!(reply.number_returned, 1);
    let doc = Document::try_from(reply.first().unwrap()).unwrap();
    let expected = Document::try_from(rawdoc! {
        "ismaster": false,
        "secondary": true,
        "hosts": [ADVERTISE],
        "primary": ADVERTISE,
        "me": ADVERTISE,
        "setName": "rs0",
        "ok": 1,
    })
    .unwrap();
    assert_eq!(doc, expected);
}

#[test]
fn a_compressed_hello_comes_back_uncompressed() {
    let inner = op_msg(40, 39, 0, replica_set_hello());
    for id in 0..=3 {
        let rewritten = rewrite_topology(&compress(&inner, id), ADVERTISE).expect("a rewrite");
        let header = header_of(&rewritten);
        assert_eq!(
            (header.request_id, header.response_to, header.op_code),
            (40, 39, 2013)
        );
        assert_eq!(msg_document(&rewritten).1, expected_hello());
    }
    let legacy = frame(3, 2, 1, &reply_body(0, 0, &[replica_set_hello()]));
    let rewritten = rewrite_topology(&compress(&legacy, 2), ADVERTISE).expect("a rewrite");
    assert_eq!(header_of(&rewritten).op_code, 1);
}

#[test]
fn a_large_compressed_reply_is_left_alone() {
    let mut big = replica_set_hello();
    big.append(
        bson::raw::cstr!("padding"),
        "x".repeat(MAX_COMPRESSED_HELLO).as_str(),
    );
    let inner = op_msg(1, 0, 0, big);
    assert!(rewrite_topology(&inner, ADVERTISE).is_some());
    assert_eq!(rewrite_topology(&compress(&inner, 1), ADVERTISE), None);
}

#[test]
fn a_standalone_hello_and_other_replies_are_untouched() {
    let standalone = rawdoc! {"isWritablePrimary": true, "maxWireVersion": 25, "ok": 1.0};
    assert_eq!(
        rewrite_topology(&op_msg(1, 0, 0, standalone), ADVERTISE),
        None
    );
    let find =
        rawdoc! {"cursor": {"firstBatch": [{"hosts": ["x"]}], "id": 0_i64, "ns": "d.c"}, "ok": 1};
    assert_eq!(rewrite_topology(&op_msg(1, 0, 0, find), ADVERTISE), None);
    // Member-like keys without a hello marker (a user command's result) are not touched.
    let lookalike = rawdoc! {"hosts": ["x:1"], "me": "x:1", "ok": 1};
    assert_eq!(
        rewrite_topology(&op_msg(1, 0, 0, lookalike), ADVERTISE),
        None
    );
    // A request frame or a legacy opcode is not a reply.
    assert_eq!(rewrite_topology(&frame(1, 0, 2004, b"x"), ADVERTISE), None);
}

#[test]
fn an_already_rewritten_hello_needs_no_change() {
    let once = rewrite_topology(&op_msg(1, 0, 0, replica_set_hello()), ADVERTISE).unwrap();
    assert_eq!(rewrite_topology(&once, ADVERTISE), None);
}

#[test]
fn the_advertised_address_lands_in_the_first_non_empty_list() {
    let hidden_only = rawdoc! {
        "isWritablePrimary": false,
        "hosts": [],
        "passives": ["p:1", "q:1"],
        "arbiters": ["a:1"],
        "setName": "rs0",
        "ok": 1,
    };
    let rewritten = rewrite_topology(&op_msg(1, 0, 0, hidden_only), ADVERTISE).unwrap();
    let doc = msg_document(&rewritten).1;
    assert!(doc.get_array("hosts").unwrap().is_empty());
    assert_eq!(
        doc.get_array("passives").unwrap(),
        &vec![bson::Bson::from(ADVERTISE)]
    );
    assert!(doc.get_array("arbiters").unwrap().is_empty());
}

#[test]
fn sequences_in_a_reply_are_kept() {
    let body = msg_body(
        0,
        &[
            Section::Body(replica_set_hello()),
            Section::Sequence("extra", vec![rawdoc! {"a": 1}]),
        ],
        false,
    );
    let rewritten = rewrite_topology(&frame(1, 0, 2013, &body), ADVERTISE).unwrap();
    let (_, body) = MsgHeader::split(&rewritten).unwrap();
    let msg = OpMsg::parse(body).unwrap();
    assert_eq!(msg.sequences.len(), 1);
    assert_eq!(msg.sequences[0].identifier, "extra");
    assert_eq!(msg.sequences[0].count, 1);
}

#[test]
fn malformed_frames_give_none() {
    let good = op_msg(1, 0, 0, replica_set_hello());
    for cut in 0..good.len() {
        assert_eq!(
            rewrite_topology(&good[..cut], ADVERTISE),
            None,
            "cut at {cut}"
        );
    }
}

#[test]
fn hello_requests_are_recognised() {
    use crate::mongo::testing::query_body;
    for name in ["hello", "isMaster", "ismaster"] {
        let mut body = RawDocumentBuf::new();
        body.append(<&bson::raw::CStr>::try_from(name).unwrap(), 1);
        body.append(bson::raw::cstr!("$db"), "admin");
        assert!(is_hello_request(&op_msg(1, 0, 0, body.clone())), "{name}");
        let query = query_body("admin.$cmd", 0, -1, &body, None);
        assert!(is_hello_request(&frame(1, 0, 2004, &query)), "{name}");
    }
    // The body after a kind 1 section is still found.
    let sequenced = msg_body(
        0,
        &[
            Section::Sequence("documents", vec![rawdoc! {"x": 1}]),
            Section::Body(rawdoc! {"hello": 1, "$db": "admin"}),
        ],
        false,
    );
    assert!(is_hello_request(&frame(1, 0, 2013, &sequenced)));

    let find = op_msg(1, 0, 0, rawdoc! {"find": "c", "hello": 1, "$db": "d"});
    assert!(!is_hello_request(&find));
    let legacy = query_body("admin.coll", 0, -1, &rawdoc! {"hello": 1}, None);
    assert!(!is_hello_request(&frame(1, 0, 2004, &legacy)));
    let hello = op_msg(1, 0, 0, rawdoc! {"hello": 1, "$db": "admin"});
    assert!(!is_hello_request(&compress(&hello, 1)));
    assert!(!is_hello_request(&hello[..hello.len() - 1]));
}

proptest::proptest! {
    /// The three-byte answer never differs from the whole check, whatever the bytes around
    /// the first key (hello and other requests, damaged anywhere, cut anywhere).
    #[test]
    fn the_quick_answer_agrees_with_the_whole_check(
        base in 0..4usize,
        damage in proptest::collection::vec((0..48usize, proptest::num::u8::ANY), 0..3),
        cut in 0..64usize,
    ) {
        let mut request = match base {
            0 => op_msg(1, 0, 0, rawdoc! {"hello": 1, "$db": "admin"}),
            1 => op_msg(1, 0, 0, rawdoc! {"isMaster": 1, "$db": "admin"}),
            2 => op_msg(1, 0, 0, rawdoc! {"find": "c", "$db": "d"}),
            _ => frame(1, 0, 2013, &msg_body(
                0,
                &[
                    Section::Sequence("documents", vec![rawdoc! {"x": 1}]),
                    Section::Body(rawdoc! {"hello": 1, "$db": "admin"}),
                ],
                false,
            )),
        };
        for (at, byte) in damage {
            if let Some(slot) = request.get_mut(at) {
                *slot = byte;
            }
        }
        request.truncate(request.len().saturating_sub(cut % 8));
        proptest::prop_assert_eq!(is_hello_request(&request), names_hello(&request));
    }
}
