//! PostgreSQL wire handling: the startup phase, framing, and the per-connection session that
//! turns typed messages into observations.
//!
//! A connection goes through [`startup::negotiate`] first (SSLRequest, GSSENCRequest,
//! CancelRequest, StartupMessage; TLS refused, terminated or passed through). The relay then
//! splits both directions with [`PgFramer`] and feeds a [`PgSession`] the typed frames.
//!
//! pgwire's message types decode what the session keeps; every body is first walked with a
//! bounds-checked [`reader::Reader`], because pgwire's decoders panic on short input. The
//! messages that carry values the proxy must not copy (Bind parameters, DataRow values,
//! ErrorResponse text) are read in place, keeping only counts, names and the SQLSTATE.
//!
//! ## Layout
//! - [`startup`]: the untyped startup phase and the upstream connection.
//! - [`tls`]: TLS settings for both sides, loaded from PEM files.
//! - [`frame`]: [`PgFramer`] (type byte + length) and the checked [`frame::TypedFrame`].
//! - [`reader`]: the bounds-checked body cursor.
//! - [`frontend`], [`backend`]: one decoder per direction.
//! - [`tag`]: row counts from CommandComplete tags.
//! - [`session`]: [`PgSession`], statements, portals, pipelining, the reply queue.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod backend;
mod decoded;
pub mod frame;
pub mod frontend;
pub mod reader;
pub mod session;
pub mod startup;
pub mod tag;
pub mod tls;

pub use decoded::Decoded;
pub use frame::PgFramer;
pub use session::PgSession;
pub use startup::{negotiate, negotiate_with, Established, Inspection, Negotiated, StartupLimits};
pub use tls::{PgTlsMode, PgTlsSettings, TlsConfigError, UpstreamTls};
