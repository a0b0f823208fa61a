//! Field statistics from a `$sample` of a collection: per field, how many sampled documents
//! have it and how many distinct values it takes there. The server builds the sets of
//! values (`$addToSet`) and answers only their sizes: no value ever leaves it.

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use indextap_analyzer::catalog::statistics::is_addressable;
use indextap_analyzer::catalog::{FieldStatistics, NamespaceStatistics};
use indextap_analyzer::shape::Namespace;
use mongodb::Client;

use super::{error_label, number, TIMEOUT};

/// A sample of thousands of documents takes longer than a catalog read.
const SAMPLE_TIMEOUT: std::time::Duration = TIMEOUT.saturating_mul(12);

/// The pipeline counting, in a sample of `size` documents, the documents that have each of
/// `fields` (`p<i>`) and the distinct values each takes (`d<i>`).
pub fn pipeline(fields: &[String], size: u32) -> Vec<Document> {
    let mut group = doc! { "_id": Bson::Null, "n": { "$sum": 1 } };
    let mut project = doc! { "_id": 0, "n": 1 };
    for (i, field) in fields.iter().enumerate() {
        let path = format!("${field}");
        group.insert(format!("d{i}"), doc! { "$addToSet": &path });
        group.insert(
            format!("p{i}"),
            doc! { "$sum": { "$cond": [{ "$eq": [{ "$type": &path }, "missing"] }, 0, 1] } },
        );
        project.insert(format!("d{i}"), doc! { "$size": format!("$d{i}") });
        project.insert(format!("p{i}"), 1);
    }
    vec![
        doc! { "$sample": { "size": i64::from(size) } },
        doc! { "$group": group },
        doc! { "$project": project },
    ]
}

/// The statistics of `fields` of `namespace`, counted on a sample of `size` documents.
pub async fn statistics(
    client: &Client,
    namespace: &Namespace,
    fields: &[String],
    size: u32,
) -> Result<NamespaceStatistics, String> {
    let fields: Vec<String> = fields
        .iter()
        .filter(|f| is_addressable(f))
        .cloned()
        .collect();
    let collection = client
        .database(&namespace.database)
        .collection::<Document>(&namespace.collection);
    let read = async {
        let cursor = collection.aggregate(pipeline(&fields, size)).await?;
        cursor.try_collect::<Vec<_>>().await
    };
    let answers = tokio::time::timeout(SAMPLE_TIMEOUT, read)
        .await
        .map_err(|_| "$sample timed out".to_string())?
        .map_err(|e| format!("$sample failed: {}", error_label(&e)))?;
    let Some(counts) = answers.first() else {
        // An empty collection: nothing sampled, nothing known.
        return Ok(NamespaceStatistics {
            rows: 0.0,
            sample_size: Some(0),
            fields: Default::default(),
        });
    };
    let sampled = number(counts, "n");
    let mut statistics = NamespaceStatistics {
        rows: sampled,
        sample_size: Some(sampled as u64),
        fields: Default::default(),
    };
    for (i, field) in fields.into_iter().enumerate() {
        let present = number(counts, &format!("p{i}"));
        let distinct = number(counts, &format!("d{i}"));
        let null_fraction = if sampled > 0.0 {
            1.0 - present / sampled
        } else {
            1.0
        };
        statistics.fields.insert(
            field,
            FieldStatistics {
                distinct,
                null_fraction,
                most_common_frequencies: Vec::new(),
            },
        );
    }
    Ok(statistics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_returns_only_counts() {
        let stages = pipeline(&["a".to_owned(), "b.c".to_owned()], 100);
        assert_eq!(stages[0], doc! { "$sample": { "size": 100_i64 } });
        let project = stages[2].get_document("$project").expect("a projection");
        assert_eq!(
            project,
            &doc! { "_id": 0, "n": 1, "d0": { "$size": "$d0" }, "p0": 1, "d1": { "$size": "$d1" }, "p1": 1 },
            "sets of values become their sizes before anything is returned"
        );
        assert!(!is_addressable("$natural"));
        assert!(!is_addressable("a..b"));
        assert!(is_addressable("a.b"));
    }
}
