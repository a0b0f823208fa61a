//! The admin HTTP API.
//!
//! Everything it serves comes from shapes and counters: names, operators, types and
//! numbers. It never serves a value from the traffic. An optional bearer token guards every
//! route except `/healthz`, which probes must reach without one.
//!
//! Routes:
//! - `GET /healthz`: liveness and readiness.
//! - `GET /metrics`: Prometheus text.
//! - `GET /api/v1/shapes[?sort=total_time|count|p95&order=desc|asc&limit=N&offset=N]`: one
//!   page of the tracked shapes with their statistics (see [`super::shapes`]).
//! - `GET /api/v1/recommendations[?format=json|mongosh|pymongo|sql|prisma|django|markdown]`.
//! - `GET /api/v1/snapshot`: the mergeable aggregate (`indextap merge` reads it).
//!
//! `/metrics` and `/api/v1/shapes` read the live store's counters and one page. The snapshot
//! is streamed from the live store; the recommendations take a snapshot of every shape's
//! statistics (the shapes' trees are shared with the store, not copied).

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use indextap_analyzer::aggregate::Aggregator;
use indextap_analyzer::export::Format;
use serde::Deserialize;
use serde_json::Value;

use super::metrics::Metrics;
use super::shapes::{self as shape_pages, ShapesQuery};
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
    // Counters only: a scrape never copies the aggregate.
    let aggregator = &state.aggregator;
    let metrics = &state.metrics;
    metrics
        .shapes_tracked
        .set(i64::try_from(aggregator.shapes_tracked()).unwrap_or(i64::MAX));
    let other = aggregator.other();
    metrics.shapes_overflow.set(other.count);
    metrics.shapes_evicted.set(other.evicted_shapes);
    metrics.writes_untracked.set(aggregator.untracked_writes());
    metrics
        .aggregate_bytes
        .set(u64::try_from(aggregator.memory_bytes()).unwrap_or(u64::MAX));
    metrics
        .aggregate_limit_bytes
        .set(u64::try_from(aggregator.limits().store_bytes()).unwrap_or(u64::MAX));
    for (reason, count) in &aggregator.rejected() {
        metrics.set_rejected(reason.as_str(), *count);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn snapshot(State(state): State<Arc<AdminState>>) -> Response {
    // Serialised from the live store, shape by shape: no copy of the aggregate.
    let mut body = Vec::new();
    match state.aggregator.write_json(&mut body) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot serialise the snapshot");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn shapes(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<ShapesQuery>,
) -> Response {
    match query.page() {
        Ok(request) => {
            Json::<Value>(shape_pages::live_document(&state.aggregator, request)).into_response()
        }
        Err(reason) => (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response(),
    }
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
