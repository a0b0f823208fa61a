//! Damaged input never panics: random byte flips, truncations and noise over valid frames of
//! every opcode, fed to the session and to `rewrite_topology`.

use std::time::Instant;

use bson::rawdoc;
use bytes::Bytes;

use super::op_msg::MsgFlags;
use super::testing::{compress, frame, msg_body, op_msg, query_body, reply_body, Section};
use super::{rewrite_topology, MongoSession};
use crate::tap::{CollectedEvents, Direction, Inspector, TapFrame};

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }
}

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

#[test]
fn random_damage_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let frames = valid_frames();
    for round in 0..4000 {
        let mut bytes = frames[round % frames.len()].clone();
        match rng.below(4) {
            0 => bytes.truncate(rng.below(bytes.len())),
            1 => {
                for _ in 0..=rng.below(4) {
                    let at = rng.below(bytes.len());
                    bytes[at] = rng.next() as u8;
                }
            }
            2 => {
                // Damage the body but keep the length honest, to get past framing.
                let at = 16 + rng.below(bytes.len() - 16);
                bytes[at] = rng.next() as u8;
            }
            _ => {
                bytes = (0..rng.below(128)).map(|_| rng.next() as u8).collect();
            }
        }
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
    for bytes in valid_frames() {
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
