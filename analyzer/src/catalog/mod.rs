//! What the servers' catalogs say besides their indexes, as the advice takes it.
//!
//! The proxy reads these (it has the sockets); the analyzer only reasons over them, so advice
//! over a snapshot file works the same when a catalog URL is given. Every figure here is a
//! count or a frequency: no value of a table or collection ever reaches this module.
//!
//! ## Layout
//! - this file: [`CatalogFacts`], everything read for one piece of advice.
//! - [`columns`]: which table owns a column ([`ColumnOwners`]), to attribute unqualified
//!   columns of a join.
//! - [`statistics`]: per field, distinct values, null fraction and the most common values'
//!   frequencies ([`FieldStatistics`]), for key width and order.
//! - [`usage`]: per existing index, the server's usage counter over the capture window and the
//!   constraint it enforces ([`IndexUsage`]), for drop advice.

pub mod columns;
pub mod statistics;
pub mod usage;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::shape::Namespace;
pub use columns::{Attribution, ColumnOwners};
pub use statistics::{FieldStatistics, NamespaceStatistics};
pub use usage::{Baseline, Constraint, IndexUsage, UsageWindow};

/// Everything read from the catalogs for one piece of advice. Each part may be empty: a
/// catalog that could not be read leaves a note, never a guess.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogFacts {
    /// The columns of each user table (PostgreSQL), or the fields seen in a sample of each
    /// collection (MongoDB).
    pub columns: ColumnOwners,
    /// Value distribution per namespace.
    pub statistics: BTreeMap<Namespace, NamespaceStatistics>,
    /// Existing indexes' usage and constraints, per namespace.
    pub usage: BTreeMap<Namespace, Vec<IndexUsage>>,
    /// When the usage counters were read, in Unix milliseconds.
    pub read_at_ms: u64,
}
