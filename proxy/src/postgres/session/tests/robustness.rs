//! Unknown and malformed messages, lost frames, overflow, random bytes.

use super::*;

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
    let err = session
        .inspect(frame(&[b'S', 0, 0, 0, 4, 0]), &mut events)
        .unwrap_err();
    assert_eq!(err.reason, "bad_length");
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

#[test]
fn random_bytes_never_panic() {
    // A small deterministic generator: the test must not depend on a seed source.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let kinds = b"QPBDECSHXdcfFpRSKv123sCIZENAtTDnGHWV?";
    for round in 0..20_000 {
        let mut session = PgSession::new("db".into());
        let mut events = CollectedEvents::default();
        for _ in 0..8 {
            let kind = kinds[(next() % kinds.len() as u64) as usize];
            let len = (next() % 40) as usize;
            let body: Vec<u8> = (0..len).map(|_| (next() % 7) as u8 * 40).collect();
            let mut bytes = message(kind, &body);
            if round % 3 == 0 {
                // Also try frames whose length field lies.
                let cut = (next() as usize) % bytes.len();
                bytes.truncate(cut.max(1));
            }
            let direction = if next() % 2 == 0 {
                Direction::Request
            } else {
                Direction::Reply
            };
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
