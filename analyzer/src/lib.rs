//! The analyzer: meaning, with no sockets.
//!
//! It takes decoded commands (MongoDB command documents, SQL text) and turns them into index
//! advice. Because it never touches the network, the same code runs inside the proxy and
//! offline over a snapshot file.
//!
//! ## Layout
//! Data flows one way, one module per stage:
//! - [`command`]: what the proxy hands over: one request with its measured outcome.
//! - [`shape`]: command → engine-neutral [`shape::Shape`] (values removed, types kept).
//! - [`aggregate`]: shape → counts, errors, latency histograms, write load; bounded memory.
//! - [`snapshot`]: the aggregate as a versioned, mergeable file (restarts, fleets).
//! - [`catalog`]: what the servers' catalogs say besides their indexes (column owners, value
//!   statistics as counts and frequencies, index usage and constraints), read by the proxy.
//! - [`advise`]: aggregate → index candidates (ESR) → consolidation → existing → verify → rank,
//!   asking the engine's rules ([`advise::EngineRules`]) wherever MongoDB and PostgreSQL differ.
//! - [`export`]: one recommendation, many renderings (JSON, mongosh, SQL, ORM migrations, Markdown).
//! - [`fuzzing`]: the entry points of the fuzz targets that lower commands (`fuzz/`).
//!
//! Besides the stages, `spelling` makes the enums that pass between them (operators,
//! commands, rejection reasons, evidence kinds) serialise as the strings they replaced.
// Lints: `[workspace.lints]` in the root Cargo.toml.

pub mod advise;
pub mod aggregate;
pub mod catalog;
pub mod command;
pub mod export;
pub mod fuzzing;
pub mod shape;
pub mod snapshot;
mod spelling;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;
