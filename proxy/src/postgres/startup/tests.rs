//! The startup phase against fake clients and fake servers on loopback sockets.

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::packet::{CANCEL_REQUEST, GSSENC_REQUEST, SSL_REQUEST};
use super::{negotiate_with, Negotiated, StartupLimits};
use crate::error::{ProxyError, Side};
use crate::postgres::tls::{acceptor_from_pem_files, PgTlsMode, PgTlsSettings, UpstreamTls};
use crate::relay::BoxStream;

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

fn startup(parameters: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (key, value) in parameters {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut bytes = (body.len() as i32 + 4).to_be_bytes().to_vec();
    bytes.extend_from_slice(&body);
    bytes
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

fn spawn_negotiate(
    proxy_side: TcpStream,
    upstream: String,
    tls: PgTlsSettings,
) -> JoinHandle<Result<Negotiated, ProxyError>> {
    tokio::spawn(async move { negotiate_with(proxy_side, &upstream, &tls, &limits()).await })
}

struct Relay {
    client: BoxStream,
    upstream: BoxStream,
    database: String,
    inspect: bool,
    encrypted_to_client: bool,
}

fn relay(negotiated: Negotiated) -> Relay {
    match negotiated {
        Negotiated::Relay {
            client,
            upstream,
            database,
            inspect,
            encrypted_to_client,
        } => Relay {
            client,
            upstream,
            database,
            inspect,
            encrypted_to_client,
        },
        Negotiated::Cancelled => panic!("expected a relay"),
    }
}

async fn read_n(stream: &mut (impl AsyncReadExt + Unpin), n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    stream.read_exact(&mut bytes).await.unwrap();
    bytes
}

/// Both returned streams are live: bytes cross in each direction.
async fn assert_streams_connected(
    relay: &mut Relay,
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

struct Cert {
    pem: String,
    der: CertificateDer<'static>,
    _dir: tempfile::TempDir,
    cert_path: std::path::PathBuf,
    key_path: std::path::PathBuf,
}

fn cert() -> Cert {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, generated.cert.pem()).unwrap();
    std::fs::write(&key_path, generated.key_pair.serialize_pem()).unwrap();
    Cert {
        pem: generated.cert.pem(),
        der: generated.cert.der().clone(),
        _dir: dir,
        cert_path,
        key_path,
    }
}

fn trusting(cert: &Cert) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn plain_startup_is_forwarded_and_inspected() {
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let packet = startup(&[
        ("user", "alice"),
        ("database", "shop"),
        ("options", "-c x=1"),
    ]);
    app.write_all(&packet).await.unwrap();
    let task = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse());

    let (mut server, _) = listener.accept().await.unwrap();
    assert_eq!(read_n(&mut server, packet.len()).await, packet);
    let mut relay = relay(task.await.unwrap().unwrap());
    assert_eq!(relay.database, "shop");
    assert!(relay.inspect);
    assert!(!relay.encrypted_to_client);
    assert_streams_connected(&mut relay, &mut app, &mut server).await;
}

#[tokio::test]
async fn database_defaults_to_user() {
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    app.write_all(&startup(&[("user", "alice")])).await.unwrap();
    let task = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse());
    let _server = listener.accept().await.unwrap();
    assert_eq!(relay(task.await.unwrap().unwrap()).database, "alice");
}

#[tokio::test]
async fn refuse_answers_n_and_stays_plaintext() {
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let task = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse());
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"N");
    let packet = startup(&[("user", "u"), ("database", "d")]);
    app.write_all(&packet).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    assert_eq!(read_n(&mut server, packet.len()).await, packet);
    let relay = relay(task.await.unwrap().unwrap());
    assert!(relay.inspect);
    assert!(!relay.encrypted_to_client);
}

#[tokio::test]
async fn refuse_with_a_client_that_requires_tls_ends_downstream() {
    let (_listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let task = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse());
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"N");
    drop(app);
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.side, Side::Downstream);
}

#[tokio::test]
async fn gssenc_is_refused_then_startup_follows() {
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let task = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse());
    app.write_all(&request(GSSENC_REQUEST)).await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"N");
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"N");
    app.write_all(&startup(&[("user", "u")])).await.unwrap();
    let _server = listener.accept().await.unwrap();
    assert!(relay(task.await.unwrap().unwrap()).inspect);
}

#[tokio::test]
async fn endless_encryption_requests_are_cut_off() {
    let (_listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let task = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse());
    for _ in 0..3 {
        app.write_all(&request(GSSENC_REQUEST)).await.unwrap();
        assert_eq!(read_n(&mut app, 1).await, b"N");
    }
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.side, Side::Downstream);
    assert_eq!(read_n(&mut app, 1).await, b"E");
}

#[tokio::test]
async fn cancel_request_is_forwarded_verbatim() {
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let mut cancel = 16i32.to_be_bytes().to_vec();
    cancel.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    cancel.extend_from_slice(&[0, 0, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef]);
    app.write_all(&cancel).await.unwrap();
    let task = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse());
    let (mut server, _) = listener.accept().await.unwrap();
    let mut received = Vec::new();
    server.read_to_end(&mut received).await.unwrap();
    assert_eq!(received, cancel);
    assert!(matches!(
        task.await.unwrap().unwrap(),
        Negotiated::Cancelled
    ));
    let mut rest = Vec::new();
    app.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn absurd_startup_lengths_are_refused_before_allocation() {
    for length in [i32::MIN, -1, 0, 4, 7, 10 * 1024 + 1, 1 << 30] {
        let (_listener, address) = fake_server().await;
        let (mut app, proxy_side) = client_pair().await;
        app.write_all(&length.to_be_bytes()).await.unwrap();
        let task = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse());
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.side, Side::Downstream, "length {length}");
        let mut reply = Vec::new();
        app.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply.first(), Some(&b'E'), "length {length}");
        assert!(reply.windows(6).any(|w| w == b"C08P01"));
    }
}

#[tokio::test]
async fn truncated_startup_is_a_downstream_error() {
    let (_listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let mut bytes = 100i32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&196_608i32.to_be_bytes());
    app.write_all(&bytes).await.unwrap();
    app.shutdown().await.unwrap();
    let err = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.side, Side::Downstream);
    assert_eq!(err.source.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_silent_client_times_out() {
    let (_listener, address) = fake_server().await;
    let (_app, proxy_side) = client_pair().await;
    let short = StartupLimits {
        read_timeout: Duration::from_millis(100),
        ..limits()
    };
    let err = negotiate_with(proxy_side, &address, &PgTlsSettings::refuse(), &short)
        .await
        .unwrap_err();
    assert_eq!(err.side, Side::Downstream);
    assert_eq!(err.source.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test]
async fn old_protocols_are_refused() {
    let (_listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let mut packet = startup(&[("user", "u")]);
    packet[4..8].copy_from_slice(&(2i32 << 16).to_be_bytes());
    app.write_all(&packet).await.unwrap();
    let err = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.side, Side::Downstream);
    let mut reply = Vec::new();
    app.read_to_end(&mut reply).await.unwrap();
    assert!(reply.windows(6).any(|w| w == b"C0A000"));
}

#[tokio::test]
async fn unreachable_upstream_is_an_upstream_error() {
    let (listener, address) = fake_server().await;
    drop(listener);
    let (mut app, proxy_side) = client_pair().await;
    app.write_all(&startup(&[("user", "u")])).await.unwrap();
    let err = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.side, Side::Upstream);
}

#[tokio::test]
async fn terminate_reads_the_startup_inside_tls() {
    let cert = cert();
    let tls = PgTlsSettings::terminate_from_pem_files(&cert.cert_path, &cert.key_path).unwrap();
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let task = spawn_negotiate(proxy_side, address, tls);

    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"S");
    let name = ServerName::try_from("localhost").unwrap();
    let mut app = trusting(&cert).connect(name, app).await.unwrap();
    let packet = startup(&[("user", "u"), ("database", "secure")]);
    app.write_all(&packet).await.unwrap();
    app.flush().await.unwrap();

    let (mut server, _) = listener.accept().await.unwrap();
    assert_eq!(read_n(&mut server, packet.len()).await, packet);
    let mut relay = relay(task.await.unwrap().unwrap());
    assert_eq!(relay.database, "secure");
    assert!(relay.inspect);
    assert!(relay.encrypted_to_client);
    assert_streams_connected(&mut relay, &mut app, &mut server).await;
}

#[tokio::test]
async fn terminate_still_serves_plaintext_clients() {
    let cert = cert();
    let tls = PgTlsSettings::terminate_from_pem_files(&cert.cert_path, &cert.key_path).unwrap();
    assert_eq!(tls.mode.label(), "terminate");
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    app.write_all(&startup(&[("user", "u")])).await.unwrap();
    let task = spawn_negotiate(proxy_side, address, tls);
    let _server = listener.accept().await.unwrap();
    assert!(!relay(task.await.unwrap().unwrap()).encrypted_to_client);
}

#[tokio::test]
async fn terminate_with_an_untrusting_client_fails_downstream() {
    let cert = cert();
    let other = self::cert();
    let tls = PgTlsSettings::terminate_from_pem_files(&cert.cert_path, &cert.key_path).unwrap();
    let (_listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let task = spawn_negotiate(proxy_side, address, tls);
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"S");
    let name = ServerName::try_from("localhost").unwrap();
    assert!(trusting(&other).connect(name, app).await.is_err());
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.side, Side::Downstream);
}

/// A fake server that wants TLS: SSLRequest, `S`, handshake, then the startup packet.
async fn tls_server(listener: TcpListener, cert: &Cert, startup_len: usize) -> Vec<u8> {
    let acceptor: TlsAcceptor = acceptor_from_pem_files(&cert.cert_path, &cert.key_path).unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    assert_eq!(read_n(&mut server, 8).await, request(SSL_REQUEST));
    server.write_all(b"S").await.unwrap();
    let mut server = acceptor.accept(server).await.unwrap();
    read_n(&mut server, startup_len).await
}

#[tokio::test]
async fn upstream_tls_verified_with_a_ca_file() {
    let upstream_cert = cert();
    let upstream = UpstreamTls::verify_with_ca_file(&upstream_cert.cert_path, "localhost").unwrap();
    let tls = PgTlsSettings::refuse().with_upstream(upstream);
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let packet = startup(&[("user", "u")]);
    app.write_all(&packet).await.unwrap();
    let task = spawn_negotiate(proxy_side, address, tls);
    assert_eq!(
        tls_server(listener, &upstream_cert, packet.len()).await,
        packet
    );
    assert!(relay(task.await.unwrap().unwrap()).inspect);
    assert!(upstream_cert.pem.starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn upstream_tls_accepting_any_certificate() {
    let upstream_cert = cert();
    let tls = PgTlsSettings::refuse()
        .with_upstream(UpstreamTls::accept_any_certificate("db.staging.internal").unwrap());
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let packet = startup(&[("user", "u")]);
    app.write_all(&packet).await.unwrap();
    let task = spawn_negotiate(proxy_side, address, tls);
    assert_eq!(
        tls_server(listener, &upstream_cert, packet.len()).await,
        packet
    );
    assert!(relay(task.await.unwrap().unwrap()).inspect);
}

#[tokio::test]
async fn upstream_tls_with_the_wrong_ca_is_an_upstream_error() {
    let upstream_cert = cert();
    let unrelated = cert();
    let upstream = UpstreamTls::verify_with_ca_file(&unrelated.cert_path, "localhost").unwrap();
    let tls = PgTlsSettings::refuse().with_upstream(upstream);
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    app.write_all(&startup(&[("user", "u")])).await.unwrap();
    let task = spawn_negotiate(proxy_side, address, tls);
    let server = tokio::spawn(async move {
        let acceptor =
            acceptor_from_pem_files(&upstream_cert.cert_path, &upstream_cert.key_path).unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        read_n(&mut server, 8).await;
        server.write_all(b"S").await.unwrap();
        let _ = acceptor.accept(server).await;
    });
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.side, Side::Upstream);
    server.await.unwrap();
}

#[tokio::test]
async fn upstream_refusing_tls_is_not_downgraded() {
    let tls = PgTlsSettings::refuse()
        .with_upstream(UpstreamTls::accept_any_certificate("localhost").unwrap());
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    app.write_all(&startup(&[("user", "u")])).await.unwrap();
    let task = spawn_negotiate(proxy_side, address, tls);
    let (mut server, _) = listener.accept().await.unwrap();
    assert_eq!(read_n(&mut server, 8).await, request(SSL_REQUEST));
    server.write_all(b"N").await.unwrap();
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.side, Side::Upstream);
}

#[tokio::test]
async fn passthrough_forwards_the_server_answer_and_stops_inspecting() {
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let task = spawn_negotiate(proxy_side, address, PgTlsSettings::passthrough());
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    assert_eq!(read_n(&mut server, 8).await, request(SSL_REQUEST));
    server.write_all(b"S").await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"S");
    let mut relay = relay(task.await.unwrap().unwrap());
    assert!(!relay.inspect);
    assert!(relay.encrypted_to_client);
    assert_eq!(relay.database, "");
    assert_streams_connected(&mut relay, &mut app, &mut server).await;
}

#[tokio::test]
async fn passthrough_to_a_server_without_tls_is_inspected() {
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let task = spawn_negotiate(proxy_side, address, PgTlsSettings::passthrough());
    assert_eq!(PgTlsSettings::passthrough().mode.label(), "passthrough");
    assert!(matches!(PgTlsSettings::default().mode, PgTlsMode::Refuse));
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    read_n(&mut server, 8).await;
    server.write_all(b"N").await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"N");
    let packet = startup(&[("user", "u"), ("database", "plain")]);
    app.write_all(&packet).await.unwrap();
    assert_eq!(read_n(&mut server, packet.len()).await, packet);
    let relay = relay(task.await.unwrap().unwrap());
    assert!(relay.inspect);
    assert!(!relay.encrypted_to_client);
    assert_eq!(relay.database, "plain");
}
