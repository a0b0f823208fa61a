//! Value distribution per field, as counts and frequencies only.
//!
//! PostgreSQL's `pg_stats` gives `n_distinct`, `null_frac` and `most_common_freqs` (read
//! without `most_common_vals`); MongoDB's figures come from a `$sample` aggregation that
//! returns, per field, how many sampled documents have it and how many distinct values it
//! takes there. Either way only numbers cross into the analyzer, so the privacy rule holds:
//! no value can be given back from these.
//!
//! They decide how wide an index is and in which order its equality keys come: the equality
//! prefix stops once it is (estimated) unique, and among keys that serve the same shapes the
//! most selective comes first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An equality on a prefix that matches at most this many rows, on average, is unique
/// enough: a longer key would not find fewer rows.
pub const UNIQUE_ROWS: f64 = 1.5;

/// The distribution of one field's values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldStatistics {
    /// Distinct non-null values: estimated for the whole table on PostgreSQL (a negative
    /// `n_distinct` resolved against the row count), counted in the sample on MongoDB.
    pub distinct: f64,
    /// The fraction of rows where it is NULL (PostgreSQL), or missing or null (MongoDB).
    pub null_fraction: f64,
    /// The frequencies of the most common values, as fractions of all rows, highest first.
    /// Never the values themselves.
    #[serde(default)]
    pub most_common_frequencies: Vec<f64>,
}

impl FieldStatistics {
    /// The fraction of rows an equality on this field matches, averaged over the values
    /// queries look up (taken to be distributed as the rows are): the common values' squared
    /// frequencies, and the rest of the rows spread evenly over the other distinct values.
    pub fn equality_selectivity(&self) -> f64 {
        let common: f64 = self
            .most_common_frequencies
            .iter()
            .map(|f| f.clamp(0.0, 1.0))
            .sum();
        let common_squares: f64 = self
            .most_common_frequencies
            .iter()
            .map(|f| f.clamp(0.0, 1.0).powi(2))
            .sum();
        let rest = (1.0 - self.null_fraction.clamp(0.0, 1.0) - common).max(0.0);
        let rest_distinct = (self.distinct - self.most_common_frequencies.len() as f64).max(0.0);
        let spread = if rest_distinct >= 1.0 {
            rest * rest / rest_distinct
        } else if self.distinct >= 1.0 {
            0.0
        } else {
            // Nothing known about the values: no narrowing assumed.
            rest
        };
        (common_squares + spread).clamp(0.0, 1.0)
    }

    /// A field that is never null, whose `distinct` values are equally common.
    pub fn uniform(distinct: f64) -> Self {
        Self {
            distinct,
            null_fraction: 0.0,
            most_common_frequencies: Vec::new(),
        }
    }

    /// Whether no row has the field (MongoDB: no sampled document has it).
    pub fn is_absent(&self) -> bool {
        self.null_fraction >= 1.0 && self.distinct < 1.0
    }
}

/// The figures of one table or collection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamespaceStatistics {
    /// Rows in the table (`pg_class.reltuples`), or documents in the collection.
    pub rows: f64,
    /// On MongoDB, the documents the figures were counted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_size: Option<u64>,
    /// Per field or column.
    pub fields: BTreeMap<String, FieldStatistics>,
}

impl NamespaceStatistics {
    /// The rows an equality on every one of `fields` is expected to match (fields taken as
    /// independent); `None` when a field has no statistics.
    pub fn rows_matching<'f>(&self, fields: impl IntoIterator<Item = &'f str>) -> Option<f64> {
        let mut selectivity = 1.0;
        for field in fields {
            selectivity *= self.fields.get(field)?.equality_selectivity();
        }
        Some(self.rows.max(0.0) * selectivity)
    }

    /// Whether an equality on `fields` finds at most about one row.
    pub fn is_unique<'f>(&self, fields: impl IntoIterator<Item = &'f str>) -> bool {
        self.rows_matching(fields)
            .is_some_and(|rows| rows <= UNIQUE_ROWS)
    }

    /// Whether the statistics say no row has `field` (known absent, not merely unknown).
    /// A sample counts every addressable field its collection's shapes use, so such a field
    /// it did not count is absent too; a name no path can address (`$text`, an empty one)
    /// was never counted and is not.
    pub fn is_absent(&self, field: &str) -> bool {
        self.fields
            .get(field)
            .is_some_and(FieldStatistics::is_absent)
            || (self.sample_size.is_some_and(|n| n > 0)
                && is_addressable(field)
                && !self.fields.contains_key(field))
    }
}

/// Whether a field can be named in an aggregation path (`$a.b`), and so be counted on a
/// sample: not empty, not an operator (`$text`, `$natural`), no empty segment.
pub fn is_addressable(field: &str) -> bool {
    !field.is_empty() && !field.starts_with('$') && !field.split('.').any(str::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectivity_of_uniform_and_skewed_fields() {
        assert!((FieldStatistics::uniform(10.0).equality_selectivity() - 0.1).abs() < 1e-9);
        assert!((FieldStatistics::uniform(1.0).equality_selectivity() - 1.0).abs() < 1e-9);
        // One value holds 90 % of the rows: a lookup of a random row's value matches most.
        let skewed = FieldStatistics {
            distinct: 10.0,
            null_fraction: 0.0,
            most_common_frequencies: vec![0.9],
        };
        let expected = 0.81 + 0.01 / 9.0;
        assert!((skewed.equality_selectivity() - expected).abs() < 1e-9);
        let mostly_null = FieldStatistics {
            distinct: 100.0,
            null_fraction: 0.5,
            most_common_frequencies: Vec::new(),
        };
        assert!((mostly_null.equality_selectivity() - 0.0025).abs() < 1e-9);
    }

    #[test]
    fn a_prefix_is_unique_once_it_finds_one_row() {
        let table = NamespaceStatistics {
            rows: 10_000.0,
            sample_size: None,
            fields: BTreeMap::from([
                ("w_id".to_owned(), FieldStatistics::uniform(1.0)),
                ("d_id".to_owned(), FieldStatistics::uniform(10.0)),
                ("c_id".to_owned(), FieldStatistics::uniform(1000.0)),
            ]),
        };
        assert!(!table.is_unique(["w_id", "d_id"]));
        assert!(table.is_unique(["w_id", "d_id", "c_id"]));
        assert_eq!(table.rows_matching(["w_id", "unknown"]), None);
        assert!(!table.is_unique(["unknown"]));
    }

    #[test]
    fn a_field_no_sampled_document_has_is_absent() {
        let sampled = NamespaceStatistics {
            rows: 3000.0,
            sample_size: Some(3000),
            fields: BTreeMap::from([
                ("w_id".to_owned(), FieldStatistics::uniform(1.0)),
                (
                    "gone".to_owned(),
                    FieldStatistics {
                        distinct: 0.0,
                        null_fraction: 1.0,
                        most_common_frequencies: Vec::new(),
                    },
                ),
            ]),
        };
        assert!(sampled.is_absent("gone"));
        assert!(sampled.is_absent("never_counted"));
        assert!(!sampled.is_absent("w_id"));
        for uncountable in ["$text", "", "tags.", "a..b"] {
            assert!(
                !sampled.is_absent(uncountable),
                "{uncountable:?} cannot be counted, so it is not known to be absent"
            );
        }
        let catalog = NamespaceStatistics {
            sample_size: None,
            ..sampled
        };
        assert!(
            !catalog.is_absent("never_counted"),
            "pg_stats may lack a column"
        );
    }
}
