//! Damaged input never panics: byte flips, truncations and noise over valid frames of every
//! opcode, fed to the session and to `rewrite_topology` (proptest, so a failure shrinks to
//! the smallest damage that shows it). The valid frames also seed the `mongo_wire` fuzz
//! target.

use std::sync::LazyLock;
use std::time::Instant;

use bson::rawdoc;
use bytes::Bytes;
use indextap_analyzer::testing::seeds;
use proptest::prelude::*;
use proptest::sample::Index;

use super::op_msg::MsgFlags;
use super::testing::{compress, frame, msg_body, op_msg, query_body, reply_body, Section};
use super::{rewrite_topology, MongoSession};
use crate::fuzzing::stream_input;
use crate::tap::{CollectedEvents, Direction, Inspector, TapFrame};

static VALID_FRAMES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(valid_frames);

fn valid_frames() -> Vec<Vec<u8>> {
    let mut frames = vec![
        op_msg(
            1,
            0,
            0,
            rawdoc! {"find": "c", "filter": {"a": {"$in": [1, 2]}}, "$db": "d"},
        ),
        frame(
            2,
            0,
            2013,
            &msg_body(
                MsgFlags::CHECKSUM_PRESENT,
                &[
                    Section::Body(rawdoc! {"update": "c", "$db": "d"}),
                    Section::Sequence("updates", vec![rawdoc! {"q": {"a": 1}, "u": {"b": 2}}]),
                ],
                true,
            ),
        ),
        frame(
            3,
            0,
            2004,
            &query_body(
                "d.c",
                1,
                -1,
                &rawdoc! {"$query": {"a": 1}, "$orderby": {"b": 1}},
                Some(&rawdoc! {"a": 1}),
            ),
        ),
        frame(
            4,
            3,
            1,
            &reply_body(0, 9, &[rawdoc! {"a": 1}, rawdoc! {"b": "x"}]),
        ),
        op_msg(
            5,
            1,
            MsgFlags::MORE_TO_COME,
            rawdoc! {"cursor": {"firstBatch": [{"a": 1}], "id": 9_i64, "ns": "d.c"}, "ok": 1},
        ),
    ];
    let inner = frames[0].clone();
    for id in 0..=3 {
        frames.push(compress(&inner, id));
    }
    frames
}

/// What can happen to a frame on its way to the decoder.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut short.
    Truncate(Index),
    /// A few bytes anywhere overwritten, header included.
    Overwrite(Vec<(Index, u8)>),
    /// One body byte overwritten, the length left honest, to get past framing.
    BodyByte(Index, u8),
    /// Not a frame at all.
    Noise(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<Index>().prop_map(Damage::Truncate),
        prop::collection::vec((any::<Index>(), any::<u8>()), 1..=4).prop_map(Damage::Overwrite),
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Damage::BodyByte(at, byte)),
        prop::collection::vec(any::<u8>(), 0..128).prop_map(Damage::Noise),
    ]
}

fn damaged(mut bytes: Vec<u8>, damage: &Damage) -> Vec<u8> {
    match damage {
        Damage::Truncate(at) => bytes.truncate(at.index(bytes.len().max(1))),
        Damage::Overwrite(writes) => {
            for (at, byte) in writes {
                let at = at.index(bytes.len());
                bytes[at] = *byte;
            }
        }
        Damage::BodyByte(at, byte) => {
            let at = 16 + at.index(bytes.len() - 16);
            bytes[at] = *byte;
        }
        Damage::Noise(noise) => bytes.clone_from(noise),
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn damaged_frames_never_panic(which in any::<Index>(), damage in damage()) {
        let bytes = damaged(which.get(&VALID_FRAMES).clone(), &damage);
        for direction in [Direction::Request, Direction::Reply] {
            let mut session = MongoSession::with_pending_cap(8);
            let mut events = CollectedEvents::default();
            let _ = session.inspect(
                TapFrame {
                    direction,
                    bytes: Bytes::from(bytes.clone()),
                    at: Instant::now(),
                },
                &mut events,
            );
            let _ = rewrite_topology(&bytes, "proxy:27017");
        }
    }
}

#[test]
fn every_truncation_of_every_valid_frame_is_an_error() {
    for bytes in VALID_FRAMES.iter() {
        for cut in 0..bytes.len() {
            let mut session = MongoSession::new();
            let mut events = CollectedEvents::default();
            let result = session.inspect(
                TapFrame {
                    direction: Direction::Request,
                    bytes: Bytes::copy_from_slice(&bytes[..cut]),
                    at: Instant::now(),
                },
                &mut events,
            );
            assert!(result.is_err(), "cut at {cut} of {}", bytes.len());
        }
    }
}

/// Each valid frame as a request and as a reply, and the find with its reply as one
/// connection.
#[test]
fn the_valid_frames_seed_the_wire_fuzz_target() {
    let mut seeds = Vec::new();
    for bytes in VALID_FRAMES.iter() {
        for direction in [Direction::Request, Direction::Reply] {
            seeds.push(stream_input(&[(direction, bytes)]));
        }
    }
    let reply = op_msg(
        6,
        1,
        0,
        rawdoc! {"cursor": {"firstBatch": [{"a": 1}], "id": 0_i64, "ns": "d.c"}, "ok": 1},
    );
    seeds.push(stream_input(&[
        (Direction::Request, &VALID_FRAMES[0]),
        (Direction::Reply, &reply),
    ]));
    let files = seeds::exercise("mongo_wire", &seeds, crate::fuzzing::mongo_wire);
    assert!(files >= seeds.len());
}
