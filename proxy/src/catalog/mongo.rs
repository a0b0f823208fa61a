//! MongoDB: existing indexes, through `listIndexes`.
//!
//! ## Layout
//! - this file: [`client`], [`list_indexes`], [`to_spec`].
//! - [`statistics`]: per-field counts from a `$sample` (never values).
//! - [`usage`]: `$indexStats` access counters.
//! - [`scratch`]: the scratch database of `--mongo-verify sample`.
//! - [`probe`]: a shape made runnable with values from a sampled document.

pub mod probe;
pub mod scratch;
pub mod statistics;
pub mod usage;

use std::time::Duration;

use bson::{Bson, Document};
use futures::TryStreamExt;
use indextap_analyzer::advise::{Condition, IndexKey, IndexMethod, IndexSpec, PartialTerm};
use indextap_analyzer::shape::{Namespace, Target};
use mongodb::options::ClientOptions;
use mongodb::Client;

/// How long one catalog read may take before the advice goes on without it.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// A client for reading the catalog: short timeouts, direct connection to the given host.
pub async fn client(uri: &str) -> Result<Client, String> {
    let mut options = ClientOptions::parse(uri)
        .await
        .map_err(|e| format!("bad MongoDB admin URI: {}", e.kind))?;
    options.server_selection_timeout = Some(TIMEOUT);
    options.connect_timeout = Some(TIMEOUT);
    options.app_name = Some("indextap-catalog".to_string());
    Client::with_options(options).map_err(|e| format!("cannot create a MongoDB client: {}", e.kind))
}

/// The indexes of one collection. A collection that does not exist has none.
pub async fn list_indexes(
    client: &Client,
    namespace: &Namespace,
) -> Result<Vec<IndexSpec>, String> {
    let collection = client
        .database(&namespace.database)
        .collection::<Document>(&namespace.collection);
    let read = async {
        let cursor = collection.list_indexes().await?;
        cursor.try_collect::<Vec<_>>().await
    };
    let models = match tokio::time::timeout(TIMEOUT, read).await {
        Err(_) => return Err("listIndexes timed out".to_string()),
        Ok(Err(e)) if is_namespace_missing(&e) => return Ok(Vec::new()),
        Ok(Err(e)) => return Err(format!("listIndexes failed: {}", error_label(&e))),
        Ok(Ok(models)) => models,
    };
    Ok(models
        .into_iter()
        .filter_map(|model| {
            let options = model.options.unwrap_or_default();
            to_spec(
                namespace,
                &model.keys,
                options.name,
                options.unique.unwrap_or(false),
                options.partial_filter_expression.as_ref(),
            )
        })
        .collect())
}

/// Every collection of every database the client can list (internal ones included: the
/// caller decides).
pub async fn user_collections(client: &Client) -> Result<Vec<Namespace>, String> {
    let list = async {
        let mut namespaces = Vec::new();
        for database in client.list_database_names().await? {
            for collection in client.database(&database).list_collection_names().await? {
                namespaces.push(Namespace::mongo(database.clone(), collection));
            }
        }
        Ok::<_, mongodb::error::Error>(namespaces)
    };
    tokio::time::timeout(TIMEOUT, list)
        .await
        .map_err(|_| "listing collections timed out".to_string())?
        .map_err(|e| format!("listing collections failed: {}", error_label(&e)))
}

fn is_namespace_missing(error: &mongodb::error::Error) -> bool {
    // NamespaceNotFound.
    matches!(error.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 26)
}

/// A count or size in a server's answer, however it was typed (0 when absent).
pub(crate) fn number(document: &Document, key: &str) -> f64 {
    match document.get(key) {
        Some(Bson::Int32(v)) => f64::from(*v),
        Some(Bson::Int64(v)) => *v as f64,
        Some(Bson::Double(v)) => *v,
        _ => 0.0,
    }
}

/// Server error messages can quote a value; report the code name only.
pub(crate) fn error_label(error: &mongodb::error::Error) -> String {
    match error.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => format!("{} ({})", c.code_name, c.code),
        mongodb::error::ErrorKind::ServerSelection { .. } => "server selection failed".to_string(),
        mongodb::error::ErrorKind::Authentication { .. } => "authentication failed".to_string(),
        mongodb::error::ErrorKind::Io(_) => "connection failed".to_string(),
        _ => "driver error".to_string(),
    }
}

/// One listIndexes entry as an [`IndexSpec`]. Indexes whose keys or partial filter the
/// advisor does not model (hashed, geo, an unrecognised filter) are left out: they cannot be
/// assumed to serve any candidate.
pub fn to_spec(
    namespace: &Namespace,
    keys: &Document,
    name: Option<String>,
    unique: bool,
    partial: Option<&Document>,
) -> Option<IndexSpec> {
    let mut method = IndexMethod::Btree;
    let mut index_keys = Vec::new();
    for (field, direction) in keys {
        match direction {
            Bson::String(kind) if kind == "text" => method = IndexMethod::Text,
            Bson::String(_) => return None,
            other => {
                let value = match other {
                    Bson::Int32(v) => f64::from(*v),
                    Bson::Int64(v) => *v as f64,
                    Bson::Double(v) => *v,
                    _ => return None,
                };
                if field == "_ftsx" {
                    continue;
                }
                index_keys.push(IndexKey {
                    target: Target::Field(field.clone()),
                    direction: if value < 0.0 { -1 } else { 1 },
                    nulls_first: None,
                });
            }
        }
    }
    if method == IndexMethod::Text {
        // The advisor proposes a wildcard text index; any text index serves `$text`, since a
        // collection can have only one.
        index_keys = vec![IndexKey {
            target: Target::Field("$**".to_string()),
            direction: 1,
            nulls_first: None,
        }];
    }
    let partial = match partial {
        Some(filter) => partial_terms(filter)?,
        None => Vec::new(),
    };
    Some(IndexSpec {
        namespace: namespace.clone(),
        keys: index_keys,
        method,
        partial,
        include: Vec::new(),
        unique,
        name,
    })
}

fn partial_terms(filter: &Document) -> Option<Vec<PartialTerm>> {
    let mut terms = Vec::new();
    for (field, test) in filter {
        let Bson::Document(operators) = test else {
            return None;
        };
        for (operator, operand) in operators {
            let condition = match (operator.as_str(), operand) {
                ("$exists", Bson::Boolean(b)) => Condition::Exists(*b),
                ("$type", Bson::String(t)) => Condition::Type(t.clone()),
                ("$type", Bson::Int32(t)) => Condition::Type(t.to_string()),
                _ => return None,
            };
            terms.push(PartialTerm {
                target: Target::Field(field.clone()),
                condition,
            });
        }
    }
    terms.sort();
    Some(terms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn ns() -> Namespace {
        Namespace::mongo("app", "orders")
    }

    #[test]
    fn compound_keys_keep_their_directions() {
        let spec = to_spec(
            &ns(),
            &doc! {"status": 1, "delivery_date": -1},
            Some("s".into()),
            false,
            None,
        )
        .expect("modelled");
        let keys: Vec<_> = spec
            .keys
            .iter()
            .map(|k| (k.target.column().to_string(), k.direction))
            .collect();
        assert_eq!(
            keys,
            vec![("status".to_string(), 1), ("delivery_date".to_string(), -1)]
        );
        assert_eq!(spec.method, IndexMethod::Btree);
    }

    #[test]
    fn text_hashed_and_partial_filters() {
        let text =
            to_spec(&ns(), &doc! {"_fts": "text", "_ftsx": 1}, None, false, None).expect("text");
        assert_eq!(text.method, IndexMethod::Text);
        assert!(to_spec(&ns(), &doc! {"user": "hashed"}, None, false, None).is_none());
        let partial = to_spec(
            &ns(),
            &doc! {"email": 1},
            None,
            false,
            Some(&doc! {"email": {"$exists": true}}),
        )
        .expect("partial");
        assert_eq!(
            partial.partial,
            vec![PartialTerm {
                target: Target::Field("email".into()),
                condition: Condition::Exists(true)
            }]
        );
        assert!(to_spec(
            &ns(),
            &doc! {"a": 1},
            None,
            false,
            Some(&doc! {"a": {"$gt": 5}})
        )
        .is_none());
    }
}
