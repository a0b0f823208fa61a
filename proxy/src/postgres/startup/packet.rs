//! The untyped messages of the startup phase: a length that counts itself, then a code.
//!
//! SSLRequest, GSSENCRequest and CancelRequest are told apart by their code; anything else
//! is a StartupMessage whose code is the protocol version. Only `user` and `database` are
//! read from a StartupMessage: the other parameters (`options`, `application_name`, ...)
//! are forwarded untouched and not kept.
//!
//! A packet the proxy cannot read (a length no packet can have, an unknown protocol, a body
//! pgwire refuses) is not an error here: it is classified, and `negotiate` forwards its
//! bytes to the server, whose own answer is the one the client should get.

use std::io;

use bytes::BytesMut;
use pgwire::messages::startup::Startup;
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::timeout;

use super::StartupLimits;
use crate::error::ProxyError;

/// SSLRequest code.
pub const SSL_REQUEST: i32 = 80_877_103;
/// GSSENCRequest code.
pub const GSSENC_REQUEST: i32 = 80_877_104;
/// CancelRequest code.
pub const CANCEL_REQUEST: i32 = 80_877_102;

/// Length and code.
const MIN_PACKET: usize = 8;

/// A startup-phase packet: its bytes, to forward verbatim, and what it is.
#[derive(Debug)]
pub struct Packet {
    /// The whole packet, length included.
    pub bytes: Vec<u8>,
    /// What it asks for.
    pub kind: PacketKind,
}

/// What a startup-phase packet asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketKind {
    /// Switch to TLS?
    SslRequest,
    /// Switch to GSSAPI encryption?
    GssEncRequest,
    /// Cancel a running query (process id and secret, forwarded verbatim).
    CancelRequest,
    /// Start a protocol 3 session on this database.
    Startup {
        /// The `database` parameter, or the `user` parameter when it is absent.
        database: String,
    },
    /// A protocol version the proxy does not speak (major version here), or a protocol 3
    /// StartupMessage whose parameters cannot be read.
    Unsupported(u16),
    /// A length field outside `8..=max_packet` (an HTTP request reads as one): only the four
    /// length bytes were read, nothing of that size was allocated.
    BadLength(i32),
}

/// Reads one startup-phase packet, time-limited. A length outside `8..=max_packet` ends the
/// read after the length field ([`PacketKind::BadLength`]): nothing of that size is ever
/// allocated, and what follows stays in the socket for the relay to forward.
pub async fn read_packet<S>(stream: &mut S, limits: &StartupLimits) -> Result<Packet, ProxyError>
where
    S: AsyncRead + Unpin,
{
    let context = "reading the startup packet";
    let mut length_field = [0u8; 4];
    timed(limits, stream.read_exact(&mut length_field))
        .await
        .map_err(|e| ProxyError::downstream(context, e))?;
    let length = i32::from_be_bytes(length_field);
    let length = match usize::try_from(length) {
        Ok(length) if (MIN_PACKET..=limits.max_packet).contains(&length) => length,
        _ => {
            return Ok(Packet {
                bytes: length_field.to_vec(),
                kind: PacketKind::BadLength(length),
            })
        }
    };
    let mut bytes = length_field.to_vec();
    bytes.resize(length, 0);
    let rest = bytes.get_mut(4..).unwrap_or_default();
    timed(limits, stream.read_exact(rest))
        .await
        .map_err(|e| ProxyError::downstream(context, e))?;
    let kind = classify(&bytes);
    Ok(Packet { bytes, kind })
}

async fn timed<T>(
    limits: &StartupLimits,
    read: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match timeout(limits.read_timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no complete startup packet in time",
        )),
    }
}

/// Tells a packet's kind from its code. `bytes` holds at least the length and the code.
fn classify(bytes: &[u8]) -> PacketKind {
    let mut code = [0u8; 4];
    if let Some(raw) = bytes.get(4..8) {
        code.copy_from_slice(raw);
    }
    match i32::from_be_bytes(code) {
        SSL_REQUEST => PacketKind::SslRequest,
        GSSENC_REQUEST => PacketKind::GssEncRequest,
        CANCEL_REQUEST => PacketKind::CancelRequest,
        version => {
            let major = (version >> 16) as u16;
            match startup_database(bytes) {
                Some(database) if major == 3 => PacketKind::Startup { database },
                _ => PacketKind::Unsupported(major),
            }
        }
    }
}

/// Decodes a StartupMessage with pgwire and keeps the database name alone.
fn startup_database(bytes: &[u8]) -> Option<String> {
    let mut buf = BytesMut::from(bytes);
    let context = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    let mut startup = Startup::decode(&mut buf, &context).ok()??;
    let database = startup.parameters.remove("database");
    let user = startup.parameters.remove("user");
    Some(database.or(user).unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;

    pub(crate) use crate::postgres::frame::startup as startup_bytes;

    #[test]
    fn classifies_requests_and_startup() {
        let code = |c: i32| {
            let mut b = 8i32.to_be_bytes().to_vec();
            b.extend_from_slice(&c.to_be_bytes());
            classify(&b)
        };
        assert_eq!(code(SSL_REQUEST), PacketKind::SslRequest);
        assert_eq!(code(GSSENC_REQUEST), PacketKind::GssEncRequest);
        assert_eq!(code(CANCEL_REQUEST), PacketKind::CancelRequest);
        assert_eq!(code(2 << 16), PacketKind::Unsupported(2));

        let startup = startup_bytes(
            196_608,
            &[
                ("user", "alice"),
                ("database", "app"),
                ("options", "-c x=1"),
            ],
        );
        assert_eq!(
            classify(&startup),
            PacketKind::Startup {
                database: "app".into()
            }
        );
        let startup = startup_bytes(196_610, &[("user", "alice")]);
        assert_eq!(
            classify(&startup),
            PacketKind::Startup {
                database: "alice".into()
            }
        );
        let startup = startup_bytes(4 << 16, &[("user", "alice")]);
        assert_eq!(classify(&startup), PacketKind::Unsupported(4));
    }

    /// What libpq and the other tests send first, as the startup fuzz target reads it.
    #[test]
    fn startup_sequences_seed_the_startup_fuzz_target() {
        let request = |code: i32| [8i32.to_be_bytes(), code.to_be_bytes()].concat();
        let startup = startup_bytes(
            196_608,
            &[("user", "u"), ("database", "d"), ("application_name", "a")],
        );
        let mut cancel = 16i32.to_be_bytes().to_vec();
        cancel.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
        cancel.extend_from_slice(&[0, 0, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef]);
        let seeds = vec![
            startup.clone(),
            [request(SSL_REQUEST), startup.clone()].concat(),
            [
                request(GSSENC_REQUEST),
                request(SSL_REQUEST),
                startup.clone(),
            ]
            .concat(),
            startup_bytes(196_610, &[("user", "u")]),
            startup_bytes(2 << 16, &[("user", "u")]),
            cancel,
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        ];
        let files = indextap_analyzer::testing::seeds::exercise(
            "pg_startup",
            &seeds,
            crate::fuzzing::pg_startup,
        );
        assert!(files >= seeds.len());
    }
}
