//! Reading the catalog facts one piece of advice needs, for the namespaces its snapshot
//! touches: PostgreSQL column owners, `pg_stats` and index usage per database; MongoDB
//! index usage and `$sample` field counts per collection. System objects are skipped.
//! Whatever cannot be read becomes a note, never a guess.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indextap_analyzer::catalog::{CatalogFacts, NamespaceStatistics};
use indextap_analyzer::shape::{Engine, Namespace};
use indextap_analyzer::snapshot::Snapshot;

use super::baseline::UsageBaseline;
use super::{mongo, namespaces, now_ms, postgres, CatalogSources};

/// The facts for `snapshot`'s user namespaces, and notes on what could not be read.
pub async fn read(
    snapshot: &Snapshot,
    sources: &CatalogSources,
    baseline: &UsageBaseline,
    sample_size: u32,
) -> (CatalogFacts, Vec<String>) {
    let mut facts = CatalogFacts {
        read_at_ms: now_ms(),
        ..CatalogFacts::default()
    };
    let mut notes = Vec::new();
    if let Some(url) = &sources.pg_url {
        read_postgres(snapshot, url, baseline, &mut facts, &mut notes).await;
    }
    if let Some(uri) = &sources.mongo_uri {
        let cache = &sources.statistics;
        read_mongo(
            snapshot,
            uri,
            baseline,
            cache,
            sample_size,
            &mut facts,
            &mut notes,
        )
        .await;
    }
    (facts, notes)
}

async fn read_postgres(
    snapshot: &Snapshot,
    url: &str,
    baseline: &UsageBaseline,
    facts: &mut CatalogFacts,
    notes: &mut Vec<String>,
) {
    let databases: BTreeSet<String> = namespaces(snapshot, Engine::Postgresql)
        .into_iter()
        .filter(|namespace| !namespace.engine.rules().is_system(namespace))
        .map(|namespace| namespace.database)
        .collect();
    for database in databases {
        let client = match postgres::connect(url, &database).await {
            Ok(client) => client,
            // `existing` already says this database could not be reached.
            Err(_) => continue,
        };
        match postgres::columns::columns(&client, &database).await {
            Ok(owners) => facts.columns.0.extend(owners.0),
            Err(error) => notes.push(format!(
                "columns of database {database} were not read, so unqualified columns of joins are not attributed: {error}"
            )),
        }
        match postgres::statistics::statistics(&client, &database).await {
            Ok(statistics) => facts.statistics.extend(statistics),
            Err(error) => notes.push(format!(
                "statistics of database {database} were not read: {error}"
            )),
        }
        match postgres::usage::usage(&client, &database).await {
            Ok(usage) => {
                for (namespace, mut readings) in usage {
                    baseline.apply(&namespace, &mut readings, facts.read_at_ms);
                    facts.usage.insert(namespace, readings);
                }
            }
            Err(error) => notes.push(format!(
                "index usage of database {database} was not read: {error}"
            )),
        }
    }
}

async fn read_mongo(
    snapshot: &Snapshot,
    uri: &str,
    baseline: &UsageBaseline,
    cache: &StatisticsCache,
    sample_size: u32,
    facts: &mut CatalogFacts,
    notes: &mut Vec<String>,
) {
    let fields = fields_used(snapshot, Engine::Mongodb);
    if fields.is_empty() {
        return;
    }
    // `existing` already says when the server cannot be reached.
    let Ok(client) = mongo::client(uri).await else {
        return;
    };
    for (namespace, fields) in fields {
        match mongo::usage::usage(&client, &namespace).await {
            Ok(mut readings) => {
                baseline.apply(&namespace, &mut readings, facts.read_at_ms);
                facts.usage.insert(namespace.clone(), readings);
            }
            Err(error) => notes.push(format!("index usage of {namespace} was not read: {error}")),
        }
        let fields: Vec<String> = fields.into_iter().collect();
        let cached = cache.get(&namespace, &fields);
        let sampled = match cached {
            Some(statistics) => Ok(statistics),
            None => mongo::statistics::statistics(&client, &namespace, &fields, sample_size)
                .await
                .inspect(|statistics| cache.put(&namespace, &fields, statistics)),
        };
        match sampled {
            Ok(statistics) => {
                let present = statistics
                    .fields
                    .iter()
                    .filter(|(_, field)| !field.is_absent())
                    .map(|(name, _)| name.clone());
                facts.columns.insert(namespace.clone(), present);
                facts.statistics.insert(namespace, statistics);
            }
            Err(error) => notes.push(format!(
                "field statistics of {namespace} were not sampled: {error}"
            )),
        }
    }
}

/// Sampled field statistics, kept for [`STATISTICS_TTL`]: a `$sample` of thousands of
/// documents per collection is too heavy to repeat for every request of the advice.
#[derive(Debug, Default, Clone)]
pub struct StatisticsCache {
    entries: Arc<Mutex<BTreeMap<SampledFields, (Instant, NamespaceStatistics)>>>,
}

/// A collection and the fields sampled in it.
type SampledFields = (Namespace, Vec<String>);

/// How long sampled statistics are reused.
pub const STATISTICS_TTL: Duration = Duration::from_secs(300);

impl StatisticsCache {
    fn get(&self, namespace: &Namespace, fields: &[String]) -> Option<NamespaceStatistics> {
        let entries = self.entries.lock().ok()?;
        let (at, statistics) = entries.get(&(namespace.clone(), fields.to_vec()))?;
        (at.elapsed() < STATISTICS_TTL).then(|| statistics.clone())
    }

    fn put(&self, namespace: &Namespace, fields: &[String], statistics: &NamespaceStatistics) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (at, _)| at.elapsed() < STATISTICS_TTL);
            entries.insert(
                (namespace.clone(), fields.to_vec()),
                (Instant::now(), statistics.clone()),
            );
        }
    }
}

/// Per user namespace of `engine`, the fields its shapes filter or sort on.
pub fn fields_used(snapshot: &Snapshot, engine: Engine) -> BTreeMap<Namespace, BTreeSet<String>> {
    let mut used: BTreeMap<Namespace, BTreeSet<String>> = BTreeMap::new();
    for record in snapshot.shapes.values() {
        let shape = &record.shape;
        if shape.namespace.engine != engine
            || shape.namespace.engine.rules().is_system(&shape.namespace)
        {
            continue;
        }
        let fields = used.entry(shape.namespace.clone()).or_default();
        fields.extend(
            shape
                .filter
                .targets()
                .iter()
                .map(|target| target.column().to_string()),
        );
        for key in &shape.sort {
            fields.insert(key.target.column().to_string());
        }
    }
    used
}
