//! The startup phase of a PostgreSQL session, before the relay takes over.
//!
//! The first messages a client sends are untyped: SSLRequest, GSSENCRequest, CancelRequest or
//! StartupMessage. [`negotiate`] answers or forwards them, decides whether the session can
//! be inspected, connects to the upstream, forwards the StartupMessage, and hands both
//! streams to the relay. Authentication (SCRAM-SHA-256, md5, trust) then flows through the
//! relay untouched: the proxy never takes part in it.
//!
//! PostgreSQL 17 clients may also open with a TLS ClientHello directly
//! (`sslnegotiation=direct`). Its first byte (0x16) can never start a startup packet, whose
//! first byte is the high byte of a length of at most 10 KiB, so one peeked byte tells them
//! apart: such a session is terminated, passed through or refused like an SSLRequest.
//!
//! ## Layout
//! - [`packet`]: reading and classifying one untyped packet, with a length cap and timeout.
//! - [`upstream`]: connecting upstream, plain or with TLS.
//! - this file: the negotiation itself, per [`PgTlsMode`].

pub mod packet;
pub mod upstream;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use self::packet::{read_packet, reject, Packet, PacketKind};
use super::tls::{PgTlsMode, PgTlsSettings};
use crate::error::ProxyError;
use crate::relay::{BoxStream, ByteStream};

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// How many SSLRequest/GSSENCRequest rounds may precede the StartupMessage (libpq asks for
/// GSS encryption, then TLS, then starts).
const MAX_ROUNDS: usize = 3;

/// Time and size limits of the startup phase.
#[derive(Debug, Clone, Copy)]
pub struct StartupLimits {
    /// The longest wait for one complete client packet (and the TLS handshake).
    pub read_timeout: Duration,
    /// The longest wait for the upstream connection, TLS included.
    pub connect_timeout: Duration,
    /// The largest startup packet accepted (PostgreSQL's own limit is 10 000 bytes).
    pub max_packet: usize,
}

impl Default for StartupLimits {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_packet: 10 * 1024,
        }
    }
}

/// What the startup phase ended with.
pub enum Negotiated {
    /// A session to relay.
    Relay {
        /// The client side (TCP, or TLS over TCP when terminated).
        client: BoxStream,
        /// The upstream side, the StartupMessage already sent.
        upstream: BoxStream,
        /// The database named at startup (empty when it could not be seen).
        database: String,
        /// Whether the relay's copy can be decoded (false when TLS is passed through).
        inspect: bool,
        /// Whether the client side is encrypted (terminated or passed-through TLS).
        encrypted_to_client: bool,
    },
    /// A CancelRequest was forwarded; both connections are closed.
    Cancelled,
}

impl fmt::Debug for Negotiated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Negotiated::Relay {
                database,
                inspect,
                encrypted_to_client,
                ..
            } => f
                .debug_struct("Relay")
                .field("database", database)
                .field("inspect", inspect)
                .field("encrypted_to_client", encrypted_to_client)
                .finish_non_exhaustive(),
            Negotiated::Cancelled => f.write_str("Cancelled"),
        }
    }
}

/// Runs the startup phase with the default limits.
pub async fn negotiate(
    client: TcpStream,
    upstream: &str,
    tls: &PgTlsSettings,
) -> Result<Negotiated, ProxyError> {
    negotiate_with(client, upstream, tls, &StartupLimits::default()).await
}

/// Runs the startup phase: answers or forwards SSLRequest/GSSENCRequest, forwards a
/// CancelRequest, or connects upstream and forwards the StartupMessage.
pub async fn negotiate_with(
    mut client: TcpStream,
    upstream: &str,
    tls: &PgTlsSettings,
    limits: &StartupLimits,
) -> Result<Negotiated, ProxyError> {
    let _ = client.set_nodelay(true);
    if first_byte(&client, limits).await? == TLS_HANDSHAKE {
        return direct_tls(client, upstream, tls, limits).await;
    }
    for _ in 0..MAX_ROUNDS {
        let packet = read_packet(&mut client, limits).await?;
        match packet.kind {
            // The proxy cannot inspect GSSAPI-encrypted traffic, and libpq falls back.
            PacketKind::GssEncRequest => answer(&mut client, b'N').await?,
            PacketKind::SslRequest => match &tls.mode {
                PgTlsMode::Refuse => answer(&mut client, b'N').await?,
                PgTlsMode::Passthrough => {
                    return passthrough(client, packet, upstream, tls, limits).await
                }
                PgTlsMode::Terminate(acceptor) => {
                    answer(&mut client, b'S').await?;
                    return terminate(acceptor, client, upstream, tls, limits).await;
                }
            },
            _ => return finish(client, packet, None, upstream, tls, limits, false).await,
        }
    }
    reject(&mut client, "08P01", "too many encryption requests").await;
    Err(violation("too many encryption requests"))
}

/// Looks at the first byte without consuming it.
async fn first_byte(client: &TcpStream, limits: &StartupLimits) -> Result<u8, ProxyError> {
    let context = "reading the startup packet";
    let mut byte = [0u8; 1];
    match timeout(limits.read_timeout, client.peek(&mut byte)).await {
        Ok(Ok(0)) => Err(ProxyError::downstream(
            context,
            // Not `UnexpectedEof`: nothing was cut short (a TCP probe connects and leaves).
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "client closed before startup",
            ),
        )),
        Ok(Ok(_)) => {
            let [first] = byte;
            Ok(first)
        }
        Ok(Err(e)) => Err(ProxyError::downstream(context, e)),
        Err(_) => Err(timed_out(context)),
    }
}

/// A client that opened with a TLS ClientHello, without SSLRequest.
async fn direct_tls(
    client: TcpStream,
    address: &str,
    tls: &PgTlsSettings,
    limits: &StartupLimits,
) -> Result<Negotiated, ProxyError> {
    match &tls.mode {
        PgTlsMode::Terminate(acceptor) => terminate(acceptor, client, address, tls, limits).await,
        PgTlsMode::Passthrough => {
            let server = upstream::connect_tcp(address, limits).await?;
            Ok(relay_verbatim(client, server, true))
        }
        // The client speaks TLS already: a plaintext ErrorResponse would be noise to it.
        PgTlsMode::Refuse => Err(violation("direct TLS refused (TLS mode is refuse)")),
    }
}

/// Terminates TLS, then reads the StartupMessage (or CancelRequest) inside it.
async fn terminate(
    acceptor: &TlsAcceptor,
    client: TcpStream,
    address: &str,
    tls: &PgTlsSettings,
    limits: &StartupLimits,
) -> Result<Negotiated, ProxyError> {
    let mut client = match timeout(limits.read_timeout, acceptor.accept(client)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(ProxyError::downstream("TLS handshake", e)),
        Err(_) => return Err(timed_out("TLS handshake")),
    };
    let packet = read_packet(&mut client, limits).await?;
    finish(client, packet, None, address, tls, limits, true).await
}

/// Passthrough: the server answers the client's SSLRequest. After `S` the rest is an
/// end-to-end TLS session the proxy only forwards; after `N` the session goes on in
/// plaintext, through the same upstream connection, and is inspected as usual.
async fn passthrough(
    mut client: TcpStream,
    packet: Packet,
    address: &str,
    tls: &PgTlsSettings,
    limits: &StartupLimits,
) -> Result<Negotiated, ProxyError> {
    let mut server = upstream::connect_tcp(address, limits).await?;
    let answer_byte = async {
        server.write_all(&packet.bytes).await?;
        server.read_u8().await
    };
    let server_answer = match timeout(limits.connect_timeout, answer_byte).await {
        Ok(Ok(byte)) => byte,
        Ok(Err(e)) => return Err(ProxyError::upstream("forwarding SSLRequest", e)),
        Err(_) => return Err(timed_out_upstream("forwarding SSLRequest")),
    };
    answer(&mut client, server_answer).await?;
    match server_answer {
        b'S' => Ok(relay_verbatim(client, server, true)),
        b'N' => {
            let packet = read_packet(&mut client, limits).await?;
            let server: BoxStream = Box::new(server);
            finish(client, packet, Some(server), address, tls, limits, false).await
        }
        // Not a PostgreSQL answer (a pre-7.0 server's ErrorResponse): forward the rest as is.
        _ => Ok(relay_verbatim(client, server, false)),
    }
}

fn relay_verbatim(client: TcpStream, server: TcpStream, encrypted: bool) -> Negotiated {
    Negotiated::Relay {
        client: Box::new(client),
        upstream: Box::new(server),
        database: String::new(),
        inspect: false,
        encrypted_to_client: encrypted,
    }
}

/// Handles the packet that ends the startup phase: a StartupMessage or a CancelRequest.
async fn finish<S: ByteStream>(
    mut client: S,
    packet: Packet,
    server: Option<BoxStream>,
    address: &str,
    tls: &PgTlsSettings,
    limits: &StartupLimits,
    encrypted_to_client: bool,
) -> Result<Negotiated, ProxyError> {
    let database = match packet.kind {
        PacketKind::Startup { database } => Some(database),
        PacketKind::CancelRequest => None,
        PacketKind::Unsupported(_) => {
            reject(&mut client, "0A000", "unsupported frontend protocol").await;
            return Err(violation("unsupported frontend protocol"));
        }
        PacketKind::SslRequest | PacketKind::GssEncRequest => {
            reject(&mut client, "08P01", "unexpected encryption request").await;
            return Err(violation("encryption request after encryption was settled"));
        }
    };
    let mut server = match server {
        Some(server) => server,
        None => upstream::connect(address, &tls.upstream, limits).await?,
    };
    let forward = async {
        server.write_all(&packet.bytes).await?;
        server.flush().await
    };
    match timeout(limits.connect_timeout, forward).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ProxyError::upstream("forwarding the startup packet", e)),
        Err(_) => return Err(timed_out_upstream("forwarding the startup packet")),
    }
    match database {
        Some(database) => Ok(Negotiated::Relay {
            client: Box::new(client),
            upstream: server,
            database,
            inspect: true,
            encrypted_to_client,
        }),
        None => {
            // The server closes a cancel connection without answering; so do we.
            let _ = timeout(Duration::from_secs(1), server.shutdown()).await;
            let _ = timeout(Duration::from_secs(1), client.shutdown()).await;
            Ok(Negotiated::Cancelled)
        }
    }
}

/// Writes a one-byte answer to SSLRequest or GSSENCRequest.
async fn answer(client: &mut TcpStream, byte: u8) -> Result<(), ProxyError> {
    let write = async {
        client.write_all(&[byte]).await?;
        client.flush().await
    };
    match timeout(Duration::from_secs(5), write).await {
        Ok(result) => {
            result.map_err(|e| ProxyError::downstream("answering an encryption request", e))
        }
        Err(_) => Err(timed_out("answering an encryption request")),
    }
}

fn violation(what: &'static str) -> ProxyError {
    ProxyError::downstream(
        "negotiating the startup phase",
        io::Error::new(io::ErrorKind::InvalidData, what),
    )
}

fn timed_out(context: &'static str) -> ProxyError {
    ProxyError::downstream(
        context,
        io::Error::new(io::ErrorKind::TimedOut, "timed out"),
    )
}

fn timed_out_upstream(context: &'static str) -> ProxyError {
    ProxyError::upstream(
        context,
        io::Error::new(io::ErrorKind::TimedOut, "timed out"),
    )
}
