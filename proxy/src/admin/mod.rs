//! The admin side: HTTP API and metrics.
//!
//! ## Layout
//! - [`metrics`]: Prometheus families and per-listener handles.
//! - [`routes`]: `/healthz`, `/metrics`, `/api/v1/{shapes,recommendations,snapshot}`.

pub mod metrics;
