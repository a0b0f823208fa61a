//! The admin side: HTTP API and metrics.
//!
//! ## Layout
//! - [`metrics`]: Prometheus families and per-listener handles.
//! - [`routes`]: `/healthz`, `/metrics`, `/api/v1/{shapes,recommendations,snapshot}`.
//! - [`shapes`]: the `/api/v1/shapes` query and document (pages of shapes).

pub mod metrics;
pub mod routes;
pub mod shapes;

/// The admin bearer token, from `admin.token_file` or the variable `admin.token_env` names.
pub fn token(admin: &indextap_config::AdminConfig) -> anyhow::Result<Option<String>> {
    use anyhow::Context;
    if let Some(path) = &admin.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read admin.token_file {}", path.display()))?;
        let token = text.trim().to_string();
        anyhow::ensure!(
            !token.is_empty(),
            "admin.token_file {} is empty",
            path.display()
        );
        return Ok(Some(token));
    }
    if let Some(var) = &admin.token_env {
        let token = std::env::var(var)
            .with_context(|| format!("admin.token_env names {var}, which is not set"))?;
        let token = token.trim().to_string();
        anyhow::ensure!(!token.is_empty(), "admin.token_env {var} is empty");
        return Ok(Some(token));
    }
    Ok(None)
}
