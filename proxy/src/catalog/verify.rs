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
use indextap_analyzer::advise::{Advice, IndexMethod};
use indextap_analyzer::shape::Namespace;
use indextap_analyzer::snapshot::Snapshot;
use serde_json::Value;
use tokio_postgres::Client;

use super::postgres::{connect, sqlstate_or_kind, TIMEOUT};
use super::CatalogSources;

/// Measure every PostgreSQL recommendation; notes say what could not be verified.
pub async fn verify_postgres(advice: &mut Advice, snapshot: &Snapshot, sources: &CatalogSources) {
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
            if let Some(method) = unmodelled_method(advice, &probe.namespace, &probe.name) {
                unverified.push(format!(
                    "{} is not verified: HypoPG cannot model {method} indexes",
                    probe.name
                ));
                continue;
            }
            let (measured, failure) = planner.measure(probe).await;
            if measured.is_empty() {
                let reason = failure.unwrap_or_else(|| "no plan was measured".to_string());
                unverified.push(format!("{} is not verified: {reason}", probe.name));
            }
            measurements.extend(measured);
        }
    }
    verify::apply(advice, &measurements);
    advice.notes.extend(unverified);
}

/// The access method of a recommendation when HypoPG cannot create it hypothetically.
fn unmodelled_method(advice: &Advice, namespace: &Namespace, name: &str) -> Option<&'static str> {
    let recommendation = advice
        .recommendations
        .iter()
        .find(|r| &r.index.namespace == namespace && r.name == name)?;
    match recommendation.index.method {
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

    /// One measurement per served query that could be explained both ways, and the first
    /// reason one could not (SQLSTATEs and fixed words only: never a value).
    async fn measure(&self, probe: &Probe) -> (Vec<Measurement>, Option<String>) {
        let mut out = Vec::new();
        let mut failure = None;
        for query in &probe.queries {
            let before = self.explain(&query.sql).await;
            let hypothetical = self.create_hypothetical(&probe.hypothetical_ddl).await;
            let after = self.explain(&query.sql).await;
            let _ = self.client.batch_execute("SELECT hypopg_reset()").await;
            match (before, hypothetical, after) {
                (Ok(before), Ok(index_name), Ok(after)) => out.push(Measurement {
                    namespace: probe.namespace.clone(),
                    name: probe.name.clone(),
                    shape_id: query.shape_id,
                    cost_before: total_cost(&before),
                    cost_after: total_cost(&after),
                    index_used: mentions_index(&after, &index_name),
                }),
                (before, hypothetical, after) => {
                    let reason = [before.err(), hypothetical.err(), after.err()]
                        .into_iter()
                        .flatten()
                        .next()
                        .unwrap_or_default();
                    tracing::info!(index = %probe.name, shape = %query.shape_id, %reason, "could not measure");
                    failure.get_or_insert(reason);
                }
            }
        }
        (out, failure)
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
