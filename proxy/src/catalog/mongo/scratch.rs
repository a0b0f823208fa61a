//! The scratch database of `--mongo-verify sample`: a `$sample` of each collection a
//! candidate serves, copied so that candidate indexes can be built and `explain`ed without
//! touching the application's collections.
//!
//! The copy lives only there: its documents pass through the proxy's memory on the way and
//! are never stored, logged or served. The database is dropped when verification ends
//! ([`Scratch::drop_now`]), when a [`Scratch`] is dropped without that (an error, a
//! cancelled request), and on shutdown ([`drop_all`]), which drops every scratch database
//! still registered. Every write into a scratch database (the copy, an index build) goes
//! through [`Scratch::write`], which shutdown closes first: a verification still running
//! when the signal came cannot create its database again after the drop.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use bson::{doc, Document};
use futures::TryStreamExt;
use indextap_analyzer::shape::Namespace;
use mongodb::{Client, Collection};

use super::{error_label, TIMEOUT};

/// Every scratch database's name starts with this; advice never covers such a database.
pub use indextap_analyzer::advise::engine::mongodb::SCRATCH_DATABASE_PREFIX as SCRATCH_PREFIX;
/// Documents inserted per round trip while copying.
const BATCH: usize = 1000;

/// Scratch databases not yet dropped, for [`drop_all`] on shutdown.
fn live() -> &'static Mutex<Vec<(Client, String)>> {
    static LIVE: OnceLock<Mutex<Vec<(Client, String)>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(Vec::new()))
}

/// Whether shutdown has begun. Writes hold it shared for as long as they run; shutdown takes
/// it exclusively, so that no write is in flight when it drops the databases, and none starts
/// after.
fn closed() -> &'static tokio::sync::RwLock<bool> {
    static CLOSED: OnceLock<tokio::sync::RwLock<bool>> = OnceLock::new();
    CLOSED.get_or_init(|| tokio::sync::RwLock::new(false))
}

fn unregister(name: &str) {
    if let Ok(mut live) = live().lock() {
        live.retain(|(_, live_name)| live_name != name);
    }
}

/// One scratch database holding samples of some collections.
pub struct Scratch {
    client: Client,
    name: String,
    dropped: bool,
}

impl Scratch {
    /// A new, empty scratch database with a name no other run uses.
    pub fn new(client: &Client) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{SCRATCH_PREFIX}{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Ok(mut live) = live().lock() {
            live.push((client.clone(), name.clone()));
        }
        Self {
            client: client.clone(),
            name,
            dropped: false,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The copy of `source` in the scratch database.
    pub fn collection(&self, source: &Namespace) -> Collection<Document> {
        self.client
            .database(&self.name)
            .collection(&copy_name(source))
    }

    /// Runs `write`, a write into the scratch database, unless shutdown has begun (a write
    /// after the drop would create the database again).
    pub async fn write<T>(
        &self,
        write: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let closed = closed().read().await;
        if *closed {
            return Err("the proxy is shutting down".to_string());
        }
        write.await
    }

    /// Copies a `$sample` of `size` documents of `source`; returns how many were copied.
    pub async fn copy_sample(&self, source: &Namespace, size: u32) -> Result<u64, String> {
        self.write(self.copy(source, size)).await
    }

    async fn copy(&self, source: &Namespace, size: u32) -> Result<u64, String> {
        let from = self
            .client
            .database(&source.database)
            .collection::<Document>(&source.collection);
        let to = self.collection(source);
        let copy = async {
            let mut cursor = from
                .aggregate(vec![doc! { "$sample": { "size": i64::from(size) } }])
                .await?;
            let mut batch = Vec::with_capacity(BATCH);
            let mut copied = 0u64;
            while let Some(document) = cursor.try_next().await? {
                batch.push(document);
                if batch.len() == BATCH {
                    copied += batch.len() as u64;
                    to.insert_many(std::mem::take(&mut batch)).await?;
                }
            }
            if !batch.is_empty() {
                copied += batch.len() as u64;
                to.insert_many(batch).await?;
            }
            Ok::<u64, mongodb::error::Error>(copied)
        };
        tokio::time::timeout(TIMEOUT.saturating_mul(12), copy)
            .await
            .map_err(|_| "copying the sample timed out".to_string())?
            .map_err(|e| format!("copying the sample failed: {}", error_label(&e)))
    }

    /// Drops the scratch database now.
    pub async fn drop_now(mut self) -> Result<(), String> {
        self.dropped = true;
        unregister(&self.name);
        drop_database(&self.client, &self.name).await
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // An error or a cancelled request left it behind: drop it in the background.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (client, name) = (self.client.clone(), self.name.clone());
            runtime.spawn(async move {
                if drop_database(&client, &name).await.is_ok() {
                    unregister(&name);
                }
            });
        }
    }
}

/// The name of `source`'s copy: database and collection, so two databases' collections of
/// one name do not meet.
fn copy_name(source: &Namespace) -> String {
    format!("{}.{}", source.database, source.collection)
}

async fn drop_database(client: &Client, name: &str) -> Result<(), String> {
    tokio::time::timeout(TIMEOUT, client.database(name).drop())
        .await
        .map_err(|_| format!("dropping {name} timed out"))?
        .map_err(|e| format!("dropping {name} failed: {}", error_label(&e)))
}

/// Drops every scratch database still registered (on shutdown), once the writes into them
/// have stopped (waiting five seconds at most); none is made after. Returns how many.
pub async fn drop_all() -> usize {
    match tokio::time::timeout(TIMEOUT, closed().write()).await {
        Ok(mut closed) => *closed = true,
        Err(_) => tracing::warn!("a write into a scratch database was still running at shutdown"),
    }
    let pending: Vec<(Client, String)> = match live().lock() {
        Ok(mut live) => std::mem::take(&mut *live),
        Err(_) => return 0,
    };
    let mut dropped = 0;
    for (client, name) in pending {
        match drop_database(&client, &name).await {
            Ok(()) => dropped += 1,
            Err(error) => tracing::warn!(%error, "a scratch database was left behind"),
        }
    }
    dropped
}
