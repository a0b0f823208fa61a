//! Entry points of the fuzz targets that decode wire traffic (`fuzz/fuzz_targets/`).
//!
//! They live here, not in the fuzz crate, so that clippy lints them and `cargo test` runs
//! every committed seed through them. Each takes arbitrary bytes and may do anything but
//! panic: the same promise the decoders make to the relay.
//!
//! A stream target reads its input as a count `n`, `n` selector bytes, then a byte stream
//! that the engine's framer splits as the relay would. Bit `i % (8 n)` of the selector bytes
//! (least significant first) says whether frame `i` is a request (0) or a reply (1), so the
//! fuzzer can pair requests with replies; with `n = 0` every frame is a request.
//! [`stream_input`] writes that format.
//!
//! ## Layout
//! - [`mongo_wire`]: MongoDB frames (OP_MSG, OP_QUERY, OP_COMPRESSED, OP_REPLY) through the
//!   session, the topology rewrite and the hello check.
//! - [`pg_startup`]: the untyped packets of the PostgreSQL startup phase, read and classified.
//! - [`pg_messages`]: typed PostgreSQL messages through the session.

use std::sync::OnceLock;
use std::time::Instant;

use bytes::Bytes;

use crate::framing::{Framer, Piece, Splitter};
use crate::mongo::{is_hello_request, rewrite_topology, MongoFramer, MongoSession};
use crate::postgres::startup::packet::read_packet;
use crate::postgres::{PgFramer, PgSession, StartupLimits};
use crate::tap::{CollectedEvents, Direction, Inspector, TapFrame};

/// The inspection cap of the fuzzed relay: small, so oversize frames are reached too.
const INSPECT_CAP: usize = 64 * 1024;

/// MongoDB wire decoding, both directions, as one connection.
pub fn mongo_wire(data: &[u8]) {
    let mut session = MongoSession::with_pending_cap(8);
    inspect_stream(data, MongoFramer, &mut session, |frame| {
        let _ = rewrite_topology(frame, "proxy.local:27017");
        let _ = is_hello_request(frame);
    });
}

/// Typed PostgreSQL messages, both directions, as one connection after its startup.
pub fn pg_messages(data: &[u8]) {
    let mut session = PgSession::new("db".into());
    inspect_stream(data, PgFramer, &mut session, |_| {});
}

/// The startup phase's packets, read one after another as `negotiate` reads them (the
/// first four, as no session sends more).
pub fn pg_startup(data: &[u8]) {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok()
    });
    let Some(runtime) = runtime else {
        return;
    };
    let limits = StartupLimits::default();
    runtime.block_on(async {
        let mut stream = data;
        for _ in 0..4 {
            if read_packet(&mut stream, &limits).await.is_err() {
                return;
            }
        }
    });
}

/// The input of a stream target: `frames` in order, each with its direction.
pub fn stream_input(frames: &[(Direction, &[u8])]) -> Vec<u8> {
    let count = frames.len().div_ceil(8).min(usize::from(u8::MAX));
    let mut selector = vec![0u8; count];
    for (index, (direction, _)) in frames.iter().enumerate() {
        if *direction == Direction::Reply {
            if let Some(byte) = selector.get_mut(index / 8) {
                *byte |= 1 << (index % 8);
            }
        }
    }
    let mut input = vec![u8::try_from(count).unwrap_or(u8::MAX)];
    input.extend_from_slice(&selector);
    for (_, frame) in frames {
        input.extend_from_slice(frame);
    }
    input
}

/// Splits the stream part of `data` with `framer` and feeds the frames to `inspector` until
/// it gives up, calling `each` on every whole frame first.
fn inspect_stream<F: Framer>(
    data: &[u8],
    framer: F,
    inspector: &mut dyn Inspector,
    mut each: impl FnMut(&[u8]),
) {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let Some((selector, stream)) = rest.split_at_checked(usize::from(count)) else {
        return;
    };
    let mut splitter = Splitter::new(
        framer,
        INSPECT_CAP,
        crate::budget::InspectBudget::unlimited(),
    );
    let mut pieces = Vec::new();
    splitter.push(Bytes::copy_from_slice(stream), &mut pieces);
    splitter.finish(&mut pieces);
    let mut events = CollectedEvents::default();
    let mut index = 0usize;
    for piece in pieces {
        let bit = index.checked_rem(selector.len() * 8).unwrap_or(0);
        let reply = selector
            .get(bit / 8)
            .is_some_and(|byte| (byte >> (bit % 8)) & 1 == 1);
        let frame = |bytes| TapFrame {
            direction: if reply {
                Direction::Reply
            } else {
                Direction::Request
            },
            bytes,
            at: Instant::now(),
        };
        match piece {
            Piece::Frame(bytes) => {
                index += 1;
                each(&bytes);
                if inspector.inspect(frame(bytes), &mut events).is_err() {
                    return;
                }
            }
            Piece::Oversize { header, .. } => {
                index += 1;
                inspector.oversize(frame(header), &mut events);
            }
            Piece::Raw(_) | Piece::Broken(_) => {}
        }
    }
}
