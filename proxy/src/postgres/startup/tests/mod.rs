//! The startup phase against fake clients and fake servers on loopback sockets.
//!
//! ## Layout
//! - this file: packet builders, socket pairs, fake servers, generated certificates.
//! - `plain`: plaintext sessions, encryption requests refused, cancels, bad packets.
//! - `tls`: terminated, upstream and passed-through TLS, direct TLS.

mod plain;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring;
use rustls::{ClientConfig, RootCertStore};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use super::{negotiate_with, Established, Inspection, Negotiated, StartupLimits};
use crate::error::ProxyError;
use crate::postgres::tls::PgTlsSettings;
use crate::tls::testing::{self_signed, PemFiles};

fn limits() -> StartupLimits {
    StartupLimits {
        read_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        max_packet: 10 * 1024,
    }
}

fn request(code: i32) -> Vec<u8> {
    let mut bytes = 8i32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&code.to_be_bytes());
    bytes
}

/// A protocol 3.0 StartupMessage.
fn startup(parameters: &[(&str, &str)]) -> Vec<u8> {
    super::packet::tests::startup_bytes(196_608, parameters)
}

/// A connected pair: the test's client end, and the end `negotiate` gets.
async fn client_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (proxy_side, _) = listener.accept().await.unwrap();
    (app, proxy_side)
}

async fn fake_server() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

/// The proxy side's negotiation, running.
type Negotiation = JoinHandle<Result<Negotiated, ProxyError>>;

fn spawn_negotiate(proxy_side: TcpStream, upstream: String, tls: PgTlsSettings) -> Negotiation {
    tokio::spawn(async move { negotiate_with(proxy_side, &upstream, &tls, &limits()).await })
}

/// A session being negotiated: the fake server's listener, the client's end, the task.
type Opened = (TcpListener, TcpStream, Negotiation);

/// A negotiation under `tls` started before the client sent anything.
async fn negotiating(tls: PgTlsSettings) -> Opened {
    let (listener, address) = fake_server().await;
    let (app, proxy_side) = client_pair().await;
    (listener, app, spawn_negotiate(proxy_side, address, tls))
}

/// A negotiation under `tls` started after the client sent `bytes`.
async fn sent_first(bytes: &[u8], tls: PgTlsSettings) -> Opened {
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    app.write_all(bytes).await.unwrap();
    (listener, app, spawn_negotiate(proxy_side, address, tls))
}

/// Negotiates in `refuse` mode after the client sent a `code` request and heard `N`.
async fn refused(code: i32) -> Opened {
    let (listener, mut app, task) = negotiating(PgTlsSettings::refuse()).await;
    app.write_all(&request(code)).await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"N");
    (listener, app, task)
}

impl Established {
    fn inspected(&self) -> bool {
        self.inspection == Inspection::On
    }
}

/// The session `task` negotiated, which must be one to relay.
async fn established(task: Negotiation) -> Established {
    match task.await.unwrap().unwrap() {
        Negotiated::Relay(established) => established,
        other => panic!("expected a relay, got {other:?}"),
    }
}

/// Accepts the proxy's upstream connection and checks the bytes it opens with.
async fn accept_expecting(listener: &TcpListener, expected: &[u8]) -> TcpStream {
    let (mut server, _) = listener.accept().await.unwrap();
    assert_eq!(read_n(&mut server, expected.len()).await, expected);
    server
}

async fn read_n(stream: &mut (impl AsyncReadExt + Unpin), n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    stream.read_exact(&mut bytes).await.unwrap();
    bytes
}

/// Both returned streams are live: bytes cross in each direction.
async fn assert_streams_connected(
    relay: &mut Established,
    app: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin),
    server: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin),
) {
    app.write_all(b"ping").await.unwrap();
    app.flush().await.unwrap();
    assert_eq!(read_n(&mut relay.client, 4).await, b"ping");
    server.write_all(b"pong").await.unwrap();
    server.flush().await.unwrap();
    assert_eq!(read_n(&mut relay.upstream, 4).await, b"pong");
}

fn cert() -> PemFiles {
    self_signed("localhost")
}

fn trusting(cert: &PemFiles) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(cert.generated.cert.der().clone()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}
