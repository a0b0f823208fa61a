//! Existing indexes' usage over the capture window, and the constraints they enforce.
//!
//! Drop advice needs both the traffic's view (no captured shape uses the index, writes
//! maintain it) and the server's own: its usage counter (`pg_stat_user_indexes.idx_scan`,
//! `$indexStats` `accesses.ops`) read at the start of the window and at advice time, since
//! the server also serves traffic the proxy never saw. An index that enforces something (a
//! primary key, `_id`, a unique, exclusion or foreign-key constraint) is never dropped.

use serde::{Deserialize, Serialize};

/// Something an index enforces or backs, besides speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Constraint {
    /// A PostgreSQL primary key.
    PrimaryKey,
    /// A unique index or constraint.
    Unique,
    /// A PostgreSQL exclusion constraint.
    Exclusion,
    /// A foreign key: the referenced key's index, or the referencing columns' index that
    /// keeps the referenced table's deletes and key updates from scanning.
    ForeignKey,
    /// MongoDB's `_id` index.
    MongoId,
}

/// One existing index's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexUsage {
    /// The index name.
    pub name: String,
    /// The server's usage counter now; `None` when the server does not keep one.
    pub uses: Option<u64>,
    /// The same counter when it was first read; `None` without a baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    /// What it enforces; empty for an index that only speeds queries up.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
}

/// A counter's first reading: the start of the window its growth covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// The counter then.
    pub uses: u64,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
}

impl IndexUsage {
    /// Uses over the window: the counter's growth since the baseline. A counter that went
    /// down was reset during the window: its value now is what the window saw since.
    pub fn uses_in_window(&self) -> Option<u64> {
        match (self.uses, self.baseline) {
            (Some(now), Some(then)) if now >= then.uses => Some(now - then.uses),
            (Some(now), Some(_)) => Some(now),
            _ => None,
        }
    }

    /// The window the counter's growth covers, up to `read_at_ms`.
    pub fn window(&self, read_at_ms: u64) -> Option<UsageWindow> {
        self.baseline.map(|baseline| UsageWindow {
            start_ms: baseline.at_ms,
            end_ms: read_at_ms,
        })
    }

    /// Whether dropping it would lose something besides speed.
    pub fn is_protected(&self) -> bool {
        !self.constraints.is_empty()
    }
}

/// The span of time the counters' growth covers, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageWindow {
    /// When the baseline was read.
    pub start_ms: u64,
    /// When the counters were read for this advice.
    pub end_ms: u64,
}

impl UsageWindow {
    /// Its length in seconds.
    pub fn secs(&self) -> f64 {
        self.end_ms.saturating_sub(self.start_ms) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_over_the_window() {
        let usage = |uses, baseline: Option<u64>| IndexUsage {
            name: "k_1".to_owned(),
            uses,
            baseline: baseline.map(|uses| Baseline { uses, at_ms: 1_000 }),
            constraints: Vec::new(),
        };
        assert_eq!(usage(Some(12), Some(10)).uses_in_window(), Some(2));
        assert_eq!(
            usage(Some(3), Some(10)).uses_in_window(),
            Some(3),
            "a reset counter"
        );
        assert_eq!(usage(Some(3), None).uses_in_window(), None);
        assert_eq!(usage(None, Some(3)).uses_in_window(), None);
        let window = usage(Some(12), Some(10))
            .window(61_500)
            .expect("a baseline");
        assert!((window.secs() - 60.5).abs() < 1e-9);
    }
}
