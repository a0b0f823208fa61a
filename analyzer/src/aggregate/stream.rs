//! The live store written out in the snapshot format, one shape at a time: a state save or
//! `/api/v1/snapshot` of 10,000 shapes never holds a copy of the whole aggregate.
//!
//! The shapes' keys are read first; then each shape is copied out under its own short lock,
//! written and dropped, so the analysis threads never wait on the disk. The result reads
//! back as the same [`Snapshot`](crate::snapshot::Snapshot) that [`Aggregator::snapshot`]
//! returns.

use std::cell::RefCell;
use std::collections::HashSet;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use super::{Aggregator, ShapeKey};
use crate::shape::ShapeId;
use crate::snapshot::FORMAT_VERSION;

impl Aggregator {
    /// The snapshot of this store, as JSON, written as it is produced.
    pub fn write_json(&self, writer: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(writer, &SnapshotView(self)).map_err(std::io::Error::from)
    }
}

/// Serialises like a `Snapshot`, field for field.
struct SnapshotView<'a>(&'a Aggregator);

/// The shapes map; executions of a shape whose id another shape already took are added to
/// `collided`, as [`Aggregator::snapshot`] does.
struct ShapesView<'a> {
    aggregator: &'a Aggregator,
    collided: &'a RefCell<(u64, u64)>,
}

impl Serialize for SnapshotView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let aggregator = self.0;
        let collided = RefCell::new((0u64, 0u64));
        let mut snapshot = serializer.serialize_struct("Snapshot", 6)?;
        snapshot.serialize_field("version", &FORMAT_VERSION)?;
        snapshot.serialize_field(
            "shapes",
            &ShapesView {
                aggregator,
                collided: &collided,
            },
        )?;
        snapshot.serialize_field("writes", &aggregator.writes())?;
        let mut other = aggregator.other();
        let (count, micros) = *collided.borrow();
        other.count = other.count.saturating_add(count);
        other.total_micros = other.total_micros.saturating_add(micros);
        snapshot.serialize_field("other", &other)?;
        snapshot.serialize_field("other_by_namespace", &aggregator.other_by_namespace())?;
        snapshot.serialize_field("rejected", &aggregator.rejected())?;
        snapshot.end()
    }
}

impl Serialize for ShapesView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let shapes = &self.aggregator.shapes;
        let keys: Vec<ShapeKey> = shapes.iter().map(|entry| *entry.key()).collect();
        let mut seen: HashSet<ShapeId> = HashSet::with_capacity(keys.len());
        let mut map = serializer.serialize_map(None)?;
        for key in keys {
            // Copied under the shard's lock, written after it is released.
            let Some((id, record)) = shapes.get(&key).map(|stats| (stats.id, stats.to_record()))
            else {
                continue;
            };
            if seen.insert(id) {
                map.serialize_entry(&id, &record)?;
            } else {
                let mut collided = self.collided.borrow_mut();
                collided.0 = collided.0.saturating_add(record.count);
                collided.1 = collided.1.saturating_add(record.total_micros);
            }
        }
        map.end()
    }
}
