//! The start of the usage window: each existing index's usage counter, first read.
//!
//! Drop advice compares the servers' usage counters over the capture window, so the proxy
//! reads them when it starts and then every [`interval`] (to catch databases, collections and
//! indexes created later), keeping only each index's first reading. Advice computed later
//! takes the growth since then. `recommend --from FILE` has no baseline: it says so, and
//! proposes no drop by usage.
//!
//! Only counters and times are kept: no value.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indextap_analyzer::catalog::{Baseline, IndexUsage};
use indextap_analyzer::shape::Namespace;
use tokio_util::sync::CancellationToken;

use super::{mongo, now_ms, postgres, CatalogSources};

/// First readings per namespace and index name.
#[derive(Debug, Default, Clone)]
pub struct UsageBaseline {
    first: Arc<Mutex<BTreeMap<(Namespace, String), Baseline>>>,
}

impl UsageBaseline {
    /// Keep the readings of indexes not seen before, taken at `at_ms`.
    pub fn observe(&self, namespace: &Namespace, readings: &[IndexUsage], at_ms: u64) {
        let Ok(mut first) = self.first.lock() else {
            return;
        };
        for reading in readings {
            let Some(uses) = reading.uses else {
                continue;
            };
            first
                .entry((namespace.clone(), reading.name.clone()))
                .or_insert(Baseline { uses, at_ms });
        }
    }

    /// Give `readings` their baselines (and start one for those without).
    pub fn apply(&self, namespace: &Namespace, readings: &mut [IndexUsage], at_ms: u64) {
        self.observe(namespace, readings, at_ms);
        let Ok(first) = self.first.lock() else {
            return;
        };
        for reading in readings {
            reading.baseline = first
                .get(&(namespace.clone(), reading.name.clone()))
                .copied();
        }
    }
}

/// How often the baseline looks for new indexes: well within the shortest window that may
/// support drop advice, and at most once a minute.
pub fn interval(drop_min_window: Duration) -> Duration {
    (drop_min_window / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Reads the counters of every user index the catalog sources reach, now and every
/// `interval`, until `shutdown`.
pub async fn keep(
    sources: CatalogSources,
    baseline: UsageBaseline,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        read_all(&sources, &baseline).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn read_all(sources: &CatalogSources, baseline: &UsageBaseline) {
    if let Some(url) = &sources.pg_url {
        if let Err(error) = read_postgres(url, baseline).await {
            tracing::debug!(%error, "PostgreSQL index usage not read for the baseline");
        }
    }
    if let Some(uri) = &sources.mongo_uri {
        if let Err(error) = read_mongo(uri, baseline).await {
            tracing::debug!(%error, "MongoDB index usage not read for the baseline");
        }
    }
}

async fn read_postgres(url: &str, baseline: &UsageBaseline) -> Result<(), String> {
    let first = postgres::connect(url, &postgres::admin_database(url)).await?;
    for database in postgres::databases(&first).await? {
        let client = postgres::connect(url, &database).await?;
        let at_ms = now_ms();
        for (namespace, readings) in postgres::usage::usage(&client, &database).await? {
            baseline.observe(&namespace, &readings, at_ms);
        }
    }
    Ok(())
}

async fn read_mongo(uri: &str, baseline: &UsageBaseline) -> Result<(), String> {
    let client = mongo::client(uri).await?;
    for namespace in mongo::user_collections(&client).await? {
        if namespace.engine.rules().is_system(&namespace) {
            continue;
        }
        let at_ms = now_ms();
        let readings = mongo::usage::usage(&client, &namespace).await?;
        baseline.observe(&namespace, &readings, at_ms);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(name: &str, uses: u64) -> IndexUsage {
        IndexUsage {
            name: name.to_owned(),
            uses: Some(uses),
            baseline: None,
            constraints: Vec::new(),
        }
    }

    #[test]
    fn the_first_reading_is_kept() {
        let table = Namespace::postgres("app", "public", "t");
        let baseline = UsageBaseline::default();
        baseline.observe(&table, &[reading("k_1", 5)], 1_000);
        baseline.observe(&table, &[reading("k_1", 9), reading("k_2", 1)], 2_000);
        let mut now = vec![reading("k_1", 12), reading("k_2", 1), reading("k_3", 4)];
        baseline.apply(&table, &mut now, 3_000);
        assert_eq!(now[0].uses_in_window(), Some(7));
        assert_eq!(now[0].window(3_000).map(|w| w.start_ms), Some(1_000));
        assert_eq!(now[1].window(3_000).map(|w| w.start_ms), Some(2_000));
        assert_eq!(
            now[2].window(3_000).map(|w| w.secs()),
            Some(0.0),
            "an index first seen now starts its window now"
        );
    }

    #[test]
    fn the_interval_follows_the_drop_window() {
        assert_eq!(interval(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(interval(Duration::from_secs(300)), Duration::from_secs(30));
        assert_eq!(
            interval(Duration::from_secs(86_400)),
            Duration::from_secs(60)
        );
    }
}
