//! Opening the upstream connection, plain or with TLS.
//!
//! With TLS the proxy speaks as a PostgreSQL client: SSLRequest, a one-byte answer, then the
//! handshake. A server that answers `N` is an error, never a silent downgrade to plaintext.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::packet::SSL_REQUEST;
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
