//! Plaintext sessions, refused encryption requests, cancels and bad startup packets.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::error::Side;
use crate::postgres::startup::packet::{CANCEL_REQUEST, GSSENC_REQUEST, SSL_REQUEST};
use crate::postgres::startup::Inspection;
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

    let mut server = accept_expecting(&listener, &packet).await;
    let mut relay = established(task).await;
    assert_eq!(relay.database, "shop");
    assert!(relay.inspected());
    assert!(!relay.encrypted_to_client);
    assert_streams_connected(&mut relay, &mut app, &mut server).await;
}

#[tokio::test]
async fn database_defaults_to_user() {
    let (listener, _app, task) =
        sent_first(&startup(&[("user", "alice")]), PgTlsSettings::refuse()).await;
    let _server = listener.accept().await.unwrap();
    assert_eq!(established(task).await.database, "alice");
}

#[tokio::test]
async fn refuse_answers_n_and_stays_plaintext() {
    let (listener, mut app, task) = refused(SSL_REQUEST).await;
    let packet = startup(&[("user", "u"), ("database", "d")]);
    app.write_all(&packet).await.unwrap();
    let _server = accept_expecting(&listener, &packet).await;
    let relay = established(task).await;
    assert!(relay.inspected());
    assert!(!relay.encrypted_to_client);
}

#[tokio::test]
async fn refuse_with_a_client_that_requires_tls_ends_downstream() {
    let (_listener, mut app, task) = negotiating(PgTlsSettings::refuse()).await;
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"N");
    drop(app);
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.side, Side::Downstream);
}

#[tokio::test]
async fn gssenc_is_refused_then_startup_follows() {
    let (listener, mut app, task) = refused(GSSENC_REQUEST).await;
    app.write_all(&request(SSL_REQUEST)).await.unwrap();
    assert_eq!(read_n(&mut app, 1).await, b"N");
    app.write_all(&startup(&[("user", "u")])).await.unwrap();
    let _server = listener.accept().await.unwrap();
    assert!(established(task).await.inspected());
}

/// Reads everything the client end receives until the proxy side closes it.
async fn nothing_but_the_close(app: &mut tokio::net::TcpStream) {
    let mut rest = Vec::new();
    match app.read_to_end(&mut rest).await {
        Ok(_) => assert!(rest.is_empty(), "the proxy answered {rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
}

#[tokio::test]
async fn a_repeated_encryption_request_reaches_the_server_after_the_refused_one() {
    let (listener, mut app, task) = refused(GSSENC_REQUEST).await;
    app.write_all(&request(GSSENC_REQUEST)).await.unwrap();

    // The server sees the client's bytes in order: the refused request (answered `N`, the
    // answer dropped since the client has its own), then the repeat.
    let mut server = accept_expecting(&listener, &request(GSSENC_REQUEST)).await;
    server.write_all(b"N").await.unwrap();
    assert_eq!(read_n(&mut server, 8).await, request(GSSENC_REQUEST));
    let mut relay = established(task).await;
    assert_eq!(
        relay.inspection,
        Inspection::Undecodable("startup_unexpected_request")
    );
    assert_streams_connected(&mut relay, &mut app, &mut server).await;
}

#[tokio::test]
async fn garbage_after_a_refused_ssl_request_is_forwarded_after_it() {
    let (listener, mut app, task) = refused(SSL_REQUEST).await;
    app.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();

    let mut server = accept_expecting(&listener, &request(SSL_REQUEST)).await;
    server.write_all(b"N").await.unwrap();
    // The length field the proxy read, then the rest through the relay.
    assert_eq!(read_n(&mut server, 4).await, b"GET ");
    let mut relay = established(task).await;
    assert_eq!(relay.inspection, Inspection::Undecodable("startup_invalid"));
    assert_eq!(read_n(&mut relay.client, 14).await, b"/ HTTP/1.1\r\n\r\n");
    assert_streams_connected(&mut relay, &mut app, &mut server).await;
}

#[tokio::test]
async fn a_server_that_would_not_refuse_gets_the_unread_bytes_on_a_new_connection() {
    let (listener, mut app, task) = refused(SSL_REQUEST).await;
    app.write_all(&(-1i32).to_be_bytes()).await.unwrap();

    // This server wants TLS: it now expects a handshake the client will never start.
    let mut replayed = accept_expecting(&listener, &request(SSL_REQUEST)).await;
    replayed.write_all(b"S").await.unwrap();
    let mut server = accept_expecting(&listener, &(-1i32).to_be_bytes()).await;
    let mut relay = established(task).await;
    assert_eq!(relay.inspection, Inspection::Undecodable("startup_invalid"));
    assert_streams_connected(&mut relay, &mut app, &mut server).await;
    let mut rest = Vec::new();
    replayed.read_to_end(&mut rest).await.unwrap();
    assert!(
        rest.is_empty(),
        "the abandoned connection gets nothing more"
    );
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
async fn absurd_startup_lengths_are_forwarded_not_answered() {
    for length in [i32::MIN, -1, 0, 4, 7, 10 * 1024 + 1, 1 << 30, i32::MAX] {
        let (listener, mut app, task) =
            sent_first(&length.to_be_bytes(), PgTlsSettings::refuse()).await;
        let server = accept_expecting(&listener, &length.to_be_bytes()).await;
        let relay = established(task).await;
        assert_eq!(
            relay.inspection,
            Inspection::Undecodable("startup_invalid"),
            "length {length}"
        );
        // The server closes; the relay would pass that on. The proxy itself said nothing.
        drop(relay);
        drop(server);
        nothing_but_the_close(&mut app).await;
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
async fn other_protocols_and_unreadable_parameters_are_left_to_the_server() {
    let mut old = startup(&[("user", "u")]);
    old[4..8].copy_from_slice(&(2i32 << 16).to_be_bytes());
    // Protocol 3 without even the terminating byte of its parameter list.
    let mut bare = 8i32.to_be_bytes().to_vec();
    bare.extend_from_slice(&196_608i32.to_be_bytes());
    for packet in [old, bare] {
        let (listener, mut app, task) = sent_first(&packet, PgTlsSettings::refuse()).await;
        let mut server = accept_expecting(&listener, &packet).await;
        let mut relay = established(task).await;
        assert_eq!(
            relay.inspection,
            Inspection::Undecodable("startup_unsupported")
        );
        assert_eq!(relay.database, "");
        assert_streams_connected(&mut relay, &mut app, &mut server).await;
    }
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
