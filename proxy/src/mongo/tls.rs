//! TLS on a MongoDB listener: refused, terminated or passed through.
//!
//! MongoDB has no in-band upgrade such as PostgreSQL's SSLRequest: a driver with `tls=true`
//! starts the TLS handshake as soon as it connects, and a plain driver sends its `hello`.
//! Both speak first, so the first bytes tell them apart ([`is_tls_client_hello`]), read with
//! `peek` so that nothing is consumed before the session's mode is known.
//!
//! - `Refuse` (the default): a TLS client gets a TLS `handshake_failure` alert at once, so its
//!   driver reports a handshake error instead of hanging, and the log says to connect with
//!   `tls=false`. Plain clients are relayed and inspected.
//! - `Terminate`: the proxy completes the handshake with its own certificate and inspects the
//!   session inside TLS. A plain client is closed at once, as `mongod --tlsMode requireTLS`
//!   does: a listener that terminates TLS stands in for a server that requires it.
//! - `Passthrough`: a TLS session is relayed byte for byte to the server (which must speak
//!   TLS) and counted as not inspected; a plain one is relayed and inspected.
//!
//! The proxy's own connection to the server is plain or TLS ([`UpstreamTls`], the listener's
//! `tls.upstream`), for every session it opens itself: all but a passed-through one.
//!
//! ## Layout
//! - [`MongoTls`]: a listener's settings, and [`MongoTls::open`], which turns an accepted
//!   client into the two [`Legs`] of a relay (or refuses it).
//! - [`is_tls_client_hello`]: the first-bytes test.

use std::future::Future;
use std::io;
use std::time::Duration;

use indextap_config::{MongoListener, TlsMode};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use crate::admin::metrics::ListenerMetrics;
use crate::relay::BoxStream;
use crate::tls::{acceptor_from_pem_files, TlsConfigError, UpstreamTls};

/// How long a client may take to send its first bytes, and to finish a TLS handshake.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the TLS handshake with the server may take.
const UPSTREAM_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A fatal `handshake_failure` alert, TLS 1.0 record version (accepted by every client).
const HANDSHAKE_FAILURE_ALERT: [u8; 7] = [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28];

/// What a MongoDB listener does with a client's TLS.
#[derive(Clone)]
pub enum MongoTlsMode {
    /// Answer a TLS handshake with an alert and close.
    Refuse,
    /// Complete the handshake with this acceptor (the proxy's certificate) and inspect.
    Terminate(TlsAcceptor),
    /// Relay TLS sessions untouched; they are not inspected.
    Passthrough,
}

/// A MongoDB listener's TLS, both sides.
#[derive(Clone)]
pub struct MongoTls {
    /// The client side.
    pub mode: MongoTlsMode,
    /// How the proxy connects to the server for the sessions it opens itself.
    pub upstream: UpstreamTls,
}

/// One leg of a relay: a plain socket, or a TLS stream.
pub enum Leg {
    /// Plain TCP (the relay splits it without a lock).
    Tcp(TcpStream),
    /// TLS, terminated or originated by the proxy.
    Tls(BoxStream),
}

impl Leg {
    /// The leg as a boxed stream, whatever it is.
    pub fn boxed(self) -> BoxStream {
        match self {
            Leg::Tcp(stream) => Box::new(stream),
            Leg::Tls(stream) => stream,
        }
    }
}

/// Both legs of a session, ready for the relay.
pub struct Legs {
    /// The client side.
    pub client: Leg,
    /// The server side.
    pub server: Leg,
    /// Whether the relay's copy can be decoded (false for a passed-through TLS session).
    pub inspect: bool,
}

/// What the first bytes of a session were.
enum Opening {
    Tls,
    Plain,
    /// The client sent nothing in time, or closed: relayed as plain (nothing to decide on).
    Silent,
}

impl MongoTls {
    /// Plain on both sides: TLS refused.
    pub fn refuse() -> Self {
        Self {
            mode: MongoTlsMode::Refuse,
            upstream: UpstreamTls::Off,
        }
    }

    /// What a listener's configuration asks for, both sides. MongoDB uses no ALPN.
    pub fn from_listener(spec: &MongoListener) -> Result<Self, TlsConfigError> {
        let tls = &spec.tls;
        let mode = match (tls.mode, &tls.cert_file, &tls.key_file) {
            (TlsMode::Refuse, ..) => MongoTlsMode::Refuse,
            (TlsMode::Passthrough, ..) => MongoTlsMode::Passthrough,
            (TlsMode::Terminate, Some(cert), Some(key)) => {
                MongoTlsMode::Terminate(acceptor_from_pem_files(cert, key, &[])?)
            }
            (TlsMode::Terminate, ..) => return Err(TlsConfigError::MissingCertificate),
        };
        let upstream = UpstreamTls::from_listener(tls, &spec.upstream, &[])?;
        Ok(Self { mode, upstream })
    }

    /// Turns an accepted client into the two legs of a relay: looks at its first bytes,
    /// refuses, terminates or passes its TLS through, then opens the server leg with
    /// `connect` (awaited only for a client that is served) and, when configured, TLS on it.
    /// `None` when the session ends here; the reason is counted and logged.
    pub async fn open<C>(
        &self,
        client: TcpStream,
        connect: C,
        metrics: &ListenerMetrics,
    ) -> Option<Legs>
    where
        C: Future<Output = Option<TcpStream>>,
    {
        let opening = first_bytes(&client).await;
        let client = match (&self.mode, opening) {
            (MongoTlsMode::Refuse, Opening::Tls) => {
                metrics.uninspected("tls_refused");
                tracing::warn!(
                    listener = %metrics.listener,
                    "a client tried TLS on a MongoDB listener whose tls.mode is refuse: connect with tls=false, or set tls.mode = terminate"
                );
                let _ = client.try_write(&HANDSHAKE_FAILURE_ALERT);
                return None;
            }
            (MongoTlsMode::Terminate(_), Opening::Plain | Opening::Silent) => {
                metrics.uninspected("plaintext_refused");
                tracing::warn!(
                    listener = %metrics.listener,
                    "a client connected without TLS to a MongoDB listener that terminates TLS: connect with tls=true"
                );
                return None;
            }
            (MongoTlsMode::Terminate(acceptor), Opening::Tls) => {
                match timeout(CLIENT_TIMEOUT, acceptor.accept(client)).await {
                    Ok(Ok(stream)) => {
                        metrics.event("tls_client_session");
                        Leg::Tls(Box::new(stream))
                    }
                    Ok(Err(error)) => return handshake_failed(metrics, &error.to_string()),
                    Err(_) => return handshake_failed(metrics, "timed out"),
                }
            }
            (MongoTlsMode::Passthrough, Opening::Tls) => {
                let server = connect.await?;
                metrics.uninspected("tls_passthrough");
                return Some(Legs {
                    client: Leg::Tcp(client),
                    server: Leg::Tcp(server),
                    inspect: false,
                });
            }
            (_, Opening::Plain | Opening::Silent) => Leg::Tcp(client),
        };
        let server = connect.await?;
        let server = self.secure_upstream(server, metrics).await?;
        Some(Legs {
            client,
            server,
            inspect: true,
        })
    }

    /// TLS on the proxy's own connection to the server, when configured.
    async fn secure_upstream(&self, server: TcpStream, metrics: &ListenerMetrics) -> Option<Leg> {
        let UpstreamTls::On {
            connector,
            server_name,
        } = &self.upstream
        else {
            return Some(Leg::Tcp(server));
        };
        let handshake = connector.connect(server_name.clone(), server);
        let error = match timeout(UPSTREAM_HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => return Some(Leg::Tls(Box::new(stream))),
            Ok(Err(error)) => error,
            Err(_) => io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"),
        };
        metrics.upstream_connect_errors.inc();
        tracing::warn!(
            listener = %metrics.listener, %error,
            "upstream error during the TLS handshake with the MongoDB server; closing the client"
        );
        None
    }
}

impl std::fmt::Debug for MongoTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            MongoTlsMode::Refuse => "refuse",
            MongoTlsMode::Terminate(_) => "terminate",
            MongoTlsMode::Passthrough => "passthrough",
        };
        write!(f, "MongoTls({mode}, upstream {:?})", self.upstream)
    }
}

fn handshake_failed(metrics: &ListenerMetrics, error: &str) -> Option<Legs> {
    metrics.decode_error("tls_handshake");
    tracing::warn!(listener = %metrics.listener, %error, "a MongoDB client's TLS handshake failed");
    None
}

/// Waits for the client's first bytes, without consuming them.
async fn first_bytes(client: &TcpStream) -> Opening {
    let mut first = [0u8; 16];
    match timeout(CLIENT_TIMEOUT, client.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => match first.get(..n) {
            Some(bytes) if is_tls_client_hello(bytes) => Opening::Tls,
            _ => Opening::Plain,
        },
        _ => Opening::Silent,
    }
}

/// A TLS handshake record (content type 22, version 3.x) that is not also a plausible
/// MongoDB message: a MongoDB message's bytes 12..16 are its opcode, and a driver's first
/// message is OP_MSG, OP_QUERY or OP_COMPRESSED.
pub fn is_tls_client_hello(first: &[u8]) -> bool {
    let tls_record = matches!(first, [0x16, 0x03, minor, ..] if *minor <= 0x04);
    let mongo_opcode = first
        .get(12..16)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_le_bytes)
        .is_some_and(|op| matches!(op, 2004 | 2012 | 2013));
    tls_record && !mongo_opcode
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn tls_client_hellos_are_told_apart_from_mongodb_headers() {
        let client_hello = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x5e, 0x1a, 0x2b,
            0x3c, 0x4d,
        ];
        assert!(is_tls_client_hello(&client_hello));
        // A 790-byte OP_MSG starts with the same two bytes; its opcode gives it away.
        let mut op_msg = [0u8; 16];
        op_msg[..4].copy_from_slice(&790i32.to_le_bytes());
        op_msg[12..].copy_from_slice(&2013i32.to_le_bytes());
        assert!(!is_tls_client_hello(&op_msg));
        assert!(!is_tls_client_hello(&[0x3a, 0x01, 0x00]));
        assert!(!is_tls_client_hello(&[]));
    }

    /// A connected client socket and the proxy's accepted end of it.
    async fn accepted() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (proxy_side, _) = listener.accept().await.unwrap();
        (client, proxy_side)
    }

    /// Runs `open` for a client that sends `first`; whether the upstream was connected, and
    /// what the client read back before the proxy let go.
    async fn open_with(tls: &MongoTls, first: &[u8]) -> (bool, bool, Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, proxy_side) = accepted().await;
        client.write_all(first).await.unwrap();
        let metrics = crate::admin::metrics::Metrics::new().listener("t", "mongodb");
        let connected = std::sync::atomic::AtomicBool::new(false);
        let connect = async {
            connected.store(true, std::sync::atomic::Ordering::Relaxed);
            None
        };
        let legs = tls.open(proxy_side, connect, &metrics).await;
        let mut answer = Vec::new();
        let _ = timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
        (
            legs.is_some(),
            connected.load(std::sync::atomic::Ordering::Relaxed),
            answer,
        )
    }

    const CLIENT_HELLO_START: [u8; 16] = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x5e, 0x1a, 0x2b, 0x3c,
        0x4d,
    ];

    #[tokio::test]
    async fn refused_clients_never_reach_the_upstream() {
        // Refuse: a TLS client gets the alert, and no upstream connection is made.
        let (served, connected, answer) = open_with(&MongoTls::refuse(), &CLIENT_HELLO_START).await;
        assert!(!served && !connected);
        assert_eq!(answer, HANDSHAKE_FAILURE_ALERT);

        // Terminate: a plain client (an OP_MSG header) is closed without a byte.
        let files = crate::tls::testing::self_signed("localhost");
        let mut spec = MongoListener::new("127.0.0.1:27018", "localhost:27017");
        spec.tls.mode = TlsMode::Terminate;
        spec.tls.cert_file = Some(files.cert.clone());
        spec.tls.key_file = Some(files.key.clone());
        let terminate = MongoTls::from_listener(&spec).unwrap();
        let mut op_msg = [0u8; 16];
        op_msg[..4].copy_from_slice(&60i32.to_le_bytes());
        op_msg[12..].copy_from_slice(&2013i32.to_le_bytes());
        let (served, connected, answer) = open_with(&terminate, &op_msg).await;
        assert!(!served && !connected);
        assert!(answer.is_empty(), "{answer:?}");

        // A plain client of a refusing listener is relayed: the upstream is asked for.
        let (_, connected, _) = open_with(&MongoTls::refuse(), &op_msg).await;
        assert!(connected);
    }

    #[test]
    fn terminate_needs_its_files() {
        let mut spec = MongoListener::new("127.0.0.1:27018", "localhost:27017");
        spec.tls.mode = TlsMode::Terminate;
        assert!(matches!(
            MongoTls::from_listener(&spec),
            Err(TlsConfigError::MissingCertificate)
        ));
        spec.tls.mode = TlsMode::Passthrough;
        spec.tls.upstream = indextap_config::UpstreamTls::Require;
        let tls = MongoTls::from_listener(&spec).unwrap();
        assert_eq!(
            format!("{tls:?}"),
            "MongoTls(passthrough, upstream on (localhost))"
        );
    }
}
