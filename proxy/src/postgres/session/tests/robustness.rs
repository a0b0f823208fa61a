//! Unknown and malformed messages, lost frames, overflow, random bytes.

use indextap_analyzer::testing::seeds;
use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::fuzzing::stream_input;

#[test]
fn unknown_types_are_counted_and_skipped() {
    let mut h = Harness::new();
    h.client([message(b'z', b"whatever")]);
    h.server([message(b'!', b"")]);
    h.client([query("SELECT 1")]);
    h.server([command_complete("SELECT 0"), ready(b'I')]);
    assert_eq!(h.counted("unknown_message_type"), 2);
    assert_eq!(h.texts(), ["SELECT 1"]);
}

#[test]
fn malformed_bodies_are_counted_and_pairing_survives() {
    let mut h = Harness::new();
    h.client([parse("", "SELECT 1"), bind("", "", &[])]);
    // An Execute with no max_rows field: its portal cannot be read, its run is still queued.
    h.client([message(b'E', b"\0"), sync()]);
    h.server(bound([command_complete("SELECT 0"), ready(b'I')]));
    h.client([query("SELECT 2")]);
    h.server([message(b'E', b"C42"), ready(b'I')]);
    assert_eq!(h.texts(), ["SELECT 2"]);
    assert_eq!(h.counted("malformed_message"), 2);
    assert_eq!(
        h.events.observations[0].outcome.error.as_deref(),
        Some("unknown")
    );
    assert_eq!(h.counted("unpaired_reply"), 0);
}

#[test]
fn broken_framing_is_an_error() {
    let mut session = PgSession::new("app".into());
    let mut events = CollectedEvents::default();
    let frame = |bytes: &[u8]| TapFrame {
        direction: Direction::Request,
        bytes: Bytes::copy_from_slice(bytes),
        at: Instant::now(),
    };
    let err = session
        .inspect(frame(&[b'Q', 0, 0, 0, 2]), &mut events)
        .unwrap_err();
    assert_eq!(err.reason, "bad_length");
    let err = session
        .inspect(frame(&[b'Q', 0, 0]), &mut events)
        .unwrap_err();
    assert_eq!(err.reason, "truncated");
    // A run's bytes past its last whole message are not a header.
    let err = session
        .inspect(frame(&[b'S', 0, 0, 0, 4, 0]), &mut events)
        .unwrap_err();
    assert_eq!(err.reason, "truncated");
    let err = session
        .inspect(frame(&[b'S', 0, 0, 0, 4, b'S', 0, 0, 0, 3]), &mut events)
        .unwrap_err();
    assert_eq!(err.reason, "bad_length");
    events.counts.clear();
    // A head-only frame (an over-cap message streamed past) still counts by type.
    let mut head = message(b'B', &[0u8; 64]);
    head.truncate(10);
    session.inspect(frame(&head), &mut events).unwrap();
    assert_eq!(events.counts, ["oversize_skipped"]);
}

#[test]
fn lost_frames_pause_tracking_until_the_owed_ready_for_query() {
    let mut h = Harness::new();
    h.client([query("SELECT 1")]);
    h.session.resync();
    // The client goes on; the reply to the first Query and then to the second arrive.
    h.client([query("SELECT 2")]);
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    assert!(h.events.observations.is_empty());
    h.client([query("SELECT 3")]);
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    assert_eq!(h.texts(), ["SELECT 3"]);
}

#[test]
fn an_overflowing_pipeline_is_dropped_not_misattributed() {
    let mut h = Harness::new();
    h.client([parse("", "INSERT INTO t VALUES (1)"), bind("", "", &[])]);
    for _ in 0..crate::postgres::session::MAX_PENDING + 10 {
        h.client([execute("", 0)]);
    }
    h.client([sync()]);
    h.server(
        (0..crate::postgres::session::MAX_PENDING + 10).map(|_| command_complete("INSERT 0 1")),
    );
    h.server([ready(b'I')]);
    assert!(h.events.observations.is_empty());
    assert_eq!(
        h.counted("pending_evicted"),
        crate::postgres::session::MAX_PENDING
    );
    h.client([query("SELECT 1")]);
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    assert_eq!(h.texts(), ["SELECT 1"]);
}

/// One message as the proptest makes it: a type the protocol has (or not), a short body
/// rich in zero bytes (terminators, counts), sometimes cut short, in either direction.
fn any_message() -> impl Strategy<Value = (Direction, Vec<u8>)> {
    let kinds = b"QPBDECSHXdcfFpRSKv123sCIZENAtTDnGHWV?".to_vec();
    let byte = prop_oneof![Just(0u8), any::<u8>()];
    (
        prop::sample::select(kinds),
        prop::collection::vec(byte, 0..40),
        proptest::option::of(any::<Index>()),
        any::<bool>(),
    )
        .prop_map(|(kind, body, cut, reply)| {
            let mut bytes = message(kind, &body);
            if let Some(cut) = cut {
                // Frames whose length field lies, as an over-cap head does.
                bytes.truncate(cut.index(bytes.len()).max(1));
            }
            let direction = if reply {
                Direction::Reply
            } else {
                Direction::Request
            };
            (direction, bytes)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_messages_never_panic(messages in prop::collection::vec(any_message(), 1..=8)) {
        let mut session = PgSession::new("db".into());
        let mut events = CollectedEvents::default();
        for (direction, bytes) in messages {
            let _ = session.inspect(
                TapFrame {
                    direction,
                    bytes: Bytes::from(bytes),
                    at: Instant::now(),
                },
                &mut events,
            );
        }
    }
}

/// Whole exchanges of the other session tests, as connections for the fuzz target.
#[test]
fn exchanges_seed_the_messages_fuzz_target() {
    use Direction::{Reply, Request};
    let exchanges: Vec<Vec<(Direction, Vec<u8>)>> = vec![
        vec![
            (Reply, message(b'R', &0i32.to_be_bytes())),
            (Reply, message(b'S', b"server_version\x0015.0\0")),
            (Reply, message(b'K', &[0, 0, 0, 1, 0, 0, 0, 2])),
            (Reply, ready(b'I')),
            (
                Request,
                query("SELECT a FROM t WHERE b = 1 ORDER BY c LIMIT 5"),
            ),
            (Reply, data_row("1")),
            (Reply, command_complete("SELECT 1")),
            (Reply, ready(b'I')),
        ],
        vec![
            (
                Request,
                parse("s1", "SELECT * FROM t WHERE a = $1 AND b > $2"),
            ),
            (Request, bind("", "s1", &[Some("x"), None])),
            (Request, describe_portal("")),
            (Request, execute("", 0)),
            (Request, sync()),
            (Reply, message(b'1', b"")),
            (Reply, message(b'2', b"")),
            (Reply, message(b'n', b"")),
            (Reply, data_row("x")),
            (Reply, command_complete("SELECT 1")),
            (Reply, ready(b'I')),
            (Request, close(b'S', "s1")),
            (Request, flush()),
            (Reply, message(b'3', b"")),
        ],
        vec![
            (
                Request,
                query("UPDATE t SET a = 1 WHERE b = 2; DELETE FROM u WHERE c = 3"),
            ),
            (Reply, command_complete("UPDATE 4")),
            (Reply, error("23505", "duplicate key")),
            (Reply, ready(b'E')),
        ],
        vec![
            (Request, query("COPY t (a, b) FROM STDIN")),
            (Reply, message(b'G', b"\0\0\x02\0\0\0\0")),
            (Request, message(b'd', b"1\tx\n")),
            (Request, message(b'c', b"")),
            (Reply, command_complete("COPY 1")),
            (Reply, ready(b'I')),
        ],
    ];
    let seeds: Vec<Vec<u8>> = exchanges
        .iter()
        .map(|exchange| {
            let frames: Vec<(Direction, &[u8])> = exchange
                .iter()
                .map(|(direction, bytes)| (*direction, bytes.as_slice()))
                .collect();
            stream_input(&frames)
        })
        .collect();
    let files = seeds::exercise("pg_messages", &seeds, crate::fuzzing::pg_messages);
    assert!(files >= seeds.len());
}

#[test]
fn an_unreadable_bind_is_not_paired_with_the_previous_statement() {
    let mut h = Harness::new();
    h.client(extended("SELECT 1", "", 0, sync()));
    h.server(bound([command_complete("SELECT 1"), ready(b'I')]));
    // The next Bind arrives as a head only (its body was over the inspection cap).
    let mut head = bind("", "", &[Some("a large value")]);
    head.truncate(5);
    h.client([
        parse("", "INSERT INTO blobs VALUES ($1)"),
        head,
        execute("", 0),
        sync(),
    ]);
    h.server(bound([command_complete("INSERT 0 1"), ready(b'I')]));
    assert_eq!(h.texts(), ["SELECT 1"]);
    assert_eq!(h.counted("oversize_skipped"), 1);
    assert_eq!(h.counted("unknown_portal"), 1);
    assert_eq!(h.counted("unpaired_reply"), 0);
}

/// Messages are counted by kind number ([`Events::message_kind`](crate::tap::Events::message_kind)):
/// every type byte of either direction has a number within the table, and each number stands
/// for one name, so counting by number counts exactly by type.
#[test]
fn every_message_type_has_a_kind_number_of_its_own() {
    use std::collections::HashMap;

    use crate::postgres::decoded::decode_framed;
    use crate::postgres::{backend, frontend};
    use crate::tap::MESSAGE_KINDS;

    let mut names: HashMap<usize, &str> = HashMap::new();
    let mut numbers: HashMap<&str, HashMap<bool, usize>> = HashMap::new();
    for byte in 0..=u8::MAX {
        let kinds = [
            (
                true,
                decode_framed(frontend::decode, byte, b"").message.kind(),
            ),
            (
                false,
                decode_framed(backend::decode, byte, b"").message.kind(),
            ),
        ];
        for (request, kind) in kinds {
            let Some((number, name)) = kind else {
                continue;
            };
            assert!(number < MESSAGE_KINDS, "{name}: {number}");
            assert_eq!(*names.entry(number).or_insert(name), name, "{number}");
            let direction = numbers.entry(name).or_default();
            assert_eq!(
                *direction.entry(request).or_insert(number),
                number,
                "{name}"
            );
        }
    }
    // Both directions' types: 14 frontend, 24 backend (CopyData and CopyDone are both).
    assert_eq!(names.len(), 38);
    assert_eq!(
        decode_framed(frontend::decode, b'z', b"").message.kind(),
        None
    );
}
