//! The admin HTTP API.
//!
//! Everything it serves comes from shapes and counters: names, operators, types and
//! numbers. It never serves a value from the traffic. An optional bearer token guards every
//! route except `/healthz`, which probes must reach without one.
//!
//! Routes:
//! - `GET /healthz`: liveness and readiness.
//! - `GET /metrics`: Prometheus text.
//! - `GET /api/v1/shapes`: every tracked shape with its statistics.
//! - `GET /api/v1/recommendations[?format=json|mongosh|pymongo|sql|prisma|django|markdown]`.
//! - `GET /api/v1/snapshot`: the mergeable aggregate (`indextap merge` reads it).

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use indextap_analyzer::aggregate::Aggregator;
use indextap_analyzer::export::Format;
use indextap_analyzer::snapshot::{ShapeRecord, Snapshot};
use serde::Deserialize;
use serde_json::{json, Value};

use super::metrics::Metrics;
use crate::catalog::CatalogSources;

/// What the routes read.
#[derive(Debug)]
pub struct AdminState {
    /// The live aggregate.
    pub aggregator: Arc<Aggregator>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// Where existing indexes and planner costs are read from.
    pub catalog: CatalogSources,
    /// The bearer token, when one is configured.
    pub token: Option<String>,
}

/// The router, with the token guard in front of everything but `/healthz`.
pub fn router(state: Arc<AdminState>) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/shapes", get(shapes))
        .route("/api/v1/recommendations", get(recommendations))
        .route("/api/v1/snapshot", get(snapshot))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(guarded)
        .with_state(state)
}

async fn require_token(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.token else {
        return next.run(request).await;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required\n",
        )
            .into_response(),
    }
}

/// Compare without leaking, through timing, how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let snapshot = state.aggregator.snapshot();
    state
        .metrics
        .shapes_tracked
        .set(i64::try_from(snapshot.shapes.len()).unwrap_or(i64::MAX));
    state.metrics.shapes_overflow.set(snapshot.other.count);
    for (reason, count) in &snapshot.rejected {
        state.metrics.set_rejected(reason.as_str(), *count);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn snapshot(State(state): State<Arc<AdminState>>) -> Json<Snapshot> {
    Json(state.aggregator.snapshot())
}

async fn shapes(State(state): State<Arc<AdminState>>) -> Json<Value> {
    Json(shapes_json(&state.aggregator.snapshot()))
}

/// The `/api/v1/shapes` document for a snapshot (also used by `indextap shapes`).
pub fn shapes_json(snapshot: &Snapshot) -> Value {
    let mut records: Vec<_> = snapshot.shapes.iter().collect();
    records.sort_by(|a, b| b.1.total_micros.cmp(&a.1.total_micros).then(a.0.cmp(b.0)));
    let shapes: Vec<Value> = records
        .into_iter()
        .map(|(id, record)| shape_json(&id.to_string(), record))
        .collect();
    json!({
        "shapes": shapes,
        "writes": snapshot.writes,
        "other": snapshot.other,
        "rejected": snapshot.rejected,
    })
}

fn shape_json(id: &str, record: &ShapeRecord) -> Value {
    let ms = |q: f64| record.latency.quantile_micros(q) as f64 / 1000.0;
    let namespace = &record.shape.namespace;
    json!({
        "shape_id": id,
        "engine": namespace.engine,
        "database": namespace.database,
        "schema": namespace.schema,
        "collection": namespace.collection,
        "command": record.shape.command,
        "shape": record.shape,
        "count": record.count,
        "errors": record.errors,
        "error_codes": record.error_codes,
        "returned": record.returned,
        "continuations": record.continuations,
        "total_ms": record.total_micros as f64 / 1000.0,
        "p50_ms": ms(0.50),
        "p95_ms": ms(0.95),
        "p99_ms": ms(0.99),
        "first_seen_ms": record.first_seen_ms,
        "last_seen_ms": record.last_seen_ms,
    })
}

#[derive(Debug, Deserialize)]
struct AdviceQuery {
    format: Option<String>,
}

async fn recommendations(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<AdviceQuery>,
) -> Response {
    let format = match query.format.as_deref().unwrap_or("json").parse::<Format>() {
        Ok(format) => format,
        Err(_) => {
            return (StatusCode::BAD_REQUEST, "unknown format\n").into_response();
        }
    };
    let snapshot = state.aggregator.snapshot();
    let advice = crate::catalog::advise(&snapshot, &state.catalog).await;
    let body = indextap_analyzer::export::render(&advice, format);
    let content_type = if matches!(format, Format::Json) {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
