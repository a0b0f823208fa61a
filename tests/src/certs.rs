//! [`TestCertificate`]: a self-signed certificate for `localhost` and `127.0.0.1`, as PEM
//! files, for TLS between a test's clients, the proxy and the servers.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// A self-signed certificate and its key in a temporary directory (removed on drop). Being
/// self-signed, the certificate is also the CA file a client trusts it with.
pub struct TestCertificate {
    dir: TempDir,
}

impl TestCertificate {
    /// A fresh certificate valid for `localhost` and `127.0.0.1`. Panics when it cannot.
    pub fn generate() -> Self {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let certified = rcgen::generate_simple_self_signed(names).expect("rcgen");
        let dir = tempfile::Builder::new()
            .prefix("indextap-cert-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(dir.path().join("server.crt"), certified.cert.pem()).expect("cert");
        std::fs::write(
            dir.path().join("server.key"),
            certified.key_pair.serialize_pem(),
        )
        .expect("key");
        Self { dir }
    }

    /// The PEM certificate (also the CA file to trust it with).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    /// The PEM private key.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// The directory holding both.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
