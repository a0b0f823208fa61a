//! PostgreSQL verification: what the planner says, with and without each index.
//!
//! For every PostgreSQL recommendation, each served shape's literal-free statement is
//! explained as a generic plan, once as things are and once with a HypoPG hypothetical index
//! (session-local: nothing is built, nothing is left behind). PostgreSQL 16 and later have
//! `EXPLAIN (GENERIC_PLAN)`; on 15 the statement is prepared and explained under
//! `plan_cache_mode = force_generic_plan` with NULL arguments. Recommendations the planner
//! would not use are dropped by `advise::verify::apply`.
//!
//! HypoPG models B-tree (and BRIN, hash, bloom) indexes only: GIN recommendations (trigram,
//! jsonb) are not sent to it. Every recommendation left without a measurement, for that or
//! because the planner could not be asked, is named in the advice's notes, so an absent
//! `evidence` is never silent.

use std::collections::{BTreeMap, BTreeSet};

use indextap_analyzer::advise::verify::{self, Measurement, Probe};
use indextap_analyzer::advise::{
    rank, Advice, AdviceSettings, ExistingIndexes, IndexMethod, IndexSpec,
};
use indextap_analyzer::shape::Namespace;
use indextap_analyzer::snapshot::Snapshot;
use serde_json::Value;
use tokio_postgres::Client;

use super::postgres::{connect, sqlstate_or_kind, TIMEOUT};
use super::CatalogSources;

/// Measure every PostgreSQL recommendation; notes say what could not be verified.
///
/// Recommendations are measured best first, and each one accepted stays in the session as a
/// hypothetical index while the next are measured: a later candidate is priced against the
/// plans the earlier ones already give (whole-workload selection, re-verified as indexes are
/// added). A candidate the planner refuses, or that does not save `min_gain`, is replaced by
/// the first simpler variant that does (`verify::fallbacks`); `INCLUDE` stays only when it
/// makes the plans at least 10 % cheaper than the same index without it. A candidate whose
/// verification fails is never recommended: it goes into the notes with the reason.
pub async fn verify_postgres(
    advice: &mut Advice,
    snapshot: &Snapshot,
    sources: &CatalogSources,
    existing: &ExistingIndexes,
    settings: &AdviceSettings,
) {
    verify::note_unexplainable(advice, snapshot);
    let probes = verify::probes(advice, snapshot);
    if probes.is_empty() {
        return;
    }
    let databases: BTreeSet<String> = probes
        .iter()
        .map(|p| p.namespace.database.clone())
        .collect();
    let Some(url) = &sources.pg_url else {
        for database in &databases {
            verify::note_hypopg_unavailable(advice, database);
        }
        return;
    };
    let mut measurements = Vec::new();
    let mut unverified = Vec::new();
    let mut failed = Vec::new();
    let mut replaced = Vec::new();
    let mut by_database: BTreeMap<&str, Vec<&Probe>> = BTreeMap::new();
    for probe in &probes {
        by_database
            .entry(probe.namespace.database.as_str())
            .or_default()
            .push(probe);
    }
    for (database, probes) in by_database {
        let client = match connect(url, database).await {
            Ok(client) => client,
            Err(error) => {
                verify::note_hypopg_unavailable(advice, database);
                advice
                    .notes
                    .push(format!("verification on {database} failed: {error}"));
                continue;
            }
        };
        let planner = match Planner::open(&client).await {
            Ok(planner) => planner,
            Err(reason) => {
                verify::note_hypopg_unavailable(advice, database);
                tracing::info!(database, %reason, "no HypoPG: advice not verified");
                continue;
            }
        };
        for probe in probes {
            let Some(index) = index_of(advice, &probe.namespace, &probe.name) else {
                continue;
            };
            if let Some(method) = unmodelled_method(&index) {
                unverified.push(format!(
                    "{} is not verified: HypoPG cannot model {method} indexes",
                    probe.name
                ));
                continue;
            }
            match planner.choose(probe, &index, settings).await {
                Ok(Choice {
                    index: chosen,
                    measured,
                    accepted,
                }) => {
                    if accepted && chosen != index {
                        replaced.push((probe.namespace.clone(), probe.name.clone(), chosen));
                    }
                    if !accepted {
                        if let Some(costliest) = measured
                            .iter()
                            .max_by(|a, b| a.cost_before.total_cmp(&b.cost_before))
                        {
                            unverified.push(format!(
                                "{}: no simpler index pays either; its heaviest shape keeps its plan (cost {:.0})",
                                probe.name, costliest.cost_before
                            ));
                        }
                    }
                    measurements.extend(measured);
                }
                Err(reason) => failed.push((probe.namespace.clone(), probe.name.clone(), reason)),
            }
        }
        planner.reset().await;
    }
    for (namespace, name, reason) in failed {
        verify::leave_out(advice, &namespace, &name, &reason);
    }
    for (namespace, name, index) in replaced {
        verify::replace(advice, &namespace, &name, index);
    }
    verify::apply(advice, &measurements, settings);
    rank::name_all(&mut advice.recommendations, existing);
    advice.notes.extend(unverified);
}

/// A recommendation's index, as it stands.
fn index_of(advice: &Advice, namespace: &Namespace, name: &str) -> Option<IndexSpec> {
    advice
        .recommendations
        .iter()
        .find(|r| &r.index.namespace == namespace && r.name == name)
        .map(|r| r.index.clone())
}

/// What verification settled on for one recommendation.
struct Choice {
    /// The index to recommend: the candidate, or the simpler variant that paid.
    index: IndexSpec,
    /// Its measurements (the candidate's own when nothing paid).
    measured: Vec<Measurement>,
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

/// A connection with HypoPG loaded, and the server's way of explaining generic plans.
struct Planner<'a> {
    client: &'a Client,
    generic_plan_option: bool,
}

impl<'a> Planner<'a> {
    async fn open(client: &'a Client) -> Result<Planner<'a>, String> {
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
        Ok(Planner {
            client,
            generic_plan_option: version >= 160_000,
        })
    }

    /// Settles one recommendation: the candidate if it pays, else the first simpler variant
    /// that does; `INCLUDE` only when it pays its way. An accepted index stays in the session.
    /// An error when not even the candidate could be measured.
    async fn choose(
        &self,
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
                measured: first.into_measurements(probe),
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
            let _ = self.create_hypothetical(&ddl).await;
        }
        Ok(Choice {
            index,
            measured: measured.into_measurements(probe),
            accepted: true,
        })
    }

    /// Explains every served query without and with `index` (the indexes accepted so far
    /// in place both times); the hypothetical `index` is dropped again. An error when no
    /// query could be measured, with the first reason (SQLSTATEs and fixed words only).
    async fn measure(&self, probe: &Probe, index: &IndexSpec) -> Result<Measured, String> {
        let ddl = index
            .namespace
            .engine
            .rules()
            .hypothetical_ddl(index)
            .ok_or_else(|| "no hypothetical DDL for this index".to_string())?;
        let mut before = Vec::new();
        let mut failure = None;
        for query in &probe.queries {
            match self.explain(&query.sql).await {
                Ok(plan) => before.push(Some(total_cost(&plan))),
                Err(reason) => {
                    failure.get_or_insert(reason);
                    before.push(None);
                }
            }
        }
        let (oid, hypothetical) = self.create_dropable(&ddl).await?;
        let mut per_query = Vec::new();
        for (query, cost_before) in probe.queries.iter().zip(before) {
            let after = self.explain(&query.sql).await;
            match (cost_before, after) {
                (Some(cost_before), Ok(after)) => per_query.push(QueryCost {
                    shape_id: query.shape_id,
                    cost_before,
                    cost_after: total_cost(&after),
                    used: mentions_index(&after, &hypothetical),
                }),
                (_, Err(reason)) => {
                    failure.get_or_insert(reason);
                }
                (None, Ok(_)) => {}
            }
        }
        let _ = self
            .client
            .query("SELECT hypopg_drop_index($1)", &[&oid])
            .await;
        if per_query.is_empty() {
            let reason = failure.unwrap_or_else(|| "no plan was measured".to_string());
            tracing::info!(index = %probe.name, %reason, "could not measure");
            return Err(reason);
        }
        Ok(Measured(per_query))
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

    async fn create_hypothetical(&self, ddl: &str) -> Result<String, String> {
        let row = tokio::time::timeout(
            TIMEOUT,
            self.client.query_one(
                "SELECT indexname::text FROM hypopg_create_index($1)",
                &[&ddl],
            ),
        )
        .await
        .map_err(|_| "hypopg_create_index timed out".to_string())?
        .map_err(|e| format!("hypopg_create_index failed: {}", sqlstate_or_kind(&e)))?;
        Ok(row.get(0))
    }

    /// The generic plan of a `$n`-parameterised statement, as EXPLAIN's JSON.
    async fn explain(&self, sql: &str) -> Result<Value, String> {
        let text = if self.generic_plan_option {
            self.simple_value(&format!("EXPLAIN (GENERIC_PLAN, FORMAT JSON) {sql}"))
                .await?
        } else {
            let parameters = parameter_count(sql);
            let arguments = if parameters == 0 {
                String::new()
            } else {
                format!("({})", vec!["NULL"; parameters].join(", "))
            };
            let setup = format!(
                "SET plan_cache_mode = force_generic_plan; DEALLOCATE ALL; PREPARE indextap_probe AS {sql}"
            );
            self.client
                .batch_execute(&setup)
                .await
                .map_err(|e| format!("PREPARE failed: {}", sqlstate_or_kind(&e)))?;
            let explained = self
                .simple_value(&format!(
                    "EXPLAIN (FORMAT JSON) EXECUTE indextap_probe{arguments}"
                ))
                .await;
            let _ = self
                .client
                .batch_execute("DEALLOCATE indextap_probe; RESET plan_cache_mode")
                .await;
            explained?
        };
        serde_json::from_str(&text).map_err(|_| "EXPLAIN did not return JSON".to_string())
    }

    /// The first column of the first row of a simple-protocol query, as text.
    async fn simple_value(&self, sql: &str) -> Result<String, String> {
        let messages = tokio::time::timeout(TIMEOUT, self.client.simple_query(sql))
            .await
            .map_err(|_| "EXPLAIN timed out".to_string())?
            .map_err(|e| format!("EXPLAIN failed: {}", sqlstate_or_kind(&e)))?;
        messages
            .into_iter()
            .find_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
            .ok_or_else(|| "EXPLAIN returned no row".to_string())
    }
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
