//! The startup phase of a PostgreSQL session, before the relay takes over.
//!
//! The first messages a client sends are untyped: SSLRequest, GSSENCRequest, CancelRequest or
//! StartupMessage. [`negotiate`] answers or forwards them, decides whether the session can
//! be inspected, connects to the upstream, forwards the StartupMessage, and hands both
//! streams to the relay. Authentication (SCRAM-SHA-256, md5, trust) then flows through the
//! relay untouched: the proxy never takes part in it.
//!
//! What the proxy cannot read, it does not answer. A packet it gives up on (a length no
//! packet can have, garbage, an unknown protocol, an encryption request once encryption was
//! settled) goes to the server unchanged, after the encryption requests the proxy refused
//! itself, replayed so that the server is where the client thinks it is; the session is then
//! relayed blind, and counted. The client hears the server's own answer, or its silence. The
//! only answers the proxy writes itself are its refusals of encryption (`N`, and closing on a
//! direct TLS ClientHello in `refuse` mode).
//!
//! PostgreSQL 17 clients may also open with a TLS ClientHello directly
//! (`sslnegotiation=direct`). Its first byte (0x16) can never start a startup packet, whose
//! first byte is the high byte of a length of at most 10 KiB, so one peeked byte tells them
//! apart: such a session is terminated, passed through or refused like an SSLRequest.
//!
//! ## Layout
//! - [`packet`]: reading and classifying one untyped packet, with a length cap and timeout.
//! - [`upstream`]: connecting upstream, plain or with TLS, or replaying refused requests.
//! - this file: the negotiation itself, per [`PgTlsMode`].

pub mod packet;
pub mod upstream;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests;

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use self::packet::{read_packet, Packet, PacketKind};
use super::tls::{PgTlsMode, PgTlsSettings};
use crate::error::ProxyError;
use crate::relay::{BoxStream, ByteStream};

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

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
#[derive(Debug)]
pub enum Negotiated {
    /// A session to relay.
    Relay(Established),
    /// A CancelRequest was forwarded; both connections are closed.
    Cancelled,
    /// A direct TLS ClientHello in `refuse` mode: closed without a byte, as a server without
    /// TLS would (it reads the record header as an impossible length).
    TlsRefused,
}

/// The two sides of a session whose startup phase is over, and what the relay needs to know of it.
pub struct Established {
    /// The client side (TCP, or TLS over TCP when terminated).
    pub client: BoxStream,
    /// The upstream side, the StartupMessage (or the bytes the proxy gave up on) sent.
    pub upstream: BoxStream,
    /// The database named at startup (empty when it could not be seen).
    pub database: String,
    /// Whether the relay's copy can be decoded.
    pub inspection: Inspection,
    /// Whether the client side is encrypted (terminated or passed-through TLS).
    pub encrypted_to_client: bool,
}

/// Whether a relayed session is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inspection {
    /// The relay's copy is decoded.
    On,
    /// TLS end to end, passed through: nothing to decode.
    TlsPassthrough,
    /// The proxy could not read the startup phase and forwarded it: the reason label
    /// (`startup_invalid`, `startup_unsupported`, `startup_unexpected_request`).
    Undecodable(&'static str),
}

impl fmt::Debug for Established {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Established")
            .field("database", &self.database)
            .field("inspection", &self.inspection)
            .field("encrypted_to_client", &self.encrypted_to_client)
            .finish_non_exhaustive()
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
/// CancelRequest, or connects upstream and forwards the StartupMessage. Whatever it cannot
/// read is forwarded too.
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
    // The encryption requests answered `N` here, in order: replayed upstream if the proxy
    // gives up, so that the server sees every byte the client sent. Each kind is answered
    // once at most, so the third packet ends the loop.
    let mut refused: Vec<Packet> = Vec::new();
    loop {
        let packet = read_packet(&mut client, limits).await?;
        let asked_before = refused.iter().any(|earlier| earlier.kind == packet.kind);
        match packet.kind {
            // A second request of one kind: the server would take it for a protocol version.
            PacketKind::SslRequest | PacketKind::GssEncRequest if asked_before => {
                let to = Upstream::Replaying(&refused);
                return finish(client, packet, to, upstream, tls, limits, false).await;
            }
            // The proxy cannot inspect GSSAPI-encrypted traffic, and libpq falls back.
            PacketKind::GssEncRequest => {
                answer(&mut client, b'N').await?;
                refused.push(packet);
            }
            PacketKind::SslRequest => match &tls.mode {
                PgTlsMode::Refuse => {
                    answer(&mut client, b'N').await?;
                    refused.push(packet);
                }
                PgTlsMode::Passthrough => {
                    return passthrough(client, packet, upstream, tls, limits).await
                }
                PgTlsMode::Terminate(acceptor) => {
                    answer(&mut client, b'S').await?;
                    return terminate(acceptor, client, upstream, tls, limits).await;
                }
            },
            _ => {
                let to = Upstream::Replaying(&refused);
                return finish(client, packet, to, upstream, tls, limits, false).await;
            }
        }
    }
}

/// The reason label of an encryption request after encryption was settled.
const UNEXPECTED_REQUEST: &str = "startup_unexpected_request";

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
        PgTlsMode::Refuse => Ok(Negotiated::TlsRefused),
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
    finish(
        client,
        packet,
        Upstream::Connect,
        address,
        tls,
        limits,
        true,
    )
    .await
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
            let server = Upstream::Connected(Box::new(server));
            finish(client, packet, server, address, tls, limits, false).await
        }
        // Not a PostgreSQL answer (a pre-7.0 server's ErrorResponse): forward the rest as is.
        _ => Ok(relay_verbatim(client, server, false)),
    }
}

/// TLS passed through (or a server that answered SSLRequest with neither `S` nor `N`).
fn relay_verbatim(client: TcpStream, server: TcpStream, encrypted: bool) -> Negotiated {
    Negotiated::Relay(Established {
        client: Box::new(client),
        upstream: Box::new(server),
        database: String::new(),
        inspection: Inspection::TlsPassthrough,
        encrypted_to_client: encrypted,
    })
}

/// Where the packet that ends the startup phase goes.
enum Upstream<'a> {
    /// A connection the server already answered on (passed-through SSLRequest, then `N`).
    Connected(BoxStream),
    /// A new connection, per the upstream TLS settings.
    Connect,
    /// A new connection; if the proxy gives up, the requests it refused are replayed first.
    Replaying(&'a [Packet]),
}

impl Upstream<'_> {
    /// The connection for a packet the proxy read, or for bytes it gave up on.
    async fn open(
        self,
        address: &str,
        tls: &PgTlsSettings,
        limits: &StartupLimits,
        gave_up: bool,
    ) -> Result<BoxStream, ProxyError> {
        match self {
            Upstream::Connected(server) => Ok(server),
            Upstream::Replaying(refused) if gave_up && !refused.is_empty() => {
                upstream::connect_replaying(address, &tls.upstream, limits, refused).await
            }
            Upstream::Connect | Upstream::Replaying(_) => {
                upstream::connect(address, &tls.upstream, limits).await
            }
        }
    }
}

/// Handles the packet that ends the startup phase: a StartupMessage, a CancelRequest, or
/// one the proxy gives up on, whose bytes go to the server as they came while the rest of the
/// session is relayed without inspection.
async fn finish<S: ByteStream>(
    mut client: S,
    packet: Packet,
    server: Upstream<'_>,
    address: &str,
    tls: &PgTlsSettings,
    limits: &StartupLimits,
    encrypted_to_client: bool,
) -> Result<Negotiated, ProxyError> {
    let inspection = match &packet.kind {
        PacketKind::Startup { .. } | PacketKind::CancelRequest => Inspection::On,
        // Encryption is settled (or this kind was answered already).
        PacketKind::SslRequest | PacketKind::GssEncRequest => {
            Inspection::Undecodable(UNEXPECTED_REQUEST)
        }
        PacketKind::Unsupported(_) => Inspection::Undecodable("startup_unsupported"),
        PacketKind::BadLength(_) => Inspection::Undecodable("startup_invalid"),
    };
    let gave_up = inspection != Inspection::On;
    let mut server = server.open(address, tls, limits, gave_up).await?;
    send_packet(&mut server, &packet, limits).await?;
    match packet.kind {
        PacketKind::CancelRequest => {
            // The server closes a cancel connection without answering; so do we.
            let _ = timeout(Duration::from_secs(1), server.shutdown()).await;
            let _ = timeout(Duration::from_secs(1), client.shutdown()).await;
            Ok(Negotiated::Cancelled)
        }
        kind => Ok(Negotiated::Relay(Established {
            client: Box::new(client),
            upstream: server,
            database: match kind {
                PacketKind::Startup { database } => database,
                _ => String::new(),
            },
            inspection,
            encrypted_to_client,
        })),
    }
}

/// Writes a startup-phase packet upstream, time-limited.
async fn send_packet(
    server: &mut BoxStream,
    packet: &Packet,
    limits: &StartupLimits,
) -> Result<(), ProxyError> {
    let forward = async {
        server.write_all(&packet.bytes).await?;
        server.flush().await
    };
    match timeout(limits.connect_timeout, forward).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ProxyError::upstream("forwarding the startup packet", e)),
        Err(_) => Err(timed_out_upstream("forwarding the startup packet")),
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
