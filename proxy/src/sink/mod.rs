//! The snapshot sink: a store the aggregate is pushed to, so that what a sidecar learned
//! outlives its pod.
//!
//! Each sidecar owns one entry, named by its sidecar id, and replaces it at every state
//! interval and on shutdown: a row of the `indextap_snapshots` table in PostgreSQL (created
//! if missing, upserted), or an object `<prefix>/<sidecar id>.json` in S3-compatible storage
//! or a local directory (`object_store`). `indextap recommend --from <sink URL>` (and
//! `shapes`, `merge`) reads every entry back and merges them. A pod killed with `kill -9`
//! leaves its entry as of its last interval.
//!
//! An entry is a [`Snapshot`](indextap_analyzer::snapshot::Snapshot)'s JSON and nothing
//! else, so the sink holds no value from the traffic, exactly as the state file.
//!
//! ## Layout
//! - [`Sink`]: one store, opened from a [`SinkTarget`]; push, fetch one, fetch all.
//! - [`sidecar_id`]: the configured id, or the pod's or host's name.
//! - `postgres`: the table.
//! - `object`: S3 and local directories.

mod object;
mod postgres;

use std::time::Duration;

use indextap_config::SinkTarget;

/// How long one push or read may take before it is given up (and retried next interval).
pub const SINK_TIMEOUT: Duration = Duration::from_secs(30);

/// The name of the table a PostgreSQL sink keeps its rows in.
pub const SINK_TABLE: &str = "indextap_snapshots";

/// One sidecar's entry, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Whose it is.
    pub sidecar_id: String,
    /// The snapshot's JSON.
    pub snapshot: String,
}

/// A snapshot sink.
#[derive(Debug)]
pub enum Sink {
    /// A table in PostgreSQL.
    Postgres(Box<postgres::PgSink>),
    /// S3-compatible object storage or a local directory.
    Object(object::ObjectSink),
}

/// Why the sink could not be opened, written or read. Messages name the store (never its
/// credentials) and the step.
#[derive(Debug, thiserror::Error)]
#[error("snapshot sink {target}: {action}: {detail}")]
pub struct SinkError {
    /// The store, as [`SinkTarget`] shows it (credentials left out).
    pub target: String,
    /// What was being done.
    pub action: &'static str,
    /// Why it failed.
    pub detail: String,
}

impl Sink {
    /// Opens the store `target` names. A PostgreSQL sink connects at its first use; an object
    /// store checks its settings (and creates a local directory) now.
    pub fn open(target: SinkTarget) -> Result<Self, SinkError> {
        match target {
            SinkTarget::Postgres(url) => {
                postgres::PgSink::new(url).map(|sink| Sink::Postgres(Box::new(sink)))
            }
            SinkTarget::PostgresAdmin => Err(SinkError {
                target: target.to_string(),
                action: "opening",
                detail: "\"postgres\" must be resolved to the admin URL first".into(),
            }),
            other => object::ObjectSink::open(&other).map(Sink::Object),
        }
    }

    /// Replaces `sidecar_id`'s entry with `snapshot` (a snapshot's JSON).
    pub async fn push(&self, sidecar_id: &str, snapshot: &str) -> Result<(), SinkError> {
        let pushed = async {
            match self {
                Sink::Postgres(sink) => sink.push(sidecar_id, snapshot).await,
                Sink::Object(sink) => sink.push(sidecar_id, snapshot).await,
            }
        };
        self.in_time("pushing", pushed).await
    }

    /// `sidecar_id`'s entry, if the store has one.
    pub async fn fetch(&self, sidecar_id: &str) -> Result<Option<String>, SinkError> {
        let fetched = async {
            match self {
                Sink::Postgres(sink) => sink.fetch(sidecar_id).await,
                Sink::Object(sink) => sink.fetch(sidecar_id).await,
            }
        };
        self.in_time("reading this sidecar's entry", fetched).await
    }

    /// Every entry, ordered by sidecar id.
    pub async fn fetch_all(&self) -> Result<Vec<Entry>, SinkError> {
        let fetched = async {
            match self {
                Sink::Postgres(sink) => sink.fetch_all().await,
                Sink::Object(sink) => sink.fetch_all().await,
            }
        };
        let mut entries = self.in_time("reading every entry", fetched).await?;
        entries.sort_by(|a, b| a.sidecar_id.cmp(&b.sidecar_id));
        Ok(entries)
    }

    /// The store, for logs (credentials left out).
    pub fn describe(&self) -> String {
        match self {
            Sink::Postgres(sink) => sink.target().to_string(),
            Sink::Object(sink) => sink.target().to_string(),
        }
    }

    async fn in_time<T>(
        &self,
        action: &'static str,
        work: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, SinkError> {
        let detail = match tokio::time::timeout(SINK_TIMEOUT, work).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(detail)) => detail,
            Err(_) => format!("timed out after {SINK_TIMEOUT:?}"),
        };
        Err(SinkError {
            target: self.describe(),
            action,
            detail,
        })
    }
}

/// The sidecar id: `configured`, else `$POD_NAME`, else `$HOSTNAME`, else the kernel's host
/// name, else `indextap`. Characters an id may not hold become `-`.
pub fn sidecar_id(configured: Option<&str>) -> String {
    let found = configured
        .map(str::to_owned)
        .or_else(|| non_empty_var("POD_NAME"))
        .or_else(|| non_empty_var("HOSTNAME"))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| "indextap".to_owned());
    let cleaned: String = found
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '-',
        })
        .take(128)
        .collect();
    match cleaned.strip_prefix('.') {
        Some(rest) => format!("-{rest}"),
        None => cleaned,
    }
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_id_wins_and_ids_are_cleaned() {
        assert_eq!(sidecar_id(Some("checkout-7d9f")), "checkout-7d9f");
        assert_eq!(sidecar_id(Some("a b/c")), "a-b-c");
        assert_eq!(sidecar_id(Some(".x")), "-x");
        let fallback = sidecar_id(None);
        assert!(!fallback.is_empty());
        assert!(indextap_config::sink::check_sidecar_id(&fallback).is_ok());
    }
}
