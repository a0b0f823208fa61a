//! PostgreSQL verification: what the planner says, with and without each index.
//!
//! For every PostgreSQL recommendation, each served shape's literal-free statement is
//! explained as a generic plan, once as things are and once with a HypoPG hypothetical index
//! (session-local: nothing is built, nothing is left behind). PostgreSQL 16 and later have
//! `EXPLAIN (GENERIC_PLAN)`; on 15 the statement is prepared (under `plan_cache_mode =
//! force_generic_plan`) and explained with NULL arguments, in one message. Recommendations
//! the planner would not use are dropped by `advise::verify::apply`.
//!
//! What it costs, at thousands of candidates:
//! - **Only candidates that could make the list are measured**, heaviest first, within
//!   `advice.max_verified_candidates` (`advise::verify::schedule`); the rest are left out
//!   and named in the notes.
//! - **A candidate's queries are explained in one pipelined batch**, not one round trip
//!   each, and a statement costs one message, not three.
//! - **Plans are cached between runs** ([`PlanCache`], for [`PLAN_TTL`]) by what decides
//!   them: the database, its existing indexes, the hypothetical indexes in place, the
//!   candidate and the statement. A second run over the same traffic asks the server
//!   nothing it already answered; a hypothetical index is only created when a plan must be
//!   asked for.
//!
//! HypoPG models B-tree (and BRIN, hash, bloom) indexes only: GIN recommendations (trigram,
//! jsonb) are not sent to it. Every recommendation left without a measurement, for that or
//! because the planner could not be asked, is named in the advice's notes, so an absent
//! `evidence` is never silent.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indextap_analyzer::advise::verify::schedule::{Schedule, Turn};
use indextap_analyzer::advise::verify::{self, Findings, Measurement, Probe, ProbeQuery};
use indextap_analyzer::advise::{
    Advice, AdviceSettings, ExistingIndexes, IndexMethod, IndexSpec, Recommendation,
};
use indextap_analyzer::shape::Namespace;
use serde_json::Value;
use tokio_postgres::Client;
use xxhash_rust::xxh3::Xxh3;

use super::postgres::{connect, sqlstate_or_kind, TIMEOUT};
use super::Measuring;

/// How long a cached plan is reused: statistics and table sizes drift, so plans are asked
/// for again after this.
pub const PLAN_TTL: Duration = Duration::from_secs(300);
/// Plans kept at most (about 64 bytes each).
const PLAN_CACHE_ENTRIES: usize = 8_192;
/// Statements explained at once on one connection.
const PIPELINE_DEPTH: usize = 32;

/// Measure the PostgreSQL recommendations worth measuring; notes say what could not be
/// verified and what was left out unmeasured.
///
/// Recommendations are measured best first, and each one accepted stays in the session as a
/// hypothetical index while the next are measured: a later candidate is priced against the
/// plans the earlier ones already give (whole-workload selection, re-verified as indexes are
/// added). A candidate the planner refuses, or that does not save `min_gain`, is replaced by
/// the first simpler variant that does (`verify::fallbacks`); `INCLUDE` stays only when it
/// makes the plans at least 10 % cheaper than the same index without it. A candidate whose
/// verification fails is never recommended: it goes into the notes with the reason. One that
/// cannot make its table's list, or comes after the budget is spent, is not measured and
/// not recommended (`advise::verify::schedule`).
pub async fn verify_postgres(advice: &mut Advice, measuring: Measuring<'_>) {
    let Measuring {
        snapshot,
        sources,
        existing,
        settings,
    } = measuring;
    verify::note_unexplainable(advice, snapshot);
    let probes = verify::probes(advice, snapshot);
    if probes.is_empty() {
        return;
    }
    let Some(url) = &sources.pg_url else {
        for probe in &probes {
            verify::note_hypopg_unavailable(advice, &probe.namespace.database);
        }
        return;
    };
    let started = Instant::now();
    let mut schedule = Schedule::new(settings);
    let mut planners: BTreeMap<String, Option<Planner>> = BTreeMap::new();
    let mut found = Findings::default();
    let mut unverified = Vec::new();
    let mut unavailable = Vec::new();
    for probe in &probes {
        let Some(recommendation) = recommendation_of(advice, &probe.namespace, &probe.name) else {
            continue;
        };
        let index = recommendation.index.clone();
        let database = probe.namespace.database.clone();
        if !planners.contains_key(&database) {
            let planner = match Planner::open(url, &database, existing, &sources.plans).await {
                Ok(planner) => Some(planner),
                Err(note) => {
                    unavailable.push((database.clone(), note));
                    None
                }
            };
            planners.insert(database.clone(), planner);
        }
        let Some(Some(planner)) = planners.get_mut(&database) else {
            continue;
        };
        if let Some(method) = unmodelled_method(&index) {
            unverified.push(format!(
                "{} is not verified: HypoPG cannot model {method} indexes",
                probe.name
            ));
            continue;
        }
        if schedule.turn(recommendation) != Turn::Measure {
            continue;
        }
        match planner.choose(probe, &index, settings).await {
            Ok(Choice {
                index: chosen,
                measured,
                accepted,
            }) => {
                if accepted {
                    if let Some(recommendation) =
                        recommendation_of(advice, &probe.namespace, &probe.name)
                    {
                        schedule.accept(recommendation, measured.gain());
                    }
                    if chosen != index {
                        found
                            .replaced
                            .push((probe.namespace.clone(), probe.name.clone(), chosen));
                    }
                } else if let Some(costliest) = measured
                    .0
                    .iter()
                    .max_by(|a, b| a.cost_before.total_cmp(&b.cost_before))
                {
                    unverified.push(format!(
                        "{}: no simpler index pays either; its heaviest shape keeps its plan (cost {:.0})",
                        probe.name, costliest.cost_before
                    ));
                }
                found.measurements.extend(measured.into_measurements(probe));
            }
            Err(reason) => found
                .failed
                .push((probe.namespace.clone(), probe.name.clone(), reason)),
        }
    }
    let (mut explained, mut reused) = (0, 0);
    for planner in planners.into_values().flatten() {
        explained += planner.explained;
        reused += planner.reused;
        planner.reset().await;
    }
    tracing::info!(
        candidates = probes.len(),
        measured = schedule.measured(),
        explained,
        reused,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "PostgreSQL candidates verified"
    );
    for (database, note) in unavailable {
        verify::note_hypopg_unavailable(advice, &database);
        advice.notes.extend(note);
    }
    schedule.finish(advice);
    found.settle(advice, existing, settings);
    advice.notes.extend(unverified);
}

/// A recommendation, as it stands.
fn recommendation_of<'a>(
    advice: &'a Advice,
    namespace: &Namespace,
    name: &str,
) -> Option<&'a Recommendation> {
    advice
        .recommendations
        .iter()
        .find(|r| &r.index.namespace == namespace && r.name == name)
}

/// What verification settled on for one recommendation.
struct Choice {
    /// The index to recommend: the candidate, or the simpler variant that paid.
    index: IndexSpec,
    /// Its measurements (the candidate's own when nothing paid).
    measured: Measured,
    /// Whether it pays: then it stays in the session for the next candidates.
    accepted: bool,
}

/// The access method of an index HypoPG cannot create hypothetically.
fn unmodelled_method(index: &IndexSpec) -> Option<&'static str> {
    match index.method {
        IndexMethod::Btree => None,
        IndexMethod::Gin | IndexMethod::GinTrgm | IndexMethod::Text => Some("gin"),
    }
}

/// One statement's generic plan, as much of it as verification reads.
#[derive(Debug, Clone, Copy)]
struct Explained {
    cost: f64,
    /// Whether the plan scans the hypothetical index it was asked with.
    used: bool,
}

/// Plans asked for recently, shared by the runs of one process. See the module docs.
#[derive(Debug, Clone)]
pub struct PlanCache {
    plans: Arc<Mutex<lru::LruCache<u128, (Instant, Explained)>>>,
}

impl Default for PlanCache {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(PLAN_CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        Self {
            plans: Arc::new(Mutex::new(lru::LruCache::new(capacity))),
        }
    }
}

impl PlanCache {
    fn get(&self, key: u128) -> Option<Explained> {
        let mut plans = self.plans.lock().ok()?;
        match plans.get(&key) {
            Some((at, explained)) if at.elapsed() < PLAN_TTL => Some(*explained),
            Some(_) => {
                plans.pop(&key);
                None
            }
            None => None,
        }
    }

    fn put(&self, key: u128, explained: Explained) {
        if let Ok(mut plans) = self.plans.lock() {
            plans.put(key, (Instant::now(), explained));
        }
    }
}

/// A connection with HypoPG loaded, the server's way of explaining generic plans, and the
/// hypothetical indexes accepted so far.
struct Planner {
    client: Client,
    generic_plan_option: bool,
    cache: PlanCache,
    /// The database and its existing indexes, hashed: they decide every plan.
    base: u128,
    /// The hypothetical indexes accepted so far (DDL), and how many exist in the session
    /// yet: they are created only when a plan must be asked for.
    accepted: Vec<String>,
    created: usize,
    /// `base` and `accepted`, hashed: the context of every plan asked for now.
    context: u128,
    /// Names of the prepared statements are never reused within a session.
    statements: u64,
    explained: usize,
    reused: usize,
}

impl Planner {
    /// A planner on `database`, or why none can be had (a note for the advice, if any).
    async fn open(
        url: &str,
        database: &str,
        existing: &ExistingIndexes,
        cache: &PlanCache,
    ) -> Result<Planner, Option<String>> {
        let client = match connect(url, database).await {
            Ok(client) => client,
            Err(error) => {
                return Err(Some(format!("verification on {database} failed: {error}")));
            }
        };
        match Self::prepare(&client).await {
            Ok(generic_plan_option) => {
                let base = base_fingerprint(database, existing);
                Ok(Planner {
                    client,
                    generic_plan_option,
                    cache: cache.clone(),
                    base,
                    accepted: Vec::new(),
                    created: 0,
                    context: base,
                    statements: 0,
                    explained: 0,
                    reused: 0,
                })
            }
            Err(reason) => {
                tracing::info!(database, %reason, "no HypoPG: advice not verified");
                Err(None)
            }
        }
    }

    /// Loads HypoPG and sets the session up; whether `EXPLAIN (GENERIC_PLAN)` exists.
    async fn prepare(client: &Client) -> Result<bool, String> {
        let version: i32 = query_one(client, "SELECT current_setting('server_version_num')::int4")
            .await?
            .get(0);
        let installed = query_one(
            client,
            "SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'",
        )
        .await?
        .get::<_, i64>(0)
            > 0;
        if !installed {
            // Hypothetical indexes are session-local and the extension only adds functions;
            // creating it is the documented way to use HypoPG. Without the privilege, say so.
            client
                .batch_execute("CREATE EXTENSION IF NOT EXISTS hypopg")
                .await
                .map_err(|e| format!("HypoPG is not installed ({})", sqlstate_or_kind(&e)))?;
        }
        // The session is ours alone: prepared probes are planned generically throughout.
        client
            .batch_execute("SET plan_cache_mode = force_generic_plan")
            .await
            .map_err(|e| format!("SET plan_cache_mode failed: {}", sqlstate_or_kind(&e)))?;
        Ok(version >= 160_000)
    }

    /// Settles one recommendation: the candidate if it pays, else the first simpler variant
    /// that does; `INCLUDE` only when it pays its way. An accepted index stays in the session.
    /// An error when not even the candidate could be measured.
    async fn choose(
        &mut self,
        probe: &Probe,
        index: &IndexSpec,
        settings: &AdviceSettings,
    ) -> Result<Choice, String> {
        let first = self.measure(probe, index).await?;
        let mut chosen = None;
        if first.pays(settings) {
            chosen = Some((index.clone(), first.clone()));
        } else {
            for simpler in verify::fallbacks(index) {
                if let Ok(measured) = self.measure(probe, &simpler).await {
                    if measured.pays(settings) {
                        chosen = Some((simpler, measured));
                        break;
                    }
                }
            }
        }
        let Some((mut index, mut measured)) = chosen else {
            return Ok(Choice {
                index: index.clone(),
                measured: first,
                accepted: false,
            });
        };
        if let Some(plain) = verify::without_include(&index) {
            if let Ok(without) = self.measure(probe, &plain).await {
                if without.pays(settings) && measured.after() >= without.after() * 0.9 {
                    index = plain;
                    measured = without;
                }
            }
        }
        // Kept for the next candidates: they are priced with this one in place.
        if let Some(ddl) = index.namespace.engine.rules().hypothetical_ddl(&index) {
            self.accept(ddl);
        }
        Ok(Choice {
            index,
            measured,
            accepted: true,
        })
    }

    fn accept(&mut self, ddl: String) {
        self.accepted.push(ddl);
        let mut sorted: Vec<&String> = self.accepted.iter().collect();
        sorted.sort();
        let mut hasher = Xxh3::new();
        self.base.hash(&mut hasher);
        sorted.hash(&mut hasher);
        self.context = hasher.digest128();
    }

    /// Explains every served query without and with `index` (the indexes accepted so far
    /// in place both times). An error when no query could be measured, with the first
    /// reason (SQLSTATEs and fixed words only).
    async fn measure(&mut self, probe: &Probe, index: &IndexSpec) -> Result<Measured, String> {
        let ddl = index
            .namespace
            .engine
            .rules()
            .hypothetical_ddl(index)
            .ok_or_else(|| "no hypothetical DDL for this index".to_string())?;
        let before = self.plans(&probe.queries, None).await?;
        let after = self.plans(&probe.queries, Some(&ddl)).await?;
        let mut failure = None;
        let mut per_query = Vec::new();
        for ((query, before), after) in probe.queries.iter().zip(before).zip(after) {
            match (before, after) {
                (Ok(before), Ok(after)) => per_query.push(QueryCost {
                    shape_id: query.shape_id,
                    cost_before: before.cost,
                    cost_after: after.cost,
                    used: after.used,
                }),
                (Err(reason), _) | (_, Err(reason)) => {
                    failure.get_or_insert(reason);
                }
            }
        }
        if per_query.is_empty() {
            let reason = failure.unwrap_or_else(|| "no plan was measured".to_string());
            tracing::info!(index = %probe.name, %reason, "could not measure");
            return Err(reason);
        }
        Ok(Measured(per_query))
    }

    /// The plans of `queries` with the accepted indexes in place, and `candidate` too when
    /// given: from the cache where it has them, the rest asked for in one pipelined batch.
    /// An error only when the candidate could not be created.
    async fn plans(
        &mut self,
        queries: &[ProbeQuery],
        candidate: Option<&str>,
    ) -> Result<Vec<Result<Explained, String>>, String> {
        let keys: Vec<u128> = queries
            .iter()
            .map(|query| self.key(candidate, &query.sql))
            .collect();
        let mut plans: Vec<Option<Result<Explained, String>>> = keys
            .iter()
            .map(|key| self.cache.get(*key).map(Ok))
            .collect();
        let missing: Vec<usize> = (0..queries.len())
            .filter(|at| plans[*at].is_none())
            .collect();
        self.reused += queries.len() - missing.len();
        if !missing.is_empty() {
            self.create_accepted().await;
            let hypothetical = match candidate {
                Some(ddl) => Some(self.create_dropable(ddl).await?),
                None => None,
            };
            let first = self.statements;
            self.statements += missing.len() as u64;
            self.explained += missing.len();
            let mut asked: Vec<Result<Value, String>> = Vec::with_capacity(missing.len());
            for (batch, chunk) in missing.chunks(PIPELINE_DEPTH).enumerate() {
                let mut in_flight = Vec::with_capacity(chunk.len());
                for (n, at) in chunk.iter().enumerate() {
                    let statement = first + (batch * PIPELINE_DEPTH + n) as u64;
                    in_flight.push(explain(
                        &self.client,
                        self.generic_plan_option,
                        statement,
                        &queries[*at].sql,
                    ));
                }
                asked.extend(futures::future::join_all(in_flight).await);
            }
            for (at, plan) in missing.iter().zip(asked) {
                let explained = plan.map(|plan| Explained {
                    cost: total_cost(&plan),
                    used: hypothetical
                        .as_ref()
                        .is_some_and(|(_, name)| mentions_index(&plan, name)),
                });
                if let Ok(explained) = &explained {
                    self.cache.put(keys[*at], *explained);
                }
                plans[*at] = Some(explained);
            }
            if let Some((oid, _)) = hypothetical {
                let _ = self
                    .client
                    .query("SELECT hypopg_drop_index($1)", &[&oid])
                    .await;
            }
        }
        Ok(plans
            .into_iter()
            .map(|plan| plan.unwrap_or_else(|| Err("no plan was measured".to_string())))
            .collect())
    }

    /// What decides a plan: the context, the candidate and the statement.
    fn key(&self, candidate: Option<&str>, sql: &str) -> u128 {
        let mut hasher = Xxh3::new();
        self.context.hash(&mut hasher);
        candidate.hash(&mut hasher);
        sql.hash(&mut hasher);
        hasher.digest128()
    }

    /// Creates the accepted hypothetical indexes the session does not hold yet.
    async fn create_accepted(&mut self) {
        while self.created < self.accepted.len() {
            let ddl = &self.accepted[self.created];
            let _ = tokio::time::timeout(
                TIMEOUT,
                self.client.query_one(
                    "SELECT indexname::text FROM hypopg_create_index($1)",
                    &[ddl],
                ),
            )
            .await;
            self.created += 1;
        }
    }

    /// Creates a hypothetical index; its oid (to drop it) and name (to find it in plans).
    async fn create_dropable(
        &self,
        ddl: &str,
    ) -> Result<(tokio_postgres::types::Oid, String), String> {
        let row = tokio::time::timeout(
            TIMEOUT,
            self.client.query_one(
                "SELECT indexrelid, indexname::text FROM hypopg_create_index($1)",
                &[&ddl],
            ),
        )
        .await
        .map_err(|_| "hypopg_create_index timed out".to_string())?
        .map_err(|e| format!("hypopg_create_index failed: {}", sqlstate_or_kind(&e)))?;
        Ok((row.get(0), row.get(1)))
    }

    /// Forgets every hypothetical index of the session.
    async fn reset(&self) {
        let _ = self.client.batch_execute("SELECT hypopg_reset()").await;
    }
}

/// The database and its existing indexes, hashed.
fn base_fingerprint(database: &str, existing: &ExistingIndexes) -> u128 {
    let mut hasher = Xxh3::new();
    database.hash(&mut hasher);
    for (namespace, indexes) in existing {
        if namespace.database == database {
            namespace.hash(&mut hasher);
            indexes.hash(&mut hasher);
        }
    }
    hasher.digest128()
}

/// The generic plan of a `$n`-parameterised statement, as EXPLAIN's JSON. On PostgreSQL 15
/// the statement is prepared under a name of its own (`statement`), explained and
/// deallocated in one simple-protocol message, so many can be in flight on one connection.
async fn explain(
    client: &Client,
    generic_plan_option: bool,
    statement: u64,
    sql: &str,
) -> Result<Value, String> {
    let text = if generic_plan_option {
        format!("EXPLAIN (GENERIC_PLAN, FORMAT JSON) {sql}")
    } else {
        let parameters = parameter_count(sql);
        let arguments = if parameters == 0 {
            String::new()
        } else {
            format!("({})", vec!["NULL"; parameters].join(", "))
        };
        let name = format!("indextap_probe_{statement}");
        format!(
            "PREPARE {name} AS {sql}; EXPLAIN (FORMAT JSON) EXECUTE {name}{arguments}; DEALLOCATE {name}"
        )
    };
    let messages = tokio::time::timeout(TIMEOUT, client.simple_query(&text))
        .await
        .map_err(|_| "EXPLAIN timed out".to_string())?
        .map_err(|e| format!("EXPLAIN failed: {}", sqlstate_or_kind(&e)))?;
    let plan = messages
        .into_iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .ok_or_else(|| "EXPLAIN returned no row".to_string())?;
    serde_json::from_str(&plan).map_err(|_| "EXPLAIN did not return JSON".to_string())
}

async fn query_one(client: &Client, sql: &str) -> Result<tokio_postgres::Row, String> {
    tokio::time::timeout(TIMEOUT, client.query_one(sql, &[]))
        .await
        .map_err(|_| "catalog query timed out".to_string())?
        .map_err(|e| format!("catalog query failed: {}", sqlstate_or_kind(&e)))
}

/// The highest `$n` in a statement.
fn parameter_count(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut highest = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let digits: String = sql[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                highest = highest.max(n);
            }
            i += 1 + digits.len();
        } else {
            i += 1;
        }
    }
    highest
}

/// One served query's cost without and with a hypothetical index.
#[derive(Debug, Clone)]
struct QueryCost {
    shape_id: indextap_analyzer::shape::ShapeId,
    cost_before: f64,
    cost_after: f64,
    used: bool,
}

/// Every served query's costs for one index.
#[derive(Debug, Clone)]
struct Measured(Vec<QueryCost>);

impl Measured {
    fn before(&self) -> f64 {
        self.0.iter().map(|q| q.cost_before).sum()
    }

    fn after(&self) -> f64 {
        self.0.iter().map(|q| q.cost_after).sum()
    }

    /// The fraction of the cost it saves, as the evidence will say.
    fn gain(&self) -> f64 {
        let (before, after) = (self.before(), self.after());
        if before > 0.0 && after.is_finite() {
            (1.0 - after / before).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    fn pays(&self, settings: &AdviceSettings) -> bool {
        let used = self.0.iter().any(|q| q.used);
        verify::pays(self.before(), self.after(), used, settings.min_gain)
    }

    fn into_measurements(self, probe: &Probe) -> Vec<Measurement> {
        self.0
            .into_iter()
            .map(|query| Measurement {
                namespace: probe.namespace.clone(),
                name: probe.name.clone(),
                shape_id: query.shape_id,
                cost_before: query.cost_before,
                cost_after: query.cost_after,
                index_used: query.used,
            })
            .collect()
    }
}

fn total_cost(plan: &Value) -> f64 {
    plan[0]["Plan"]["Total Cost"].as_f64().unwrap_or(f64::NAN)
}

fn mentions_index(plan: &Value, index_name: &str) -> bool {
    match plan {
        Value::Object(map) => map.iter().any(|(key, value)| {
            (key == "Index Name" && value.as_str() == Some(index_name))
                || mentions_index(value, index_name)
        }),
        Value::Array(items) => items.iter().any(|item| mentions_index(item, index_name)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_counted_by_their_highest_number() {
        assert_eq!(parameter_count("SELECT 1"), 0);
        assert_eq!(
            parameter_count("SELECT * FROM t WHERE a = $1 AND b = $12 LIMIT $2"),
            12
        );
    }

    #[test]
    fn plans_are_searched_for_the_hypothetical_index() {
        let plan: Value = serde_json::json!([{"Plan": {"Total Cost": 8.3, "Plans": [
            {"Node Type": "Index Scan", "Index Name": "<13>btree_orders_status"}]}}]);
        assert!(mentions_index(&plan, "<13>btree_orders_status"));
        assert!(!mentions_index(&plan, "<14>btree_other"));
        assert_eq!(total_cost(&plan), 8.3);
    }
}
