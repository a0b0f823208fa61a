//! Keeping the aggregate beyond the process: the state file and the snapshot sink.
//!
//! At start the keeper locks the state directory (one owner per directory), then restores
//! the aggregate from the state file or, when there is none (a new pod, an `emptyDir` lost
//! with the old one), from this sidecar's own entry in the sink. At every `state.interval`
//! and once more at shutdown it takes one snapshot, writes the state file and pushes to the
//! sink. A failure of either is logged and retried at the next interval; it never stops the
//! proxy.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indextap_analyzer::aggregate::Aggregator;
use indextap_analyzer::snapshot::Snapshot;
use indextap_config::{Config, SinkTarget};
use tokio_util::sync::CancellationToken;

use super::lock::StateLock;
use super::{LoadOutcome, StateFile};
use crate::sink::{sidecar_id, Sink};

/// The state file, the sink, or both (or neither: then the keeper does nothing).
#[derive(Debug)]
pub struct Keeper {
    // Held for the proxy's life.
    _lock: Option<StateLock>,
    file: Option<Arc<StateFile>>,
    sink: Option<SinkSide>,
    interval: Duration,
    /// One flush at a time, so a slow periodic push can never land after (and over) the
    /// newer one made at shutdown.
    flushing: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct SinkSide {
    sink: Sink,
    sidecar_id: String,
}

impl Keeper {
    /// Locks the state directory and opens the sink, as `config` asks. Fails when another
    /// proxy owns the directory, or the sink cannot be opened.
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let (lock, file) = match &config.state.dir {
            Some(dir) => {
                let lock = StateLock::acquire(dir)?;
                (Some(lock), Some(Arc::new(StateFile::new(dir))))
            }
            None => (None, None),
        };
        let sink = match &config.snapshot_sink.url {
            Some(url) => {
                let admin_url = config.postgres.admin_url.as_deref();
                let target = SinkTarget::parse(url)
                    .and_then(|target| target.resolve(admin_url))
                    .map_err(|message| anyhow::anyhow!("snapshot_sink.url {message}"))?;
                let sink = Sink::open(target).context("opening the snapshot sink")?;
                let sidecar_id = sidecar_id(config.snapshot_sink.sidecar_id.as_deref());
                tracing::info!(sink = %sink.describe(), %sidecar_id, "snapshot sink ready");
                Some(SinkSide { sink, sidecar_id })
            }
            None => None,
        };
        Ok(Self {
            _lock: lock,
            file,
            sink,
            interval: config.state.interval().max(Duration::from_secs(1)),
            flushing: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether there is anything to keep.
    pub fn is_active(&self) -> bool {
        self.file.is_some() || self.sink.is_some()
    }

    /// Loads the state file, or else this sidecar's entry in the sink, into `aggregator`.
    pub async fn restore(&self, aggregator: &Aggregator) {
        if let Some(file) = &self.file {
            if restore_file(file, aggregator) {
                return;
            }
        }
        let Some(SinkSide { sink, sidecar_id }) = &self.sink else {
            return;
        };
        match sink.fetch(sidecar_id).await {
            Ok(None) => {
                tracing::info!(%sidecar_id, "no entry in the snapshot sink: starting fresh")
            }
            Ok(Some(json)) => match Snapshot::from_json(&json) {
                Ok(snapshot) => {
                    aggregator.restore(&snapshot);
                    tracing::info!(%sidecar_id, shapes = snapshot.shapes.len(), "restored from the snapshot sink");
                }
                Err(error) => {
                    tracing::error!(%sidecar_id, %error, "this sidecar's entry in the snapshot sink is unusable; starting fresh")
                }
            },
            Err(error) => tracing::error!(%error, "cannot read the snapshot sink; starting fresh"),
        }
    }

    /// Writes the state file and pushes to the sink, from one snapshot.
    pub async fn flush(&self, aggregator: &Arc<Aggregator>) {
        if !self.is_active() {
            return;
        }
        let _turn = self.flushing.lock().await;
        let aggregator = aggregator.clone();
        let file = self.file.clone();
        let want_json = self.sink.is_some();
        // Snapshotting, serialising and fsyncing are blocking work: off the data path's
        // threads.
        // The aggregate is written shape by shape, never copied whole (`write_json`).
        let json = tokio::task::spawn_blocking(move || {
            if let Some(file) = &file {
                match file.save_with(|writer| aggregator.write_json(writer)) {
                    Ok(()) => tracing::debug!(path = %file.path().display(), "state saved"),
                    Err(error) => tracing::error!(%error, "cannot save the state file"),
                }
            }
            if !want_json {
                return None;
            }
            let mut json = Vec::new();
            match aggregator.write_json(&mut json) {
                Ok(()) => String::from_utf8(json).ok(),
                Err(error) => {
                    tracing::error!(%error, "cannot serialise the snapshot for the sink");
                    None
                }
            }
        })
        .await;
        let (Some(SinkSide { sink, sidecar_id }), Ok(Some(json))) = (&self.sink, json) else {
            return;
        };
        match sink.push(sidecar_id, &json).await {
            Ok(()) => tracing::debug!(%sidecar_id, "snapshot pushed to the sink"),
            Err(error) => {
                tracing::error!(%error, "cannot push to the snapshot sink; retrying at the next interval")
            }
        }
    }

    /// Flushes every interval until shutdown (the final flush is the caller's).
    pub async fn run(self: Arc<Self>, aggregator: Arc<Aggregator>, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => self.flush(&aggregator).await,
            }
        }
    }
}

/// Loads the state file; true when it restored something. A bad file was moved aside and
/// is reported.
fn restore_file(state: &StateFile, aggregator: &Aggregator) -> bool {
    match state.load() {
        Ok(LoadOutcome::Fresh) => {
            tracing::info!(path = %state.path().display(), "no state file: starting fresh");
            false
        }
        Ok(LoadOutcome::Restored(snapshot)) => {
            aggregator.restore(&snapshot);
            tracing::info!(path = %state.path().display(), shapes = snapshot.shapes.len(), "state restored");
            true
        }
        Ok(LoadOutcome::MovedAside {
            path,
            reason,
            detail,
        }) => {
            tracing::error!(
                moved_to = %path.display(), reason, %detail,
                "the state file was unusable and has been moved aside; starting fresh"
            );
            false
        }
        Err(error) => {
            tracing::error!(%error, "cannot read the state file; starting fresh");
            false
        }
    }
}
