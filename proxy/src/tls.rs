//! TLS material shared by the MongoDB and PostgreSQL listeners (rustls).
//!
//! Both engines terminate client TLS with the proxy's certificate, and may speak TLS to their
//! upstream, verified against a CA file or, for staging only, accepting any certificate. What
//! differs is how a session gets to TLS (PostgreSQL's SSLRequest, MongoDB's TLS from the first
//! byte) and the ALPN protocol name, so those stay in `postgres::tls` and `mongo::tls`.
//!
//! rustls runs with the ring provider, passed explicitly so nothing depends on a process-wide
//! default provider.
//!
//! ## Layout
//! - [`acceptor_from_pem_files`]: the client side, from a PEM chain and key.
//! - [`UpstreamTls`]: the upstream side, from a listener's configuration or by hand.
//! - [`TlsConfigError`]: loading PEM files, with the path in every message.
//! - `AcceptAnyServerCert`: the staging-only verifier (handshake signatures still checked).
//! - `testing` (tests only): a self-signed certificate and its key as PEM files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indextap_config::{ListenerTls, UpstreamTls as UpstreamMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A TLS acceptor from a PEM certificate chain file and a PEM private key file, offering
/// `alpn` (empty: no ALPN).
pub fn acceptor_from_pem_files(
    cert_file: impl AsRef<Path>,
    key_file: impl AsRef<Path>,
    alpn: &[&[u8]],
) -> Result<TlsAcceptor, TlsConfigError> {
    let cert_path = cert_file.as_ref();
    let key_path = key_file.as_ref();
    let certs = read_certificates(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsConfigError::Pem {
        what: "private key",
        path: key_path.to_owned(),
        source,
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsConfigError::Rustls {
            what: "choosing protocol versions",
            path: cert_path.to_owned(),
            source,
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| TlsConfigError::Rustls {
            what: "pairing the certificate with its key",
            path: key_path.to_owned(),
            source,
        })?;
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// How the proxy connects to the upstream server.
#[derive(Clone)]
pub enum UpstreamTls {
    /// Plain TCP.
    Off,
    /// TLS; a server that does not complete the handshake is an upstream error (no
    /// downgrade to plaintext).
    On {
        /// The client configuration (verifier included).
        connector: TlsConnector,
        /// The name the certificate must be valid for (SNI and verification).
        server_name: ServerName<'static>,
    },
}

impl UpstreamTls {
    /// What a listener's `tls` table asks for towards `upstream` (`HOST:PORT`), offering
    /// `alpn`: plain, TLS verified against `upstream_ca_file` for the upstream's host name,
    /// or TLS accepting any certificate when no CA file is given.
    pub fn from_listener(
        tls: &ListenerTls,
        upstream: &str,
        alpn: &[&[u8]],
    ) -> Result<Self, TlsConfigError> {
        let host = upstream
            .rsplit_once(':')
            .map_or(upstream, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let upstream = match (tls.upstream, &tls.upstream_ca_file) {
            (UpstreamMode::Disable, _) => return Ok(UpstreamTls::Off),
            (UpstreamMode::Require, Some(ca)) => Self::verify_with_ca_file(ca, host)?,
            (UpstreamMode::Require, None) => Self::accept_any_certificate(host)?,
        };
        Ok(upstream.offering_alpn(alpn))
    }

    /// TLS verified against the CA certificates in a PEM file.
    pub fn verify_with_ca_file(
        ca_file: impl AsRef<Path>,
        server_name: &str,
    ) -> Result<Self, TlsConfigError> {
        let path = ca_file.as_ref();
        let mut roots = RootCertStore::empty();
        for cert in read_certificates(path)? {
            roots.add(cert).map_err(|source| TlsConfigError::Rustls {
                what: "adding a CA certificate",
                path: path.to_owned(),
                source,
            })?;
        }
        let config = client_builder(path)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::on(config, server_name)
    }

    /// TLS that accepts any server certificate. For staging databases with self-signed
    /// certificates only: it encrypts but does not authenticate the server.
    pub fn accept_any_certificate(server_name: &str) -> Result<Self, TlsConfigError> {
        let provider = Arc::new(ring::default_provider());
        let config = client_builder(Path::new(""))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider }))
            .with_no_client_auth();
        Self::on(config, server_name)
    }

    /// The same, offering `alpn` in the handshake (empty: none).
    pub fn offering_alpn(self, alpn: &[&[u8]]) -> Self {
        match self {
            UpstreamTls::Off => UpstreamTls::Off,
            UpstreamTls::On {
                connector,
                server_name,
            } => {
                let mut config = ClientConfig::clone(connector.config());
                config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
                UpstreamTls::On {
                    connector: TlsConnector::from(Arc::new(config)),
                    server_name,
                }
            }
        }
    }

    fn on(config: ClientConfig, server_name: &str) -> Result<Self, TlsConfigError> {
        let server_name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
            TlsConfigError::InvalidServerName {
                name: server_name.to_owned(),
            }
        })?;
        Ok(UpstreamTls::On {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// A label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            UpstreamTls::Off => "off",
            UpstreamTls::On { .. } => "on",
        }
    }
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamTls::Off => f.write_str("off"),
            UpstreamTls::On { server_name, .. } => {
                write!(f, "on ({})", server_name.to_str())
            }
        }
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsConfigError::Pem {
            what: "certificates",
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn client_builder(
    path: &Path,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, TlsConfigError> {
    ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsConfigError::Rustls {
            what: "choosing protocol versions",
            path: path.to_owned(),
            source,
        })
}

/// Why TLS settings could not be built. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what} from {}: {source}", path.display())]
    Pem {
        /// What was being read.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate file held no certificate.
    #[error("no PEM certificate found in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the material.
    #[error("TLS error while {what} ({}): {source}", path.display())]
    Rustls {
        /// What was being done.
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// Terminating TLS was asked for without a certificate and key.
    #[error("tls.mode = terminate needs tls.cert_file and tls.key_file")]
    MissingCertificate,
    /// The upstream server name is not a DNS name or IP address.
    #[error("invalid upstream TLS server name {name:?}")]
    InvalidServerName {
        /// The name given.
        name: String,
    },
}

/// Accepts any certificate chain, but still checks the handshake signatures against the
/// presented certificate, so the session key is bound to that certificate.
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod testing {
    use std::path::PathBuf;

    /// A self-signed certificate and its key, written as PEM files to a folder that lives as
    /// long as this value.
    pub(crate) struct PemFiles {
        pub(crate) generated: rcgen::CertifiedKey,
        pub(crate) cert: PathBuf,
        pub(crate) key: PathBuf,
        _dir: tempfile::TempDir,
    }

    /// A certificate for `name`, with its key.
    pub(crate) fn self_signed(name: &str) -> PemFiles {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
        PemFiles {
            generated,
            cert,
            key,
            _dir: dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::self_signed;
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn loads_a_generated_certificate_and_key() {
        let files = self_signed("localhost");
        let acceptor = acceptor_from_pem_files(&files.cert, &files.key, &[b"proto"]).unwrap();
        assert_eq!(acceptor.config().alpn_protocols, vec![b"proto".to_vec()]);
        let upstream = UpstreamTls::verify_with_ca_file(&files.cert, "localhost").unwrap();
        assert_eq!(format!("{upstream:?}"), "on (localhost)");
        assert!(UpstreamTls::accept_any_certificate("10.0.0.1").is_ok());
    }

    #[test]
    fn a_listener_table_picks_the_upstream_side() {
        let generated = rcgen::generate_simple_self_signed(vec!["db".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = write(&dir, "ca.pem", &generated.cert.pem());
        let mut tls = ListenerTls::default();
        let off = UpstreamTls::from_listener(&tls, "db:5432", &[]).unwrap();
        assert_eq!(off.label(), "off");

        tls.upstream = UpstreamMode::Require;
        let any = UpstreamTls::from_listener(&tls, "[::1]:27017", &[b"x"]).unwrap();
        assert_eq!(format!("{any:?}"), "on (::1)");
        tls.upstream_ca_file = Some(ca);
        let UpstreamTls::On { connector, .. } =
            UpstreamTls::from_listener(&tls, "db:5432", &[b"postgresql"]).unwrap()
        else {
            panic!("require is TLS");
        };
        assert_eq!(
            connector.config().alpn_protocols,
            vec![b"postgresql".to_vec()]
        );
    }

    fn acceptor_error(cert: &Path, key: &Path) -> TlsConfigError {
        match acceptor_from_pem_files(cert, key, &[]) {
            Ok(_) => panic!("accepted bad TLS material"),
            Err(err) => err,
        }
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = acceptor_error(&missing, &missing);
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let empty = write(&dir, "empty.pem", "");
        let err = acceptor_error(&empty, &empty);
        assert!(matches!(err, TlsConfigError::NoCertificate { .. }), "{err}");

        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write(&dir, "cert.pem", &generated.cert.pem());
        let err = acceptor_error(&cert, &cert);
        assert!(err.to_string().contains("private key"), "{err}");

        let other = rcgen::generate_simple_self_signed(vec!["other".into()]).unwrap();
        let wrong_key = write(&dir, "wrong.pem", &other.key_pair.serialize_pem());
        let err = acceptor_error(&cert, &wrong_key);
        assert!(matches!(err, TlsConfigError::Rustls { .. }), "{err}");

        let err = UpstreamTls::accept_any_certificate("not a name!").unwrap_err();
        assert!(matches!(err, TlsConfigError::InvalidServerName { .. }));
    }
}
