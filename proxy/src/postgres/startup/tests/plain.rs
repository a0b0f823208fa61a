//! Plaintext sessions, refused encryption requests, cancels and bad startup packets.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::error::Side;
use crate::postgres::startup::packet::{CANCEL_REQUEST, GSSENC_REQUEST, SSL_REQUEST};
use crate::postgres::startup::{negotiate_with, Negotiated, StartupLimits};
use crate::postgres::tls::PgTlsSettings;

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

/// Negotiation (TLS refused) with a client that sends `bytes`, then stops sending when
/// `then_close`: the error it must end with, the downstream's, and the client, to read what
/// it was told.
async fn downstream_failure(bytes: &[u8], then_close: bool) -> (ProxyError, TcpStream) {
    let (_listener, address) = fake_server().await;
    let (mut app, proxy_side) = client_pair().await;
    app.write_all(bytes).await.unwrap();
    if then_close {
        app.shutdown().await.unwrap();
    }
    let err = spawn_negotiate(proxy_side, address, PgTlsSettings::refuse())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.side, Side::Downstream);
    (err, app)
}

#[tokio::test]
async fn truncated_startup_is_a_downstream_error() {
    let mut bytes = 100i32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&196_608i32.to_be_bytes());
    let (err, _) = downstream_failure(&bytes, true).await;
    assert_eq!(err.source.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_client_that_leaves_without_a_byte_is_not_a_truncated_startup() {
    let (err, _) = downstream_failure(&[], true).await;
    assert_eq!(err.source.kind(), std::io::ErrorKind::ConnectionAborted);
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
    let mut packet = startup(&[("user", "u")]);
    packet[4..8].copy_from_slice(&(2i32 << 16).to_be_bytes());
    let (_, mut app) = downstream_failure(&packet, false).await;
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
