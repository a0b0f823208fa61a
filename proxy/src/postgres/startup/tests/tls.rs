//! TLS: terminated, passed through, upstream, and direct (no SSLRequest).

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::error::Side;
use crate::postgres::startup::packet::SSL_REQUEST;
use crate::postgres::tls::{acceptor_from_pem_files, PgTlsMode, PgTlsSettings, UpstreamTls};

fn terminating(cert: &PemFiles) -> PgTlsSettings {
    PgTlsSettings::terminate_from_pem_files(&cert.cert, &cert.key).unwrap()
}

/// A client that sends SSLRequest, hears `S`, and completes a handshake trusting `cert`.
async fn tls_client(cert: &PemFiles, mut app: TcpStream) -> TlsStream<TcpStream> {
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"S");
    let name = ServerName::try_from("localhost").unwrap();
    trusting(cert).connect(name, app).await.unwrap()
}

#[tokio::test]
async fn terminate_reads_the_startup_inside_tls() {
    let cert = cert();
    let (listener, app, task) = negotiating(terminating(&cert)).await;

    let mut app = tls_client(&cert, app).await;
    let packet = startup(&[("user", "u"), ("database", "secure")]);
    app.write_all(&packet).await.unwrap();
    app.flush().await.unwrap();

    let mut server = accept_expecting(&listener, &packet).await;
    let mut relay = established(task).await;
    assert_eq!(relay.database, "secure");
    assert!(relay.inspected());
    assert!(relay.encrypted_to_client);
    assert_streams_connected(&mut relay, &mut app, &mut server).await;
}

#[tokio::test]
async fn an_unreadable_packet_inside_terminated_tls_is_forwarded() {
    let cert = cert();
    let (listener, app, task) = negotiating(terminating(&cert)).await;
    let mut app = tls_client(&cert, app).await;
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    app.flush().await.unwrap();

    let mut server = accept_expecting(&listener, &request(SSL_REQUEST)).await;
    let mut relay = established(task).await;
    assert_eq!(
        relay.inspection,
        Inspection::Undecodable("startup_unexpected_request")
    );
    assert!(relay.encrypted_to_client);
    assert_streams_connected(&mut relay, &mut app, &mut server).await;
}

#[tokio::test]
async fn terminate_still_serves_plaintext_clients() {
    let cert = cert();
    let tls = PgTlsSettings::terminate_from_pem_files(&cert.cert, &cert.key).unwrap();
    assert_eq!(tls.mode.label(), "terminate");
    let (listener, _app, task) = sent_first(&startup(&[("user", "u")]), tls).await;
    let _server = listener.accept().await.unwrap();
    assert!(!established(task).await.encrypted_to_client);
}

#[tokio::test]
async fn terminate_with_an_untrusting_client_fails_downstream() {
    let cert = cert();
    let other = self::cert();
    let tls = PgTlsSettings::terminate_from_pem_files(&cert.cert, &cert.key).unwrap();
    let (_listener, mut app, task) = negotiating(tls).await;
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"S");
    let name = ServerName::try_from("localhost").unwrap();
    assert!(trusting(&other).connect(name, app).await.is_err());
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.side, Side::Downstream);
}

/// A fake server that wants TLS: SSLRequest, `S`, handshake, then the startup packet.
async fn tls_server(listener: TcpListener, cert: &PemFiles, startup_len: usize) -> Vec<u8> {
    let acceptor: TlsAcceptor = acceptor_from_pem_files(&cert.cert, &cert.key).unwrap();
    let mut server = accept_expecting(&listener, &request(SSL_REQUEST)).await;
    server.write_all(b"S").await.unwrap();
    let mut server = acceptor.accept(server).await.unwrap();
    read_n(&mut server, startup_len).await
}

/// A plain client's startup reaches a server that wants TLS, over TLS to `upstream_cert`,
/// unchanged; the session is inspected.
async fn assert_startup_reaches_a_tls_server(tls: PgTlsSettings, upstream_cert: &PemFiles) {
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let packet = startup(&[("user", "u")]);
    app.write_all(&packet).await.unwrap();
    let task = spawn_negotiate(proxy_side, address, tls);
    assert_eq!(
        tls_server(listener, upstream_cert, packet.len()).await,
        packet
    );
    assert!(established(task).await.inspected());
}

#[tokio::test]
async fn upstream_tls_verified_with_a_ca_file() {
    let upstream_cert = cert();
    let upstream = UpstreamTls::verify_with_ca_file(&upstream_cert.cert, "localhost").unwrap();
    let tls = PgTlsSettings::refuse().with_upstream(upstream);
    assert_startup_reaches_a_tls_server(tls, &upstream_cert).await;
    assert!(upstream_cert
        .generated
        .cert
        .pem()
        .starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn upstream_tls_accepting_any_certificate() {
    let upstream_cert = cert();
    let tls = PgTlsSettings::refuse()
        .with_upstream(UpstreamTls::accept_any_certificate("db.staging.internal").unwrap());
    assert_startup_reaches_a_tls_server(tls, &upstream_cert).await;
}

#[tokio::test]
async fn upstream_tls_with_the_wrong_ca_is_an_upstream_error() {
    let upstream_cert = cert();
    let unrelated = cert();
    let upstream = UpstreamTls::verify_with_ca_file(&unrelated.cert, "localhost").unwrap();
    let tls = PgTlsSettings::refuse().with_upstream(upstream);
    let (listener, _app, task) = sent_first(&startup(&[("user", "u")]), tls).await;
    let server = tokio::spawn(async move {
        let acceptor = acceptor_from_pem_files(&upstream_cert.cert, &upstream_cert.key).unwrap();
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
    let (listener, _app, task) = sent_first(&startup(&[("user", "u")]), tls).await;
    let mut server = accept_expecting(&listener, &request(SSL_REQUEST)).await;
    server.write_all(b"N").await.unwrap();
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.side, Side::Upstream);
}

#[tokio::test]
async fn passthrough_forwards_the_server_answer_and_stops_inspecting() {
    let (listener, mut app, task) = negotiating(PgTlsSettings::passthrough()).await;
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    let mut server = accept_expecting(&listener, &request(SSL_REQUEST)).await;
    server.write_all(b"S").await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"S");
    let mut relay = established(task).await;
    assert_eq!(relay.inspection, Inspection::TlsPassthrough);
    assert!(relay.encrypted_to_client);
    assert_eq!(relay.database, "");
    assert_streams_connected(&mut relay, &mut app, &mut server).await;
}

#[tokio::test]
async fn passthrough_to_a_server_without_tls_is_inspected() {
    let (listener, mut app, task) = negotiating(PgTlsSettings::passthrough()).await;
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
    let relay = established(task).await;
    assert!(relay.inspected());
    assert!(!relay.encrypted_to_client);
    assert_eq!(relay.database, "plain");
}

/// A TLS client that opens with its ClientHello, offering ALPN `postgresql` as libpq 17 does.
fn direct_client(cert: &PemFiles) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.generated.cert.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

#[tokio::test]
async fn direct_tls_is_terminated() {
    let cert = cert();
    let tls = PgTlsSettings::terminate_from_pem_files(&cert.cert, &cert.key).unwrap();
    let (listener, app, task) = negotiating(tls).await;
    let name = ServerName::try_from("localhost").unwrap();
    let mut app = direct_client(&cert).connect(name, app).await.unwrap();
    assert_eq!(app.get_ref().1.alpn_protocol(), Some(&b"postgresql"[..]));
    let packet = startup(&[("user", "u"), ("database", "direct")]);
    app.write_all(&packet).await.unwrap();
    app.flush().await.unwrap();
    let _server = accept_expecting(&listener, &packet).await;
    let relay = established(task).await;
    assert_eq!(relay.database, "direct");
    assert!(relay.inspected());
    assert!(relay.encrypted_to_client);
}

#[tokio::test]
async fn direct_tls_is_passed_through_verbatim() {
    let (listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    let hello = [0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5];
    app.write_all(&hello).await.unwrap();
    let task = spawn_negotiate(proxy_side, address, PgTlsSettings::passthrough());
    let (mut server, _) = listener.accept().await.unwrap();
    let mut relay = established(task).await;
    assert_eq!(relay.inspection, Inspection::TlsPassthrough);
    assert!(relay.encrypted_to_client);
    // Nothing was consumed: the relay reads the ClientHello from the client stream.
    assert_eq!(read_n(&mut relay.client, hello.len()).await, hello);
    assert_streams_connected(&mut relay, &mut app, &mut server).await;
}

#[tokio::test]
async fn direct_tls_is_refused_in_refuse_mode() {
    let (_listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    app.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05])
        .await
        .unwrap();
    let negotiated = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(negotiated, Negotiated::TlsRefused));
    // Closed without a reply (a reset, since the ClientHello was never read).
    let mut rest = Vec::new();
    match app.read_to_end(&mut rest).await {
        Ok(_) => assert!(rest.is_empty(), "a TLS client gets no plaintext reply"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
}
