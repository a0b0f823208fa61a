//! The data path. (Being written.)

use tokio::io::{AsyncRead, AsyncWrite};

/// Anything the relay can forward over: TCP, TLS over TCP, or a test duplex.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// A boxed [`ByteStream`].
pub type BoxStream = Box<dyn ByteStream>;
