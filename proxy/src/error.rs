//! Errors that say where the fault came from.
//!
//! Like pingora's, every proxy error records its side: the upstream (the database), the
//! downstream (the client), or the proxy itself. Operators read that first.

use std::fmt;

/// Where a fault came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The database behind the proxy.
    Upstream,
    /// The client in front of it.
    Downstream,
    /// indextap itself.
    Internal,
}

impl Side {
    /// A metric label.
    pub fn label(self) -> &'static str {
        match self {
            Side::Upstream => "upstream",
            Side::Downstream => "downstream",
            Side::Internal => "internal",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A proxy error: its side, what was being done, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{side} error while {context}: {source}")]
pub struct ProxyError {
    /// Which side failed.
    pub side: Side,
    /// What the proxy was doing (`connecting to upstream 127.0.0.1:27017`, `TLS handshake`).
    pub context: String,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

impl ProxyError {
    /// An upstream fault.
    pub fn upstream(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::new(Side::Upstream, context, source)
    }

    /// A downstream (client) fault.
    pub fn downstream(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::new(Side::Downstream, context, source)
    }

    /// A fault inside the proxy.
    pub fn internal(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::new(Side::Internal, context, source)
    }

    /// An error on a given side.
    pub fn new(side: Side, context: impl Into<String>, source: std::io::Error) -> Self {
        Self {
            side,
            context: context.into(),
            source,
        }
    }
}
