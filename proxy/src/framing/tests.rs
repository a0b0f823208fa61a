use super::*;

/// A 4-byte little-endian length that includes itself, like MongoDB's MsgHeader; the relay's
/// tests frame with it too.
pub(crate) struct LenPrefix;

impl Framer for LenPrefix {
    fn header_len(&self) -> usize {
        4
    }
    fn frame_len(&self, header: &[u8]) -> Result<usize, DecodeError> {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if !(4..=1 << 20).contains(&len) {
            return Err(DecodeError::new("bad_length", format!("length {len}")));
        }
        Ok(len)
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 4) as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn split_all(stream: &[u8], chunk: usize, cap: usize) -> Vec<Piece> {
    let mut splitter = Splitter::new(LenPrefix, cap, InspectBudget::unlimited());
    let mut out = Vec::new();
    for part in stream.chunks(chunk) {
        splitter.push(Bytes::copy_from_slice(part), &mut out);
    }
    out
}

fn reassemble(pieces: &[Piece]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Frame(b) | Piece::Raw(b) => out.extend_from_slice(b),
            Piece::Oversize { .. } | Piece::Broken(_) => {}
        }
    }
    out
}

fn frames(pieces: &[Piece]) -> Vec<Vec<u8>> {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Frame(b) => Some(b.to_vec()),
            _ => None,
        })
        .collect()
}

#[test]
fn frames_survive_any_chunking_and_bytes_are_conserved() {
    let mut stream = Vec::new();
    let expected: Vec<Vec<u8>> = (0..20).map(|i| frame(&vec![i as u8; i * 7])).collect();
    for f in &expected {
        stream.extend_from_slice(f);
    }
    for chunk in [1, 2, 3, 5, 8, 64, 4096] {
        let pieces = split_all(&stream, chunk, 1 << 16);
        assert_eq!(frames(&pieces), expected, "chunk size {chunk}");
        assert_eq!(reassemble(&pieces), stream, "chunk size {chunk}");
    }
}

/// Joins its frames into runs, as PostgreSQL's framer does.
struct Joining;

impl Framer for Joining {
    fn header_len(&self) -> usize {
        LenPrefix.header_len()
    }
    fn frame_len(&self, header: &[u8]) -> Result<usize, DecodeError> {
        LenPrefix.frame_len(header)
    }
    fn joins_frames(&self) -> bool {
        true
    }
}

/// A chunk of whole frames comes back as one run with its last frame found; any other
/// chunk gives exactly the pieces `push` gives, whatever the chunking.
#[test]
fn push_run_hands_back_whole_chunks_and_otherwise_pushes() {
    let expected: Vec<Vec<u8>> = (0..12).map(|i| frame(&vec![i as u8; i * 5])).collect();
    let stream = expected.concat();
    let mut splitter = Splitter::new(Joining, 1 << 16, InspectBudget::unlimited());
    let run = splitter
        .push_run(Bytes::from(stream.clone()), Vec::new)
        .expect("a chunk of whole frames is a run");
    assert_eq!(run.frames, stream);
    assert_eq!(run.last_frame(), &expected[11][..]);
    // One frame per run without joining: the last frame is the frame.
    let mut single = Splitter::new(LenPrefix, 1 << 16, InspectBudget::unlimited());
    let run = single
        .push_run(Bytes::from(expected[3].clone()), Vec::new)
        .expect("one whole frame is a run");
    assert_eq!(run.last_frame(), &expected[3][..]);
    for chunk in [1, 3, 7, 50, 100] {
        let (mut by_run, mut by_push) = (
            Splitter::new(Joining, 64, InspectBudget::unlimited()),
            Splitter::new(Joining, 64, InspectBudget::unlimited()),
        );
        let (mut ran, mut pushed) = (Vec::new(), Vec::new());
        for part in stream.chunks(chunk) {
            let part = Bytes::copy_from_slice(part);
            match by_run.push_run(part.clone(), Vec::new) {
                Ok(run) => ran.push(Piece::Frame(run.frames)),
                Err(pieces) => ran.extend(pieces),
            }
            by_push.push(part, &mut pushed);
        }
        assert_eq!(
            format!("{ran:?}"),
            format!("{pushed:?}"),
            "chunk size {chunk}"
        );
        assert_eq!(reassemble(&ran), stream, "chunk size {chunk}");
    }
}

#[test]
fn oversize_frames_stream_past_uninspected() {
    let big = frame(&vec![7u8; 1000]);
    let small = frame(b"after");
    let stream = [big.clone(), small.clone()].concat();
    for chunk in [1, 10, 100, 5000] {
        let pieces = split_all(&stream, chunk, 100);
        assert!(pieces.iter().any(|p| matches!(p, Piece::Oversize { len: 1004, header, over_budget: false } if header[..] == 1004u32.to_le_bytes())));
        assert_eq!(frames(&pieces), vec![small.clone()], "chunk size {chunk}");
        assert_eq!(reassemble(&pieces), stream);
    }
}

#[test]
fn a_stream_ending_inside_a_frame_is_truncated_and_hands_back_its_bytes() {
    let good = frame(b"whole");
    let cut = frame(b"cut short here");
    let stream = [&good[..], &cut[..9]].concat();
    for chunk in [1, 3, 4096] {
        let mut splitter = Splitter::new(LenPrefix, 1 << 16, InspectBudget::unlimited());
        let mut pieces = Vec::new();
        for part in stream.chunks(chunk) {
            splitter.push(Bytes::copy_from_slice(part), &mut pieces);
        }
        splitter.finish(&mut pieces);
        assert_eq!(frames(&pieces), vec![good.clone()]);
        assert!(pieces
            .iter()
            .any(|p| matches!(p, Piece::Broken(e) if e.reason == "truncated")));
        assert_eq!(reassemble(&pieces), stream, "chunk size {chunk}");
    }
    // Ending between frames, or inside an oversize frame streaming past.
    let mut splitter = Splitter::new(LenPrefix, 1 << 16, InspectBudget::unlimited());
    let mut pieces = Vec::new();
    splitter.push(Bytes::from(good.clone()), &mut pieces);
    splitter.finish(&mut pieces);
    assert!(!pieces.iter().any(|p| matches!(p, Piece::Broken(_))));
    let mut splitter = Splitter::new(LenPrefix, 8, InspectBudget::unlimited());
    let mut pieces = Vec::new();
    splitter.push(Bytes::copy_from_slice(&cut[..12]), &mut pieces);
    splitter.finish(&mut pieces);
    assert!(pieces
        .iter()
        .any(|p| matches!(p, Piece::Broken(e) if e.reason == "truncated")));
    assert_eq!(reassemble(&pieces), &cut[..12]);
}

fn push_in_chunks(splitter: &mut Splitter<LenPrefix>, stream: &[u8], chunk: usize) -> Vec<Piece> {
    let mut out = Vec::new();
    for part in stream.chunks(chunk) {
        splitter.push(Bytes::copy_from_slice(part), &mut out);
    }
    out
}

#[test]
fn a_gathered_frame_holds_budget_room_until_its_last_slice_is_dropped() {
    let budget = InspectBudget::new(4096, Default::default());
    let big = frame(&[9u8; 1000]);
    for chunk in [1, 3, 100] {
        let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
        let mut pieces = push_in_chunks(&mut splitter, &big[..500], chunk);
        assert!(pieces.is_empty());
        assert_eq!(budget.held(), 1004, "the whole frame's room, taken once");
        splitter.push(Bytes::copy_from_slice(&big[500..]), &mut pieces);
        assert_eq!(frames(&pieces), vec![big.clone()]);
        assert_eq!(
            budget.held(),
            1004,
            "held while the frame awaits inspection"
        );
        drop(pieces);
        assert_eq!(budget.held(), 0, "chunk size {chunk}");
    }
    // A frame within one chunk is a slice of it and takes nothing.
    let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
    let pieces = push_in_chunks(&mut splitter, &big, big.len());
    assert_eq!(frames(&pieces), vec![big.clone()]);
    assert_eq!(budget.held(), 0);
}

#[test]
fn without_budget_room_a_frame_streams_past_and_says_why() {
    let budget = InspectBudget::new(4096, Default::default());
    let others = budget.reserve(4000).expect("room");
    let big = frame(&[9u8; 1000]);
    let small = frame(b"small");
    let stream = [big.clone(), small.clone()].concat();
    for chunk in [1, 3, 100] {
        let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
        let pieces = push_in_chunks(&mut splitter, &stream, chunk);
        assert!(
            pieces.iter().any(|p| matches!(
                p,
                Piece::Oversize {
                    len: 1004,
                    over_budget: true,
                    ..
                }
            )),
            "chunk size {chunk}"
        );
        assert_eq!(reassemble(&pieces), stream, "chunk size {chunk}");
        // The small frame after it fits in the room left, and is gathered again.
        assert_eq!(frames(&pieces), vec![small.clone()], "chunk size {chunk}");
        drop(pieces);
        assert_eq!(budget.held(), 4000);
    }
    // Over the cap is oversize whatever the budget says.
    let mut splitter = Splitter::new(LenPrefix, 512, budget.clone());
    let pieces = push_in_chunks(&mut splitter, &stream, 3);
    assert!(pieces.iter().any(|p| matches!(
        p,
        Piece::Oversize {
            over_budget: false,
            ..
        }
    )));
    drop((pieces, others));
    assert_eq!(budget.held(), 0);
}

#[test]
fn a_frame_that_must_be_held_is_gathered_past_the_budget() {
    let budget = InspectBudget::new(4096, Default::default());
    let others = budget.reserve(4096).expect("room");
    let big = frame(&[9u8; 1000]);
    let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
    let mut pieces = Vec::new();
    for part in big.chunks(100) {
        splitter.push_held(Bytes::copy_from_slice(part), &mut pieces);
    }
    assert_eq!(frames(&pieces), vec![big.clone()]);
    assert_eq!(budget.held(), 4096 + 1004, "counted all the same");
    drop((pieces, others));
    assert_eq!(budget.held(), 0);
}

#[test]
fn a_stream_ending_or_dropped_mid_frame_gives_its_room_back() {
    let budget = InspectBudget::new(4096, Default::default());
    let big = frame(&[9u8; 1000]);
    let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
    let mut pieces = push_in_chunks(&mut splitter, &big[..600], 50);
    assert_eq!(budget.held(), 1004);
    splitter.finish(&mut pieces);
    assert_eq!(reassemble(&pieces), &big[..600]);
    drop(pieces);
    assert_eq!(budget.held(), 0);
    // A connection closed mid-frame drops its splitter.
    let mut splitter = Splitter::new(LenPrefix, 2048, budget.clone());
    drop(push_in_chunks(&mut splitter, &big[..600], 50));
    assert_eq!(budget.held(), 1004);
    drop(splitter);
    assert_eq!(budget.held(), 0);
}

#[test]
fn absurd_length_breaks_framing_but_keeps_every_byte() {
    let good = frame(b"ok");
    let mut stream = good.clone();
    stream.extend_from_slice(&u32::MAX.to_le_bytes());
    stream.extend_from_slice(b"garbage that follows");
    for chunk in [1, 3, 4096] {
        let pieces = split_all(&stream, chunk, 1 << 16);
        assert_eq!(frames(&pieces), vec![good.clone()]);
        assert!(pieces
            .iter()
            .any(|p| matches!(p, Piece::Broken(e) if e.reason == "bad_length")));
        assert_eq!(reassemble(&pieces), stream);
    }
}
