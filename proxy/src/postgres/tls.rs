//! TLS settings for PostgreSQL sessions, on both sides of the proxy.
//!
//! The client side is decided by [`PgTlsMode`], answered to the client's SSLRequest:
//! - `Refuse`: answer `N`; the session stays plaintext and inspectable (a client with
//!   `sslmode=require` then fails exactly as against a server without TLS).
//! - `Terminate`: answer `S` and run the TLS handshake with the proxy's certificate; the
//!   session is inspected inside TLS.
//! - `Passthrough`: forward the SSLRequest and the server's answer, then every byte
//!   verbatim; the session is end-to-end encrypted and not inspected.
//!
//! The upstream side is [`UpstreamTls`] (shared with MongoDB in [`crate::tls`]): plain, or
//! TLS (SSLRequest, `S`, handshake). It applies to every session the proxy opens itself (all
//! but a passed-through SSLRequest). Both sides offer the ALPN name PostgreSQL 17 uses.
//!
//! ## Layout
//! - [`PgTlsSettings`], [`PgTlsMode`]: what `startup::negotiate` reads.
//! - [`acceptor_from_pem_files`]: the shared acceptor, with PostgreSQL's ALPN.

use std::fmt;
use std::path::Path;

use indextap_config::{PostgresListener, TlsMode};
use tokio_rustls::TlsAcceptor;

pub use crate::tls::{TlsConfigError, UpstreamTls};

/// The ALPN protocol name PostgreSQL 17+ uses; older servers ignore ALPN.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// How the proxy answers a client's SSLRequest.
#[derive(Clone)]
pub enum PgTlsMode {
    /// Answer `N`: the client goes on in plaintext, or gives up if it requires TLS.
    Refuse,
    /// Answer `S` and terminate TLS with this acceptor (the proxy's certificate and key).
    Terminate(TlsAcceptor),
    /// Forward the SSLRequest and everything after it: encrypted end to end, not inspected.
    Passthrough,
}

impl PgTlsMode {
    /// A label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PgTlsMode::Refuse => "refuse",
            PgTlsMode::Terminate(_) => "terminate",
            PgTlsMode::Passthrough => "passthrough",
        }
    }
}

impl fmt::Debug for PgTlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Both sides' TLS, shared by every PostgreSQL session of a listener.
#[derive(Clone, Debug)]
pub struct PgTlsSettings {
    /// The answer to a client's SSLRequest.
    pub mode: PgTlsMode,
    /// How the proxy itself connects upstream.
    pub upstream: UpstreamTls,
}

impl PgTlsSettings {
    /// Refuse client TLS, plain upstream: the default, fully inspectable.
    pub fn refuse() -> Self {
        Self {
            mode: PgTlsMode::Refuse,
            upstream: UpstreamTls::Off,
        }
    }

    /// Pass client TLS through to the server untouched.
    pub fn passthrough() -> Self {
        Self {
            mode: PgTlsMode::Passthrough,
            upstream: UpstreamTls::Off,
        }
    }

    /// Terminate client TLS with the certificate chain and private key in two PEM files.
    pub fn terminate_from_pem_files(
        cert_file: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        let acceptor = acceptor_from_pem_files(cert_file, key_file)?;
        Ok(Self {
            mode: PgTlsMode::Terminate(acceptor),
            upstream: UpstreamTls::Off,
        })
    }

    /// What a listener's configuration asks for, both sides.
    pub fn from_listener(spec: &PostgresListener) -> Result<Self, TlsConfigError> {
        let tls = &spec.tls;
        let settings = match (tls.mode, &tls.cert_file, &tls.key_file) {
            (TlsMode::Refuse, ..) => Self::refuse(),
            (TlsMode::Passthrough, ..) => Self::passthrough(),
            (TlsMode::Terminate, Some(cert), Some(key)) => {
                Self::terminate_from_pem_files(cert, key)?
            }
            // Validation requires both files; this only guards a hand-built configuration.
            (TlsMode::Terminate, ..) => return Err(TlsConfigError::MissingCertificate),
        };
        let upstream = UpstreamTls::from_listener(tls, &spec.upstream, &[ALPN_POSTGRESQL])?;
        Ok(settings.with_upstream(upstream))
    }

    /// The same client side, with this upstream side.
    pub fn with_upstream(mut self, upstream: UpstreamTls) -> Self {
        self.upstream = upstream;
        self
    }
}

impl Default for PgTlsSettings {
    fn default() -> Self {
        Self::refuse()
    }
}

/// A TLS acceptor from a PEM certificate chain file and a PEM private key file, offering
/// PostgreSQL's ALPN name.
pub fn acceptor_from_pem_files(
    cert_file: impl AsRef<Path>,
    key_file: impl AsRef<Path>,
) -> Result<TlsAcceptor, TlsConfigError> {
    crate::tls::acceptor_from_pem_files(cert_file, key_file, &[ALPN_POSTGRESQL])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_configuration_builds_both_sides() {
        let files = crate::tls::testing::self_signed("localhost");
        let (cert, key) = (files.cert.clone(), files.key.clone());

        let mut spec = PostgresListener::new("127.0.0.1:6432", "localhost:5432");
        assert_eq!(
            PgTlsSettings::from_listener(&spec).unwrap().mode.label(),
            "refuse"
        );
        spec.tls.mode = TlsMode::Terminate;
        assert!(matches!(
            PgTlsSettings::from_listener(&spec),
            Err(TlsConfigError::MissingCertificate)
        ));
        spec.tls.cert_file = Some(cert.clone());
        spec.tls.key_file = Some(key);
        spec.tls.upstream = indextap_config::UpstreamTls::Require;
        spec.tls.upstream_ca_file = Some(cert);
        let settings = PgTlsSettings::from_listener(&spec).unwrap();
        let PgTlsMode::Terminate(acceptor) = &settings.mode else {
            panic!("terminate");
        };
        assert_eq!(
            acceptor.config().alpn_protocols,
            vec![ALPN_POSTGRESQL.to_vec()]
        );
        assert_eq!(format!("{:?}", settings.upstream), "on (localhost)");
    }
}
