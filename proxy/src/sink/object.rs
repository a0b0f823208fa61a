//! Object storage as the snapshot sink: one object per sidecar, `<prefix>/<sidecar id>.json`.
//!
//! `s3://bucket/prefix` is any S3-compatible store; its credentials, region and endpoint
//! come from the usual variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, ...), as every AWS tool reads them.
//! `file:///dir` is object_store's local-filesystem backend: a directory (created if
//! missing), for a shared volume or for tests. A put replaces the object whole in both.

use futures::TryStreamExt;
use indextap_config::SinkTarget;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{Entry, SinkError};

/// The ending of every entry's name.
const SUFFIX: &str = ".json";

/// The sink of one bucket and prefix, or one directory.
#[derive(Debug)]
pub struct ObjectSink {
    store: Box<dyn ObjectStore>,
    prefix: ObjectPath,
    target: SinkTarget,
}

impl ObjectSink {
    pub(super) fn open(target: &SinkTarget) -> Result<Self, SinkError> {
        let failed = |detail: String| SinkError {
            target: target.to_string(),
            action: "opening",
            detail,
        };
        let (store, prefix): (Box<dyn ObjectStore>, ObjectPath) = match target {
            SinkTarget::S3 { bucket, prefix } => {
                let store = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| failed(e.to_string()))?;
                let prefix = ObjectPath::parse(prefix).map_err(|e| failed(e.to_string()))?;
                (Box::new(store), prefix)
            }
            SinkTarget::File(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
                let store =
                    LocalFileSystem::new_with_prefix(dir).map_err(|e| failed(e.to_string()))?;
                (Box::new(store), ObjectPath::default())
            }
            SinkTarget::Postgres(_) | SinkTarget::PostgresAdmin => {
                return Err(failed("not an object store".into()))
            }
        };
        Ok(Self {
            store,
            prefix,
            target: target.clone(),
        })
    }

    pub(super) fn target(&self) -> &SinkTarget {
        &self.target
    }

    fn location(&self, sidecar_id: &str) -> ObjectPath {
        self.prefix.clone().join(format!("{sidecar_id}{SUFFIX}"))
    }

    pub(super) async fn push(&self, sidecar_id: &str, snapshot: &str) -> Result<(), String> {
        let payload = PutPayload::from(snapshot.as_bytes().to_vec());
        self.store
            .put(&self.location(sidecar_id), payload)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    pub(super) async fn fetch(&self, sidecar_id: &str) -> Result<Option<String>, String> {
        match self.read(&self.location(sidecar_id)).await {
            Ok(text) => Ok(Some(text)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    pub(super) async fn fetch_all(&self) -> Result<Vec<Entry>, String> {
        let listed: Vec<_> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        let mut entries = Vec::new();
        for meta in listed {
            // Only the prefix's own entries: not deeper folders, not other files.
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let Some(sidecar_id) = name.strip_suffix(SUFFIX) else {
                continue;
            };
            if meta.location != self.location(sidecar_id) {
                continue;
            }
            let snapshot = self.read(&meta.location).await.map_err(|e| e.to_string())?;
            entries.push(Entry {
                sidecar_id: sidecar_id.to_owned(),
                snapshot,
            });
        }
        Ok(entries)
    }

    async fn read(&self, location: &ObjectPath) -> Result<String, object_store::Error> {
        let bytes = self.store.get(location).await?.bytes().await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| object_store::Error::Generic {
            store: "snapshot sink",
            source: Box::new(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Sink;

    fn file_sink(dir: &std::path::Path) -> Sink {
        let url = format!("file://{}", dir.display());
        Sink::open(SinkTarget::parse(&url).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_directory_keeps_one_entry_per_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("fleet");
        let sink = file_sink(&root);
        assert_eq!(sink.fetch("a").await.unwrap(), None);

        sink.push("b", "{\"n\":1}").await.unwrap();
        sink.push("a", "{\"n\":2}").await.unwrap();
        sink.push("a", "{\"n\":3}").await.unwrap();
        // Files that are not entries are left alone.
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        std::fs::create_dir(root.join("deeper")).unwrap();
        std::fs::write(root.join("deeper/c.json"), "{}").unwrap();

        assert_eq!(sink.fetch("a").await.unwrap().as_deref(), Some("{\"n\":3}"));
        let all = sink.fetch_all().await.unwrap();
        let ids: Vec<_> = all.iter().map(|e| e.sidecar_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(all[1].snapshot, "{\"n\":1}");
        assert_eq!(
            std::fs::read_to_string(root.join("a.json")).unwrap(),
            "{\"n\":3}"
        );
    }

    #[test]
    fn s3_settings_are_read_without_a_network() {
        let target = SinkTarget::parse("s3://fleet/staging/indextap").unwrap();
        let sink = ObjectSink::open(&target).unwrap();
        assert_eq!(
            sink.location("pod-1").as_ref(),
            "staging/indextap/pod-1.json"
        );
        assert_eq!(sink.target().to_string(), "s3://fleet/staging/indextap");
    }
}
