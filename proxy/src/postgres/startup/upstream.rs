//! Opening the upstream connection, plain or with TLS.
//!
//! With TLS the proxy speaks as a PostgreSQL client: SSLRequest, a one-byte answer, then the
//! handshake. A server that answers `N` is an error, never a silent downgrade to plaintext.
//!
//! When the proxy gives up on a startup packet after refusing encryption itself,
//! [`connect_replaying`] first sends the server the refused requests, so that it reads the
//! unreadable packet in the state the client believes it is in.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::packet::{Packet, SSL_REQUEST};
use super::StartupLimits;
use crate::error::ProxyError;
use crate::postgres::tls::UpstreamTls;
use crate::relay::BoxStream;

/// The 8-byte SSLRequest.
pub fn ssl_request() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&8i32.to_be_bytes());
    bytes[4..].copy_from_slice(&SSL_REQUEST.to_be_bytes());
    bytes
}

/// Opens a plain TCP connection to the upstream, time-limited.
pub async fn connect_tcp(address: &str, limits: &StartupLimits) -> Result<TcpStream, ProxyError> {
    let context = || format!("connecting to upstream {address}");
    let stream = match timeout(limits.connect_timeout, TcpStream::connect(address)).await {
        Ok(result) => result.map_err(|e| ProxyError::upstream(context(), e))?,
        Err(_) => {
            return Err(ProxyError::upstream(
                context(),
                io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
            ))
        }
    };
    // Startup and query messages are small and latency-bound; Nagle only adds delay.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Opens the upstream connection the settings ask for.
pub async fn connect(
    address: &str,
    tls: &UpstreamTls,
    limits: &StartupLimits,
) -> Result<BoxStream, ProxyError> {
    let mut stream = connect_tcp(address, limits).await?;
    let (connector, server_name) = match tls {
        UpstreamTls::Off => return Ok(Box::new(stream)),
        UpstreamTls::On {
            connector,
            server_name,
        } => (connector, server_name),
    };
    let context = || format!("negotiating TLS with upstream {address}");
    let handshake = async {
        stream.write_all(&ssl_request()).await?;
        let answer = stream.read_u8().await?;
        if answer != b'S' {
            return Err(io::Error::other(format!(
                "server answered {:?} to SSLRequest, TLS required",
                char::from(answer)
            )));
        }
        connector.connect(server_name.clone(), stream).await
    };
    match timeout(limits.connect_timeout, handshake).await {
        Ok(Ok(tls_stream)) => Ok(Box::new(tls_stream)),
        Ok(Err(e)) => Err(ProxyError::upstream(context(), e)),
        Err(_) => Err(ProxyError::upstream(
            context(),
            io::Error::new(io::ErrorKind::TimedOut, "TLS negotiation timed out"),
        )),
    }
}

/// A plain connection on which the encryption requests the proxy refused (answered `N`) are
/// replayed, their answers read and dropped: the client already has its `N`. A server that
/// answers otherwise (`S`, or `G` for GSSAPI) now expects a handshake the client will never
/// start, so that connection is dropped and a new one used, as if the server had refused too.
/// With upstream TLS the proxy negotiated encryption itself: nothing is replayed.
pub async fn connect_replaying(
    address: &str,
    tls: &UpstreamTls,
    limits: &StartupLimits,
    refused: &[Packet],
) -> Result<BoxStream, ProxyError> {
    if matches!(tls, UpstreamTls::On { .. }) {
        return connect(address, tls, limits).await;
    }
    let mut stream = connect_tcp(address, limits).await?;
    let replay = async {
        let mut answers = Vec::with_capacity(refused.len());
        for request in refused {
            stream.write_all(&request.bytes).await?;
            answers.push(stream.read_u8().await?);
        }
        io::Result::Ok(answers)
    };
    let answers = match timeout(limits.connect_timeout, replay).await {
        Ok(Ok(answers)) => answers,
        Ok(Err(e)) => return Err(ProxyError::upstream("replaying refused requests", e)),
        Err(_) => {
            return Err(ProxyError::upstream(
                "replaying refused requests",
                io::Error::new(io::ErrorKind::TimedOut, "timed out"),
            ))
        }
    };
    if answers.iter().all(|answer| *answer == b'N') {
        Ok(Box::new(stream))
    } else {
        connect(address, tls, limits).await
    }
}
