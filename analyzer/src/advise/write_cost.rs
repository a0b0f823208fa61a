//! What one more index costs on the writes of its table or collection.
//!
//! Every insert, and every update that rewrites index entries (any MongoDB update or delete,
//! a PostgreSQL update that is not HOT), writes one entry into every index of its namespace:
//! [`EngineRules::index_writes`] counts those writes over the capture window. What one entry
//! costs is measured where the traffic allows: the namespace's inserts were timed per row
//! (the proxy times every command), and that time is shared equally between the row itself
//! and each index it already has (as the catalog listed them). That share is a ceiling
//! rather than a point estimate, since the time also holds the round trip and the commit, so
//! it weighs a write-heavy namespace's indexes heavily, as a careful DBA does.
//!
//! Where nothing was inserted through the proxy, or the namespace's indexes were not read,
//! the figure is [`DEFAULT_INDEX_WRITE_COST_MS`]; `advice.index_write_cost_us` replaces the
//! measurement everywhere when it is set. Each recommendation reports the figure, the writes
//! and where the figure came from ([`WriteCost`]).
//!
//! [`EngineRules::index_writes`]: super::EngineRules::index_writes

use serde::{Deserialize, Serialize};

use super::{AdviceSettings, ExistingIndexes};
use crate::shape::Namespace;
use crate::snapshot::Snapshot;

/// The write cost of one index entry when nothing measures it: one B-tree key insertion
/// with its pages in cache (tens of microseconds). It only has to be of the right order: it
/// weighs a read-mostly table's indexes lightly and a write-mostly one's heavily.
pub const DEFAULT_INDEX_WRITE_COST_MS: f64 = 0.02;

crate::spelling::open! {
    /// Where the cost of one index entry came from.
    pub enum WriteCostBasis {
        /// The namespace's inserts, timed per row, shared between the row and its indexes.
        Measured => "measured",
        /// `advice.index_write_cost_us`.
        Setting => "setting",
        /// [`DEFAULT_INDEX_WRITE_COST_MS`]: nothing measured it.
        Default => "default",
    }
}

/// What one more index would cost on the writes of its namespace over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteCost {
    /// The time one index entry adds to one write, in milliseconds.
    pub per_write_ms: f64,
    /// The writes over the window that would maintain the index.
    pub writes: u64,
    /// `per_write_ms × writes`: what ranking takes off the time the index saves.
    pub total_ms: f64,
    /// Where `per_write_ms` came from.
    pub basis: WriteCostBasis,
}

impl Default for WriteCost {
    fn default() -> Self {
        Self {
            per_write_ms: DEFAULT_INDEX_WRITE_COST_MS,
            writes: 0,
            total_ms: 0.0,
            basis: WriteCostBasis::Default,
        }
    }
}

/// The write cost of one more index on `namespace`.
pub fn write_cost(
    namespace: &Namespace,
    snapshot: &Snapshot,
    existing: &ExistingIndexes,
    settings: &AdviceSettings,
) -> WriteCost {
    let writes = namespace
        .engine
        .rules()
        .index_writes(&super::rank::write_load(namespace, snapshot));
    let (per_write_ms, basis) = match settings.index_write_cost_ms {
        Some(ms) => (ms, WriteCostBasis::Setting),
        None => match measured_ms(namespace, snapshot, existing) {
            Some(ms) => (ms, WriteCostBasis::Measured),
            None => (DEFAULT_INDEX_WRITE_COST_MS, WriteCostBasis::Default),
        },
    };
    WriteCost {
        per_write_ms,
        writes,
        total_ms: per_write_ms * writes as f64,
        basis,
    }
}

/// One index entry's share of an inserted row's measured time, when inserts were timed and
/// the namespace's indexes are known.
fn measured_ms(
    namespace: &Namespace,
    snapshot: &Snapshot,
    existing: &ExistingIndexes,
) -> Option<f64> {
    existing.get(namespace)?;
    let indexes = super::existing::indexes_of(namespace, existing).len();
    let (rows, micros) = snapshot
        .writes
        .iter()
        .filter(|write| &write.namespace == namespace)
        .fold((0u64, 0u64), |(rows, micros), write| {
            (
                rows.saturating_add(write.inserts),
                micros.saturating_add(write.insert_micros),
            )
        });
    if rows == 0 || micros == 0 {
        return None;
    }
    let per_row_ms = micros as f64 / 1000.0 / rows as f64;
    Some(per_row_ms / (indexes + 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::{IndexKey, IndexMethod, IndexSpec};
    use crate::shape::Target;
    use crate::snapshot::WriteRecord;

    fn table() -> Namespace {
        Namespace::postgres("app", "public", "events")
    }

    fn snapshot(inserts: u64, updates: u64, insert_micros: u64) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.writes.push(WriteRecord {
            namespace: table(),
            inserts,
            updates,
            deletes: 7,
            insert_micros,
        });
        snapshot
    }

    fn existing(indexes: usize) -> ExistingIndexes {
        let index = |i: usize| {
            IndexSpec::new(
                table(),
                IndexMethod::Btree,
                vec![IndexKey::asc(Target::Field(format!("c{i}")))],
            )
        };
        ExistingIndexes::from([(table(), (0..indexes).map(index).collect())])
    }

    #[test]
    fn measured_from_inserts_shared_with_the_indexes() {
        // 100 rows inserted in 30 ms: 0.3 ms a row, shared by the row and its 2 indexes.
        let cost = write_cost(
            &table(),
            &snapshot(100, 50, 30_000),
            &existing(2),
            &AdviceSettings::default(),
        );
        assert_eq!(cost.basis, WriteCostBasis::Measured);
        assert!((cost.per_write_ms - 0.1).abs() < 1e-9, "{cost:?}");
        assert_eq!(
            cost.writes, 150,
            "inserts and updates; a delete only marks the row"
        );
        assert!((cost.total_ms - 15.0).abs() < 1e-9, "{cost:?}");
    }

    #[test]
    fn the_default_when_nothing_measures_it_and_the_setting_over_all() {
        let settings = AdviceSettings::default();
        let unmeasured = [
            (snapshot(0, 50, 0), existing(2)),
            (snapshot(100, 50, 0), existing(2)),
            (snapshot(100, 50, 30_000), ExistingIndexes::new()),
        ];
        for (snapshot, existing) in unmeasured {
            let cost = write_cost(&table(), &snapshot, &existing, &settings);
            assert_eq!(cost.basis, WriteCostBasis::Default);
            assert_eq!(cost.per_write_ms, DEFAULT_INDEX_WRITE_COST_MS);
        }
        let pinned = AdviceSettings {
            index_write_cost_ms: Some(0.5),
            ..AdviceSettings::default()
        };
        let cost = write_cost(&table(), &snapshot(100, 50, 30_000), &existing(2), &pinned);
        assert_eq!(cost.basis, WriteCostBasis::Setting);
        assert!((cost.total_ms - 75.0).abs() < 1e-9, "{cost:?}");
    }
}
