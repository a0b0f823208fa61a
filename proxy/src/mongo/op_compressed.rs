//! OP_COMPRESSED (opcode 2012): another message, compressed.
//!
//! ```text
//! originalOpcode     int32
//! uncompressedSize   int32    the original body's size, header excluded
//! compressorId       uint8    0 noop, 1 snappy, 2 zlib, 3 zstd
//! compressedMessage  the original body, compressed
//! ```
//!
//! The relay has already forwarded the compressed bytes; decompression makes an inspection
//! copy. `uncompressedSize` is checked against a cap before anything is allocated, and the
//! output is read through a limit, so a lying size or a decompression bomb costs at most the
//! cap. zlib and zstd output grows with what is really produced, not with the claim.

use std::io::Read;

use crate::tap::DecodeError;

use super::reader::Reader;

/// A compressor named by `compressorId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressor {
    /// 0: not compressed.
    Noop,
    /// 1: snappy (raw format, not framed).
    Snappy,
    /// 2: zlib.
    Zlib,
    /// 3: zstd.
    Zstd,
}

impl Compressor {
    /// The compressor for an id, or `unknown_compressor`.
    pub fn from_id(id: u8) -> Result<Compressor, DecodeError> {
        Ok(match id {
            0 => Compressor::Noop,
            1 => Compressor::Snappy,
            2 => Compressor::Zlib,
            3 => Compressor::Zstd,
            other => {
                return Err(DecodeError::new(
                    "unknown_compressor",
                    format!("compressorId {other}"),
                ))
            }
        })
    }

    /// The label counted through `Events::count` for each compressed message.
    pub fn count_label(self) -> &'static str {
        match self {
            Compressor::Noop => "compressed_noop",
            Compressor::Snappy => "compressed_snappy",
            Compressor::Zlib => "compressed_zlib",
            Compressor::Zstd => "compressed_zstd",
        }
    }
}

/// A decoded OP_COMPRESSED, borrowing its payload from the frame.
#[derive(Debug, Clone)]
pub struct OpCompressed<'a> {
    /// The opcode of the message inside.
    pub original_opcode: i32,
    /// The claimed size of the original body.
    pub uncompressed_size: i32,
    /// How it was compressed.
    pub compressor: Compressor,
    /// The compressed body.
    pub payload: &'a [u8],
}

impl<'a> OpCompressed<'a> {
    /// Parse an OP_COMPRESSED body (the frame after its header).
    pub fn parse(body: &'a [u8]) -> Result<OpCompressed<'a>, DecodeError> {
        let mut reader = Reader::new(body);
        let original_opcode = reader.i32("originalOpcode")?;
        let uncompressed_size = reader.i32("uncompressedSize")?;
        let compressor = Compressor::from_id(reader.u8("compressorId")?)?;
        Ok(OpCompressed {
            original_opcode,
            uncompressed_size,
            compressor,
            payload: reader.rest(),
        })
    }

    /// The claimed size, if it is at most `max` bytes.
    pub fn size_within(&self, max: usize) -> Option<usize> {
        usize::try_from(self.uncompressed_size)
            .ok()
            .filter(|size| *size <= max)
    }

    /// The original body, which must be exactly `uncompressedSize` bytes, itself at most
    /// `max`.
    pub fn decompress(&self, max: usize) -> Result<Vec<u8>, DecodeError> {
        let size = self.size_within(max).ok_or_else(|| {
            DecodeError::new(
                "bad_compressed_size",
                format!("uncompressedSize {} (cap {max})", self.uncompressed_size),
            )
        })?;
        let out = match self.compressor {
            Compressor::Noop => self.payload.to_vec(),
            Compressor::Snappy => snappy(self.payload, size)?,
            Compressor::Zlib => read_limited(flate2::read::ZlibDecoder::new(self.payload), size)?,
            Compressor::Zstd => {
                let decoder = zstd::stream::read::Decoder::with_buffer(self.payload)
                    .map_err(|_| DecodeError::new("decompress", "zstd: cannot start"))?;
                read_limited(decoder, size)?
            }
        };
        if out.len() != size {
            return Err(wrong_size(size, out.len()));
        }
        Ok(out)
    }
}

/// Snappy states its output length up front: check it against the claim, then allocate.
fn snappy(payload: &[u8], size: usize) -> Result<Vec<u8>, DecodeError> {
    let stated = snap::raw::decompress_len(payload)
        .map_err(|_| DecodeError::new("decompress", "snappy: bad header"))?;
    if stated != size {
        return Err(wrong_size(size, stated));
    }
    let mut out = vec![0u8; size];
    let written = snap::raw::Decoder::new()
        .decompress(payload, &mut out)
        .map_err(|_| DecodeError::new("decompress", "snappy: corrupt input"))?;
    out.truncate(written);
    Ok(out)
}

/// Read at most `size + 1` bytes: one more than claimed is enough to know the claim lied.
fn read_limited(decoder: impl Read, size: usize) -> Result<Vec<u8>, DecodeError> {
    let limit = u64::try_from(size).unwrap_or(u64::MAX).saturating_add(1);
    // Start small: the claim may be a lie, and growth follows real output.
    let mut out = Vec::with_capacity(size.min(64 * 1024));
    decoder
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::new("decompress", "corrupt compressed stream"))?;
    Ok(out)
}

fn wrong_size(claimed: usize, actual: usize) -> DecodeError {
    DecodeError::new(
        "bad_compressed_size",
        format!("uncompressedSize {claimed}, decompressed {actual}"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::mongo::testing::{compress, compressed_frame, frame};

    const LIMIT: usize = 1 << 20;

    fn body_of(frame: &[u8]) -> &[u8] {
        &frame[16..]
    }

    #[test]
    fn every_compressor_round_trips() {
        let original = frame(
            1,
            0,
            2013,
            b"some body bytes, some body bytes, some body bytes",
        );
        for (id, compressor) in [
            (0, Compressor::Noop),
            (1, Compressor::Snappy),
            (2, Compressor::Zlib),
            (3, Compressor::Zstd),
        ] {
            let wrapped = compress(&original, id);
            let parsed = OpCompressed::parse(body_of(&wrapped)).unwrap();
            assert_eq!(parsed.compressor, compressor);
            assert_eq!(parsed.original_opcode, 2013);
            assert_eq!(parsed.decompress(LIMIT).unwrap(), &original[16..]);
        }
    }

    #[test]
    fn a_lying_size_is_rejected() {
        let original = frame(1, 0, 2013, &[7u8; 300]);
        for id in 0..=3 {
            let honest = compress(&original, id);
            let payload = &honest[25..];
            for lie in [299, 301, 10] {
                let lying = compressed_frame(1, 0, 2013, lie, id, payload);
                let err = OpCompressed::parse(body_of(&lying))
                    .unwrap()
                    .decompress(LIMIT)
                    .unwrap_err();
                assert_eq!(err.reason, "bad_compressed_size", "id {id}, lie {lie}");
            }
        }
    }

    #[test]
    fn a_size_past_the_cap_is_rejected_before_decompressing() {
        for size in [-1, i32::MAX, LIMIT as i32 + 1] {
            let frame = compressed_frame(1, 0, 2013, size, 2, b"not even zlib");
            let err = OpCompressed::parse(body_of(&frame))
                .unwrap()
                .decompress(LIMIT)
                .unwrap_err();
            assert_eq!(err.reason, "bad_compressed_size");
        }
    }

    #[test]
    fn garbage_payloads_fail_to_decompress() {
        for id in 1..=3 {
            let frame = compressed_frame(1, 0, 2013, 100, id, &[0xff; 40]);
            let err = OpCompressed::parse(body_of(&frame))
                .unwrap()
                .decompress(LIMIT)
                .unwrap_err();
            assert!(
                ["decompress", "bad_compressed_size"].contains(&err.reason),
                "id {id}: {err}"
            );
        }
    }

    #[test]
    fn unknown_compressor_and_truncation() {
        let frame = compressed_frame(1, 0, 2013, 0, 9, b"");
        assert_eq!(
            OpCompressed::parse(body_of(&frame)).unwrap_err().reason,
            "unknown_compressor"
        );
        assert_eq!(
            OpCompressed::parse(&[0, 0, 0]).unwrap_err().reason,
            "truncated"
        );
    }
}
