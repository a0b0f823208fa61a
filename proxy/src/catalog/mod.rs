//! The catalog: what already exists in the databases, and what the planner says.
//!
//! The analyzer has no sockets; this module reads existing indexes (MongoDB `listIndexes`,
//! PostgreSQL `pg_index`) and PostgreSQL planner costs (HypoPG), and hands them to
//! `indextap_analyzer::advise`. A catalog that cannot be read never stops the advice: it
//! adds a note saying what could not be checked.
//!
//! ## Layout
//! - [`CatalogSources`]: where to read from.
//! - [`advise()`]: snapshot + catalog → advice.
//! - [`mongo`]: existing indexes through `listIndexes`.
//! - [`postgres`]: existing indexes from `pg_index`.
//! - [`verify`]: HypoPG verification.
//! - [`mongo_verify`]: `--mongo-verify sample`, `explain` on a scratch copy of a sample.
//! - [`facts`]: column owners, statistics and index usage for the advice.
//! - [`baseline`]: index usage counters read at the start of the window.

pub mod baseline;
pub mod facts;
pub mod mongo;
pub mod mongo_verify;
pub mod postgres;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};

use indextap_analyzer::advise::{self, Advice, AdviceSettings, ExistingIndexes};
use indextap_analyzer::shape::{Engine, Namespace};
use indextap_analyzer::snapshot::Snapshot;

/// Where existing indexes and planner costs come from, and how the advice is chosen.
#[derive(Debug, Clone, Default)]
pub struct CatalogSources {
    /// MongoDB connection string for `listIndexes`.
    pub mongo_uri: Option<String>,
    /// PostgreSQL admin URL for `pg_index` and HypoPG.
    pub pg_url: Option<String>,
    /// `[advice]`: gain threshold, budget, drop window, MongoDB sample verification.
    pub settings: indextap_config::AdviceConfig,
    /// Index usage counters at the start of the window (empty offline).
    pub baseline: baseline::UsageBaseline,
    /// MongoDB field statistics sampled recently.
    pub statistics: facts::StatisticsCache,
    /// PostgreSQL plans asked for recently (HypoPG verification).
    pub plans: verify::PlanCache,
}

impl CatalogSources {
    /// From the configuration: the MongoDB admin URI defaults to the first upstream, with no
    /// credentials, connected directly.
    pub fn from_config(config: &indextap_config::Config) -> Self {
        let mongo_uri = config
            .mongo
            .admin_uri
            .as_ref()
            .map(|uri| uri.expose().to_string())
            .or_else(|| {
                config
                    .mongo
                    .listeners
                    .first()
                    .map(|l| format!("mongodb://{}/?directConnection=true", l.upstream))
            });
        let pg_url = config
            .postgres
            .admin_url
            .as_ref()
            .map(|url| url.expose().to_string());
        Self {
            mongo_uri,
            pg_url,
            settings: config.advice.clone(),
            baseline: baseline::UsageBaseline::default(),
            statistics: facts::StatisticsCache::default(),
            plans: verify::PlanCache::default(),
        }
    }
}

/// What the verifiers measure against: the snapshot advised on, where the servers are, the
/// indexes that already exist, and the analyzer's settings.
#[derive(Clone, Copy)]
pub struct Measuring<'a> {
    pub snapshot: &'a Snapshot,
    pub sources: &'a CatalogSources,
    pub existing: &'a ExistingIndexes,
    pub settings: &'a AdviceSettings,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn namespaces(snapshot: &Snapshot, engine: Engine) -> BTreeSet<Namespace> {
    snapshot
        .shapes
        .values()
        .map(|record| &record.shape.namespace)
        .filter(|ns| ns.engine == engine)
        .cloned()
        .collect()
}

/// Advice for a snapshot, with existing indexes read and PostgreSQL costs verified where the
/// catalog can be reached.
pub async fn advise(snapshot: &Snapshot, sources: &CatalogSources) -> Advice {
    let mut timer = Timer::default();
    let mut existing = ExistingIndexes::new();
    let mut notes = Vec::new();
    if let Some((wanted, uri)) = to_read(snapshot, Engine::Mongodb, sources, &mut notes) {
        read_mongo(wanted, uri, &mut existing, &mut notes).await;
    }
    if let Some((wanted, url)) = to_read(snapshot, Engine::Postgresql, sources, &mut notes) {
        read_postgres(wanted, url, &mut existing, &mut notes).await;
    }
    let existing_ms = timer.lap();
    let settings = settings(&sources.settings);
    let (facts, fact_notes) = facts::read(
        snapshot,
        sources,
        &sources.baseline,
        sources.settings.mongo_sample_size,
    )
    .await;
    let facts_ms = timer.lap();
    let mut advice = advise::advise_with(snapshot, &existing, &facts, &settings);
    let candidates = advice.recommendations.len();
    advice.notes.extend(notes);
    advice.notes.extend(fact_notes);
    let analysis_ms = timer.lap();
    let measuring = Measuring {
        snapshot,
        sources,
        existing: &existing,
        settings: &settings,
    };
    verify::verify_postgres(&mut advice, measuring).await;
    let sampling = sources.settings.mongo_verify == indextap_config::MongoVerify::Sample;
    if sampling {
        mongo_verify::verify_mongo(&mut advice, measuring).await;
    }
    mongo_verify::note_unmeasured(&mut advice, sampling);
    let verify_ms = timer.lap();
    advise::rank::select(&mut advice, &settings);
    tracing::info!(
        shapes = snapshot.shapes.len(),
        candidates,
        recommendations = advice.recommendations.len(),
        existing_ms,
        facts_ms,
        analysis_ms,
        verify_ms,
        select_ms = timer.lap(),
        "advice computed"
    );
    advice
}

/// Milliseconds between laps, for the log line that says where an advice run's time went.
struct Timer(std::time::Instant);

impl Default for Timer {
    fn default() -> Self {
        Self(std::time::Instant::now())
    }
}

impl Timer {
    fn lap(&mut self) -> u64 {
        let now = std::time::Instant::now();
        let elapsed = now.duration_since(self.0);
        self.0 = now;
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The analyzer's view of `[advice]`.
pub fn settings(config: &indextap_config::AdviceConfig) -> AdviceSettings {
    AdviceSettings {
        min_gain: f64::from(config.min_gain_percent.min(100)) / 100.0,
        max_indexes_per_namespace: config.max_indexes_per_namespace.max(1),
        drop_min_window_secs: config.drop_min_window_secs,
        index_write_cost_ms: config
            .index_write_cost_us
            .map(|micros| f64::from(micros) / 1000.0),
        max_verified: config.max_verified_candidates.max(1),
    }
}

/// The namespaces of `engine` whose existing indexes are to be read, and the admin address
/// to read them from; `None` when there are none, or no address (said in `notes`).
fn to_read<'a>(
    snapshot: &Snapshot,
    engine: Engine,
    sources: &'a CatalogSources,
    notes: &mut Vec<String>,
) -> Option<(BTreeSet<Namespace>, &'a str)> {
    let wanted = namespaces(snapshot, engine);
    if wanted.is_empty() {
        return None;
    }
    let (address, unread) = match engine {
        Engine::Mongodb => (
            sources.mongo_uri.as_deref(),
            "existing MongoDB indexes were not read (no admin URI): an index may already exist",
        ),
        Engine::Postgresql => (
            sources.pg_url.as_deref(),
            "existing PostgreSQL indexes were not read (no --pg-admin-url): an index may already exist",
        ),
    };
    let Some(address) = address else {
        notes.push(unread.to_string());
        return None;
    };
    Some((wanted, address))
}

async fn read_mongo(
    wanted: BTreeSet<Namespace>,
    uri: &str,
    existing: &mut ExistingIndexes,
    notes: &mut Vec<String>,
) {
    let client = match mongo::client(uri).await {
        Ok(client) => client,
        Err(error) => {
            notes.push(format!("existing MongoDB indexes were not read: {error}"));
            return;
        }
    };
    for namespace in wanted {
        match mongo::list_indexes(&client, &namespace).await {
            Ok(specs) => {
                existing.insert(namespace, specs);
            }
            Err(error) => notes.push(format!(
                "existing indexes of {namespace} were not read: {error}"
            )),
        }
    }
}

async fn read_postgres(
    wanted: BTreeSet<Namespace>,
    url: &str,
    existing: &mut ExistingIndexes,
    notes: &mut Vec<String>,
) {
    let databases: BTreeSet<&str> = wanted.iter().map(|ns| ns.database.as_str()).collect();
    for database in databases {
        let specs = match postgres::connect(url, database).await {
            Ok(client) => postgres::existing(&client, database).await,
            Err(error) => Err(error),
        };
        match specs {
            Ok(specs) => {
                let mut by_table: BTreeMap<Namespace, Vec<_>> = BTreeMap::new();
                for spec in specs {
                    by_table
                        .entry(spec.namespace.clone())
                        .or_default()
                        .push(spec);
                }
                for namespace in wanted.iter().filter(|ns| ns.database == database) {
                    let specs = by_table.remove(namespace).unwrap_or_default();
                    existing.insert(namespace.clone(), specs);
                }
            }
            Err(error) => notes.push(format!(
                "existing indexes of database {database} were not read: {error}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are written twice, in the config crate and in the analyzer (neither
    /// depends on the other): an unset `[advice]` must still mean the analyzer's defaults.
    #[test]
    fn the_default_advice_config_gives_the_default_settings() {
        let config = indextap_config::AdviceConfig::default();
        assert_eq!(settings(&config), AdviceSettings::default());
    }
}
