//! MongoDB messages no modern driver sends, built by hand and written to the proxy over a raw
//! TCP connection: legacy OP_QUERY, OP_COMPRESSED with each compressor (through the fake
//! [`CompressingFront`], since SecantusDB has no compression), and malformed input.
//!
//! Malformed input must never stop the proxy or change what reaches the server: each case
//! runs on its own connection, is counted in `indextap_decode_errors_total`, its bytes are
//! seen by a test recorder in front of SecantusDB exactly as they were sent, and the client
//! hears what it hears from SecantusDB directly (replies and close).
//!
//! ## Layout
//! - `wire`: the frame builders (the proxy's own test builders, taking `Document`s) and a
//!   blocking connection.
//! - The tests: OP_QUERY, OP_COMPRESSED, malformed input.

mod mongo_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bson::{doc, Document, RawDocumentBuf};
use indextap_tests::compressing_front::{self, Compressor};
use indextap_tests::secantus::number;
use indextap_tests::transcript::{converse, Heard, Step};
use indextap_tests::{CompressingFront, SecantusDb, SecantusOptions};

use mongo_common::{
    executions, frame_i32, metric, reply_document, split_frames, start_proxy, wait_for_metric,
    wait_for_shapes, MongoProxy, TestRecorder,
};
use wire::{Connection, OP_COMPRESSED, OP_MSG, OP_REPLY};

/// Hand-built MongoDB wire messages, written from the specification by the proxy's unit-test
/// builders (`indextap_proxy::mongo::testing`), and a blocking connection to send them.
mod wire {
    pub(crate) use indextap_proxy::mongo::testing::{self, compressed_frame, frame};

    use super::*;

    pub(crate) const OP_REPLY: i32 = 1;
    pub(crate) const OP_QUERY: i32 = 2004;
    pub(crate) const OP_COMPRESSED: i32 = 2012;
    pub(crate) const OP_MSG: i32 = 2013;
    /// How long a reply may take.
    const READ_TIMEOUT: Duration = Duration::from_secs(15);

    fn raw(document: &Document) -> RawDocumentBuf {
        RawDocumentBuf::try_from(document).expect("encodable document")
    }

    /// OP_MSG with no flags and one kind 0 section.
    pub(crate) fn op_msg(request_id: i32, command: &Document) -> Vec<u8> {
        testing::op_msg(request_id, 0, 0, raw(command))
    }

    /// OP_QUERY on `namespace` (`db.$cmd` for a command).
    pub(crate) fn op_query(
        request_id: i32,
        namespace: &str,
        number_to_return: i32,
        query: &Document,
        fields: Option<&Document>,
    ) -> Vec<u8> {
        let fields = fields.map(raw);
        let body =
            testing::query_body(namespace, 0, number_to_return, &raw(query), fields.as_ref());
        frame(request_id, 0, OP_QUERY, &body)
    }

    /// OP_REPLY's `numberReturned`.
    pub(crate) fn number_returned(reply: &[u8]) -> i32 {
        frame_i32(reply, 32)
    }

    /// A raw client connection.
    pub(crate) struct Connection {
        stream: TcpStream,
    }

    impl Connection {
        pub(crate) fn open(addr: SocketAddr) -> Self {
            let stream = TcpStream::connect(addr).expect("connect to the proxy");
            stream
                .set_read_timeout(Some(READ_TIMEOUT))
                .expect("read timeout");
            stream.set_nodelay(true).expect("nodelay");
            Self { stream }
        }

        pub(crate) fn send(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).expect("write to the proxy");
        }

        /// The next whole message, or why there is none (a timeout, an early end of stream).
        pub(crate) fn read_frame(&mut self) -> std::io::Result<Vec<u8>> {
            let mut length = [0u8; 4];
            self.stream.read_exact(&mut length)?;
            let len = usize::try_from(i32::from_le_bytes(length)).unwrap_or(0);
            assert!((16..=48_000_000).contains(&len), "reply length {len}");
            let mut frame = length.to_vec();
            frame.resize(len, 0);
            self.stream.read_exact(&mut frame[4..])?;
            Ok(frame)
        }

        /// Sends a request and reads its reply, which must answer it.
        pub(crate) fn round_trip(&mut self, request: &[u8]) -> Vec<u8> {
            self.send(request);
            let reply = self.read_frame().unwrap_or_else(|err| {
                panic!(
                    "no reply to request {} (opCode {}, {} bytes): {:?}: {err}",
                    frame_i32(request, 4),
                    frame_i32(request, 12),
                    request.len(),
                    err.kind()
                )
            });
            assert_eq!(
                frame_i32(&reply, 8),
                frame_i32(request, 4),
                "responseTo names the request"
            );
            reply
        }
    }
}

/// The reply's document, from OP_MSG or OP_REPLY.
fn document(reply: &[u8]) -> Document {
    reply_document(reply).unwrap_or_else(|| panic!("no document in a {} byte reply", reply.len()))
}

fn first_batch(reply: &Document) -> Vec<Document> {
    reply
        .get_document("cursor")
        .and_then(|cursor| cursor.get_array("firstBatch"))
        .unwrap_or_else(|_| panic!("a cursor reply: {reply}"))
        .iter()
        .filter_map(|item| item.as_document().cloned())
        .collect()
}

fn seed_stock(connection: &mut Connection, collection: &str) {
    let documents: Vec<Document> = (0..9_i32)
        .map(|n| doc! { "sku": format!("k{n}"), "qty": n, "status": if n % 3 == 0 { "open" } else { "done" } })
        .collect();
    let reply = connection.round_trip(&wire::op_msg(
        1,
        &doc! { "insert": collection, "documents": documents, "$db": "app" },
    ));
    assert_eq!(frame_i32(&reply, 12), OP_MSG);
    assert_eq!(number(&document(&reply), "n"), 9);
}

#[test]
fn op_query_commands_and_legacy_queries_are_answered_and_captured() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let proxy = start_proxy(server.addr(), &[]);
    let mut connection = Connection::open(proxy.listen);
    seed_stock(&mut connection, "orders");

    // A command on app.$cmd: the query document is the command.
    let found = connection.round_trip(&wire::op_query(
        2,
        "app.$cmd",
        -1,
        &doc! { "find": "orders", "filter": { "sku": "k4" } },
        None,
    ));
    assert_eq!(frame_i32(&found, 12), OP_REPLY);
    assert_eq!(wire::number_returned(&found), 1);
    let batch = first_batch(&document(&found));
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].get_str("sku").ok(), Some("k4"));

    let counted = connection.round_trip(&wire::op_query(
        3,
        "app.$cmd",
        -1,
        &doc! { "count": "orders", "query": { "qty": { "$gt": 2 } } },
        None,
    ));
    assert_eq!(frame_i32(&counted, 12), OP_REPLY);
    assert_eq!(number(&document(&counted), "n"), 6);

    // A legacy query on the collection itself, with a projection. SecantusDB takes it for a
    // command and refuses it; what matters is that it answers this request and that the
    // proxy lowered it into the find it stands for.
    let legacy = connection.round_trip(&wire::op_query(
        4,
        "app.orders",
        0,
        &doc! { "status": "open" },
        Some(&doc! { "sku": 1 }),
    ));
    assert_eq!(frame_i32(&legacy, 12), OP_REPLY);
    assert!(wire::number_returned(&legacy) >= 1);
    let answer = document(&legacy);
    assert!(
        answer.contains_key("errmsg") || answer.contains_key("sku"),
        "an error or a document: {answer}"
    );

    wait_for_shapes(&proxy.process, "OP_QUERY commands and queries", |shapes| {
        executions(shapes, "find", "orders", &["sku"]) == 1
            && executions(shapes, "count", "orders", &["qty"]) == 1
            && executions(shapes, "find", "orders", &["status"]) == 1
    });
    wait_for_metric(
        &proxy.process,
        "indextap_messages_total",
        &[("kind", "OP_QUERY")],
        3.0,
    );
    wait_for_metric(
        &proxy.process,
        "indextap_messages_total",
        &[("kind", "OP_REPLY")],
        3.0,
    );
}

#[test]
fn compressed_requests_are_answered_compressed_and_captured_with_every_compressor() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let front = CompressingFront::start(server.addr());
    let proxy = start_proxy(front.addr(), &[]);
    let mut connection = Connection::open(proxy.listen);
    seed_stock(&mut connection, "stock");

    // One filter field per compressor, so each has a shape of its own.
    let cases = [
        (Compressor::Snappy, doc! { "sku": "k1" }, 1),
        (Compressor::Zlib, doc! { "qty": { "$gte": 5 } }, 4),
        (Compressor::Zstd, doc! { "status": "open" }, 3),
    ];
    for (request_id, (compressor, filter, expected)) in (10..).zip(cases.iter()) {
        let plain = wire::op_msg(
            request_id,
            &doc! { "find": "stock", "filter": filter.clone(), "$db": "app" },
        );
        let compressed = compressing_front::wrap(&plain, *compressor).expect("compress");
        assert_eq!(frame_i32(&compressed, 12), OP_COMPRESSED);
        let reply = connection.round_trip(&compressed);
        assert_eq!(frame_i32(&reply, 12), OP_COMPRESSED, "{compressor:?} reply");
        assert_eq!(
            reply.get(24),
            Some(&compressor.id()),
            "the reply uses the request's compressor"
        );
        let (reply, found) = compressing_front::unwrap(&reply).expect("decompress the reply");
        assert_eq!(found, Some(*compressor));
        assert_eq!(frame_i32(&reply, 12), OP_MSG);
        let batch = first_batch(&document(&reply));
        assert_eq!(batch.len(), *expected, "{compressor:?}: {filter}");
    }
    let counts = front.counts();
    for compressor in Compressor::ALL {
        assert_eq!(counts.unwrapped(compressor), 1, "{counts:?}");
        assert_eq!(counts.wrapped(compressor), 1, "{counts:?}");
    }
    assert_eq!(counts.refused, 0);
    // The uncompressed insert and its reply went through as they were.
    assert_eq!(counts.passed_through, 2, "{counts:?}");

    wait_for_shapes(&proxy.process, "compressed finds", |shapes| {
        ["sku", "qty", "status"]
            .iter()
            .all(|field| executions(shapes, "find", "stock", &[field]) == 1)
    });
    for compressor in Compressor::ALL {
        let event = format!("compressed_{}", compressor.name());
        // The request and its reply.
        wait_for_metric(
            &proxy.process,
            "indextap_inspection_events_total",
            &[("reason", &event)],
            2.0,
        );
    }
    wait_for_metric(
        &proxy.process,
        "indextap_messages_total",
        &[("kind", "OP_COMPRESSED")],
        6.0,
    );
}

/// What one malformed case must leave behind.
struct Malformed<'a> {
    name: &'a str,
    bytes: Vec<u8>,
    /// The `reason` label it is counted under.
    reason: &'a str,
    /// Half-close after sending (the server then ends the connection once it has answered).
    finish: bool,
}

fn decode_errors(proxy: &MongoProxy, reason: &str) -> f64 {
    metric(
        &proxy.process,
        "indextap_decode_errors_total",
        &[("reason", reason)],
    )
}

/// Waits until the recorder in front of SecantusDB has a connection that carried exactly
/// `bytes` upstream and has ended.
fn reached_upstream_unchanged(recorder: &TestRecorder, name: &str, bytes: &[u8]) {
    recorder.wait_for(
        &format!("{name}: its bytes, unchanged, then the end of the connection"),
        Duration::from_secs(15),
        |recordings| {
            recordings
                .iter()
                .any(|r| r.to_upstream == bytes && r.client_done)
        },
    );
}

/// What a client heard, with each reply's `requestID` zeroed: the server numbers its replies
/// per process, so that field differs between any two connections, direct or not.
fn without_request_ids(mut heard: Heard) -> Heard {
    let mut at = 0;
    while let Some(length) = heard.bytes.get(at..at + 4) {
        let length = usize::try_from(frame_i32(length, 0)).unwrap_or(0);
        if length < 16 || at + length > heard.bytes.len() {
            break;
        }
        heard.bytes[at + 4..at + 8].fill(0);
        at += length;
    }
    heard
}

/// The same bytes straight to SecantusDB and through the proxy: the client must hear the
/// same replies, then the end of the connection.
fn heard_as_direct(server: SocketAddr, proxy: SocketAddr, case: &Malformed<'_>) -> Heard {
    let mut steps = vec![Step::Send(case.bytes.clone())];
    if case.finish {
        steps.push(Step::Finish);
    }
    let quiet = Duration::from_secs(5);
    let direct = without_request_ids(converse(server, &steps, quiet));
    let proxied = without_request_ids(converse(proxy, &steps, quiet));
    assert!(
        direct.ending.is_closed(),
        "{}: SecantusDB left it open: {direct:?}",
        case.name
    );
    assert_eq!(
        proxied.bytes, direct.bytes,
        "{}: through the proxy vs direct",
        case.name
    );
    // SecantusDB resets a connection it leaves with bytes unread; the proxy read them all, so
    // its close is orderly. Either way the client's session is over.
    assert!(
        proxied.ending.is_closed(),
        "{}: the proxy left it open: {proxied:?}",
        case.name
    );
    proxied
}

#[test]
fn malformed_input_is_counted_and_forwarded_and_never_stops_the_proxy() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let recorder = TestRecorder::start(server.addr());
    let mut proxy = start_proxy(recorder.addr(), &[]);

    // A driver connection opened before all of it, and used again after.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let uri = format!(
        "mongodb://{}/?directConnection=true&maxPoolSize=1&serverSelectionTimeoutMS=15000",
        proxy.listen
    );
    let (client, before) = runtime.block_on(async {
        let client = mongodb::Client::with_uri_str(&uri).await.expect("client");
        let parts = client.database("app").collection::<Document>("parts");
        parts
            .insert_many((0..5_i32).map(|n| doc! { "part": n, "bin": n % 2 }))
            .await
            .expect("insert before");
        let before = parts
            .count_documents(doc! { "bin": 1 })
            .await
            .expect("count before");
        (client, before)
    });
    assert_eq!(before, 2);

    let ping = |request_id| wire::op_msg(request_id, &doc! { "ping": 1, "$db": "admin" });
    let valid = ping(7);
    let zlib_body = Compressor::Zlib
        .compress(valid.get(16..).expect("body"))
        .expect("zlib");
    // Garbage BSON in a well-framed OP_MSG: a 20-byte document whose one string claims
    // 2^31-1 bytes. SecantusDB answers with an error and keeps the connection, so the valid
    // ping after it must get its reply.
    let mut garbage = 0u32.to_le_bytes().to_vec();
    garbage.push(0);
    garbage.extend_from_slice(&20i32.to_le_bytes());
    garbage.extend_from_slice(b"\x02ab\x00\xff\xff\xff\x7fgarbage\x00");
    let garbage = wire::frame(11, 0, OP_MSG, &garbage);
    let cases = [
        Malformed {
            name: "messageLength 3",
            bytes: [&3i32.to_le_bytes()[..], &valid[4..]].concat(),
            reason: "bad_length",
            finish: false,
        },
        Malformed {
            name: "messageLength 2^31-1",
            bytes: [&i32::MAX.to_le_bytes()[..], &valid[4..]].concat(),
            reason: "bad_length",
            finish: false,
        },
        Malformed {
            name: "an unknown opCode",
            bytes: wire::frame(8, 0, 4242, &valid[16..]),
            reason: "unknown_opcode",
            finish: false,
        },
        Malformed {
            name: "OP_COMPRESSED claiming 2^31-1 uncompressed bytes",
            bytes: wire::compressed_frame(
                9,
                0,
                OP_MSG,
                i32::MAX,
                Compressor::Zlib.id(),
                &zlib_body,
            ),
            reason: "bad_compressed_size",
            finish: false,
        },
        Malformed {
            name: "an OP_MSG section of kind 7",
            bytes: {
                let mut bad = valid.clone();
                bad[20] = 7;
                bad
            },
            reason: "bad_section",
            finish: true,
        },
        Malformed {
            name: "a truncated frame, then the end of the stream",
            bytes: valid.get(..20).expect("a prefix").to_vec(),
            reason: "truncated",
            finish: true,
        },
        Malformed {
            name: "garbage BSON, then a valid ping",
            bytes: [garbage, ping(12)].concat(),
            reason: "bad_bson",
            finish: true,
        },
    ];
    // The proxy must forward the bytes as they are, pass the server's answer and its close
    // back, and count the error.
    for case in &cases {
        let counted = decode_errors(&proxy, case.reason);
        let heard = heard_as_direct(server.addr(), proxy.listen, case);
        let replies: Vec<Document> = split_frames(&heard.bytes)
            .into_iter()
            .filter_map(reply_document)
            .collect();
        if case.reason == "bad_bson" {
            let oks: Vec<_> = replies.iter().map(|r| r.get_f64("ok").ok()).collect();
            assert_eq!(oks, [Some(0.0), Some(1.0)], "{}: {replies:?}", case.name);
        } else {
            assert!(
                replies.iter().all(|r| r.get_f64("ok").ok() != Some(1.0)),
                "{}: nothing can succeed: {replies:?}",
                case.name
            );
        }
        reached_upstream_unchanged(&recorder, case.name, &case.bytes);
        wait_for_metric(
            &proxy.process,
            "indextap_decode_errors_total",
            &[("reason", case.reason)],
            counted + 1.0,
        );
        proxy.assert_alive();
    }

    // After all of it: the driver's connection, and a new raw one, still work and are seen.
    let after = runtime.block_on(async {
        let parts = client.database("app").collection::<Document>("parts");
        let after = parts
            .count_documents(doc! { "bin": 0 })
            .await
            .expect("count after");
        client.shutdown().await;
        after
    });
    assert_eq!(after, 3);
    let mut connection = Connection::open(proxy.listen);
    let pong = document(&connection.round_trip(&ping(13)));
    assert_eq!(pong.get_f64("ok").ok(), Some(1.0));
    wait_for_shapes(&proxy.process, "the driver's counts", |shapes| {
        executions(shapes, "aggregate", "parts", &["bin"]) == 2
    });
    proxy.assert_alive();
}
