//! A PostgreSQL table as the snapshot sink: one row per sidecar, upserted.
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS indextap_snapshots (
//!     sidecar_id     text PRIMARY KEY,
//!     format_version integer NOT NULL,
//!     pushed_at      timestamptz NOT NULL DEFAULT now(),
//!     snapshot       jsonb NOT NULL
//! )
//! ```
//!
//! The table lives in the URL's database, in the first schema of its `search_path` (set
//! `options=-csearch_path=...` in the URL to choose). It is created at the first push; two
//! sidecars that race to create it both succeed. Each push and read opens its own connection:
//! one every state interval costs nothing, and a database that restarted in between is
//! simply reached again. Errors say only their SQLSTATE, as the catalog's do.

use std::sync::atomic::{AtomicBool, Ordering};

use indextap_config::SinkTarget;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::{Entry, SinkError, SINK_TABLE, SINK_TIMEOUT};
use crate::catalog::postgres::sqlstate_or_kind;

/// The table's definition.
fn create_table() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {SINK_TABLE} (
            sidecar_id text PRIMARY KEY,
            format_version integer NOT NULL,
            pushed_at timestamptz NOT NULL DEFAULT now(),
            snapshot jsonb NOT NULL
        )"
    )
}

/// The sink of one PostgreSQL URL.
#[derive(Debug)]
pub struct PgSink {
    config: tokio_postgres::Config,
    target: SinkTarget,
    /// Set once the table is known to exist, so later pushes skip the DDL.
    table_ready: AtomicBool,
}

impl PgSink {
    pub(super) fn new(url: String) -> Result<Self, SinkError> {
        let parsed = url.parse::<tokio_postgres::Config>();
        let target = SinkTarget::Postgres(url);
        let mut config = parsed.map_err(|_| SinkError {
            target: target.to_string(),
            action: "opening",
            detail: "the PostgreSQL URL does not parse".into(),
        })?;
        config.application_name("indextap-sink");
        config.connect_timeout(SINK_TIMEOUT);
        Ok(Self {
            config,
            target,
            table_ready: AtomicBool::new(false),
        })
    }

    pub(super) fn target(&self) -> &SinkTarget {
        &self.target
    }

    async fn connect(&self) -> Result<Client, String> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| format!("cannot connect: {}", sqlstate_or_kind(&e)))?;
        tokio::spawn(async move {
            // Ends when the client is dropped; its errors surface through the client.
            let _ = connection.await;
        });
        Ok(client)
    }

    pub(super) async fn push(&self, sidecar_id: &str, snapshot: &str) -> Result<(), String> {
        let client = self.connect().await?;
        if !self.table_ready.load(Ordering::Relaxed) {
            ensure_table(&client).await?;
            self.table_ready.store(true, Ordering::Relaxed);
        }
        let upsert = format!(
            "INSERT INTO {SINK_TABLE} (sidecar_id, format_version, snapshot, pushed_at)
             VALUES ($1, $2, $3::text::jsonb, now())
             ON CONFLICT (sidecar_id) DO UPDATE
             SET format_version = EXCLUDED.format_version, snapshot = EXCLUDED.snapshot,
                 pushed_at = EXCLUDED.pushed_at"
        );
        let version = i32::try_from(indextap_analyzer::snapshot::FORMAT_VERSION).unwrap_or(0);
        client
            .execute(&upsert, &[&sidecar_id, &version, &snapshot])
            .await
            .map_err(|e| format!("cannot upsert the row: {}", sqlstate_or_kind(&e)))?;
        Ok(())
    }

    pub(super) async fn fetch(&self, sidecar_id: &str) -> Result<Option<String>, String> {
        let client = self.connect().await?;
        let query = format!("SELECT snapshot::text FROM {SINK_TABLE} WHERE sidecar_id = $1");
        match client.query_opt(&query, &[&sidecar_id]).await {
            Ok(row) => row
                .map(|row| row.try_get::<_, String>(0))
                .transpose()
                .map_err(|e| format!("cannot read the row: {e}")),
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(None),
            Err(e) => Err(format!("cannot read the row: {}", sqlstate_or_kind(&e))),
        }
    }

    pub(super) async fn fetch_all(&self) -> Result<Vec<Entry>, String> {
        let client = self.connect().await?;
        let query = format!("SELECT sidecar_id, snapshot::text FROM {SINK_TABLE}");
        let rows = match client.query(&query, &[]).await {
            Ok(rows) => rows,
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
                return Err(format!(
                    "there is no table {SINK_TABLE}: no sidecar pushed yet"
                ))
            }
            Err(e) => return Err(format!("cannot read the rows: {}", sqlstate_or_kind(&e))),
        };
        rows.iter()
            .map(|row| {
                Ok(Entry {
                    sidecar_id: row.try_get(0).map_err(|e| e.to_string())?,
                    snapshot: row.try_get(1).map_err(|e| e.to_string())?,
                })
            })
            .collect()
    }
}

/// Creates the table if missing. Two sidecars racing here may both pass the `IF NOT EXISTS`
/// and one then trips on the catalog's unique index: the table exists either way.
async fn ensure_table(client: &Client) -> Result<(), String> {
    match client.batch_execute(&create_table()).await {
        Ok(()) => Ok(()),
        Err(e)
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                || e.code() == Some(&SqlState::DUPLICATE_TABLE) =>
        {
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot create the table {SINK_TABLE}: {}",
            sqlstate_or_kind(&e)
        )),
    }
}
