//! Index usage from `$indexStats`: `accesses.ops` per index, since the server (or the
//! index) started counting. `_id_` is marked as what it is: never a drop candidate.

use bson::{Bson, Document};
use futures::TryStreamExt;
use indextap_analyzer::advise::engine::mongodb::ID_INDEX as MONGO_ID_INDEX;
use indextap_analyzer::catalog::{Constraint, IndexUsage};
use indextap_analyzer::shape::Namespace;
use mongodb::Client;

use super::{error_label, TIMEOUT};

/// Every index of `namespace` with its access counter.
pub async fn usage(client: &Client, namespace: &Namespace) -> Result<Vec<IndexUsage>, String> {
    let collection = client
        .database(&namespace.database)
        .collection::<Document>(&namespace.collection);
    let read = async {
        let cursor = collection
            .aggregate(vec![bson::doc! { "$indexStats": {} }])
            .await?;
        cursor.try_collect::<Vec<_>>().await
    };
    let entries = tokio::time::timeout(TIMEOUT, read)
        .await
        .map_err(|_| "$indexStats timed out".to_string())?
        .map_err(|e| format!("$indexStats failed: {}", error_label(&e)))?;
    Ok(entries.iter().filter_map(index_usage).collect())
}

fn index_usage(entry: &Document) -> Option<IndexUsage> {
    let name = entry.get_str("name").ok()?.to_string();
    let uses = entry
        .get_document("accesses")
        .ok()
        .and_then(|accesses| match accesses.get("ops") {
            Some(Bson::Int32(v)) => u64::try_from(*v).ok(),
            Some(Bson::Int64(v)) => u64::try_from(*v).ok(),
            Some(Bson::Double(v)) if *v >= 0.0 => Some(*v as u64),
            _ => None,
        });
    let constraints = if name == MONGO_ID_INDEX {
        vec![Constraint::MongoId]
    } else {
        Vec::new()
    };
    Some(IndexUsage {
        name,
        uses,
        baseline: None,
        constraints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn entries_become_counters() {
        let id =
            index_usage(&doc! { "name": "_id_", "accesses": { "ops": 7_i64 } }).expect("an entry");
        assert_eq!(id.uses, Some(7));
        assert_eq!(id.constraints, vec![Constraint::MongoId]);
        let plain =
            index_usage(&doc! { "name": "user_1", "accesses": { "ops": 0 } }).expect("an entry");
        assert_eq!(plain.uses, Some(0));
        assert!(!plain.is_protected());
        assert!(index_usage(&doc! { "accesses": {} }).is_none());
    }
}
