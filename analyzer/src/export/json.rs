//! JSON for tools, CI and the admin API.
//!
//! One object per recommendation with its namespace, keys, method, partial predicate (the
//! `partialFilterExpression` object for MongoDB, the WHERE text for PostgreSQL), the
//! ready-to-run statement, the shapes it serves with their measurements, the planner
//! evidence, the write load and the write cost; then the drop candidates and the notes. Field order is
//! fixed by the structs below.

use serde::Serialize;

use super::document::partial_filter;
use crate::advise::{Advice, DropCandidate, IndexMethod, IndexSpec, Recommendation, WriteLoad};
use crate::shape::{Engine, Namespace, ShapeId, Target};

#[derive(Serialize)]
struct Document<'a> {
    recommendations: Vec<JsonRecommendation<'a>>,
    drops: Vec<JsonDrop<'a>>,
    notes: &'a [String],
}

#[derive(Serialize)]
struct JsonRecommendation<'a> {
    /// `engine`, `database`, `schema`, `collection`, in the namespace's own form.
    #[serde(flatten)]
    namespace: &'a Namespace,
    keys: Vec<JsonKey<'a>>,
    method: &'static str,
    unique: bool,
    partial: serde_json::Value,
    include: &'a [String],
    name: &'a str,
    statement: String,
    serves: Vec<JsonServed<'a>>,
    evidence: Option<JsonEvidence<'a>>,
    write_load: &'a WriteLoad,
    write_cost: JsonWriteCost<'a>,
    net_saving_ms: f64,
}

#[derive(Serialize)]
struct JsonWriteCost<'a> {
    per_write_ms: f64,
    writes: u64,
    total_ms: f64,
    basis: &'a str,
}

#[derive(Serialize)]
struct JsonKey<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expression: Option<&'a str>,
    direction: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    nulls: Option<&'static str>,
}

#[derive(Serialize)]
struct JsonServed<'a> {
    shape_id: ShapeId,
    count: u64,
    total_ms: f64,
    p95_ms: f64,
    shape: &'a str,
}

#[derive(Serialize)]
struct JsonEvidence<'a> {
    method: &'a str,
    cost_before: f64,
    cost_after: f64,
    gain_percent: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    docs_examined_before: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    docs_examined_after: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample_size: Option<u64>,
}

#[derive(Serialize)]
struct JsonDrop<'a> {
    /// `engine`, `database`, `schema`, `collection`, in the namespace's own form.
    #[serde(flatten)]
    namespace: &'a Namespace,
    name: &'a str,
    keys: Vec<JsonKey<'a>>,
    method: &'static str,
    reason: &'a str,
    statement: String,
    rollback: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<&'a crate::advise::DropEvidence>,
}

/// The lowercase name of an access method, as the JSON shows it.
pub(crate) fn method_name(method: IndexMethod) -> &'static str {
    match method {
        IndexMethod::Btree => "btree",
        IndexMethod::Text => "text",
        IndexMethod::Gin => "gin",
        IndexMethod::GinTrgm => "gin_trgm",
    }
}

fn keys(index: &IndexSpec) -> Vec<JsonKey<'_>> {
    index
        .keys
        .iter()
        .map(|key| {
            let (field, expression) = match &key.target {
                Target::Field(name) => (Some(name.as_str()), None),
                Target::Expression { text, .. } => (None, Some(text.as_str())),
            };
            let direction = match index.method {
                IndexMethod::Text => serde_json::Value::from("text"),
                _ => serde_json::Value::from(if key.direction < 0 { -1 } else { 1 }),
            };
            let nulls = key
                .nulls_first
                .map(|first| if first { "first" } else { "last" });
            JsonKey {
                field,
                expression,
                direction,
                nulls,
            }
        })
        .collect()
}

fn partial(index: &IndexSpec) -> serde_json::Value {
    if index.partial.is_empty() {
        return serde_json::Value::Null;
    }
    match index.namespace.engine {
        Engine::Mongodb => partial_filter(&index.partial).to_json(),
        Engine::Postgresql => serde_json::Value::String(
            crate::advise::engine::postgresql::ddl::where_clause(&index.partial),
        ),
    }
}

fn recommendation(recommendation: &Recommendation) -> JsonRecommendation<'_> {
    let index = &recommendation.index;
    JsonRecommendation {
        namespace: &index.namespace,
        keys: keys(index),
        method: method_name(index.method),
        unique: index.unique,
        partial: partial(index),
        include: &index.include,
        name: &recommendation.name,
        statement: super::statement(recommendation),
        serves: recommendation
            .serves
            .iter()
            .map(|served| JsonServed {
                shape_id: served.shape_id,
                count: served.count,
                total_ms: served.total_ms,
                p95_ms: served.p95_ms,
                shape: &served.shape,
            })
            .collect(),
        evidence: recommendation.evidence.as_ref().map(|evidence| {
            let sampled = evidence.sample_size.is_some();
            JsonEvidence {
                method: evidence.method.as_str(),
                cost_before: evidence.cost_before,
                cost_after: evidence.cost_after,
                gain_percent: (evidence.gain() * 1000.0).round() / 10.0,
                docs_examined_before: sampled.then_some(evidence.cost_before),
                docs_examined_after: sampled.then_some(evidence.cost_after),
                sample_size: evidence.sample_size,
            }
        }),
        write_load: &recommendation.write_load,
        write_cost: JsonWriteCost {
            per_write_ms: thousandths(recommendation.write_cost.per_write_ms),
            writes: recommendation.write_cost.writes,
            total_ms: thousandths(recommendation.write_cost.total_ms),
            basis: recommendation.write_cost.basis.as_str(),
        },
        net_saving_ms: thousandths(recommendation.net_saving_ms),
    }
}

/// A figure in milliseconds to the microsecond.
fn thousandths(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn drop(drop: &DropCandidate) -> JsonDrop<'_> {
    let index = &drop.index;
    JsonDrop {
        namespace: &index.namespace,
        name: &drop.name,
        keys: keys(index),
        method: method_name(index.method),
        reason: &drop.reason,
        statement: super::drop_statement(drop),
        rollback: super::recreate_statement(drop),
        evidence: drop.evidence.as_ref(),
    }
}

/// The advice as one line of JSON, newline-terminated.
pub(crate) fn render(advice: &Advice) -> String {
    let document = Document {
        recommendations: advice.recommendations.iter().map(recommendation).collect(),
        drops: advice.drops.iter().map(drop).collect(),
        notes: &advice.notes,
    };
    // Every field is a string, number, bool or null built above: serialising cannot fail,
    // but a failure would still be reported as JSON rather than a panic.
    let mut out = serde_json::to_string(&document)
        .unwrap_or_else(|_| r#"{"error":"advice could not be serialised"}"#.to_owned());
    out.push('\n');
    out
}
