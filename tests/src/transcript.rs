//! What a raw client hears: the bytes and how the connection ended, so a test can hold the
//! server heard through the proxy against the same server heard directly.
//!
//! A conversation is a list of [`Step`]s (send these bytes, wait for that many), then a read
//! until the server closes, resets, or stays quiet for the given time. Nothing is parsed:
//! the comparison is of bytes.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One step of a conversation.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes.
    Send(Vec<u8>),
    /// Wait until this many more bytes have been heard (a one-byte SSLRequest answer).
    Hear(usize),
    /// Half-close: nothing more will be sent.
    Finish,
}

/// How the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// An orderly end of stream.
    Closed,
    /// A reset (the peer closed with our bytes unread), or a write refused for that reason.
    Reset,
    /// Still open after the quiet period.
    Open,
}

impl Ending {
    /// Closed either way: a reset and an orderly close both end the client's session.
    pub fn is_closed(self) -> bool {
        self != Ending::Open
    }
}

/// What the client heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// Every byte received, in order.
    pub bytes: Vec<u8>,
    /// How it ended.
    pub ending: Ending,
}

/// Connects to `addr`, plays `steps`, then reads until the connection ends or nothing comes
/// for `quiet`.
pub fn converse(addr: SocketAddr, steps: &[Step], quiet: Duration) -> Heard {
    let stream = TcpStream::connect(addr).unwrap_or_else(|err| panic!("connect to {addr}: {err}"));
    converse_on(stream, steps, quiet)
}

/// [`converse`] on a connection already open (past a PostgreSQL startup, say); only what is
/// heard from now on counts.
pub fn converse_on(mut stream: TcpStream, steps: &[Step], quiet: Duration) -> Heard {
    stream.set_nodelay(true).expect("nodelay");
    let mut heard = Vec::new();
    for step in steps {
        let ended = match step {
            Step::Send(bytes) => match stream.write_all(bytes) {
                Ok(()) => None,
                Err(err) if is_reset(err.kind()) => Some(Ending::Reset),
                Err(err) => panic!("writing: {err}"),
            },
            Step::Hear(count) => hear(&mut stream, &mut heard, *count, quiet),
            Step::Finish => stream
                .shutdown(Shutdown::Write)
                .err()
                .map(|_| Ending::Reset),
        };
        if let Some(ending) = ended {
            return Heard {
                bytes: heard,
                ending,
            };
        }
    }
    let ending = hear(&mut stream, &mut heard, usize::MAX, quiet).unwrap_or(Ending::Open);
    Heard {
        bytes: heard,
        ending,
    }
}

/// Reads until `count` more bytes came (`None`), or the connection ended or went quiet.
fn hear(
    stream: &mut TcpStream,
    heard: &mut Vec<u8>,
    count: usize,
    quiet: Duration,
) -> Option<Ending> {
    let wanted = heard.len().saturating_add(count);
    let mut buf = [0u8; 4096];
    let mut last = Instant::now();
    while heard.len() < wanted {
        let left = quiet.saturating_sub(last.elapsed());
        if left.is_zero() {
            return Some(Ending::Open);
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Some(Ending::Closed),
            Ok(n) => {
                heard.extend_from_slice(buf.get(..n).unwrap_or_default());
                last = Instant::now();
            }
            Err(err) if is_reset(err.kind()) => return Some(Ending::Reset),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Some(Ending::Open)
            }
            Err(err) => panic!("reading: {err}"),
        }
    }
    None
}

fn is_reset(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}
