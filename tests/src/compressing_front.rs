//! [`CompressingFront`]: a **fake**, test-only server front that gives SecantusDB OP_COMPRESSED.
//!
//! SecantusDB does not implement wire compression: it closes a connection that sends opcode
//! 2012 and never offers `compression` in `hello`. To prove that the proxy decodes compressed
//! traffic against a real server, this fake sits between the proxy and SecantusDB:
//!
//! ```text
//! test ──OP_COMPRESSED──▶ indextap ──OP_COMPRESSED──▶ CompressingFront ──plain──▶ SecantusDB
//!      ◀─OP_COMPRESSED───          ◀─OP_COMPRESSED──                  ◀─plain───
//! ```
//!
//! - A compressed request (snappy = 1, zlib = 2, zstd = 3, or noop = 0) is decompressed into
//!   the message it wraps: same `requestID` and `responseTo`, `opCode` = `originalOpcode`.
//! - The reply to a compressed request is compressed again with the request's compressor (and
//!   so is every `moreToCome` reply chained after it). Replies to uncompressed requests, and
//!   uncompressed requests themselves, pass through byte for byte.
//! - A frame it cannot read (a bad length, a corrupt payload, a size that does not match)
//!   closes the connection, as a server would; [`FrontCounts::refused`] counts it.
//!
//! It is not a MongoDB implementation of compression: there is no negotiation, and it only
//! exists so that tests can put compressed bytes on a real connection. [`wrap`] and [`unwrap`]
//! are the same transformations, for tests that build or read compressed frames themselves.
//!
//! Like the other fixtures it is a guard: [`CompressingFront::start`] returns once it accepts
//! connections (it runs on a thread of its own, so it works from plain and async tests alike),
//! and dropping it stops it and closes its connections.
//!
//! ## Layout
//! - [`CompressingFront`]: the guard; [`FrontCounts`]: what it did.
//! - [`Compressor`]: the wire ids and the codecs (`snap`, `flate2`, `zstd`).
//! - [`wrap`], [`unwrap`]: one frame into and out of OP_COMPRESSED.
//! - `serve` and the pumps (private): one connection.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::service::LoopbackService;

/// `opCode` of OP_COMPRESSED.
pub const OP_COMPRESSED: i32 = 2012;
/// `opCode` of OP_MSG.
const OP_MSG: i32 = 2013;
/// OP_MSG `flagBits`: more replies follow without a request.
const MORE_TO_COME: u32 = 1 << 1;
const HEADER_LEN: usize = 16;
/// The largest message read: above SecantusDB's 48 MB `maxMessageSizeBytes`.
const MAX_MESSAGE_LEN: usize = 64 * 1024 * 1024;
/// OP_COMPRESSED's own fields after the header: originalOpcode, uncompressedSize, compressorId.
const COMPRESSED_PREFIX_LEN: usize = 9;

/// A compressor, by its `compressorId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compressor {
    /// 0: the payload is the message body as is.
    Noop,
    /// 1: raw (unframed) snappy.
    Snappy,
    /// 2: zlib.
    Zlib,
    /// 3: zstd.
    Zstd,
}

impl Compressor {
    /// The three real compressors.
    pub const ALL: [Compressor; 3] = [Compressor::Snappy, Compressor::Zlib, Compressor::Zstd];

    /// The wire id.
    pub fn id(self) -> u8 {
        match self {
            Compressor::Noop => 0,
            Compressor::Snappy => 1,
            Compressor::Zlib => 2,
            Compressor::Zstd => 3,
        }
    }

    /// The compressor for a wire id.
    pub fn from_id(id: u8) -> Option<Compressor> {
        match id {
            0 => Some(Compressor::Noop),
            1 => Some(Compressor::Snappy),
            2 => Some(Compressor::Zlib),
            3 => Some(Compressor::Zstd),
            _ => None,
        }
    }

    /// The name drivers use in `compressors=` (and indextap in its `compressed_<name>` events).
    pub fn name(self) -> &'static str {
        match self {
            Compressor::Noop => "noop",
            Compressor::Snappy => "snappy",
            Compressor::Zlib => "zlib",
            Compressor::Zstd => "zstd",
        }
    }

    /// `data`, compressed.
    pub fn compress(self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Compressor::Noop => Ok(data.to_vec()),
            Compressor::Snappy => snap::raw::Encoder::new()
                .compress_vec(data)
                .map_err(io::Error::other),
            Compressor::Zlib => {
                let mut encoder =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(data)?;
                encoder.finish()
            }
            Compressor::Zstd => zstd::stream::encode_all(data, 0),
        }
    }

    /// `data` decompressed, which must come to exactly `size` bytes.
    pub fn decompress(self, data: &[u8], size: usize) -> io::Result<Vec<u8>> {
        if size > MAX_MESSAGE_LEN {
            return Err(invalid(format!(
                "uncompressedSize {size} is over {MAX_MESSAGE_LEN}"
            )));
        }
        let limit = u64::try_from(size).unwrap_or(u64::MAX).saturating_add(1);
        let mut out = Vec::new();
        match self {
            Compressor::Noop => out.extend_from_slice(data),
            Compressor::Snappy => {
                if snap::raw::decompress_len(data).map_err(io::Error::other)? != size {
                    return Err(invalid("snappy length differs from uncompressedSize"));
                }
                out = snap::raw::Decoder::new()
                    .decompress_vec(data)
                    .map_err(io::Error::other)?;
            }
            Compressor::Zlib => {
                flate2::read::ZlibDecoder::new(data)
                    .take(limit)
                    .read_to_end(&mut out)?;
            }
            Compressor::Zstd => {
                zstd::stream::read::Decoder::new(data)?
                    .take(limit)
                    .read_to_end(&mut out)?;
            }
        }
        if out.len() != size {
            return Err(invalid(format!(
                "decompressed {} bytes, uncompressedSize says {size}",
                out.len()
            )));
        }
        Ok(out)
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn read_i32(frame: &[u8], at: usize) -> io::Result<i32> {
    frame
        .get(at..at + 4)
        .and_then(|bytes| bytes.try_into().ok())
        .map(i32::from_le_bytes)
        .ok_or_else(|| invalid(format!("frame too short for an int32 at {at}")))
}

fn header(len: usize, request_id: i32, response_to: i32, op_code: i32) -> io::Result<Vec<u8>> {
    let len = i32::try_from(len).map_err(|_| invalid("message too long"))?;
    let mut out = Vec::with_capacity(HEADER_LEN);
    for field in [len, request_id, response_to, op_code] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    Ok(out)
}

/// A whole message (header included) wrapped in OP_COMPRESSED with `compressor`: same
/// `requestID` and `responseTo`, `originalOpcode` from its header.
pub fn wrap(frame: &[u8], compressor: Compressor) -> io::Result<Vec<u8>> {
    let request_id = read_i32(frame, 4)?;
    let response_to = read_i32(frame, 8)?;
    let original_opcode = read_i32(frame, 12)?;
    let body = frame.get(HEADER_LEN..).unwrap_or_default();
    let payload = compressor.compress(body)?;
    let uncompressed_size = i32::try_from(body.len()).map_err(|_| invalid("body too long"))?;
    let len = HEADER_LEN + COMPRESSED_PREFIX_LEN + payload.len();
    let mut out = header(len, request_id, response_to, OP_COMPRESSED)?;
    out.extend_from_slice(&original_opcode.to_le_bytes());
    out.extend_from_slice(&uncompressed_size.to_le_bytes());
    out.push(compressor.id());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The message inside an OP_COMPRESSED frame, and its compressor; any other frame is returned
/// as it is, with `None`.
pub fn unwrap(frame: &[u8]) -> io::Result<(Vec<u8>, Option<Compressor>)> {
    let declared = usize::try_from(read_i32(frame, 0)?).unwrap_or(0);
    if declared != frame.len() {
        return Err(invalid(format!(
            "messageLength {declared}, frame of {} bytes",
            frame.len()
        )));
    }
    if read_i32(frame, 12)? != OP_COMPRESSED {
        return Ok((frame.to_vec(), None));
    }
    let original_opcode = read_i32(frame, 16)?;
    let size =
        usize::try_from(read_i32(frame, 20)?).map_err(|_| invalid("negative uncompressedSize"))?;
    let id = *frame.get(24).ok_or_else(|| invalid("no compressorId"))?;
    let compressor =
        Compressor::from_id(id).ok_or_else(|| invalid(format!("compressorId {id}")))?;
    let payload = frame
        .get(HEADER_LEN + COMPRESSED_PREFIX_LEN..)
        .unwrap_or_default();
    let body = compressor.decompress(payload, size)?;
    let mut out = header(
        HEADER_LEN + body.len(),
        read_i32(frame, 4)?,
        read_i32(frame, 8)?,
        original_opcode,
    )?;
    out.extend_from_slice(&body);
    Ok((out, Some(compressor)))
}

/// What the front has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontCounts {
    /// Compressed requests decompressed for SecantusDB, by compressor.
    pub unwrapped: HashMap<Compressor, u64>,
    /// Replies compressed for the client, by compressor.
    pub wrapped: HashMap<Compressor, u64>,
    /// Uncompressed frames passed through as they came (both directions).
    pub passed_through: u64,
    /// Connections closed because a frame could not be read.
    pub refused: u64,
}

impl FrontCounts {
    /// Requests decompressed with `compressor`.
    pub fn unwrapped(&self, compressor: Compressor) -> u64 {
        self.unwrapped.get(&compressor).copied().unwrap_or(0)
    }

    /// Replies compressed with `compressor`.
    pub fn wrapped(&self, compressor: Compressor) -> u64 {
        self.wrapped.get(&compressor).copied().unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct Counters {
    unwrapped: [AtomicU64; 4],
    wrapped: [AtomicU64; 4],
    passed_through: AtomicU64,
    refused: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> FrontCounts {
        let by_compressor = |counters: &[AtomicU64; 4]| {
            [
                Compressor::Noop,
                Compressor::Snappy,
                Compressor::Zlib,
                Compressor::Zstd,
            ]
            .into_iter()
            .zip(counters)
            .map(|(compressor, count)| (compressor, count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect()
        };
        FrontCounts {
            unwrapped: by_compressor(&self.unwrapped),
            wrapped: by_compressor(&self.wrapped),
            passed_through: self.passed_through.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

fn bump(counters: &[AtomicU64; 4], compressor: Compressor) {
    if let Some(counter) = counters.get(usize::from(compressor.id())) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The running fake; stopped, with its connections, when dropped.
pub struct CompressingFront {
    service: LoopbackService,
    upstream: SocketAddr,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for CompressingFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompressingFront")
            .field("addr", &self.service.addr())
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl CompressingFront {
    /// Listens on a fresh loopback port and serves in front of `upstream` (a SecantusDB).
    /// Panics if it cannot listen.
    pub fn start(upstream: SocketAddr) -> Self {
        let counters = Arc::new(Counters::default());
        let serving = counters.clone();
        let service = LoopbackService::start("compressing-front", move |client| {
            serve(client, upstream, serving.clone())
        });
        Self {
            service,
            upstream,
            counters,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.service.addr()
    }

    /// Where it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// What it has done so far.
    pub fn counts(&self) -> FrontCounts {
        self.counters.snapshot()
    }
}

/// Request ids whose replies go back compressed, and with what.
type Compressed = Arc<Mutex<HashMap<i32, Compressor>>>;

async fn serve(client: TcpStream, upstream: SocketAddr, counters: Arc<Counters>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let compressed = Compressed::default();
    let requests = pump(client_read, server_write, |frame| {
        request(frame, &compressed, &counters)
    });
    let replies = pump(server_read, client_write, |frame| {
        reply(frame, &compressed, &counters)
    });
    // An error in either direction drops both, closing both sockets.
    if tokio::try_join!(requests, replies).is_err() {
        counters.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads one whole message, or `None` at a clean end of stream between messages.
async fn read_frame<R: AsyncRead + Unpin>(from: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 4];
    match from.read_exact(&mut length).await {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = usize::try_from(i32::from_le_bytes(length))
        .ok()
        .filter(|len| (HEADER_LEN..=MAX_MESSAGE_LEN).contains(len))
        .ok_or_else(|| invalid("bad messageLength"))?;
    let mut frame = vec![0u8; len];
    frame[..4].copy_from_slice(&length);
    from.read_exact(&mut frame[4..]).await?;
    Ok(Some(frame))
}

/// Copies frames from one side to the other, each through `forward` (which says what to
/// write), then ends the writing side.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    mut forward: impl FnMut(Vec<u8>) -> io::Result<Vec<u8>>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while let Some(frame) = read_frame(&mut from).await? {
        to.write_all(&forward(frame)?).await?;
    }
    to.shutdown().await
}

/// A request to the server: decompressed, its compressor kept for the reply.
fn request(frame: Vec<u8>, compressed: &Compressed, counters: &Counters) -> io::Result<Vec<u8>> {
    let (plain, compressor) = unwrap(&frame)?;
    match compressor {
        Some(compressor) => {
            bump(&counters.unwrapped, compressor);
            let request_id = read_i32(&plain, 4)?;
            lock(compressed).insert(request_id, compressor);
        }
        None => {
            counters.passed_through.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(plain)
}

/// A reply to the client: compressed as its request was.
fn reply(frame: Vec<u8>, compressed: &Compressed, counters: &Counters) -> io::Result<Vec<u8>> {
    let response_to = read_i32(&frame, 8)?;
    let compressor = lock(compressed).remove(&response_to);
    let Some(compressor) = compressor else {
        counters.passed_through.fetch_add(1, Ordering::Relaxed);
        return Ok(frame);
    };
    if more_to_come(&frame) {
        // The next reply names this one in its responseTo: it goes back compressed too.
        lock(compressed).insert(read_i32(&frame, 4)?, compressor);
    }
    bump(&counters.wrapped, compressor);
    wrap(&frame, compressor)
}

fn more_to_come(frame: &[u8]) -> bool {
    read_i32(frame, 12).is_ok_and(|op| op == OP_MSG)
        && read_i32(frame, HEADER_LEN).is_ok_and(|flags| flags as u32 & MORE_TO_COME != 0)
}

fn lock(compressed: &Compressed) -> std::sync::MutexGuard<'_, HashMap<i32, Compressor>> {
    compressed
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op_msg(request_id: i32, text: &str) -> Vec<u8> {
        let body = [&[0u8; 5][..], text.as_bytes()].concat();
        let mut frame = header(HEADER_LEN + body.len(), request_id, 0, OP_MSG).expect("header");
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn wrap_and_unwrap_round_trip_with_every_compressor() {
        let plain = op_msg(42, &"a body that compresses well ".repeat(20));
        for compressor in [Compressor::Noop].into_iter().chain(Compressor::ALL) {
            let wrapped = wrap(&plain, compressor).expect("wrap");
            assert_eq!(read_i32(&wrapped, 0).unwrap() as usize, wrapped.len());
            assert_eq!(read_i32(&wrapped, 4).unwrap(), 42);
            assert_eq!(read_i32(&wrapped, 12).unwrap(), OP_COMPRESSED);
            assert_eq!(read_i32(&wrapped, 16).unwrap(), OP_MSG);
            assert_eq!(wrapped[24], compressor.id());
            if compressor != Compressor::Noop {
                assert!(wrapped.len() < plain.len(), "{compressor:?} compresses");
            }
            let (unwrapped, found) = unwrap(&wrapped).expect("unwrap");
            assert_eq!(found, Some(compressor));
            assert_eq!(unwrapped, plain);
        }
        assert_eq!(unwrap(&plain).expect("plain"), (plain.clone(), None));
    }

    #[test]
    fn a_wrong_uncompressed_size_is_refused() {
        let plain = op_msg(1, "some body");
        for compressor in Compressor::ALL {
            let mut wrapped = wrap(&plain, compressor).expect("wrap");
            let claimed = read_i32(&wrapped, 20).unwrap();
            wrapped[20..24].copy_from_slice(&(claimed + 1).to_le_bytes());
            assert!(unwrap(&wrapped).is_err(), "{compressor:?}");
            wrapped[20..24].copy_from_slice(&i32::MAX.to_le_bytes());
            assert!(unwrap(&wrapped).is_err(), "{compressor:?}");
        }
    }
}
