//! What the relay forwards over, and the plain TCP socket's direct write.
//!
//! A pump writes slices of the thread's read arena through [`ByteStream`]. The generic
//! version goes through tokio's `AsyncWrite` (TLS, test duplexes). A plain `TcpStream`, which
//! is what a plaintext PostgreSQL or MongoDB connection is on both sides, takes tokio's
//! `try_write` instead: a readiness check and the system call, and only when the socket is
//! full a `poll_write_ready` that leaves the waker. `poll_write` goes through the readiness
//! registration and the cooperative budget on every write, although a relay's writes almost
//! never wait; and a TCP socket has nothing to flush. Reads keep tokio's `poll_read`: most of
//! them find the socket drained and must leave the waker anyway, and their cooperative budget
//! is what makes a busy relay yield to the thread's other connections.
//!
//! The TCP socket is found by its type (`Any`), directly or inside a [`BoxStream`]: the check
//! is a constant for a concrete type and one virtual call for a boxed stream.
//!
//! ## Layout
//! - [`ByteStream`], [`BoxStream`]: what can be relayed, and how the relay writes to it.
//! - `tcp_write`: the direct write.

use std::any::Any;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Anything the relay can forward over: TCP, TLS over TCP, or a test duplex.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Write from `buf`: how much was taken.
    fn poll_write_slice(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// Flush what the stream holds back (a TLS record); nothing to do for plain TCP.
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A boxed [`ByteStream`].
pub type BoxStream = Box<dyn ByteStream>;

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {
    fn poll_write_slice(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let any: &mut dyn Any = self;
        if let Some(tcp) = any.downcast_ref::<TcpStream>() {
            return tcp_write(tcp, cx, buf);
        }
        // The boxed stream's own implementation, not this one for the box (which would call
        // itself).
        if let Some(boxed) = any.downcast_mut::<BoxStream>() {
            return ByteStream::poll_write_slice(&mut **boxed, cx, buf);
        }
        Pin::new(self).poll_write(cx, buf)
    }

    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let any: &mut dyn Any = self;
        if any.is::<TcpStream>() {
            return Poll::Ready(Ok(()));
        }
        if let Some(boxed) = any.downcast_mut::<BoxStream>() {
            return ByteStream::poll_flush_out(&mut **boxed, cx);
        }
        Pin::new(self).poll_flush(cx)
    }
}

/// Write to a ready socket, or leave the waker for its next readiness. A write that finds
/// the socket full (`WouldBlock`) clears its readiness, so the wait that follows is for the
/// peer to take bytes.
fn tcp_write(tcp: &TcpStream, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    loop {
        match tcp.try_write(buf) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                ready!(tcp.poll_write_ready(cx))?;
            }
            written => return Poll::Ready(written),
        }
    }
}
